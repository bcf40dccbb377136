r"""Metric distortion of a paired embedding: Kruskal stress and bi-Lipschitz distortion.

Pairing: *paired*; ``x`` is the reference space, ``y`` the embedding under test (Euclidean).
Both stream over row tiles like the neighbour metrics (``_neighbors.py``): with the default
``block_size="auto"`` a tile is at most 64 MiB and the n x n matrices never exist. Each cloud
is moved to its own frame (centred, divided by a power of two near its largest absolute entry)
before its Gram-form distances, so the declared invariances hold in float32 for offsets of 1e6
and scales of 1e-30 / 1e30.

Result contract: every function returns a result with a ``status`` and takes ``throw``;
:func:`stress` is differentiable (each tile rematerialised under ``grad``).
"""

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._chunking import resolve_block_size
from .._custom_types import Samples
from .._errors import check_bool
from .._numerics import is_constant, safe_sqrt
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import check_block_size, prepare_paired_flagged, zero_nonfinite
from ._neighbors import neighbor_status
from ._tiles import Accumulator, space, stream, stream_paired


def pair_row_bytes(n: int, itemsize: int) -> int:
    """Bytes of tile intermediate per query row of the streamed pair sums (both spaces)."""
    return 6 * n * itemsize


def coincident(xb, y, dist):
    """Pairs whose Gram-form distance is 0 to rounding (a relative test: scale-free).

    ``|a|^2 + |b|^2 - 2 a.b`` carries a rounding error of about ``sqrt(d) eps (|a|^2 + |b|^2)``
    (so an exact duplicate reads as a small residue); squared distances below twice that count
    as coincident. Inputs are in their frame (centred), so the test is relative to the spread.
    """
    d = xb.shape[1]
    eps = jnp.finfo(xb.dtype).eps
    na = jnp.sum(xb * xb, axis=-1)[:, None]
    nb = jnp.sum(y * y, axis=-1)[None, :]
    return dist * dist <= 2.0 * jnp.sqrt(jnp.asarray(d, xb.dtype)) * eps * (na + nb)


def _paired_prep(x, y, block_size, throw, what):
    check_block_size(block_size)
    check_bool("throw", throw)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=2, what=what)
    n = x.shape[0]
    bs = resolve_block_size(block_size, n, row_bytes=pair_row_bytes(n, x.dtype.itemsize))
    return x, y, finite, bs


