r"""One-call distortion report: the whole suite on one paired embedding, distances shared."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._chunking import resolve_block_size, scan_row_blocks
from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_int, is_traced
from .._numerics import is_constant
from .._status import (
    STATUS_NAMES,
    AbstractResult,
    Status,
    finish,
    nan_unless_ok,
    select,
    status_name,
    worst,
)
from ._checks import (
    check_block_size,
    check_k,
    nondifferentiable,
    prepare_paired_flagged,
    zero_nonfinite,
)
from ._cka import cka
from ._distances import _cross, _frame
from ._neighbors import (
    _knn,
    _ranks_of,
    _stress_frames,
    _t_from_penalty,
    coincident,
    neighbor_row_bytes,
    neighbor_status,
    pair_row_bytes,
)
from ._procrustes import procrustes_disparity, procrustes_distortion
from ._rdm import RANK_METHODS, rdm_similarity
from ._stability import feature_split_stability

#: (field, label, format) rows of the printed table, in order
_ROWS = (
    ("procrustes_distortion", "Procrustes D (rotation)", "0 = same shape up to rotation/scale"),
    ("procrustes_disparity", "Procrustes disparity (scipy)", "1 - nu^2"),
    ("cka_linear", "CKA (linear)", "1 = same up to rotation/scale"),
    ("rdm_similarity", "RDM similarity (Spearman)", "1 = same distance ranking"),
    ("trustworthiness", "trustworthiness T(k)", "1 = no false neighbors"),
    ("continuity", "continuity C(k)", "1 = no torn neighborhoods"),
    ("knn_overlap", "k-NN overlap", "shared neighbors / k"),
    ("knn_jaccard", "k-NN Jaccard", "o / (2k - o)"),
    ("stress", "Kruskal stress-1 (raw)", "0 = isometry"),
    ("bilipschitz", "bi-Lipschitz distortion", "1 = similarity transform"),
    ("feature_split_stability", "feature-split stability (y)", "Shesha, self-consistency"),
)
METRIC_FIELDS = tuple(field for field, _, _ in _ROWS)


class DistortionReport(AbstractResult):
    """Every suite metric for one paired embedding (arrays only; vmappable).

    Status: ``statuses`` maps every metric field name to its own :class:`geomtax.Status`
    (exactly what the metric's own function returns on these inputs; its value is NaN
    unless that status is ``ok``), and ``status`` is the worst of them in the library's
    precedence order (``nonfinite_input`` > ``degenerate_input`` > ...), so ``report.ok`` means
    every metric is valid. ``feature_split_stability`` has no entry when it is disabled
    (``n_splits=0`` or ``d_y < 4``; its value is then NaN by design).

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

    def to_dict(self) -> dict:
        """Plain Python values keyed by field name (nested lists for a vmapped report).

        ``status`` becomes a status name and ``statuses`` a dict of names.
        """
        out = {}
        for name in self.__dataclass_fields__:
            if name == "statuses":
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
        for field, label, reading in _ROWS:
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


