r"""Pairwise distances and k-nearest-neighbour search, tiled by row blocks.

Conventions (shared by every geomtax metric; see docs/reference/geometry.md):

* ``euclidean``: :math:`\\lVert u - v \\rVert_2`; ``sqeuclidean``: its square (never divided by
  d); ``cosine``: :math:`1 - u^\\top v / (\\lVert u\\rVert \\lVert v\\rVert)` in [0, 2].
* Euclidean distances are computed from Gram matrices (``|u|^2 + |v|^2 - 2 u.v``) clamped at 0,
  but only after the cloud has been moved to its own frame: the mean of ``x`` is subtracted
  (two-pass, :func:`geomtax._numerics.center`) and everything is divided by a power of two
  near the largest absolute centred entry, and the distances are scaled back at the end. So an
  offset of 1e6 or a scale of 1e-30 / 1e30 in float32 neither cancels catastrophically nor
  under/overflows; two points
  closer than about ``1e-3 * spread`` (float32) may still read as distance 0. The square root
  has a zero-safe gradient (0 at coincident points, never NaN).
* Cosine directions are computed after dividing each row by its largest absolute entry (scale
  safe). Zero-norm rows have no direction; the cosine distance to them is defined as 1.0 here
  (the ``fill_one`` policy). Public metrics that take ``metric="cosine"`` treat zero-norm rows
  as degenerate input before calling these kernels unless the caller opts into that policy.
* Non-finite input: the public primitives raise ``ValueError`` naming the first bad row when
  the array is concrete; under ``jit``/``vmap`` (traced input) they propagate NaN instead (a
  non-finite row is never at distance 0 from anything).
* k-NN ties are broken by the lower row index (``lax.top_k`` is stable), the self match is
  excluded by index, so exact duplicates are still each other's neighbours. The k distances
  :func:`knn_search` returns (Euclidean metrics) are recomputed from the coordinate
  differences, so a duplicate is at exactly 0 (not at a Gram-form rounding residue).
* Memory: ``block_size="auto"`` (the default) walks row tiles of at most 64 MiB
  (:data:`geomtax._chunking.TILE_BYTES`); ``None`` asks for one dense pass.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.tree_util import Partial

from .._chunking import TILE_BYTES, resolve_block_size
from .._custom_types import Array, ArrayLike, Float, Int
from .._errors import check_choice, check_int, check_rank, check_real_array, finite_mask
from .._numerics import safe_sqrt
from .._sharding import shard_rows
from ._checks import check_block_size, first_nonfinite_row
from ._tiles import frame, map_tiles, rescale, unit_rows

#: the distances of the primitives (``metric=``)
DISTANCE_METRICS = ("euclidean", "sqeuclidean", "cosine")


def _prep_primitive(name, x, what):
    check_rank(name, x)
    check_real_array(name, x)
    first_nonfinite_row(name, x, what)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def distance(
    u: Float[ArrayLike, " d"], v: Float[ArrayLike, " d"], *, metric: str = "euclidean"
) -> Float[Array, ""]:
    """Distance between two vectors ``u`` and ``v`` of shape (d,) (the pointwise primitive).

    Computed from the difference (no Gram form) after dividing by its largest absolute entry,
    so it neither overflows at 1e30 nor underflows at 1e-30 in float32.

    Raises:
        ValueError: unknown metric, shapes other than two equal (d,), or (concrete input) NaN
            or inf in ``u`` or ``v``; traced non-finite input gives NaN.
        TypeError: complex or non-numeric input.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(distance(jnp.array([0.0, 3.0]), jnp.array([4.0, 0.0])))
        5.0
    """
    check_choice("metric", metric, DISTANCE_METRICS)
    check_rank("u", u, 1)
    check_rank("v", v, 1)
    if np.shape(u) != np.shape(v):
        raise ValueError(f"u and v must have the same shape; got {np.shape(u)} and {np.shape(v)}")
    for name, a in (("u", u), ("v", v)):
        check_real_array(name, a)
        if not isinstance(a, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(a))):
            raise ValueError(f"{name} contains NaN or inf; the distance is undefined")
    u = jnp.asarray(u)
    v = jnp.asarray(v)
    dtype = jnp.promote_types(jnp.promote_types(u.dtype, v.dtype), jnp.result_type(float))
    u, v = u.astype(dtype), v.astype(dtype)
    if metric == "cosine":
        (uu, vv), ok = unit_rows(jnp.stack([u, v]))
        cos = jnp.clip(jnp.dot(uu, vv), -1.0, 1.0)
        return jnp.where(ok[0] & ok[1], 1.0 - cos, 1.0)
    d = u - v
    m = lax.stop_gradient(jnp.max(jnp.abs(d)))
    m = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))
    sq = jnp.dot(d / m, d / m)
    return sq * m * m if metric == "sqeuclidean" else safe_sqrt(sq) * m


def pairwise_distances(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"] | None = None,
    *,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    mesh: Mesh | None = None,
) -> Float[Array, "n m"]:
    r"""Full distance matrix between the rows of ``x`` (n, d) and ``y`` (m, d) (default ``y = x``).

    Args:
        x: array of shape (n, d).
        y: optional array of shape (m, d); defaults to ``x``.
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (see module conventions).
        block_size: rows of ``x`` per tile so that the intermediates stay O(block_size * m);
            ``"auto"`` (default) keeps a tile under 64 MiB, ``None`` computes in one pass. The
            (n, m) output itself is still returned; metrics built on top stream tiles instead.
        mesh: optional 1-D ``jax.sharding.Mesh``; the rows of ``x`` are then split across its
            devices (:func:`geomtax.parallel.shard_rows`), identical results.

    Returns:
        distances: Array of shape (n, m). For ``y=None`` the diagonal is exactly 0 (NaN for a
        non-finite row under ``jit``).

    Raises:
        ValueError: unknown metric, rank other than 2, mismatched columns, bad ``block_size``,
            or (concrete input) NaN or inf in a row, named in the message.
        TypeError: complex or non-numeric input.

    Examples:
        >>> import jax.numpy as jnp
        >>> pairwise_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    check_choice("metric", metric, DISTANCE_METRICS)
    check_block_size(block_size)
    x = _prep_primitive("x", x, "the pairwise distance")
    same = y is None
    y = x if same else _prep_primitive("y", y, "the pairwise distance")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns; got {x.shape} and {y.shape}"
        )
    dtype = jnp.promote_types(x.dtype, y.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    bs = resolve_block_size(block_size, x.shape[0], row_bytes=3 * y.shape[0] * dtype.itemsize)
    if metric == "cosine":
        xf, yf, s = x, y, jnp.ones((), dtype)
    else:
        xf, yf, s = frame(x, None if same else y)
    rows = Partial(_pairwise_rows, metric=metric, same=same, block_size=bs)
    if mesh is None:
        d = rows(xf, jnp.asarray(0), None, yf)
    else:
        d = shard_rows(rows, xf, yf, mesh=mesh)
    return rescale(d, s, metric)


def _pairwise_rows(rows, start, valid, ref, *, metric, same, block_size):
    """Distances of ``rows`` (global rows ``start, start + 1, ...``) to ``ref``, tile by tile.

    One body for the single-device path (``start = 0``, all rows) and for each device's slice
    under ``mesh=`` (:func:`geomtax._sharding.shard_rows`), so both give the same numbers.
    """

    def tile(d, ids, xb):
        if same:
            d = jnp.where(ids[:, None] == jnp.arange(ref.shape[0])[None, :], d * 0.0, d)
        return d

    return map_tiles(tile, rows, ref, metric=metric, block_size=block_size, start=start)


def knn_search(
    x: Float[ArrayLike, "n d"],
    k: int,
    *,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    mesh: Mesh | None = None,
) -> tuple[Float[Array, "n k"], Int[Array, "n k"]]:
    """The ``k`` nearest neighbours of every row of ``x`` among the other rows (self excluded).

    Memory is O(block_size * n): with the default ``block_size="auto"`` a distance tile is at
    most 64 MiB, so the n x n matrix never exists (50,000 rows fit).

    Args:
        x: array of shape (n, d).
        k: number of neighbours, ``1 <= k < n`` (Python or NumPy int).
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile; ``"auto"`` (default, tiles <= 64 MiB), an int, or ``None``
            for one dense pass.
        mesh: optional 1-D ``jax.sharding.Mesh``; query rows are then split across its devices
            (:func:`geomtax.parallel.shard_rows`), identical results.

    Returns:
        distances: (n, k) distances to the neighbours, sorted increasing (all NaN when a traced
        input holds NaN or inf).
        indices: (n, k) row indices of the neighbours; ties go to the lower row index.

    Raises:
        ValueError: unknown metric, rank other than 2, k out of range, bad ``block_size``, or
            (concrete input) NaN or inf in a row, named in the message.
        TypeError: ``k`` not an int (``bool``, float, str), complex input.

    Examples:
        >>> import jax.numpy as jnp
        >>> d, i = knn_search(jnp.array([[0.0], [1.0], [3.0]]), 1)
        >>> i[:, 0].tolist()
        [1, 0, 1]
    """
    check_choice("metric", metric, DISTANCE_METRICS)
    check_block_size(block_size)
    k = check_int("k", k)
    x = _prep_primitive("x", x, "the k-NN search")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n; got k={k} with x of shape {x.shape}")
    row_bytes = 4 * n * x.dtype.itemsize
    bs = resolve_block_size(block_size, n, row_bytes=row_bytes)
    if metric == "cosine":
        xf, s = x, jnp.ones((), x.dtype)
    else:
        xf, _, s = frame(x)
    rows = Partial(_knn_rows, k=k, metric=metric, block_size=bs)
    if mesh is None:
        d, idx = rows(xf, jnp.asarray(0), None, xf)
    else:
        d, idx = shard_rows(rows, xf, xf, mesh=mesh)
    if metric != "cosine":
        d, idx = _refine(xf, idx, metric)
    d = jnp.where(finite_mask(x), rescale(d, s, metric), jnp.nan)
    return d, idx


def _knn_rows(rows, start, valid, ref, *, k, metric, block_size):
    """The ``k`` nearest rows of ``ref`` to each of ``rows`` (global rows from ``start``).

    The self match is excluded by index; one body for the single-device path and for each
    device's slice under ``mesh=``.
    """
    n = ref.shape[0]

    def tile(d, ids, xb):
        d = jnp.where(ids[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
        neg, idx = lax.top_k(-d, k)
        return -neg, idx

    return map_tiles(tile, rows, ref, metric=metric, block_size=block_size, start=start)


def _refine(xf, idx, metric):
    """Recompute the k selected distances from the differences themselves (no Gram form).

    Duplicates come out at exactly 0 and close pairs keep their digits; the k neighbours are
    re-sorted (ties by index) since refinement can swap near-equal ones. Rows are processed in
    batches whose (rows, k, d) difference tensor stays within the tile budget.
    """
    k, d = idx.shape[1], xf.shape[1]
    batch = max(1, min(xf.shape[0], TILE_BYTES // max(k * d * xf.dtype.itemsize, 1)))

    def one(args):
        xi, ii = args
        diff = xi[None, :] - xf[ii]
        sq = jnp.sum(diff * diff, axis=-1)
        return sq if metric == "sqeuclidean" else safe_sqrt(sq)

    dr = lax.map(one, (xf, idx), batch_size=batch)
    return lax.sort((dr, idx), dimension=1, num_keys=2)


def condensed_index(n: int):
    """Row and column indices ``(i, j)`` with ``i < j`` in scipy ``pdist`` (row-major) order.

    Examples:
        >>> [a.tolist() for a in condensed_index(3)]
        [[0, 0, 1], [1, 2, 2]]
    """
    n = check_int("n", n, minimum=1)
    i, j = jnp.triu_indices(n, k=1)
    return i, j


__all__ = ["DISTANCE_METRICS", "condensed_index", "distance", "knn_search", "pairwise_distances"]
