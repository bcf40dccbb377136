r"""The tile engine: every n x m computation in geometry walks row tiles through here.

Two entry points over :func:`geomtax._chunking.map_row_blocks` / ``scan_row_blocks``:

* :func:`map_tiles` (independent outputs per row: distance matrices, k-NN lists, condensed
  RDMs): ``fn(d, ids, xb)`` sees one (b, m) distance tile of rows ``xb`` against ``ref``.
* :func:`stream` (reductions: neighbour ranks, stress sums, running maxima, Pearson moments):
  ``update(carry, tile)`` folds one :class:`Tile` of two paired clouds into a carry, so
  memory is one tile whatever n is. :func:`stream_paired` adds the per-space frames and runs
  several accumulators (the :class:`Accumulator` protocol of the metric table) in one pass.

Memory: callers resolve ``block_size`` with :func:`geomtax._chunking.resolve_block_size`
(``"auto"``: tiles <= 64 MiB). Gradients: ``remat=True`` wraps each tile in ``jax.checkpoint``
so the backward pass recomputes a tile instead of storing it (bounded memory under ``grad``).

The distance kernels live here too (:func:`cross`, :func:`frame`), so every tile computes its
distances the same way (conventions: docs/reference/geometry.md).
"""

from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import lax

from .._chunking import map_row_blocks, scan_row_blocks
from .._numerics import safe_sqrt

# ----------------------------------------------------------------------------- distance kernels


def unit_rows(x):
    """Unit-norm rows (row-max scaled first, so 1e30 and 1e-30 rows keep their direction).

    Zero rows give 0 and ``ok = False``; non-finite rows give NaN (and ``ok = True``, so the NaN
    reaches the distance).
    """
    m = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    ok = ~(m == 0)
    xs = x / jnp.where(ok, m, 1.0)
    norm = jnp.linalg.norm(xs, axis=-1, keepdims=True)
    return jnp.where(ok, xs / jnp.where(ok, norm, 1.0), 0.0), ok[..., 0]


def _pow2_at_least(v):
    """The smallest power of two >= ``v`` (1 where ``v`` is 0 or not finite)."""
    ok = (v > 0) & jnp.isfinite(v)
    return jnp.where(ok, jnp.exp2(jnp.ceil(jnp.log2(jnp.where(ok, v, 1.0)))), 1.0).astype(v.dtype)


def frame(x, y=None):
    """Move ``x`` (and ``y``, by the same map) to the frame of ``x``: centred, max entry <= 1.

    Returns ``(x', y', s)`` with ``|x_i - y_j| = s |x'_i - y'_j|``. The shift is the first row
    plus the mean of the rest relative to it (two-pass, as :func:`geomtax._numerics.center`),
    rounded to 10 bits below the cloud's spread, and ``s`` is a power of two: so the frame
    removes any large offset, and small-integer data (exact ties, duplicates) stay exact. The
    frame is held constant under differentiation: the distances are invariant to it, so the
    gradient stays exact.
    """
    ref = lax.stop_gradient(x[:1])
    x0 = x - ref
    mu = lax.stop_gradient(jnp.mean(x0, axis=0, keepdims=True))
    spread = lax.stop_gradient(jnp.max(jnp.abs(x0 - mu)))
    q = _pow2_at_least(spread) * 2.0**-10
    mu = jnp.round(mu / q) * q
    xc = x0 - mu
    yc = xc if y is None else (y - ref) - mu
    m = jnp.max(jnp.abs(xc))
    if y is not None:
        m = jnp.maximum(m, jnp.max(jnp.abs(yc)))
    s = lax.stop_gradient(_pow2_at_least(m))
    return xc / s, yc / s, s


def space(x, metric: str):
    """``(x', s)``: one cloud in the frame its ``metric`` is invariant to, and its scale.

    Cosine: unit rows (directions only, ``s = 1``); Euclidean metrics: :func:`frame`.
    """
    if metric == "cosine":
        return unit_rows(x)[0], jnp.ones((), x.dtype)
    xf, _, s = frame(x)
    return xf, s


def cross(xb, y, metric: str):
    """Distances between every row of ``xb`` (b, d) and every row of ``y`` (m, d).

    The raw Gram-form kernel: callers put both arguments in a common frame first (see
    :func:`frame`) so that the form does not cancel; NaN propagates.
    """
    if metric == "cosine":
        ub, okb = unit_rows(xb)
        uy, oky = unit_rows(y)
        sim = jnp.clip(ub @ uy.T, -1.0, 1.0)
        return jnp.where(okb[:, None] & oky[None, :], 1.0 - sim, 1.0)
    sq = jnp.sum(xb * xb, axis=-1)[:, None] + jnp.sum(y * y, axis=-1)[None, :] - 2.0 * (xb @ y.T)
    sq = jnp.maximum(sq, 0.0)
    return sq if metric == "sqeuclidean" else safe_sqrt(sq)


