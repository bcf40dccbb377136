r"""One-call distortion report: the whole suite on one paired embedding, distances shared."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._chunking import scan_row_blocks
from .._custom_types import KeyArray, Samples
from .._errors import check_choice
from ._checks import check_block_size, check_k, prepare_paired
from ._cka import _linear
from ._distances import _cross
from ._neighbors import _knn, _ranks_of, _t_from_penalty
from ._procrustes import _nuclear, _safe_sqrt
from ._ranks import spearman
from ._rdm import RANK_METHODS, _pair_values, _resolve_rank_method, _sampled_impl
from ._stability import _feature_split_impl, _rm

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


class DistortionReport(eqx.Module):
    """Every suite metric for one paired embedding (arrays only; vmappable).

    Attributes:
        n: number of rows.
        k: neighborhood size used.
        procrustes_distortion: D (rotation variant) in [0, 1].
        procrustes_disparity: scipy disparity in [0, 1].
        cka_linear: linear CKA (NaN if an input is constant).
        rdm_similarity: Spearman correlation of the Euclidean RDMs (0.0 if constant).
        rdm_constant: flag for a constant RDM.
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
    """

    n: Int[Array, ""]
    k: Int[Array, ""]
    procrustes_distortion: Float[Array, ""]
    procrustes_disparity: Float[Array, ""]
    cka_linear: Float[Array, ""]
    rdm_similarity: Float[Array, ""]
    rdm_constant: Bool[Array, ""]
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

    def to_dict(self) -> dict:
        """Plain Python scalars (or nested lists for a vmapped report), keyed by field name."""
        out = {}
        for name in self.__dataclass_fields__:
            v = np.asarray(getattr(self, name))
            out[name] = v.item() if v.ndim == 0 else v.tolist()
        return out

    def __str__(self) -> str:
        """Readable Markdown table (one column per report when vmapped)."""
        d = self.to_dict()
        batched = isinstance(d["n"], list)
        head = f"distortion report (n = {d['n']}, k = {d['k']})"
        lines = [head, "", "| metric | value | reading |", "|---|---|---|"]
        for field, label, reading in _ROWS:
            v = d[field]
            if batched:
                text = ", ".join(f"{a:.4g}" for a in v)
            else:
                text = f"{v:.4g}"
                if field == "rdm_similarity":
                    if d["rdm_constant"]:
                        text += " (constant RDM)"
                    if d["rdm_stderr"] > 0:
                        text += f" ± {d['rdm_stderr']:.2g}"
                if field == "bilipschitz" and d["bilipschitz_collapsed"]:
                    text += " (collapsed pair)"
            lines.append(f"| {label} | {text} | {reading} |")
        return "\n".join(lines)


def distortion_report(
    x: Samples,
    y: Samples,
    *,
    key: KeyArray,
    k: int = 10,
    block_size: int | None = None,
    max_pairs: int | None = None,
    rank_method: str = "auto",
    n_splits: int = 10,
    max_samples: int = 1000,
) -> DistortionReport:
    r"""Run the distortion suite once on a paired embedding, sharing the distance computation.

    Paired: ``x`` is the reference (ground-truth state or clean embedding), ``y`` the embedding.
    One tiled pass over row blocks computes the Euclidean distance tiles of both spaces once and
    feeds trustworthiness, continuity, k-NN overlap/Jaccard, Kruskal stress and the
    bi-Lipschitz distortion from them; the same full distance matrices feed the Spearman RDM
    similarity when ``block_size`` is ``None`` (otherwise the RDMs are built separately, or
    sampled with ``max_pairs``). Procrustes and linear CKA use O(n d^2) feature-space forms; the
    feature-split stability of ``y`` (``n_splits`` splits, cosine, ``max_samples`` rows) uses
    ``key``. Every metric follows the conventions of its own function.

    Args:
        x: reference, shape (n, d_x), n > 2k.
        y: embedding, shape (n, d_y).
        key: PRNG key (feature splits, sampled pairs).
        k: neighborhood size, ``1 <= k < n / 2``.
        block_size: rows per tile (bounded memory), or ``None`` for dense.
        max_pairs: sample this many pairs for the RDM similarity (``None``: all pairs).
        rank_method: Spearman ranking, see :func:`~geomtax.geometry.rdm_similarity`.
        n_splits: feature splits for the stability score (0 disables it: NaN).
        max_samples: row cap of the feature-split score.

    Returns:
        :class:`DistortionReport`; ``print(report)`` shows a table, ``report.to_dict()`` a dict.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 5))
        >>> rep = distortion_report(x, 2.0 * x, key=jax.random.key(1), k=5, n_splits=2)
        >>> round(float(rep.procrustes_distortion), 3), float(rep.trustworthiness)
        (0.0, 1.0)
    """
    check_choice("rank_method", rank_method, RANK_METHODS)
    check_block_size(block_size)
    if key is None:
        raise ValueError("distortion_report needs an explicit PRNG `key`")
    x, y = prepare_paired(x, y, min_rows=4, what="distortion_report")
    n = x.shape[0]
    check_k(k, n, shape=x.shape)
    if max_pairs is not None and (not isinstance(max_pairs, int) or max_pairs < 64):
        raise ValueError(f"max_pairs must be an int >= 64, got {max_pairs!r}")
    return _report_impl(
        x,
        y,
        key,
        k=k,
        block_size=block_size,
        max_pairs=max_pairs,
        rm=_resolve_rank_method(rank_method, max_pairs or n * (n - 1) // 2),
        n_splits=n_splits,
        max_samples=max_samples,
    )


@eqx.filter_jit
def _report_impl(x, y, key, *, k, block_size, max_pairs, rm, n_splits, max_samples):
    n = x.shape[0]
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    dxcol = x.shape[1]
    xy = jnp.concatenate([x, y], axis=1)
    dense = block_size is None or block_size >= n

    def body(carry, block, start, valid):
        xb, yb = block[:, :dxcol], block[:, dxcol:]
        rows = start + jnp.arange(xb.shape[0])
        dx = _cross(xb, x, "euclidean")
        dy = _cross(yb, y, "euclidean")
        ix = _knn(dx, rows, n, k)
        iy = _knn(dy, rows, n, k)
        vf = valid.astype(acc)
        pen_t = jnp.sum(jnp.maximum(_ranks_of(dx, iy, rows, n) - k, 0), axis=1).astype(acc)
        pen_c = jnp.sum(jnp.maximum(_ranks_of(dy, ix, rows, n) - k, 0), axis=1).astype(acc)
        o = jnp.sum(jnp.any(ix[:, :, None] == iy[:, None, :], axis=2), axis=1).astype(acc)
        mask = (rows[:, None] != jnp.arange(n)[None, :]) & valid[:, None]
        r = jnp.where(mask, dx - dy, 0.0)
        both = mask & (dx > 0) & (dy > 0)
        one = mask & ((dx > 0) != (dy > 0))
        return {
            "trust": carry["trust"] + jnp.sum(pen_t * vf),
            "cont": carry["cont"] + jnp.sum(pen_c * vf),
            "overlap": carry["overlap"] + jnp.sum(o * vf) / k,
            "jaccard": carry["jaccard"] + jnp.sum(vf * o / (2 * k - o)),
            "num": carry["num"] + jnp.sum(r * r),
            "den": carry["den"] + jnp.sum(jnp.where(mask, dx * dx, 0.0)),
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
    zero = jnp.zeros((), x.dtype)
    kp, kf = jax.random.split(key)
    if dense:
        s = body(init, xy, jnp.asarray(0), jnp.ones((n,), bool))
        if max_pairs is None:
            dx = _cross(x, x, "euclidean")
            dy = _cross(y, y, "euclidean")
            rho, rconst, bound = spearman(_pair_values(dx), _pair_values(dy), rank_method=rm)
            rse = zero
    else:
        s = scan_row_blocks(body, init, xy, block_size=block_size, remat=False)
    if max_pairs is not None:
        r = _sampled_impl(
            x, y, kp, metric="euclidean", method="spearman", m=max_pairs, rank_method=rm
        )
        rho, rconst, rse, bound = r.value, r.constant, r.stderr, r.rank_error_bound
    elif not dense:
        from ._distances import pairwise_distances

        u = _pair_values(pairwise_distances(x, block_size=block_size))
        v = _pair_values(pairwise_distances(y, block_size=block_size))
        rho, rconst, bound = spearman(u, v, rank_method=rm)
        rse = zero
    nu, degenerate = _nuclear(x, y)
    proc = jnp.where(degenerate, 1.0, _safe_sqrt(1.0 - nu))
    disp = jnp.where(degenerate, 1.0, 1.0 - nu * nu)
    hxy, hxx, hyy = _linear(x, y, False)
    bad = (hxx <= 0) | (hyy <= 0)
    cka_v = jnp.where(bad, jnp.nan, hxy / jnp.sqrt(jnp.where(bad, 1.0, hxx * hyy)))
    stress_v = jnp.sqrt(s["num"] / jnp.where(s["den"] > 0, s["den"], jnp.nan))
    bil = jnp.where(
        s["collapsed"], jnp.inf, jnp.where(s["exp"] * s["con"] > 0, s["exp"] * s["con"], 1.0)
    )
    if n_splits > 0 and y.shape[1] >= 4 and n >= 4:
        rows = min(n, max_samples)
        fs = _feature_split_impl(
            y, kf, n_splits=n_splits, metric="cosine", max_samples=max_samples, rm=_rm("auto", rows)
        ).value
    else:
        fs = jnp.full((), jnp.nan, x.dtype)
    dt = x.dtype
    return DistortionReport(
        n=jnp.asarray(n, jnp.int32),
        k=jnp.asarray(k, jnp.int32),
        procrustes_distortion=proc.astype(dt),
        procrustes_disparity=disp.astype(dt),
        cka_linear=cka_v.astype(dt),
        rdm_similarity=rho.astype(dt),
        rdm_constant=rconst,
        rdm_stderr=jnp.asarray(rse, dt),
        rdm_rank_error_bound=jnp.asarray(bound, dt),
        trustworthiness=_t_from_penalty(s["trust"], n, k).astype(dt),
        continuity=_t_from_penalty(s["cont"], n, k).astype(dt),
        knn_overlap=(s["overlap"] / n).astype(dt),
        knn_jaccard=(s["jaccard"] / n).astype(dt),
        stress=stress_v.astype(dt),
        bilipschitz=bil.astype(dt),
        bilipschitz_collapsed=s["collapsed"],
        feature_split_stability=fs.astype(dt),
    )
