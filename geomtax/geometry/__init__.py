"""Geometric distortion and stability metrics (paired, unpaired and single-set).

See ``docs/api/geometry.md`` for every formula and convention.
"""

from ._cka import CKAResult as CKAResult
from ._cka import cka as cka
from ._distances import condensed_index as condensed_index
from ._distances import distance as distance
from ._distances import knn_search as knn_search
from ._distances import pairwise_distances as pairwise_distances
from ._neighbors import BilipschitzResult as BilipschitzResult
from ._neighbors import NeighborResult as NeighborResult
from ._neighbors import bilipschitz_distortion as bilipschitz_distortion
from ._neighbors import continuity as continuity
from ._neighbors import knn_jaccard as knn_jaccard
from ._neighbors import knn_overlap as knn_overlap
from ._neighbors import neighbor_scores as neighbor_scores
from ._neighbors import stress as stress
from ._neighbors import trustworthiness as trustworthiness
from ._procrustes import ProcrustesRatioResult as ProcrustesRatioResult
from ._procrustes import procrustes_disparity as procrustes_disparity
from ._procrustes import procrustes_distortion as procrustes_distortion
from ._procrustes import procrustes_ratio as procrustes_ratio
from ._procrustes import procrustes_similarity as procrustes_similarity
from ._rdm import RDMSimilarityResult as RDMSimilarityResult
from ._rdm import rdm as rdm
from ._rdm import rdm_drift as rdm_drift
from ._rdm import rdm_similarity as rdm_similarity

__all__ = [
    "BilipschitzResult",
    "CKAResult",
    "NeighborResult",
    "ProcrustesRatioResult",
    "RDMSimilarityResult",
    "bilipschitz_distortion",
    "cka",
    "condensed_index",
    "continuity",
    "distance",
    "knn_jaccard",
    "knn_overlap",
    "knn_search",
    "neighbor_scores",
    "pairwise_distances",
    "procrustes_disparity",
    "procrustes_distortion",
    "procrustes_ratio",
    "procrustes_similarity",
    "rdm",
    "rdm_drift",
    "rdm_similarity",
    "stress",
    "trustworthiness",
]