def rescale(d, s, metric: str):
    """Distances of a cloud of scale ``s`` from those of its frame (cosine: unchanged)."""
    if metric == "cosine":
        return d
    # (d * s) * s: a zero distance stays 0 even where s * s overflows
    return d * s * s if metric == "sqeuclidean" else d * s


# ----------------------------------------------------------------------------- the engine


def map_tiles(fn, x, ref, *, metric: str, block_size, start=0, remat: bool = False):
    """``fn(d, ids, xb)`` for each row tile ``xb`` of ``x`` against ``ref``, rows concatenated.

    ``d`` is the (b, m) distance tile (:func:`cross`), ``ids`` the global row ids of the tile
    (``start`` + position: under ``mesh=`` each device passes its slice's first row). ``fn``
    returns a pytree whose leaves have leading dimension b.
    """

    def tile(xb, s, valid):
        return fn(cross(xb, ref, metric), start + s + jnp.arange(xb.shape[0]), xb)

    return map_row_blocks(tile, x, block_size=block_size, remat=remat)


class Tile(NamedTuple):
    """One row tile of two paired clouds (what :func:`stream` hands to an update).

    Attributes:
        rows: (b,) global row ids; valid: (b,) real (unpadded) rows.
        mask: (b, n) off-diagonal pairs of real rows (``i != j``).
        xb, yb: the tile's rows of each cloud; x, y: the whole clouds (their frames).
        dx, dy: (b, n) distance tiles in each space.
        sx, sy: the scales of the two frames (distances in input units are ``sx * dx``).
    """

    rows: Any
    valid: Any
    mask: Any
    xb: Any
    yb: Any
    x: Any
    y: Any
    dx: Any
    dy: Any
    sx: Any
    sy: Any


def stream(update, init, x, y, *, metric: str, block_size, remat: bool = False, sx=1.0, sy=1.0):
    """Fold ``carry = update(carry, tile)`` over row tiles of paired clouds ``x``, ``y``.

    ``x`` and ``y`` are already in their frames (see :func:`stream_paired`). Memory is one
    (block_size, n) tile per space; ``remat=True`` rematerialises each tile under ``grad``.
    """
    n, dxcol = x.shape
    xy = jnp.concatenate([x, y], axis=1)
    cols = jnp.arange(n)
    sx, sy = jnp.asarray(sx, x.dtype), jnp.asarray(sy, x.dtype)

    def body(carry, block, start, valid):
        xb, yb = block[:, :dxcol], block[:, dxcol:]
        rows = start + jnp.arange(xb.shape[0])
        mask = (rows[:, None] != cols[None, :]) & valid[:, None]
        dx, dy = cross(xb, x, metric), cross(yb, y, metric)
        return update(carry, Tile(rows, valid, mask, xb, yb, x, y, dx, dy, sx, sy))

    return scan_row_blocks(body, init, xy, block_size=block_size, remat=remat)


class Accumulator:
    """A streamed statistic: what the metric table stores for a metric computed in tiles.

    Subclasses are frozen dataclasses (hashable: they are static arguments of compiled
    functions) and define:

    * ``metric``: the distance both spaces use (``"euclidean"`` for the report);
    * ``init(dtype)``: the carry's initial value;
    * ``update(carry, tile)``: the carry after one :class:`Tile`;
    * ``finish(carry, x, y, finite, sx, sy)``: ``{field: (value, status)}`` from the
      final carry (``x``, ``y`` are the raw inputs, for the status tests; ``sx``, ``sy`` the
      frames' scales);
    * ``row_bytes(n, itemsize)``: tile bytes per query row (for ``block_size="auto"``).

    Several accumulators share one pass (:func:`stream_paired`); accumulators that are equal
    run once, so metrics reading the same sums (trustworthiness and continuity) share them.
    """

    metric = "euclidean"


def stream_paired(accumulators, x, y, *, finite, block_size, remat: bool = False):
    """One tiled pass of several :class:`Accumulator` s over paired clouds ``x``, ``y``.

    Each cloud is moved to its own frame (:func:`space`) first; ``x``, ``y`` must be finite
    (zero the non-finite input first; ``finite`` goes to the statuses). Returns
    ``{field: (value, status)}`` merged over the accumulators' ``finish``.
    """
    accs = tuple(dict.fromkeys(accumulators))  # equal accumulators run once
    metrics = {a.metric for a in accs}
    if len(metrics) != 1:
        raise ValueError(f"accumulators of one pass share a metric; got {sorted(metrics)}")
    (metric,) = metrics
    xf, sx = space(x, metric)
    yf, sy = space(y, metric)
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32

    def update(carry, tile):
        return tuple(a.update(c, tile) for a, c in zip(accs, carry))

    init = tuple(a.init(acc) for a in accs)
    carry = stream(
        update, init, xf, yf, metric=metric, block_size=block_size, remat=remat, sx=sx, sy=sy
    )
    out = {}
    for a, c in zip(accs, carry):
        out.update(a.finish(c, x, y, finite, sx, sy))
    return out
