r"""One-call distortion report: the whole suite on one paired embedding, distances shared."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._chunking import resolve_block_size
from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_int, is_traced, renamed_options
from .._status import STATUS_NAMES, AbstractResult, Status, finish, status_name, worst
from ._checks import (
    check_block_size,
    check_k,
    nondifferentiable,
    prepare_paired_flagged,
    zero_nonfinite,
)
from ._ranks import RANK_METHODS
from ._table import ReportOptions, report_specs
from ._tiles import stream_paired


class DistortionReport(AbstractResult):
    """Every suite metric for one paired embedding (arrays only; vmappable).

    Status: ``statuses`` maps every metric field name to its own :class:`geomtax.Status`
    (exactly what the metric's own function returns on these inputs; its value is NaN
    unless that status is ``ok``), and ``status`` is the worst of them in the library's
    precedence order (``nonfinite_input`` > ``degenerate_input`` > ...), so ``report.ok`` means
    every metric is valid. ``feature_split_stability`` has no entry when it is disabled
    (``num_splits=0`` or ``d_y < 4``; its value is then NaN by design).

    Attributes:
        n: number of rows.
        k: neighborhood size used.
        procrustes_distortion: D (rotation variant) in [0, 1].
        procrustes_disparity: scipy disparity in [0, 1].
        cka_linear: linear CKA.
        rdm_similarity: Spearman correlation of the Euclidean RDMs.
        rdm_stderr: standard error when pairs were sampled (else 0).
        rdm_rank_error_bound: bound from binned ranking (else 0).
        trustworthiness: T(k).
        continuity: C(k).
        knn_overlap: mean |intersection| / k.
        knn_jaccard: mean Jaccard index of the k-NN sets.
        stress: Kruskal stress-1 (raw scale).
        bilipschitz: max expansion x max contraction (``inf`` if ``bilipschitz_collapsed``).
        bilipschitz_collapsed: a pair has exactly one zero distance.
        feature_split_stability: Shesha score of ``y`` (NaN if d_y < 4 or disabled).
        statuses: dict, metric field name -> :class:`geomtax.Status`.
        status: the worst of ``statuses``.
        extra: dict, field -> value of the report rows of metrics beyond the built-in ones
            (entries added to :data:`geomtax.geometry.METRICS`); empty by default.
    """

    n: Int[Array, ""]
    k: Int[Array, ""]
    procrustes_distortion: Float[Array, ""]
    procrustes_disparity: Float[Array, ""]
    cka_linear: Float[Array, ""]
    rdm_similarity: Float[Array, ""]
    rdm_stderr: Float[Array, ""]
    rdm_rank_error_bound: Float[Array, ""]
    trustworthiness: Float[Array, ""]
    continuity: Float[Array, ""]
    knn_overlap: Float[Array, ""]
    knn_jaccard: Float[Array, ""]
    stress: Float[Array, ""]
    bilipschitz: Float[Array, ""]
    bilipschitz_collapsed: Bool[Array, ""]
    feature_split_stability: Float[Array, ""]
    statuses: dict
    status: object
    extra: dict = eqx.field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain Python values keyed by field name (nested lists for a vmapped report).

        ``status`` becomes a status name and ``statuses`` a dict of names; the ``extra``
        fields (metrics added to the table) appear beside the built-in ones.
        """
        out = {}
        for name in self.__dataclass_fields__:
            if name == "extra":
                for f, v in self.extra.items():
                    v = np.asarray(v)
                    out[f] = v.item() if v.ndim == 0 else v.tolist()
            elif name == "statuses":
                out[name] = {m: _name(s) for m, s in self.statuses.items()}
            elif name == "status":
                out[name] = _name(self.status)
            else:
                v = np.asarray(getattr(self, name))
                out[name] = v.item() if v.ndim == 0 else v.tolist()
        return out

    def __str__(self) -> str:
        """Readable Markdown table (one column per report when vmapped)."""
        d = self.to_dict()
        batched = isinstance(d["n"], list)
        head = f"distortion report (n = {d['n']}, k = {d['k']}, status = {d['status']})"
        lines = [head, "", "| metric | value | status | reading |", "|---|---|---|---|"]
        for spec in report_specs():
            field, label, reading = spec.report.field, spec.report.label, spec.report.reading
            v = d[field]
            st = d["statuses"].get(field, "disabled")
            if batched:
                text = ", ".join(f"{a:.4g}" for a in v)
                st = ", ".join(st) if isinstance(st, list) else st
            else:
                text = f"{v:.4g}"
                if field == "rdm_similarity" and d["rdm_stderr"] > 0:
                    text += f" ± {d['rdm_stderr']:.2g}"
                if field == "bilipschitz" and d["bilipschitz_collapsed"]:
                    text += " (collapsed pair)"
            lines.append(f"| {label} | {text} | {st} | {reading} |")
        return "\n".join(lines)


def _name(status):
    names = status_name(status)
    return names if isinstance(names, str) else np.asarray(names).tolist()


