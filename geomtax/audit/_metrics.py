"""The geometry metrics the audit records, read from the metric table.

The audit names its geometry metrics here, once, by their names in
:data:`geomtax.geometry.METRICS`; their ranges, the direction that means "geometry kept" and the
ideal value come from the table (:func:`geomtax.geometry.metric_spec`), never from the audit.
The audit's other numbers (calibrated MI, R(D), the regime rules' MI terms) are not geometry
metrics and have no table entry.
"""

from __future__ import annotations

from ..geometry import metric_spec

#: per perturbation, clean versus perturbed embedding (the keys of a perturbation record)
PERTURBATION_METRICS = (
    "procrustes_distortion",
    "procrustes_disparity",
    "procrustes_ratio",
    "perturbation_coherence",
    "perturbation_effect_size",
    "rdm_similarity",
    "knn_overlap",
)
#: per model: the self-consistency of the clean embedding
MODEL_METRICS = ("feature_split_stability",)
#: averaged over a model's perturbations (``<name>_mean`` in the record and the table)
SUMMARY_METRICS = ("procrustes_distortion", "rdm_similarity")
#: the per-perturbation metrics the HTML report plots (in its order)
PLOTTED_METRICS = ("rdm_similarity", "procrustes_distortion")
#: the metrics that need the two embeddings to have the same width
SAME_WIDTH_METRICS = ("procrustes_ratio", "perturbation_coherence", "perturbation_effect_size")

for _name in (*PERTURBATION_METRICS, *MODEL_METRICS, *PLOTTED_METRICS):
    metric_spec(_name)  # every name above is a table entry (raises at import otherwise)
del _name


def ideal(name: str) -> float:
    """The table's best value of ``name`` (its value for two identical embeddings)."""
    return metric_spec(name).ideal


def better(name: str) -> str:
    """The table's direction of ``name`` that means geometry kept: ``"higher"`` or ``"lower"``."""
    return metric_spec(name).better


def value_range(name: str) -> tuple[float, float]:
    """The table's ``(lo, hi)`` range of ``name``."""
    return metric_spec(name).range


def in_range(name: str, value: float) -> bool:
    """Whether ``value`` lies in the table's range of ``name`` (ends included)."""
    lo, hi = value_range(name)
    return lo <= value <= hi


def geometry_lost(name: str, value: float, threshold: float) -> bool:
    """Whether ``value`` of ``name`` is at ``threshold`` or beyond it, away from the ideal.

    ``value >= threshold`` for a metric where lower means geometry kept, ``value <= threshold``
    where higher does.
    """
    if better(name) == "lower":
        return value >= threshold
    return value <= threshold


def directions(names=(*MODEL_METRICS, *PERTURBATION_METRICS)) -> dict:
    """``{name: {"better", "range", "ideal"}}`` from the table (the report's legend)."""
    out = {}
    for name in names:
        spec = metric_spec(name)
        out[name] = {"better": spec.better, "range": list(spec.range), "ideal": spec.ideal}
    return out


def axis_label(name: str) -> str:
    """A plot label: the name, and for a table entry the direction that means geometry kept."""
    label = name.replace("_", " ")
    try:
        direction = better(name)
    except ValueError:  # not a geometry metric of the table (e.g. a composite of the record)
        return label
    return f"{label} ({direction} = geometry kept)"