def distortion_report(
    x: Samples,
    y: Samples,
    *,
    key: KeyArray,
    k: int = 10,
    block_size: int | str | None = "auto",
    max_pairs: int | None = None,
    rank_method: str = "auto",
    n_splits: int = 10,
    max_samples: int = 1000,
    throw: bool = True,
) -> DistortionReport:
    r"""Run the distortion suite once on a paired embedding, sharing the distance computation.

    Paired: ``x`` is the reference (ground-truth state or clean embedding), ``y`` the embedding.
    One tiled pass over row blocks computes the Euclidean distance tiles of both spaces once and
    feeds trustworthiness, continuity, k-NN overlap/Jaccard, Kruskal stress and the
    bi-Lipschitz distortion from them; Procrustes, linear CKA, the Spearman RDM similarity
    (Euclidean; sampled with ``max_pairs``) and the feature-split stability of ``y``
    (``n_splits`` splits, cosine, ``max_samples`` rows) come from their own functions with
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
        n_splits: feature splits for the stability score (0 disables it: NaN).
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
        >>> rep = distortion_report(x, 2.0 * x, key=jax.random.key(1), k=5, n_splits=2)
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
    n_splits = check_int("n_splits", n_splits, minimum=0)
    max_samples = check_int("max_samples", max_samples, minimum=4)
    if max_pairs is not None:
        max_pairs = check_int("max_pairs", max_pairs, minimum=64)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=4, what="distortion_report")
    n = x.shape[0]
    k = check_k(k, n, shape=x.shape)
    item = x.dtype.itemsize
    bs = resolve_block_size(
        block_size, n, row_bytes=neighbor_row_bytes(n, k, item) + pair_row_bytes(n, item)
    )
    x = nondifferentiable(x, "distortion_report")
    y = nondifferentiable(y, "distortion_report")
    kp, kf = jax.random.split(key)

    p = _pass_impl(x, y, finite, k=k, block_size=bs)
    proc = procrustes_distortion(x, y, throw=False)
    disp = procrustes_disparity(x, y, throw=False)
    ck = cka(x, y, throw=False)
    rs = rdm_similarity(
        x,
        y,
        metric="euclidean",
        max_pairs=max_pairs,
        key=kp if max_pairs is not None else None,
        block_size=bs,
        rank_method=rank_method,
        throw=False,
    )
    statuses = {
        "procrustes_distortion": proc.status,
        "procrustes_disparity": disp.status,
        "cka_linear": ck.status,
        "rdm_similarity": rs.status,
        **p["statuses"],
    }
    dt = x.dtype
    if n_splits > 0 and y.shape[1] >= 4:
        fs = feature_split_stability(
            y, key=kf, n_splits=n_splits, metric="cosine", max_samples=max_samples, throw=False
        )
        fs_value = fs.value
        statuses["feature_split_stability"] = fs.status
    else:
        fs_value = jnp.full((), jnp.nan, dt)
    report = DistortionReport(
        n=jnp.asarray(n, jnp.int32),
        k=jnp.asarray(k, jnp.int32),
        procrustes_distortion=jnp.asarray(proc.value, dt),
        procrustes_disparity=jnp.asarray(disp.value, dt),
        cka_linear=jnp.asarray(ck.value, dt),
        rdm_similarity=jnp.asarray(rs.value, dt),
        rdm_stderr=jnp.asarray(rs.stderr, dt),
        rdm_rank_error_bound=jnp.asarray(rs.rank_error_bound, dt),
        trustworthiness=p["trustworthiness"],
        continuity=p["continuity"],
        knn_overlap=p["knn_overlap"],
        knn_jaccard=p["knn_jaccard"],
        stress=p["stress"],
        bilipschitz=p["bilipschitz"],
        bilipschitz_collapsed=p["bilipschitz_collapsed"],
        feature_split_stability=jnp.asarray(fs_value, dt),
        statuses=statuses,
        status=worst(*statuses.values()),
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
def _pass_impl(x, y, finite, *, k, block_size):
    """The shared tiled pass: neighbour scores, raw stress and bi-Lipschitz, with statuses."""
    n = x.shape[0]
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    nb_status = neighbor_status(x, y, finite)
    st_status = select((~finite, Status.nonfinite_input), (is_constant(x), Status.degenerate_input))
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    xs, ys = _stress_frames(x, y, False)  # stress: separate centring, one common scale
    xb_ = _frame(x)[0]  # neighbours and bi-Lipschitz: each space in its own frame
    yb_ = _frame(y)[0]
    dxcol = x.shape[1]
    dycol = y.shape[1]
    packed = jnp.concatenate([xb_, yb_, xs, ys], axis=1)

    def body(carry, block, start, valid):
        xb = block[:, :dxcol]
        yb = block[:, dxcol : dxcol + dycol]
        xsb = block[:, dxcol + dycol : 2 * dxcol + dycol]
        ysb = block[:, 2 * dxcol + dycol :]
        rows = start + jnp.arange(xb.shape[0])
        dx = _cross(xb, xb_, "euclidean")
        dy = _cross(yb, yb_, "euclidean")
        ix = _knn(dx, rows, n, k)
        iy = _knn(dy, rows, n, k)
        vf = valid.astype(acc)
        pen_t = jnp.sum(jnp.maximum(_ranks_of(dx, iy, rows, n) - k, 0), axis=1).astype(acc)
        pen_c = jnp.sum(jnp.maximum(_ranks_of(dy, ix, rows, n) - k, 0), axis=1).astype(acc)
        o = jnp.sum(jnp.any(ix[:, :, None] == iy[:, None, :], axis=2), axis=1).astype(acc)
        mask = (rows[:, None] != jnp.arange(n)[None, :]) & valid[:, None]
        dsx = _cross(xsb, xs, "euclidean")
        dsy = _cross(ysb, ys, "euclidean")
        r = jnp.where(mask, dsx - dsy, 0.0)
        px, py = ~coincident(xb, xb_, dx), ~coincident(yb, yb_, dy)
        both = mask & px & py
        one = mask & (px != py)
        return {
            "trust": carry["trust"] + jnp.sum(pen_t * vf),
            "cont": carry["cont"] + jnp.sum(pen_c * vf),
            "overlap": carry["overlap"] + jnp.sum(o * vf) / k,
            "jaccard": carry["jaccard"] + jnp.sum(vf * o / (2 * k - o)),
            "num": carry["num"] + jnp.sum(r * r),
            "den": carry["den"] + jnp.sum(jnp.where(mask, dsx * dsx, 0.0)),
            "exp": jnp.maximum(
                carry["exp"], jnp.max(jnp.where(both, dy / jnp.where(both, dx, 1), 0))
            ),
            "con": jnp.maximum(
                carry["con"], jnp.max(jnp.where(both, dx / jnp.where(both, dy, 1), 0))
            ),
            "collapsed": carry["collapsed"] | jnp.any(one),
        }

    z = jnp.zeros((), acc)
    init = dict(
        trust=z,
        cont=z,
        overlap=z,
        jaccard=z,
        num=z,
        den=z,
        exp=z,
        con=z,
        collapsed=jnp.zeros((), bool),
    )
    s = scan_row_blocks(body, init, packed, block_size=block_size, remat=False)
    dt = x.dtype
    ratio = s["num"] / jnp.where(s["den"] > 0, s["den"], 1.0)
    stress_v = jnp.sqrt(jnp.maximum(ratio, 0.0))
    # expansion x contraction is free of the two frames' scales
    bil = jnp.where(s["collapsed"], jnp.inf, s["exp"] * s["con"])

    def nb(v):
        return nan_unless_ok(v.astype(dt), nb_status)

    return {
        "trustworthiness": nb(_t_from_penalty(s["trust"], n, k)),
        "continuity": nb(_t_from_penalty(s["cont"], n, k)),
        "knn_overlap": nb(s["overlap"] / n),
        "knn_jaccard": nb(s["jaccard"] / n),
        "stress": nan_unless_ok(stress_v.astype(dt), st_status),
        "bilipschitz": nb(bil),
        "bilipschitz_collapsed": s["collapsed"],
        "statuses": {
            "trustworthiness": nb_status,
            "continuity": nb_status,
            "knn_overlap": nb_status,
            "knn_jaccard": nb_status,
            "stress": st_status,
            "bilipschitz": nb_status,
        },
    }
