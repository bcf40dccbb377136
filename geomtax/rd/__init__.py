"""Rate–distortion: k-means quantization, Blahut–Arimoto R(D) curves and capacity scaling fits.

See ``docs/api/rd.md`` for every formula and convention.
"""

from ._kmeans import KMeansResult as KMeansResult
from ._kmeans import kmeans as kmeans

__all__ = [
    "KMeansResult",
    "kmeans",
]
