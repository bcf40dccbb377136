r"""Neighborhood preservation and metric distortion (REFERENCE section 2.13).

Trustworthiness, continuity, k-NN overlap, Kruskal stress and bi-Lipschitz distortion.

Pairing: *paired*; ``x`` is the reference space (e.g. the clean embedding or ground-truth
state), ``y`` the embedding under test. All metrics here stream over row tiles: with
``block_size`` only (block_size x n) distance tiles exist, never the n x n matrix, and under
``grad`` each tile is rematerialised (``jax.checkpoint``).

Conventions: Euclidean distances; the self match is excluded by index; ties in k-NN sets and
ranks are broken by the lower row index (stable), so duplicates identical in both spaces give
T = C = 1.
"""

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float

from .._chunking import scan_row_blocks
from .._custom_types import Samples
from .._errors import check_choice
from ._checks import check_block_size, check_k, prepare_paired
from ._distances import _cross

NEIGHBOR_METRICS = ("euclidean", "sqeuclidean", "cosine")


def _ranks_of(d, idx, rows, n):
    """1-based rank of each column ``idx[b, t]`` among row ``b`` of distance tile ``d`` (b, n).

    rank(i, j) = 1 + #{l != i : d_il < d_ij or (d_il == d_ij and l < j)}.
    """
    cols = jnp.arange(n)
    dj = jnp.take_along_axis(d, idx, axis=1)  # (b, k)
    closer = (d[:, None, :] < dj[:, :, None]) | (
        (d[:, None, :] == dj[:, :, None]) & (cols[None, None, :] < idx[:, :, None])
    )
    not_self = cols[None, None, :] != rows[:, None, None]
    return 1 + jnp.sum(closer & not_self, axis=-1)


