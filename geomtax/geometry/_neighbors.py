r"""Neighbourhood preservation (see docs/reference/geometry.md).

Trustworthiness, continuity, k-NN overlap and Jaccard, from one shared k-NN pass; Kruskal stress
and bi-Lipschitz distortion are in ``_metric_distortion.py``.

Pairing: *paired*; ``x`` is the reference space (e.g. the clean embedding or ground-truth
state), ``y`` the embedding under test. Every metric here streams over row tiles: with the
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
``ok``. These rank and k-NN metrics raise ``TypeError`` under differentiation (their gradient
is zero almost everywhere).
"""

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from .._chunking import resolve_block_size
from .._custom_types import Samples
from .._errors import check_bool, check_choice
from .._numerics import is_constant
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import (
    check_block_size,
    check_k,
    nondifferentiable,
    prepare_paired_flagged,
    zero_nonfinite,
)
from ._tiles import Accumulator, stream_paired

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
