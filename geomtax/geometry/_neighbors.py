r"""Neighbourhood preservation and metric distortion (see docs/reference/geometry.md).

Trustworthiness, continuity, k-NN overlap, Kruskal stress and bi-Lipschitz distortion.

Pairing: *paired*; ``x`` is the reference space (e.g. the clean embedding or ground-truth
state), ``y`` the embedding under test. All metrics here stream over row tiles: with the
default ``block_size="auto"`` a tile is at most 64 MiB, so the n x n matrix never exists, and
under ``grad`` each tile is rematerialised (``jax.checkpoint``).

Conventions: the self match is excluded by index; ties in k-NN sets and ranks are broken by the
lower row index (stable), so duplicates identical in both spaces give T = C = 1. Every metric
is computed on each cloud moved to its own frame (centred, then divided by its largest
absolute entry; cosine: row-scaled only), so the invariances each metric declares hold to
float tolerance in float32 for offsets of 1e6 and scales of 1e-30 / 1e30.

Result contract: every function returns a result with a ``status`` (:class:`geomtax.Status`)
and takes ``throw`` (see :func:`geomtax.Estimate`): ``nonfinite_input`` (NaN or inf in ``x``
or ``y``), ``degenerate_input`` (see each function); the value is NaN unless the status is
``ok``. The rank and k-NN metrics raise ``TypeError`` under differentiation (their gradient is
zero almost everywhere); :func:`stress` is differentiable.
"""

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float

from .._chunking import resolve_block_size
from .._custom_types import Samples
from .._errors import check_bool, check_choice
from .._numerics import is_constant, safe_sqrt
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import (
    check_block_size,
    check_k,
    nondifferentiable,
    prepare_paired_flagged,
    zero_nonfinite,
)
from ._tiles import Accumulator, space, stream, stream_paired

NEIGHBOR_METRICS = ("euclidean", "sqeuclidean", "cosine")

_CONSTANT = "x or y has every row identical, so its k-NN sets are set by tie-breaking alone"


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


def neighbor_row_bytes(n: int, k: int, itemsize: int) -> int:
    """Bytes of tile intermediate per query row of the shared k-NN pass (both spaces)."""
    return 2 * n * (4 * itemsize + 2 * k)


#: the neighbour accumulator's statistics: trustworthiness, continuity, overlap (+ Jaccard)
NEIGHBOR_STATS = ("trust", "cont", "overlap")


@dataclass(frozen=True)
class NeighborSums(Accumulator):
    """Streamed k-NN statistics of two paired spaces: rank penalties and set overlaps.

    One k-NN search per space and tile feeds every statistic in ``want`` (a subset of
    :data:`NEIGHBOR_STATS`); the four neighbour metrics of the table share this accumulator.
    """

    k: int
    want: tuple = NEIGHBOR_STATS
    metric: str = "euclidean"

    def init(self, acc):
        names = (*self.want, "jaccard") if "overlap" in self.want else self.want
        return {name: jnp.zeros((), acc) for name in names}

    def update(self, carry, t):
        n, k = t.x.shape[0], self.k
        ix = _knn(t.dx, t.rows, n, k)
        iy = _knn(t.dy, t.rows, n, k)
        acc = next(iter(carry.values())).dtype
        vf = t.valid.astype(acc)
        out = dict(carry)
        if "trust" in self.want:
            pen = jnp.sum(jnp.maximum(_ranks_of(t.dx, iy, t.rows, n) - k, 0), axis=1)
            out["trust"] = carry["trust"] + jnp.sum(pen.astype(acc) * vf)
        if "cont" in self.want:
            pen = jnp.sum(jnp.maximum(_ranks_of(t.dy, ix, t.rows, n) - k, 0), axis=1)
            out["cont"] = carry["cont"] + jnp.sum(pen.astype(acc) * vf)
        if "overlap" in self.want:
            o = jnp.sum(jnp.any(ix[:, :, None] == iy[:, None, :], axis=2), axis=1).astype(acc)
            out["overlap"] = carry["overlap"] + jnp.sum(o * vf) / k
            out["jaccard"] = carry["jaccard"] + jnp.sum(vf * o / (2 * k - o))
        return out

    def finish(self, c, x, y, finite, sx, sy):
        n, k = x.shape[0], self.k
        status = neighbor_status(x, y, finite)
        values = {}
        if "trust" in c:
            values["trustworthiness"] = _t_from_penalty(c["trust"], n, k)
        if "cont" in c:
            values["continuity"] = _t_from_penalty(c["cont"], n, k)
        if "overlap" in c:
            values["knn_overlap"] = c["overlap"] / n
            values["knn_jaccard"] = c["jaccard"] / n
        return {f: (nan_unless_ok(v.astype(x.dtype), status), status) for f, v in values.items()}

    def row_bytes(self, n, itemsize):
        return neighbor_row_bytes(n, self.k, itemsize)