def stress(
    x: Samples,
    y: Samples,
    *,
    scale_optimal: bool = False,
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> Estimate:
    r"""Kruskal stress-1 of embedding ``y`` against reference ``x`` (paired, Euclidean).

    .. math:: S = \sqrt{\frac{\sum_{i<j} (\delta_{ij} - s\, d_{ij})^2}{\sum_{i<j}\delta_{ij}^2}}

    with :math:`\delta` the reference and :math:`d` the embedding distances; :math:`s = 1`
    (raw, default) or :math:`s^* = \sum\delta d / \sum d^2` (``scale_optimal=True``, invariant to
    uniform scaling of ``y``; two streamed passes). 0 for isometries. Differentiable; tiled
    (the n x n matrices are never built). Invariant, by construction and in float32, to
    translating either space and to scaling both by one factor (with ``scale_optimal``: to
    scaling each space separately).

    Args:
        x: reference, shape (n, d_x), n >= 2.
        y: embedding, shape (n, d_y).
        scale_optimal: fit the global scale s*.
        block_size: rows per tile: ``"auto"`` (tiles <= 64 MiB), an int, or ``None`` (dense).
        throw: raise :class:`geomtax.StatusError` unless the status is ``ok``.

    Returns:
        :class:`geomtax.Estimate`: ``value`` >= 0 and ``status``: ``ok``; ``nonfinite_input``;
        ``degenerate_input`` (every row of ``x`` identical, so the normaliser
        :math:`\sum\delta^2` is 0; with ``scale_optimal`` also every row of ``y`` identical,
        so :math:`s^*` is 0/0). The value is NaN unless ``ok``.

    Raises:
        ValueError: mismatched rows, rank other than 2, bad ``block_size``;
            :class:`geomtax.StatusError` for a non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-bool ``scale_optimal``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (25, 3))
        >>> round(float(stress(x, x + 2.0).value), 4)
        0.0
        >>> round(float(stress(x, 3.0 * x, scale_optimal=True).value), 4)
        0.0
    """
    scale_optimal = check_bool("scale_optimal", scale_optimal)
    x, y, finite, bs = _paired_prep(x, y, block_size, throw, "stress")
    result = _stress_impl(x, y, finite, scale_optimal=scale_optimal, block_size=bs)
    detail = "every row of x is identical" + (" (or of y)" if scale_optimal else "")
    return finish(result, throw=throw, function="stress", details={"degenerate_input": detail})


@dataclass(frozen=True)
class StressSums(Accumulator):
    """Streamed raw Kruskal stress-1 sums: ``sum (delta - d)^2`` and ``sum delta^2`` over i != j.

    Each space is in its own frame (centred, divided by a power of two); raw stress compares
    the two at one common scale, so both tiles are multiplied back by ``s_x / max(s_x, s_y)``
    and ``s_y / max(s_x, s_y)`` (powers of two: exact).
    """

    metric: str = "euclidean"

    def init(self, acc):
        z = jnp.zeros((), acc)
        return z, z

    def update(self, c, t):
        s = jnp.maximum(t.sx, t.sy)
        dsx, dsy = t.dx * (t.sx / s), t.dy * (t.sy / s)
        r = jnp.where(t.mask, dsx - dsy, 0.0)
        return c[0] + jnp.sum(r * r), c[1] + jnp.sum(jnp.where(t.mask, dsx * dsx, 0.0))

    def finish(self, c, x, y, finite, sx, sy):
        status = select(
            (~finite, Status.nonfinite_input), (is_constant(x), Status.degenerate_input)
        )
        return {"stress": (nan_unless_ok(_stress_value(*c).astype(x.dtype), status), status)}

    def row_bytes(self, n, itemsize):
        return pair_row_bytes(n, itemsize)


def _stress_value(num, den):
    return safe_sqrt(num / jnp.where(den > 0, den, 1.0))


@eqx.filter_jit
def _stress_impl(x, y, finite, *, scale_optimal, block_size):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    if not scale_optimal:
        value, status = stream_paired(
            [StressSums()], x, y, finite=finite, block_size=block_size, remat=True
        )["stress"]
        return Estimate(value, status)
    degenerate = is_constant(x) | is_constant(y)
    status = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    (xf, _), (yf, _) = space(x, "euclidean"), space(y, "euclidean")  # each in its own frame
    z = jnp.zeros((), x.dtype)

    def f1(c, t):
        return c[0] + jnp.sum(jnp.where(t.mask, t.dx * t.dy, 0.0)), c[1] + jnp.sum(
            jnp.where(t.mask, t.dy * t.dy, 0.0)
        )

    sxy, syy = stream(f1, (z, z), xf, yf, metric="euclidean", block_size=block_size, remat=True)
    s = sxy / jnp.where(syy > 0, syy, 1.0)

    def f2(c, t):
        r = jnp.where(t.mask, t.dx - s * t.dy, 0.0)
        return c[0] + jnp.sum(r * r), c[1] + jnp.sum(jnp.where(t.mask, t.dx * t.dx, 0.0))

    num, den = stream(f2, (z, z), xf, yf, metric="euclidean", block_size=block_size, remat=True)
    return Estimate(nan_unless_ok(_stress_value(num, den), status), status)


class BilipschitzResult(AbstractResult):
    r"""Result of :func:`bilipschitz_distortion` (arrays only).

    Attributes:
        distortion: max expansion times max contraction, >= 1 (``inf`` if ``collapsed``).
        expansion: :math:`\max d/\delta` over pairs with both distances nonzero.
        contraction: :math:`\max \delta/d` over those pairs.
        collapsed: True if some pair has exactly one of its two distances equal to 0 (a
            distinct pair merged, or a duplicate torn apart): the map is not bi-Lipschitz.
        status: a :class:`geomtax.Status`: ``ok`` (also when ``collapsed``: ``inf`` is the
            true value), ``nonfinite_input``, ``degenerate_input`` (every row of ``x`` or of
            ``y`` identical); distortion, expansion and contraction are NaN unless ``ok``.
    """

    distortion: Float[Array, ""]
    expansion: Float[Array, ""]
    contraction: Float[Array, ""]
    collapsed: Bool[Array, ""]
    status: object


def bilipschitz_distortion(
    x: Samples, y: Samples, *, block_size: int | str | None = "auto", throw: bool = True
) -> BilipschitzResult:
    r"""Bi-Lipschitz distortion of the map ``x_i -> y_i`` (paired, Euclidean).

    .. math:: \mathrm{dist} = \max_{i<j} \frac{d_{ij}}{\delta_{ij}} \cdot
              \max_{i<j}\frac{\delta_{ij}}{d_{ij}} \ge 1

    over pairs with both distances nonzero; 1 exactly for similarity transforms. Duplicate-pair
    rule: a pair duplicated in *both* spaces (both distances 0) is ignored; a pair with exactly
    one zero distance makes the map non-injective or discontinuous, so ``distortion = inf`` and
    ``collapsed = True``. Each space is centred and scaled before its Gram-form distances, so
    the value is invariant to translating and scaling either space (float32 too). "Zero" is
    a relative test: a squared distance below the Gram form's rounding error,
    :math:`2\sqrt{d}\,\varepsilon(\lVert a\rVert^2 + \lVert b\rVert^2)` in the centred frame,
    counts as coincident (so exact duplicates are recognised; in float32, points closer than
    about 1e-3 of the cloud's spread read as coincident).
    Tiled (``block_size="auto"``: tiles <= 64 MiB).

    Args:
        x: reference, shape (n, d_x), n >= 2.
        y: embedding, shape (n, d_y).
        block_size: rows per tile: ``"auto"``, an int, or ``None`` (dense).
        throw: raise :class:`geomtax.StatusError` unless the status is ``ok``.

    Returns:
        :class:`BilipschitzResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (every row of ``x`` or of ``y`` identical).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 2))
        >>> round(float(bilipschitz_distortion(x, 4.0 * x).distortion), 3)
        1.0
    """
    x, y, finite, bs = _paired_prep(x, y, block_size, throw, "bilipschitz_distortion")
    result = _bilipschitz_impl(x, y, finite, block_size=bs)
    return finish(
        result,
        throw=throw,
        function="bilipschitz_distortion",
        details={"degenerate_input": "every row of x or of y is identical"},
    )


@dataclass(frozen=True)
class BilipschitzMax(Accumulator):
    """Streamed running maxima of expansion ``d / delta`` and contraction ``delta / d``.

    Pairs coincident in both spaces are ignored; a pair coincident in exactly one sets
    ``collapsed``. Values in the frames' units; ``finish`` converts the two factors back.
    """

    metric: str = "euclidean"

    def init(self, acc):
        z = jnp.zeros((), acc)
        return z, z, jnp.zeros((), bool)

    def update(self, c, t):
        px, py = ~coincident(t.xb, t.x, t.dx), ~coincident(t.yb, t.y, t.dy)
        both = t.mask & px & py
        one = t.mask & (px != py)
        ratio = t.dy / jnp.where(both, t.dx, 1.0)
        inv = t.dx / jnp.where(both, t.dy, 1.0)
        return (
            jnp.maximum(c[0], jnp.max(jnp.where(both, ratio, 0.0))),
            jnp.maximum(c[1], jnp.max(jnp.where(both, inv, 0.0))),
            c[2] | jnp.any(one),
        )

    def finish(self, c, x, y, finite, sx, sy):
        e, con, collapsed = (v if v.dtype == bool else v.astype(x.dtype) for v in c)
        status = neighbor_status(x, y, finite)
        # expansion x contraction is free of the two frames' scales
        dist = jnp.where(collapsed, jnp.inf, e * con)
        return {
            "bilipschitz": (nan_unless_ok(dist, status), status),
            # back to the input units: d scales with sy, delta with sx
            "bilipschitz_expansion": (nan_unless_ok(e * (sy / sx), status), status),
            "bilipschitz_contraction": (nan_unless_ok(con * (sx / sy), status), status),
            "bilipschitz_collapsed": (collapsed, status),
        }

    def row_bytes(self, n, itemsize):
        return pair_row_bytes(n, itemsize)


@eqx.filter_jit
def _bilipschitz_impl(x, y, finite, *, block_size):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    out = stream_paired([BilipschitzMax()], x, y, finite=finite, block_size=block_size)
    return BilipschitzResult(
        *(out[f][0] for f in ("bilipschitz", "bilipschitz_expansion", "bilipschitz_contraction")),
        out["bilipschitz_collapsed"][0],
        out["bilipschitz"][1],
    )