@renamed_options(n_splits="num_splits")
def distortion_report(
    x: Samples,
    y: Samples,
    *,
    key: KeyArray,
    k: int = 10,
    block_size: int | str | None = "auto",
    max_pairs: int | None = None,
    rank_method: str = "auto",
    num_splits: int = 10,
    max_samples: int = 1000,
    throw: bool = True,
) -> DistortionReport:
    r"""Run the distortion suite once on a paired embedding, sharing the distance computation.

    Paired: ``x`` is the reference (ground-truth state or clean embedding), ``y`` the embedding.
    The rows are those of the metric table (:data:`geomtax.geometry.METRICS`) that have a report
    entry, in table order. One tiled pass over row blocks computes the Euclidean distance tiles
    of both spaces once and feeds every streamed metric's own accumulator (trustworthiness,
    continuity, k-NN overlap/Jaccard, Kruskal stress and the bi-Lipschitz distortion), so each
    value is the one its function returns; Procrustes, linear CKA, the Spearman RDM similarity
    (Euclidean; sampled with ``max_pairs``) and the feature-split stability of ``y``
    (``num_splits`` splits, cosine, ``max_samples`` rows) come from their own functions with
    ``throw=False``. Every metric follows the conventions, invariances and status rules of its
    own function (see docs/reference/geometry.md).

    Args:
        x: reference, shape (n, d_x), n > 2k.
        y: embedding, shape (n, d_y).
        key: PRNG key (feature splits, sampled pairs).
        k: neighborhood size, ``1 <= k < n / 2`` (Python or NumPy int).
        block_size: rows per tile: ``"auto"`` (tiles <= 64 MiB), an int, or ``None`` (dense).
        max_pairs: sample this many pairs for the RDM similarity (``None``: all pairs).
        rank_method: Spearman ranking, see :func:`~geomtax.geometry.rdm_similarity`.
        num_splits: feature splits for the stability score (0 disables it: NaN).
        max_samples: row cap of the feature-split score.
        throw: raise :class:`geomtax.StatusError` when ``status`` (the worst metric status) is
            not ``ok``; the message names the metrics concerned. With ``False`` the report is
            returned with every status, under ``jit`` too.

    Returns:
        :class:`DistortionReport`; ``print(report)`` shows a table with a status column,
        ``report.to_dict()`` a dict. Statuses per metric: ``ok``, ``nonfinite_input`` (NaN or
        inf in ``x`` or ``y``: every metric), ``degenerate_input`` (e.g. every row of ``x`` or
        ``y`` identical; a constant RDM; no valid feature split).

    Raises:
        ValueError: mismatched rows, k out of range, bad options; :class:`geomtax.StatusError`
            for a non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-int options, differentiation (rank-based metrics).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 5))
        >>> rep = distortion_report(x, 2.0 * x, key=jax.random.key(1), k=5, num_splits=2)
        >>> round(float(rep.procrustes_distortion), 3), float(rep.trustworthiness)
        (0.0, 1.0)
        >>> rep.status_name, rep.to_dict()["statuses"]["stress"]
        ('ok', 'ok')
    """
    check_choice("rank_method", rank_method, RANK_METHODS)
    check_block_size(block_size)
    throw = check_bool("throw", throw)
    if key is None:
        raise ValueError("distortion_report needs an explicit PRNG `key`")
    num_splits = check_int("num_splits", num_splits, minimum=0)
    max_samples = check_int("max_samples", max_samples, minimum=4)
    if max_pairs is not None:
        max_pairs = check_int("max_pairs", max_pairs, minimum=64)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=4, what="distortion_report")
    n = x.shape[0]
    k = check_k(k, n, shape=x.shape)
    kp, kf = jax.random.split(key)
    specs = report_specs()
    opts = ReportOptions(k, None, max_pairs, rank_method, num_splits, max_samples, kp, kf)
    accs = tuple(dict.fromkeys(s.report.accumulator(opts) for s in specs if s.streamed))
    item = x.dtype.itemsize
    bs = resolve_block_size(block_size, n, row_bytes=sum(a.row_bytes(n, item) for a in accs))
    opts = opts._replace(block_size=bs)
    x = nondifferentiable(x, "distortion_report")
    y = nondifferentiable(y, "distortion_report")

    streamed = _pass_impl(x, y, finite, accumulators=accs, block_size=bs)
    dt = x.dtype
    values, statuses = {}, {}
    for spec in specs:
        entry = spec.report
        if spec.streamed:
            values[entry.field], statuses[entry.field] = streamed[entry.field]
            for f in entry.extra:
                values[f] = streamed[f][0]
            continue
        result, extra = entry.call(x, y, opts)
        if result is None:  # the metric does not apply to these inputs: NaN, no status
            values[entry.field] = jnp.full((), jnp.nan, dt)
        else:
            values[entry.field], statuses[entry.field] = result.value, result.status
        values.update(extra)
    builtin = set(DistortionReport.__dataclass_fields__)
    fields = {
        f: (v if v.dtype == bool else jnp.asarray(v, dt))
        for f, v in ((f, jnp.asarray(v)) for f, v in values.items())
    }
    report = DistortionReport(
        n=jnp.asarray(n, jnp.int32),
        k=jnp.asarray(k, jnp.int32),
        **{f: v for f, v in fields.items() if f in builtin},
        statuses=statuses,
        status=worst(*statuses.values()),
        extra={f: v for f, v in fields.items() if f not in builtin},
    )
    return finish(report, throw=throw, function="distortion_report", details=_details(statuses))


def _details(statuses) -> dict[str, str]:
    """Per status name, the metrics that have it (concrete statuses only)."""
    if any(is_traced(s._value) for s in statuses.values()):
        return {name: "see report.statuses" for name in STATUS_NAMES}
    out = {}
    for name in STATUS_NAMES:
        code = int(Status._name_to_item[name]._value)
        hit = [m for m, s in statuses.items() if np.any(np.asarray(s._value) == code)]
        if hit:
            out[name] = "metrics: " + ", ".join(hit)
    return out


@eqx.filter_jit
def _pass_impl(x, y, finite, *, accumulators, block_size):
    """The shared tiled pass: every streamed metric of the table, with its status."""
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    return stream_paired(accumulators, x, y, finite=finite, block_size=block_size)