def _knn(d, rows, n, k):
    d = jnp.where(rows[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
    _, idx = lax.top_k(-d, k)
    return idx


def _neighbor_pass(x, y, *, k, metric, block_size, want):
    """One tiled pass; returns a dict of summed per-row statistics."""
    n = x.shape[0]
    dxcol = x.shape[1]
    xy = jnp.concatenate([x, y], axis=1)
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32

    def body(carry, block, start, valid):
        xb, yb = block[:, :dxcol], block[:, dxcol:]
        rows = start + jnp.arange(xb.shape[0])
        dx = _cross(xb, x, metric)
        dy = _cross(yb, y, metric)
        ix = _knn(dx, rows, n, k)
        iy = _knn(dy, rows, n, k)
        vf = valid.astype(acc)
        out = dict(carry)
        if "trust" in want:
            r = _ranks_of(dx, iy, rows, n)
            pen = jnp.sum(jnp.maximum(r - k, 0), axis=1).astype(acc)
            out["trust"] = carry["trust"] + jnp.sum(pen * vf)
        if "cont" in want:
            r = _ranks_of(dy, ix, rows, n)
            pen = jnp.sum(jnp.maximum(r - k, 0), axis=1).astype(acc)
            out["cont"] = carry["cont"] + jnp.sum(pen * vf)
        if "overlap" in want:
            o = jnp.sum(jnp.any(ix[:, :, None] == iy[:, None, :], axis=2), axis=1).astype(acc)
            out["overlap"] = carry["overlap"] + jnp.sum(o * vf) / k
            out["jaccard"] = carry["jaccard"] + jnp.sum(vf * o / (2 * k - o))
        return out

    init = {name: jnp.zeros((), acc) for name in want}
    if "overlap" in want:
        init["jaccard"] = jnp.zeros((), acc)
    return scan_row_blocks(body, init, xy, block_size=block_size, remat=False)


class NeighborResult(eqx.Module):
    """Neighbourhood-preservation scores of one k (arrays only).

    Attributes:
        trustworthiness: T(k) in [0, 1].
        continuity: C(k) in [0, 1].
        knn_overlap: mean |N_k^x(i) ∩ N_k^y(i)| / k.
        knn_jaccard: mean o_i / (2k - o_i).
    """

    trustworthiness: Float[Array, ""]
    continuity: Float[Array, ""]
    knn_overlap: Float[Array, ""]
    knn_jaccard: Float[Array, ""]


def _t_from_penalty(pen, n, k):
    return 1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * pen


@eqx.filter_jit
def _neighbors_impl(x, y, *, k, metric, block_size, want):
    n = x.shape[0]
    s = _neighbor_pass(x, y, k=k, metric=metric, block_size=block_size, want=want)
    out = {}
    if "trust" in s:
        out["trust"] = _t_from_penalty(s["trust"], n, k).astype(x.dtype)
    if "cont" in s:
        out["cont"] = _t_from_penalty(s["cont"], n, k).astype(x.dtype)
    if "overlap" in s:
        out["overlap"] = (s["overlap"] / n).astype(x.dtype)
        out["jaccard"] = (s["jaccard"] / n).astype(x.dtype)
    return out


def _prep(x, y, k, metric, block_size, what, strict_half=True):
    check_choice("metric", metric, NEIGHBOR_METRICS)
    check_block_size(block_size)
    x, y = prepare_paired(x, y, min_rows=3, what=what)
    check_k(k, x.shape[0], shape=x.shape, strict_half=strict_half)
    return x, y


def trustworthiness(
    x: Samples, y: Samples, *, k: int = 10, metric: str = "euclidean", block_size: int | None = None
) -> Float[Array, ""]:
    r"""Trustworthiness T(k) of embedding ``y`` with respect to reference ``x`` (paired).

    .. math:: T(k) = 1 - \frac{2}{n k (2n - 3k - 1)} \sum_i \sum_{j \in U_i^k} (r(i,j) - k)

    :math:`r(i, j)` is the rank of j by distance from i in ``x`` (1 = nearest, self excluded,
    ties by lower index) and :math:`U_i^k` the points among the k nearest neighbours of i in
    ``y`` that are not among its k nearest in ``x`` (Venna & Kaski). Penalises false neighbours
    in the embedding. Equals scikit-learn's ``trustworthiness`` (which breaks ties by an
    unstable sort; identical on tie-free data). Ranks are counted tile by tile (O(k n) work per
    row), so with ``block_size`` memory is O(block_size * k * n).

    Args:
        x: reference, shape (n, d_x).
        y: embedding, shape (n, d_y).
        k: neighbourhood size, ``1 <= k < n / 2`` (outside it the normaliser is invalid,
            scikit-learn #18567).
        metric: distance in both spaces (``"euclidean"`` default).
        block_size: rows per tile, or ``None`` for one tile.

    Returns:
        Scalar in [0, 1]; 1 for identical or similarity-transformed embeddings.

    Raises:
        ValueError: mismatched rows, rank other than 2, non-finite values, k out of range.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 3))
        >>> float(trustworthiness(x, 2.0 * x + 1.0, k=5))
        1.0
    """
    x, y = _prep(x, y, k, metric, block_size, "trustworthiness")
    return _neighbors_impl(x, y, k=k, metric=metric, block_size=block_size, want=("trust",))[
        "trust"
    ]


def continuity(
    x: Samples, y: Samples, *, k: int = 10, metric: str = "euclidean", block_size: int | None = None
) -> Float[Array, ""]:
    r"""Continuity C(k) of embedding ``y`` with respect to reference ``x`` (paired).

    Trustworthiness with the roles swapped: ranks in ``y`` of the reference neighbours of i
    that are missing from its k nearest neighbours in ``y`` (penalises torn neighbourhoods),
    :math:`C(k) = 1 - \frac{2}{nk(2n-3k-1)}\sum_i\sum_{j \in V_i^k}(\hat r(i,j) - k)`. Same
    conventions and options as :func:`trustworthiness`; ``continuity(x, y) ==
    trustworthiness(y, x)``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 3))
        >>> float(continuity(x, -x, k=5))
        1.0
    """
    x, y = _prep(x, y, k, metric, block_size, "continuity")
    return _neighbors_impl(x, y, k=k, metric=metric, block_size=block_size, want=("cont",))["cont"]


def knn_overlap(
    x: Samples, y: Samples, *, k: int = 10, metric: str = "euclidean", block_size: int | None = None
) -> Float[Array, ""]:
    r"""Mean k-NN overlap :math:`\frac1n\sum_i |N_k^x(i) \cap N_k^y(i)| / k` in [0, 1] (paired).

    Self excluded, ties by lower index; needs ``1 <= k < n``. Not the Jaccard index (see
    :func:`knn_jaccard`).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> float(knn_overlap(x, x, k=3))
        1.0
    """
    x, y = _prep(x, y, k, metric, block_size, "knn_overlap", strict_half=False)
    return _neighbors_impl(x, y, k=k, metric=metric, block_size=block_size, want=("overlap",))[
        "overlap"
    ]


def knn_jaccard(
    x: Samples, y: Samples, *, k: int = 10, metric: str = "euclidean", block_size: int | None = None
) -> Float[Array, ""]:
    r"""Mean k-NN Jaccard index :math:`\frac1n\sum_i o_i / (2k - o_i)` (paired).

    :math:`o_i = |N_k^x(i) \cap N_k^y(i)|`; self excluded, ties by lower index, ``1 <= k < n``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> float(knn_jaccard(x, 3.0 * x, k=3))
        1.0
    """
    x, y = _prep(x, y, k, metric, block_size, "knn_jaccard", strict_half=False)
    return _neighbors_impl(x, y, k=k, metric=metric, block_size=block_size, want=("overlap",))[
        "jaccard"
    ]


def neighbor_scores(
    x: Samples, y: Samples, *, k: int = 10, metric: str = "euclidean", block_size: int | None = None
) -> NeighborResult:
    """Trustworthiness, continuity, k-NN overlap and Jaccard from one shared tiled pass.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (30, 3))
        >>> r = neighbor_scores(x, x, k=4)
        >>> float(r.trustworthiness), float(r.knn_jaccard)
        (1.0, 1.0)
    """
    x, y = _prep(x, y, k, metric, block_size, "neighbor_scores")
    s = _neighbors_impl(
        x, y, k=k, metric=metric, block_size=block_size, want=("trust", "cont", "overlap")
    )
    return NeighborResult(s["trust"], s["cont"], s["overlap"], s["jaccard"])


# --------------------------------------------------------------------------- metric distortion


def _pair_sums(x, y, block_size, fn, init):
    n = x.shape[0]
    dxcol = x.shape[1]
    xy = jnp.concatenate([x, y], axis=1)

    def body(carry, block, start, valid):
        xb, yb = block[:, :dxcol], block[:, dxcol:]
        rows = start + jnp.arange(xb.shape[0])
        mask = (rows[:, None] != jnp.arange(n)[None, :]) & valid[:, None]
        return fn(carry, _cross(xb, x, "euclidean"), _cross(yb, y, "euclidean"), mask)

    return scan_row_blocks(body, init, xy, block_size=block_size)


def stress(
    x: Samples, y: Samples, *, scale_optimal: bool = False, block_size: int | None = None
) -> Float[Array, ""]:
    r"""Kruskal stress-1 of embedding ``y`` against reference ``x`` (paired, Euclidean).

    .. math:: S = \sqrt{\frac{\sum_{i<j} (\delta_{ij} - s\, d_{ij})^2}{\sum_{i<j}\delta_{ij}^2}}

    with :math:`\delta` the reference and :math:`d` the embedding distances; :math:`s = 1`
    (raw, default) or :math:`s^* = \sum\delta d / \sum d^2` (``scale_optimal=True``, invariant to
    uniform scaling of ``y``; two streamed passes). 0 for isometries. Differentiable; tiled with
    ``block_size`` (the n x n matrices are never built).

    Args:
        x: reference, shape (n, d_x), n >= 2.
        y: embedding, shape (n, d_y).
        scale_optimal: fit the global scale s*.
        block_size: rows per tile.

    Returns:
        Scalar >= 0; NaN when all reference distances are 0 (with no other flag: check
        ``x`` is not constant).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (25, 3))
        >>> round(float(stress(x, x + 2.0)), 4)
        0.0
        >>> round(float(stress(x, 3.0 * x, scale_optimal=True)), 4)
        0.0
    """
    check_block_size(block_size)
    x, y = prepare_paired(x, y, min_rows=2, what="stress")
    return _stress_impl(x, y, scale_optimal=bool(scale_optimal), block_size=block_size)


@eqx.filter_jit
def _stress_impl(x, y, *, scale_optimal, block_size):
    z = jnp.zeros((), x.dtype)
    if scale_optimal:

        def f1(c, dx, dy, m):
            return c[0] + jnp.sum(jnp.where(m, dx * dy, 0.0)), c[1] + jnp.sum(
                jnp.where(m, dy * dy, 0.0)
            )

        sxy, syy = _pair_sums(x, y, block_size, f1, (z, z))
        s = jnp.where(syy > 0, sxy / jnp.where(syy > 0, syy, 1.0), 1.0)
    else:
        s = jnp.ones((), x.dtype)

    def f2(c, dx, dy, m):
        r = jnp.where(m, dx - s * dy, 0.0)
        return c[0] + jnp.sum(r * r), c[1] + jnp.sum(jnp.where(m, dx * dx, 0.0))

    num, den = _pair_sums(x, y, block_size, f2, (z, z))
    ratio = num / jnp.where(den > 0, den, jnp.nan)
    pos = ratio > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, ratio, 1.0)), ratio * 0.0)