class NeighborResult(AbstractResult):
    """Neighbourhood-preservation scores of one k (arrays only).

    Attributes:
        trustworthiness: T(k) in [0, 1].
        continuity: C(k) in [0, 1].
        knn_overlap: mean |N_k^x(i) ∩ N_k^y(i)| / k.
        knn_jaccard: mean o_i / (2k - o_i).
        status: a :class:`geomtax.Status` (``ok``, ``nonfinite_input``, ``degenerate_input``);
            every score is NaN unless it is ``ok``.
    """

    trustworthiness: Float[Array, ""]
    continuity: Float[Array, ""]
    knn_overlap: Float[Array, ""]
    knn_jaccard: Float[Array, ""]
    status: object


def _t_from_penalty(pen, n, k):
    return 1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * pen


def neighbor_status(x, y, finite):
    """``nonfinite_input`` > ``degenerate_input`` (a constant cloud) > ``ok`` (traceable)."""
    return select(
        (~finite, Status.nonfinite_input),
        (is_constant(x) | is_constant(y), Status.degenerate_input),
    )


@eqx.filter_jit
def _neighbors_impl(x, y, finite, *, k, metric, block_size, want):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    acc = NeighborSums(k, want, metric)
    return stream_paired([acc], x, y, finite=finite, block_size=block_size)


def _prep(x, y, k, metric, block_size, throw, what, strict_half=True):
    """Every static check before compiling; returns ``(x, y, finite, k, tile rows)``."""
    check_choice("metric", metric, NEIGHBOR_METRICS)
    check_block_size(block_size)
    check_bool("throw", throw)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=3, what=what)
    n = x.shape[0]
    k = check_k(k, n, shape=x.shape, strict_half=strict_half)
    bs = resolve_block_size(block_size, n, row_bytes=neighbor_row_bytes(n, k, x.dtype.itemsize))
    x = nondifferentiable(x, what)
    y = nondifferentiable(y, what)
    return x, y, finite, k, bs


def _one(name, key, x, y, k, metric, block_size, throw, strict_half=True):
    x, y, finite, k, bs = _prep(x, y, k, metric, block_size, throw, name, strict_half)
    want = ("trust",) if key == "trust" else ("cont",) if key == "cont" else ("overlap",)
    out = _neighbors_impl(x, y, finite, k=k, metric=metric, block_size=bs, want=want)
    result = Estimate(*out[name])
    return finish(result, throw=throw, function=name, details={"degenerate_input": _CONSTANT})


