r"""The metric table: every geometry metric declared once (see docs/api/geometry.md).

Each :class:`MetricSpec` names the public function, its pairing, the invariances it has, whether
a gradient is meaningful, its range and which direction means "geometry kept", and, for the
metrics of :func:`~geomtax.geometry.distortion_report`, its report entry: a streamed
:class:`~geomtax.geometry._tiles.Accumulator` (the tiled pass the report shares) or a call of the
metric's own function. The report, the property tests (tests/test_geometry_table.py) and the
consumers outside geometry (ablation records, audit, sweeps) read this table instead of naming
metrics themselves.

Invariances are those of the metric under the options of its ``evaluate`` (the report's options
where the metric is in the report), for a transform applied to ``transform_target``: the second
input (the embedding under test, paired metrics), both inputs alike (``"both"``: the metric
compares two states of one cloud), or the one input (single-set metrics). The five transforms:

* ``rotation``: ``y -> y Q`` (Q orthogonal); ``scale``: ``y -> c y`` (c > 0);
  ``translation``: ``y -> y + b``; ``permutation``: the feature columns of ``y`` permuted;
* ``monotone``: ``y`` replaced by points whose pairwise distances are a strictly increasing
  function of those of ``y`` (the tests use classical MDS of the square-rooted distances).
"""

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from ._cka import cka
from ._composite import composite_stability, identifiable_composite_stability
from ._metric_distortion import BilipschitzMax, StressSums, bilipschitz_distortion, stress
from ._neighbors import NeighborSums, continuity, knn_jaccard, knn_overlap, trustworthiness
from ._perturbation import (
    paired_perturbation_coherence,
    perturbation_coherence,
    perturbation_effect_size,
)
from ._procrustes import (
    procrustes_disparity,
    procrustes_distortion,
    procrustes_ratio,
    procrustes_similarity,
)
from ._rdm_similarity import rdm_drift, rdm_similarity
from ._stability import anchor_stability, feature_split_stability, sample_split_stability

#: how a metric reads its inputs
PAIRINGS = ("paired", "unpaired", "single")
#: the invariances a metric may declare (see the module docstring)
INVARIANCES = ("rotation", "scale", "translation", "permutation", "monotone")
#: which inputs a declared invariance transforms
TARGETS = ("second", "both", "single")
_ALL = frozenset(INVARIANCES)
_SIMILARITY = frozenset({"rotation", "scale", "translation", "permutation"})
_RIGID = frozenset({"rotation", "translation", "permutation"})
_COSINE = frozenset({"rotation", "scale", "permutation"})


class ReportOptions(NamedTuple):
    """What :func:`~geomtax.geometry.distortion_report` passes to each report entry."""

    k: int
    block_size: int | None
    max_pairs: int | None
    rank_method: str
    num_splits: int
    max_samples: int
    key_pairs: Any
    key_splits: Any