class BilipschitzResult(eqx.Module):
    r"""Result of :func:`bilipschitz_distortion` (arrays only).

    Attributes:
        distortion: max expansion times max contraction, >= 1 (``inf`` if ``collapsed``).
        expansion: :math:`\max d/\delta` over pairs with both distances nonzero.
        contraction: :math:`\max \delta/d` over those pairs.
        collapsed: True if some pair has exactly one of its two distances equal to 0 (a
            distinct pair merged, or a duplicate torn apart): the map is not bi-Lipschitz.
    """

    distortion: Float[Array, ""]
    expansion: Float[Array, ""]
    contraction: Float[Array, ""]
    collapsed: Bool[Array, ""]


def bilipschitz_distortion(
    x: Samples, y: Samples, *, block_size: int | None = None
) -> BilipschitzResult:
    r"""Bi-Lipschitz distortion of the map ``x_i -> y_i`` (paired, Euclidean).

    .. math:: \mathrm{dist} = \max_{i<j} \frac{d_{ij}}{\delta_{ij}} \cdot
              \max_{i<j}\frac{\delta_{ij}}{d_{ij}} \ge 1

    over pairs with both distances nonzero; 1 exactly for similarity transforms. Duplicate-pair
    rule: a pair duplicated in *both* spaces (both distances 0) is ignored; a pair with exactly
    one zero distance makes the map non-injective or discontinuous, so ``distortion = inf`` and
    ``collapsed = True``. Distances come from Gram matrices, so in float32 points closer than
    about 1e-3 of their norm may read as exactly coincident. Tiled with ``block_size``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 2))
        >>> round(float(bilipschitz_distortion(x, 4.0 * x).distortion), 3)
        1.0
    """
    check_block_size(block_size)
    x, y = prepare_paired(x, y, min_rows=2, what="bilipschitz_distortion")
    return _bilipschitz_impl(x, y, block_size=block_size)


@eqx.filter_jit
def _bilipschitz_impl(x, y, *, block_size):
    def f(c, dx, dy, m):
        both = m & (dx > 0) & (dy > 0)
        one = m & ((dx > 0) != (dy > 0))
        ratio = dy / jnp.where(both, dx, 1.0)
        inv = dx / jnp.where(both, dy, 1.0)
        return (
            jnp.maximum(c[0], jnp.max(jnp.where(both, ratio, 0.0))),
            jnp.maximum(c[1], jnp.max(jnp.where(both, inv, 0.0))),
            c[2] | jnp.any(one),
        )

    z = jnp.zeros((), x.dtype)
    e, c, collapsed = _pair_sums(x, y, block_size, f, (z, z, jnp.zeros((), bool)))
    dist = jnp.where(collapsed, jnp.inf, jnp.where(e * c > 0, e * c, 1.0))
    return BilipschitzResult(dist, e, c, collapsed)
