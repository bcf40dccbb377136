r"""Pairwise distances and k-nearest-neighbour search, dense or tiled by row blocks.

Conventions (shared by every geomtax metric):

* ``euclidean``: :math:`\\lVert u - v \\rVert_2`; ``sqeuclidean``: its square (never divided by d);
  ``cosine``: :math:`1 - u^\\top v / (\\lVert u\\rVert \\lVert v\\rVert)` in [0, 2].
* Distances are computed from Gram matrices (``|u|^2 + |v|^2 - 2 u.v``) clamped at 0, so in
  float32 two points closer than about ``1e-3 * |u|`` may read as distance 0. Use float64 when that
  matters. The square root has a zero-safe gradient (0 at coincident points, never NaN).
* Zero-norm rows have no cosine direction; the cosine distance to them is defined as 1.0 here
  (the ``fill_one`` policy). Public metrics that take ``metric="cosine"`` raise on zero-norm rows
  before calling these kernels unless the caller opts into that policy.
* k-NN ties are broken by the lower row index (``lax.top_k`` is stable), the self match is
  excluded by index, so exact duplicates are still each other's neighbours.
"""

import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh

from .._chunking import map_row_blocks
from .._custom_types import Array, ArrayLike, Float, Int
from .._errors import check_choice, check_rank

METRICS = ("euclidean", "sqeuclidean", "cosine")


def _safe_sqrt(x):
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _unit_rows(x):
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1.0), 0.0), norm[..., 0] > 0


def _cross(xb, y, metric: str):
    """Distances between every row of ``xb`` (b, d) and every row of ``y`` (m, d)."""
    if metric == "cosine":
        ub, okb = _unit_rows(xb)
        uy, oky = _unit_rows(y)
        sim = jnp.clip(ub @ uy.T, -1.0, 1.0)
        return jnp.where(okb[:, None] & oky[None, :], 1.0 - sim, 1.0)
    sq = jnp.sum(xb * xb, axis=-1)[:, None] + jnp.sum(y * y, axis=-1)[None, :] - 2.0 * (xb @ y.T)
    sq = jnp.maximum(sq, 0.0)
    return sq if metric == "sqeuclidean" else _safe_sqrt(sq)


def distance(
    u: Float[ArrayLike, " d"], v: Float[ArrayLike, " d"], *, metric: str = "euclidean"
) -> Float[Array, ""]:
    """Distance between two vectors ``u`` and ``v`` of shape (d,) (the pointwise primitive).

    Examples:
        >>> import jax.numpy as jnp
        >>> float(distance(jnp.array([0.0, 3.0]), jnp.array([4.0, 0.0])))
        5.0
    """
    check_choice("metric", metric, METRICS)
    if metric == "cosine":
        nu, nv = jnp.linalg.norm(u), jnp.linalg.norm(v)
        ok = (nu > 0) & (nv > 0)
        cos = jnp.dot(u, v) / jnp.where(ok, nu * nv, 1.0)
        return jnp.where(ok, 1.0 - jnp.clip(cos, -1.0, 1.0), 1.0)
    d = u - v
    sq = jnp.dot(d, d)
    return sq if metric == "sqeuclidean" else _safe_sqrt(sq)


def pairwise_distances(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"] | None = None,
    *,
    metric: str = "euclidean",
    block_size: int | None = None,
    mesh: Mesh | None = None,
) -> Float[Array, "n m"]:
    r"""Full distance matrix between the rows of ``x`` (n, d) and ``y`` (m, d) (default ``y = x``).

    Args:
        x: array of shape (n, d).
        y: optional array of shape (m, d); defaults to ``x``.
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (see module conventions).
        block_size: if given, rows of ``x`` are processed ``block_size`` at a time so that the
            intermediates stay O(block_size * m); the (n, m) output itself is still returned.
            Metrics built on top never call this with large n: they stream tiles instead.
        mesh: optional 1-D ``jax.sharding.Mesh``; the rows of ``x`` are then split across its
            devices (:func:`geomtax.parallel.sharded_pairwise_distances`), identical results.

    Returns:
        distances: Array of shape (n, m). For ``y=None`` the diagonal is exactly 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> pairwise_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    if mesh is not None:
        from ..parallel import sharded_pairwise_distances

        return sharded_pairwise_distances(x, y, mesh=mesh, metric=metric, block_size=block_size)
    check_choice("metric", metric, METRICS)
    check_rank("x", x)
    x = jnp.asarray(x)
    same = y is None
    y = x if same else jnp.asarray(y)
    check_rank("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns; got {x.shape} and {y.shape}"
        )

    def tile(xb, start, valid):
        d = _cross(xb, y, metric)
        if same:
            rows = start + jnp.arange(xb.shape[0])
            d = jnp.where(rows[:, None] == jnp.arange(y.shape[0])[None, :], 0.0, d)
        return d

    return map_row_blocks(tile, x, block_size=block_size, remat=False)


def knn_search(
    x: Float[ArrayLike, "n d"],
    k: int,
    *,
    metric: str = "euclidean",
    block_size: int | None = None,
    mesh: Mesh | None = None,
) -> tuple[Float[Array, "n k"], Int[Array, "n k"]]:
    """The ``k`` nearest neighbours of every row of ``x`` among the other rows (self excluded).

    Memory is O(block_size * n) when ``block_size`` is given (the n x n matrix never exists).

    Args:
        x: array of shape (n, d).
        k: number of neighbours, ``1 <= k < n``.
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile; ``None`` for one dense pass.
        mesh: optional 1-D ``jax.sharding.Mesh``; query rows are then split across its devices
            (:func:`geomtax.parallel.sharded_knn_search`), identical results.

    Returns:
        distances: (n, k) distances to the neighbours, sorted increasing.
        indices: (n, k) row indices of the neighbours; ties go to the lower row index.

    Examples:
        >>> import jax.numpy as jnp
        >>> d, i = knn_search(jnp.array([[0.0], [1.0], [3.0]]), 1)
        >>> i[:, 0].tolist()
        [1, 0, 1]
    """
    if mesh is not None:
        from ..parallel import sharded_knn_search

        return sharded_knn_search(x, k, mesh=mesh, metric=metric, block_size=block_size)
    check_choice("metric", metric, METRICS)
    check_rank("x", x)
    x = jnp.asarray(x)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n; got k={k} with x of shape {x.shape}")

    def tile(xb, start, valid):
        d = _cross(xb, x, metric)
        rows = start + jnp.arange(xb.shape[0])
        d = jnp.where(rows[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
        neg, idx = lax.top_k(-d, k)
        return -neg, idx

    return map_row_blocks(tile, x, block_size=block_size, remat=False)


def condensed_index(n: int):
    """Row and column indices ``(i, j)`` with ``i < j`` in scipy ``pdist`` (row-major) order."""
    i, j = jnp.triu_indices(n, k=1)
    return i, j


__all__ = ["METRICS", "condensed_index", "distance", "knn_search", "pairwise_distances"]
