"""Geometric distortion and stability metrics (paired, unpaired and single-set).

See ``docs/api/geometry.md`` for every formula and convention.
"""

from ._cka import cka as cka
from ._composite import CompositeResult as CompositeResult
from ._composite import composite_stability as composite_stability
from ._composite import identifiable_composite_stability as identifiable_composite_stability
from ._distances import condensed_index as condensed_index
from ._distances import distance as distance
from ._distances import knn_search as knn_search
from ._distances import pairwise_distances as pairwise_distances
from ._metric_distortion import BilipschitzResult as BilipschitzResult
from ._metric_distortion import bilipschitz_distortion as bilipschitz_distortion
from ._metric_distortion import stress as stress
from ._neighbors import NeighborResult as NeighborResult
from ._neighbors import continuity as continuity
from ._neighbors import knn_jaccard as knn_jaccard
from ._neighbors import knn_overlap as knn_overlap
from ._neighbors import neighbor_scores as neighbor_scores
from ._neighbors import trustworthiness as trustworthiness
from ._perturbation import CoherenceResult as CoherenceResult
from ._perturbation import paired_perturbation_coherence as paired_perturbation_coherence
from ._perturbation import perturbation_coherence as perturbation_coherence
from ._perturbation import perturbation_effect_size as perturbation_effect_size
from ._procrustes import ProcrustesRatioResult as ProcrustesRatioResult
from ._procrustes import procrustes_disparity as procrustes_disparity
from ._procrustes import procrustes_distortion as procrustes_distortion
from ._procrustes import procrustes_ratio as procrustes_ratio
from ._procrustes import procrustes_similarity as procrustes_similarity
from ._rdm import rdm as rdm
from ._rdm_similarity import RDMSimilarityResult as RDMSimilarityResult
from ._rdm_similarity import rdm_drift as rdm_drift
from ._rdm_similarity import rdm_similarity as rdm_similarity
from ._report import DistortionReport as DistortionReport
from ._report import distortion_report as distortion_report
from ._stability import StabilityResult as StabilityResult
from ._stability import anchor_stability as anchor_stability
from ._stability import feature_split_stability as feature_split_stability
from ._stability import sample_split_stability as sample_split_stability
from ._table import INVARIANCES as INVARIANCES
from ._table import METRICS as METRICS
from ._table import MetricSpec as MetricSpec
from ._table import metric_spec as metric_spec

# METRICS, INVARIANCES and metric_spec are public (documented in docs/api/geometry.md) but stay
# out of __all__: __all__ lists the estimators (the top-level re-export, the sweep registry and
# the estimator test tables read it), and the table is data about them, not an estimator.

__all__ = [
    "MetricSpec",
    "CoherenceResult",
    "CompositeResult",
    "DistortionReport",
    "StabilityResult",
    "anchor_stability",
    "composite_stability",
    "distortion_report",
    "feature_split_stability",
    "identifiable_composite_stability",
    "paired_perturbation_coherence",
    "perturbation_coherence",
    "perturbation_effect_size",
    "sample_split_stability",
    "BilipschitzResult",
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