@dataclass(frozen=True)
class ReportEntry:
    """How a metric enters :func:`~geomtax.geometry.distortion_report`.

    Exactly one of ``accumulator`` (a function of the :class:`ReportOptions` giving the
    streamed accumulator of the shared tiled pass; the report reads ``field`` from its
    ``finish``) and ``call`` (``call(x, y, options)`` runs the metric's own function and returns
    ``(result, extra fields)`` where ``result`` has ``value`` and ``status``, or ``None`` when
    the metric does not apply, e.g. fewer than 4 columns) is set.

    Attributes:
        field: the report's field (and ``statuses`` key) for the value.
        label: the row label of the printed table.
        reading: how to read the value (printed).
        extra: further report fields the entry fills (besides ``field``).
    """

    field: str
    label: str
    reading: str
    accumulator: Callable[[ReportOptions], Any] | None = None
    call: Callable[..., Any] | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """One geometry metric, declared once (a row of :data:`METRICS`).

    Attributes:
        name: the public function's name (the table key).
        function: the public function.
        pairing: ``"paired"`` (row i of both inputs is one item), ``"unpaired"`` (two sets,
            any row counts) or ``"single"`` (one input).
        invariances: the subset of :data:`INVARIANCES` the value is unchanged under.
        smooth: ``True`` if ``jax.grad`` gives a meaningful gradient (usable in a loss);
            ``False`` if the metric is piecewise constant in its inputs (ranks, k-NN sets):
            differentiating it raises ``TypeError``.
        range: ``(lo, hi)`` of the value (``float("inf")`` for unbounded).
        better: ``"higher"`` or ``"lower"``: the direction that means "geometry kept" (the
            best value, :attr:`ideal`, is the end of ``range`` it points to).
        evaluate: ``evaluate(x, y, key) -> value`` with the table's options (the ones the
            invariances are declared for); ``y`` is ignored by single-set metrics.
        transform_target: the inputs an invariance transforms (:data:`TARGETS`).
        no_counterexample: ``{invariance: reason}`` for undeclared invariances that cannot be
            shown to fail (the transform does not apply to the metric's inputs).
        report: how it enters the distortion report, or ``None``.
    """

    name: str
    function: Callable[..., Any]
    pairing: str
    invariances: AbstractSet[str]  # any set of names; stored as a frozenset
    smooth: bool
    range: tuple[float, float]
    better: str
    evaluate: Callable[..., Any]
    transform_target: str = ""
    no_counterexample: Mapping[str, str] = field(default_factory=dict)
    report: ReportEntry | None = None

    def __post_init__(self):
        if self.pairing not in PAIRINGS:
            raise ValueError(f"{self.name}: pairing must be one of {PAIRINGS}")
        unknown = set(self.invariances) - _ALL
        if unknown:
            raise ValueError(f"{self.name}: unknown invariances {sorted(unknown)}")
        if self.better not in ("higher", "lower"):
            raise ValueError(f"{self.name}: better must be 'higher' or 'lower'")
        if not self.transform_target:
            default = {"paired": "second", "unpaired": "both", "single": "single"}[self.pairing]
            object.__setattr__(self, "transform_target", default)
        if self.transform_target not in TARGETS:
            raise ValueError(f"{self.name}: transform_target must be one of {TARGETS}")
        object.__setattr__(self, "invariances", frozenset(self.invariances))

    @property
    def ideal(self) -> float:
        """The best value: ``range[1]`` if ``better == "higher"``, else ``range[0]``."""
        return self.range[1] if self.better == "higher" else self.range[0]

    @property
    def streamed(self) -> bool:
        """Whether the report computes it in the shared tiled pass."""
        return self.report is not None and self.report.accumulator is not None


# ----------------------------------------------------------------------------- report calls


def _rdm_call(x, y, o: ReportOptions):
    r = rdm_similarity(
        x,
        y,
        metric="euclidean",
        max_pairs=o.max_pairs,
        key=o.key_pairs if o.max_pairs is not None else None,
        block_size=o.block_size,
        rank_method=o.rank_method,
        throw=False,
    )
    return r, {"rdm_stderr": r.stderr, "rdm_rank_error_bound": r.rank_error_bound}


def _feature_split_call(x, y, o: ReportOptions):
    if o.num_splits == 0 or y.shape[1] < 4:
        return None, {}
    r = feature_split_stability(
        y,
        key=o.key_splits,
        num_splits=o.num_splits,
        metric="cosine",
        max_samples=o.max_samples,
        throw=False,
    )
    return r, {}


def _own(fn):
    """A report call that runs ``fn(x, y, throw=False)``."""
    return lambda x, y, o: (fn(x, y, throw=False), {})


def _neighbors(o: ReportOptions):
    return NeighborSums(o.k)


# ----------------------------------------------------------------------------- the table

_K = 5  # neighbourhood size of the table's evaluations (n >= 16 rows)


def _value(fn, **opts):
    return lambda x, y, key: fn(x, y, **opts).value


def _single(fn, **opts):
    return lambda x, y, key: fn(x, key=key, **opts).value


def _composite(fn):
    return lambda x, y, key: fn(x, y, key=key, num_splits=2, max_samples=None).value


def _row(fn, pairing, invariances, smooth, range_, better, evaluate=None, report=None, **kw):
    """One table row; ``evaluate`` defaults to ``fn(x, y).value``."""
    evaluate = evaluate or _value(fn)
    return MetricSpec(
        fn.__name__, fn, pairing, invariances, smooth, range_, better, evaluate, report=report, **kw
    )


_NEIGHBORS = dict(accumulator=_neighbors)
_INF = float("inf")
_U, _S = (0.0, 1.0), (-1.0, 1.0)  # unit interval, signed correlation