def trustworthiness(
    x: Samples,
    y: Samples,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> Estimate:
    r"""Trustworthiness T(k) of embedding ``y`` with respect to reference ``x`` (paired).

    .. math:: T(k) = 1 - \frac{2}{n k (2n - 3k - 1)} \sum_i \sum_{j \in U_i^k} (r(i,j) - k)

    :math:`r(i, j)` is the rank of j by distance from i in ``x`` (1 = nearest, self excluded,
    ties by lower index) and :math:`U_i^k` the points among the k nearest neighbours of i in
    ``y`` that are not among its k nearest in ``x`` (Venna & Kaski). Penalises false neighbours
    in the embedding. Equals scikit-learn's ``trustworthiness`` (which breaks ties by an
    unstable sort; identical on tie-free data). Ranks are counted tile by tile (O(k n) work per
    row), so memory is O(block_size * k * n). Invariant (by construction, also in float32) to
    translating or scaling either space (Euclidean metrics) or scaling it (cosine).

    Args:
        x: reference, shape (n, d_x).
        y: embedding, shape (n, d_y).
        k: neighbourhood size, ``1 <= k < n / 2`` (outside it the normaliser is invalid,
            scikit-learn #18567); a Python or NumPy int.
        metric: distance in both spaces (``"euclidean"`` default, ``"sqeuclidean"``,
            ``"cosine"``).
        block_size: rows per tile: ``"auto"`` (tiles <= 64 MiB), an int, or ``None`` (dense).
        throw: raise :class:`geomtax.StatusError` unless the status is ``ok`` (``False``:
            return the result with its status, under ``jit`` too).

    Returns:
        :class:`geomtax.Estimate`: ``value`` in [0, 1] (1 for identical or similarity-
        transformed embeddings) and ``status``: ``ok``; ``nonfinite_input`` (NaN or inf in
        ``x`` or ``y``); ``degenerate_input`` (every row of ``x`` or of ``y`` identical: the
        k-NN sets are arbitrary). The value is NaN unless ``ok``.

    Raises:
        ValueError: mismatched rows, rank other than 2, k out of range, unknown metric, bad
            ``block_size``; :class:`geomtax.StatusError` (a ``ValueError``) for a non-``ok``
            status when ``throw=True``.
        TypeError: ``k`` not an int (``2.5``, ``True``, ``"3"``), complex input, or
            differentiation (the value is piecewise constant in the inputs).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 3))
        >>> float(trustworthiness(x, 2.0 * x + 1.0, k=5).value)
        1.0
    """
    return _one("trustworthiness", "trust", x, y, k, metric, block_size, throw)


def continuity(
    x: Samples,
    y: Samples,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> Estimate:
    r"""Continuity C(k) of embedding ``y`` with respect to reference ``x`` (paired).

    Trustworthiness with the roles swapped: ranks in ``y`` of the reference neighbours of i
    that are missing from its k nearest neighbours in ``y`` (penalises torn neighbourhoods),
    :math:`C(k) = 1 - \frac{2}{nk(2n-3k-1)}\sum_i\sum_{j \in V_i^k}(\hat r(i,j) - k)`. Same
    conventions, options, statuses (``ok``, ``nonfinite_input``, ``degenerate_input``) and
    errors as :func:`trustworthiness`; ``continuity(x, y) == trustworthiness(y, x)``.

    Returns:
        :class:`geomtax.Estimate`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 3))
        >>> float(continuity(x, -x, k=5).value)
        1.0
    """
    return _one("continuity", "cont", x, y, k, metric, block_size, throw)


def knn_overlap(
    x: Samples,
    y: Samples,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> Estimate:
    r"""Mean k-NN overlap :math:`\frac1n\sum_i |N_k^x(i) \cap N_k^y(i)| / k` in [0, 1] (paired).

    Self excluded, ties by lower index; needs ``1 <= k < n``. Not the Jaccard index (see
    :func:`knn_jaccard`). Options, statuses (``ok``, ``nonfinite_input``,
    ``degenerate_input``), invariances and errors as :func:`trustworthiness`.

    Returns:
        :class:`geomtax.Estimate`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> float(knn_overlap(x, x, k=3).value)
        1.0
    """
    return _one("knn_overlap", "overlap", x, y, k, metric, block_size, throw, strict_half=False)


def knn_jaccard(
    x: Samples,
    y: Samples,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> Estimate:
    r"""Mean k-NN Jaccard index :math:`\frac1n\sum_i o_i / (2k - o_i)` (paired).

    :math:`o_i = |N_k^x(i) \cap N_k^y(i)|`; self excluded, ties by lower index, ``1 <= k < n``.
    Options, statuses (``ok``, ``nonfinite_input``, ``degenerate_input``), invariances and
    errors as :func:`trustworthiness`.

    Returns:
        :class:`geomtax.Estimate`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> float(knn_jaccard(x, 3.0 * x, k=3).value)
        1.0
    """
    return _one("knn_jaccard", "jaccard", x, y, k, metric, block_size, throw, strict_half=False)


def neighbor_scores(
    x: Samples,
    y: Samples,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
    throw: bool = True,
) -> NeighborResult:
    """Trustworthiness, continuity, k-NN overlap and Jaccard from one shared tiled pass.

    Options, statuses (``ok``, ``nonfinite_input``, ``degenerate_input``), invariances and
    errors as :func:`trustworthiness` (``k < n / 2``).

    Returns:
        :class:`NeighborResult`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (30, 3))
        >>> r = neighbor_scores(x, x, k=4)
        >>> float(r.trustworthiness), float(r.knn_jaccard), r.status_name
        (1.0, 1.0, 'ok')
    """
    x, y, finite, k, bs = _prep(x, y, k, metric, block_size, throw, "neighbor_scores")
    s = _neighbors_impl(x, y, finite, k=k, metric=metric, block_size=bs, want=NEIGHBOR_STATS)
    fields = ("trustworthiness", "continuity", "knn_overlap", "knn_jaccard")
    result = NeighborResult(*(s[f][0] for f in fields), s["trustworthiness"][1])
    return finish(
        result, throw=throw, function="neighbor_scores", details={"degenerate_input": _CONSTANT}
    )


# --------------------------------------------------------------------------- metric distortion


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
