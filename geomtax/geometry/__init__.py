"""Geometric distortion and stability metrics (paired, unpaired and single-set).

See ``docs/api/geometry.md`` for every formula and convention.
"""

from ._distances import (
    condensed_index as condensed_index,
)
from ._distances import (
    distance as distance,
)
from ._distances import (
    knn_search as knn_search,
)
from ._distances import (
    pairwise_distances as pairwise_distances,
)

__all__ = [
    "condensed_index",
    "distance",
    "knn_search",
    "pairwise_distances",
]