# fmt: off
_SPECS = (
    _row(procrustes_distortion, "paired", _SIMILARITY, True, _U, "lower", report=ReportEntry(
        "procrustes_distortion", "Procrustes D (rotation)", "0 = same shape up to rotation/scale",
        call=_own(procrustes_distortion))),
    _row(procrustes_disparity, "paired", _SIMILARITY, True, _U, "lower", report=ReportEntry(
        "procrustes_disparity", "Procrustes disparity (scipy)", "1 - nu^2",
        call=_own(procrustes_disparity))),
    _row(cka, "paired", _SIMILARITY, True, _U, "higher", report=ReportEntry(
        "cka_linear", "CKA (linear)", "1 = same up to rotation/scale", call=_own(cka))),
    _row(rdm_similarity, "paired", _ALL, False, _S, "higher",
         _value(rdm_similarity, metric="euclidean"), report=ReportEntry(
             "rdm_similarity", "RDM similarity (Spearman)", "1 = same distance ranking",
             call=_rdm_call, extra=("rdm_stderr", "rdm_rank_error_bound"))),
    _row(trustworthiness, "paired", _ALL, False, _U, "higher", _value(trustworthiness, k=_K),
         ReportEntry("trustworthiness", "trustworthiness T(k)", "1 = no false neighbors",
                     **_NEIGHBORS)),
    _row(continuity, "paired", _ALL, False, _U, "higher", _value(continuity, k=_K),
         ReportEntry("continuity", "continuity C(k)", "1 = no torn neighborhoods", **_NEIGHBORS)),
    _row(knn_overlap, "paired", _ALL, False, _U, "higher", _value(knn_overlap, k=_K),
         ReportEntry("knn_overlap", "k-NN overlap", "shared neighbors / k", **_NEIGHBORS)),
    _row(knn_jaccard, "paired", _ALL, False, _U, "higher", _value(knn_jaccard, k=_K),
         ReportEntry("knn_jaccard", "k-NN Jaccard", "o / (2k - o)", **_NEIGHBORS)),
    _row(stress, "paired", _RIGID, True, (0.0, _INF), "lower", report=ReportEntry(
        "stress", "Kruskal stress-1 (raw)", "0 = isometry", accumulator=lambda o: StressSums())),
    _row(bilipschitz_distortion, "paired", _SIMILARITY, True, (1.0, _INF), "lower",
         lambda x, y, key: bilipschitz_distortion(x, y).distortion, ReportEntry(
             "bilipschitz", "bi-Lipschitz distortion", "1 = similarity transform",
             accumulator=lambda o: BilipschitzMax(), extra=("bilipschitz_collapsed",))),
    _row(feature_split_stability, "single", {"scale"}, False, _S, "higher",
         _single(feature_split_stability, num_splits=3, max_samples=None), ReportEntry(
             "feature_split_stability", "feature-split stability (y)",
             "Shesha, self-consistency", call=_feature_split_call)),
    _row(procrustes_similarity, "paired", _SIMILARITY, True, _U, "higher"),
    _row(procrustes_ratio, "paired", _SIMILARITY, True, _U, "lower",
         lambda x, y, key: procrustes_ratio(x, y).ratio, transform_target="both"),
    _row(rdm_drift, "paired", _ALL, False, (0.0, 2.0), "lower",
         _value(rdm_drift, metric="euclidean")),
    _row(sample_split_stability, "single", _COSINE, False, _S, "higher",
         _single(sample_split_stability, num_splits=3, fraction=0.5)),
    _row(anchor_stability, "single", _COSINE, False, _S, "higher",
         _single(anchor_stability, num_splits=3, num_anchors=4, num_set_rows=12)),
    _row(perturbation_coherence, "unpaired", _SIMILARITY, True, _S, "higher"),
    _row(paired_perturbation_coherence, "paired", _SIMILARITY, True, _S, "higher",
         transform_target="both"),
    _row(perturbation_effect_size, "unpaired", _RIGID, True, (0.0, _INF), "lower"),
    _row(composite_stability, "paired", _COSINE, False, _S, "higher",
         _composite(composite_stability)),
    _row(identifiable_composite_stability, "paired", _COSINE, False, _S, "higher",
         _composite(identifiable_composite_stability)),
)
# fmt: on

#: the table entries, name -> :class:`MetricSpec` (edit ``_SPECS`` to add a metric)
_TABLE: dict[str, MetricSpec] = {s.name: s for s in _SPECS}

#: every geometry metric, name -> :class:`MetricSpec` (read-only view of the table)
METRICS: Mapping[str, MetricSpec] = MappingProxyType(_TABLE)


def metric_spec(name: str) -> MetricSpec:
    """The table row of the metric ``name`` (a public function name, or a report field).

    Raises:
        ValueError: unknown name (the message lists the close matches).

    Examples:
        >>> metric_spec("trustworthiness").invariances >= {"rotation", "monotone"}
        True
        >>> metric_spec("cka_linear").name
        'cka'
    """
    if name in _TABLE:
        return _TABLE[name]
    for spec in _TABLE.values():
        if spec.report is not None and spec.report.field == name:
            return spec
    import difflib

    close = difflib.get_close_matches(name, list(_TABLE), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"no geometry metric named {name!r}{hint} (see geomtax.geometry.METRICS)")


def report_specs() -> tuple[MetricSpec, ...]:
    """The rows of the distortion report, in table order."""
    return tuple(s for s in _TABLE.values() if s.report is not None)
