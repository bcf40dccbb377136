r"""Representational dissimilarity matrices (RDMs), their similarity and drift.

RDM layout: the condensed upper triangle (``i < j``, row-major, scipy ``pdist`` order), length
``n (n - 1) / 2``. Pairing: *paired* (row ``i`` of ``x`` and ``y`` is the same item).
Definitions and sources: docs/reference/geometry.md.

Invariance by construction: Euclidean and squared-Euclidean RDMs are invariant to translation
and scale (up to the factor ``s`` or ``s**2``), cosine RDMs to scale only, correlation RDMs to
per-row affine maps. Every RDM is computed on the input brought to that invariant form first
(translated, where translation is allowed; divided by a power of two near its largest absolute
entry before anything is squared), so float32 offsets of 1e6 and scales of 1e-30 or 1e30 give
the value of the unshifted data: the Gram-matrix form of the distances never cancels a large
offset, and no square over- or underflows. :func:`rdm` multiplies the scale back in; the
correlations of :func:`rdm_similarity` do not need it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._chunking import resolve_block_size
from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_float, check_int, check_real_array
from .._numerics import is_constant, safe_sqrt
from .._status import AbstractResult, Status, finish, nan_unless_ok, select
from ._checks import (
    ZERO_NORM_POLICIES,
    check_block_size,
    check_zero_norm,
    prepare_paired_flagged,
    prepare_single,
    zero_nonfinite,
)
from ._distances import pairwise_distances
from ._ranks import (
    MAX_BINNED_BUCKETS,
    RANK_METHODS,
    SOFT_MAX_VALUES,
    binned_bound,
    binned_error,
    bucket_index,
    correlation_from_sums,
    no_derivative,
    num_buckets_for,
    pearson,
    pearson_influence_se,
    soft_spearman,
    sortable_keys,
    spearman,
)
from ._tiles import frame, map_tiles, rescale, stream

RDM_METRICS = ("euclidean", "sqeuclidean", "cosine", "correlation")
RDM_METHODS = ("spearman", "pearson")
#: rank methods of :func:`rdm_similarity`: the above plus the differentiable ``"soft"``
RDM_RANK_METHODS = (*RANK_METHODS, "soft")
#: ``rank_method="auto"`` ranks exactly up to this many values, binned (with a bound) above it.
AUTO_EXACT_MAX = 1 << 20
#: number of independent groups used for the standard error of a sampled Spearman estimate.
SE_GROUPS = 32
#: default temperature of ``rank_method="soft"`` (in standard deviations of the RDM values)
SOFT_RANK_TEMPERATURE = 0.01


class RDMSimilarityResult(AbstractResult):
    """Result of :func:`rdm_similarity` / :func:`rdm_drift` (arrays only).

    Attributes:
        value: the correlation (or ``1 - correlation`` for :func:`rdm_drift`); NaN unless
            ``status`` is ``ok``.
        status: a :class:`~geomtax.Status`: ``ok``, ``nonfinite_input`` (NaN or inf in an
            input) or ``degenerate_input`` (an RDM is constant, e.g. all rows identical, so the
            correlation is 0/0; or a zero-norm row under ``metric="cosine"`` /
            ``"correlation"`` with ``zero_norm="raise"``).
        n_pairs: number of pairs the value was computed from (a Python int, static: it follows
            from the shapes, and n(n-1)/2 exceeds the int32 range beyond n = 65,536).
        stderr: standard error of a sampled-pair estimate (0.0 when exact); NaN unless ok.
        rank_error_bound: proven bound on ``|value - exact Spearman|`` from binned ranking
            (0.0 for exact ranks, soft ranks and Pearson); NaN unless ok.
    """

    value: Float[Array, ""]
    status: object
    n_pairs: int = eqx.field(static=True)
    stderr: Float[Array, ""]
    rank_error_bound: Float[Array, ""]


def _two_pass_row_center(x):
    x0 = x - x[:, :1]
    return x0 - jnp.mean(x0, axis=1, keepdims=True)


def _max_scale(x):
    """The power of two nearest above ``max |x|`` (1 for all-zero ``x``).

    Dividing by a power of two is exact, so integer-valued data keeps its exact distance ties.
    """
    m = jnp.max(jnp.abs(x))
    _, e = jnp.frexp(jnp.where(m > 0, m, jnp.ones_like(m)))
    return jnp.ldexp(jnp.ones_like(m), e)


def _invariant_form(x, metric):
    """``(x', kernel metric, s)``: ``x`` in the metric's invariant form and its scale ``s``.

    Euclidean / squared Euclidean: translated by its first row (exact for data on a common
    scale, so a large offset leaves O(spread) numbers and integer data stays integer) and
    divided by a power of two ``s`` near its largest absolute entry (distances of ``x`` are
    ``s`` times, or ``s**2`` times, those of ``x'``). Cosine: divided by ``s`` only (not
    translation invariant). Correlation: rows centred (two-pass), then divided by ``s``;
    evaluated as cosine. Cosine-type distances do not depend on ``s``.
    """
    if metric == "correlation":
        xc = _two_pass_row_center(x)
        s = _max_scale(xc)
        return xc / s, "cosine", s
    if metric == "cosine":
        s = _max_scale(x)
        return x / s, "cosine", s
    x0 = x - x[:1]
    s = _max_scale(x0)
    return x0 / s, metric, s


def _prep_metric(x, metric):
    """``(x', kernel metric)``: the invariant form of ``x`` (distances up to a global scale)."""
    xs, m, _ = _invariant_form(x, metric)
    return xs, m


def _zero_norm_rows(x, metric):
    """Scalar bool: ``x`` has a row without a cosine direction under ``metric`` (exact)."""
    if metric == "cosine":
        return jnp.any(jnp.all(x == 0, axis=1))
    if metric == "correlation":
        return jnp.any(jnp.max(x, axis=1) == jnp.min(x, axis=1))
    return jnp.zeros((), bool)


def _condense(full):
    n = full.shape[0]
    i, j = jnp.triu_indices(n, k=1)
    return full[i, j]


def _pair_values(full):
    """Every unordered pair's value exactly once, in a fixed *circulant* order.

    Row i contributes columns (i + s) mod n for s = 1 .. (n - 1) // 2, plus, for even n, s = n / 2
    for i < n / 2. Correlations only need the same pairing in both vectors, not scipy's order,
    and this layout is a contiguous ``take_along_axis`` (about 8x faster on CPU than gathering
    the upper triangle with ``triu_indices``).
    """
    n = full.shape[0]
    h = (n - 1) // 2
    idx = (jnp.arange(n)[:, None] + 1 + jnp.arange(h)[None, :]) % n
    vals = jnp.take_along_axis(full, idx, axis=1).reshape(-1)
    if n % 2 == 0:
        half = jnp.arange(n // 2)
        vals = jnp.concatenate([vals, full[half, half + n // 2]])
    return vals


def rdm(
    x: Samples,
    *,
    metric: str = "cosine",
    zero_norm: str = "raise",
    block_size: int | str | None = "auto",
) -> Float[Array, " n_pairs"]:
    r"""Condensed representational dissimilarity matrix of the rows of ``x`` (single-set).

    .. math:: \mathrm{RDM}(x)_{(i,j)} = \delta(x_i, x_j), \quad i < j

    in scipy ``pdist`` order. Metrics: ``"cosine"`` (:math:`1 - \cos`, in [0, 2]; default),
    ``"euclidean"``, ``"sqeuclidean"`` (never divided by dimension) and ``"correlation"``
    (cosine distance of row-centred vectors, as scipy). Computed on the invariant form of ``x``
    (see the module docstring), so a large common offset does not cancel the Euclidean
    distances in float32. A primitive: it returns an array, not a result with a status, and
    raises on non-finite input.

    Args:
        x: samples, shape (n, d), n >= 2.
        metric: distance name (see above).
        zero_norm: ``"raise"`` (default) on zero-norm rows under cosine/correlation, or
            ``"fill_one"`` to define the distance to such a row as 1.0 (shesha 0.2 parity).
        block_size: rows per tile while building the distances: ``"auto"`` (default) keeps a
            tile under 64 MiB, ``None`` computes one dense pass, or a positive int (the
            condensed output itself has n(n-1)/2 entries).

    Returns:
        Array of shape (n (n - 1) / 2,).

    Raises:
        ValueError: rank other than 2, fewer than 2 rows, non-finite values (under ``jit``: an
            ``EquinoxRuntimeError``), unknown metric, zero-norm rows under cosine.
        TypeError: complex (or other non-real) input, a non-int ``block_size``.

    Examples:
        >>> import jax.numpy as jnp
        >>> rdm(jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]), metric="euclidean").tolist()
        [5.0, 10.0, 5.0]
    """
    check_choice("metric", metric, RDM_METRICS)
    block_size = _check_block_size(block_size)
    check_real_array("x", x)
    x = prepare_single("x", x, min_rows=2, what="an RDM")
    x = check_zero_norm("x", x, metric, zero_norm)
    block_size = _rows_per_tile(block_size, x.shape[0], x.dtype.itemsize)
    return _rdm_impl(x, metric=metric, block_size=block_size)


def _check_block_size(block_size):
    if block_size is None or isinstance(block_size, str):
        check_block_size(block_size)  # "auto" or None
        return block_size
    return check_int("block_size", block_size, minimum=1)


def _rows_per_tile(block_size, n, itemsize):
    """Concrete rows per tile: ``"auto"`` keeps a (rows, n) tile and its copies under 64 MiB."""
    return resolve_block_size(block_size, n, row_bytes=4 * n * itemsize)


def _pair_values_tiled(x, metric, block_size):
    """``_pair_values(pairwise_distances(x))`` built tile by tile (no n x n intermediate).

    The circulant layout is row-local (row i keeps columns i + 1 .. i + h mod n), so each row
    tile of distances is cut to its (rows, h) pairs as soon as it is computed; peak memory is
    one (block_size, n) tile plus the condensed output.
    """
    n = x.shape[0]
    if block_size is None:
        return _pair_values(pairwise_distances(x, metric=metric, block_size=None))
    xf, s = _pair_frame(x, metric)
    h = (n - 1) // 2
    even = n % 2 == 0

    def tile(d, rows, xb):
        idx = (rows[:, None] + 1 + jnp.arange(h)[None, :]) % n
        out = {"pairs": jnp.take_along_axis(d, idx, axis=1)}
        if even:
            out["half"] = jnp.take_along_axis(d, ((rows + n // 2) % n)[:, None], axis=1)[:, 0]
        return out

    got = map_tiles(tile, xf, xf, metric=metric, block_size=block_size)
    vals = got["pairs"].reshape(-1)
    if even:
        vals = jnp.concatenate([vals, got["half"][: n // 2]])
    return rescale(vals, s, metric)


@eqx.filter_jit
def _rdm_impl(x, *, metric, block_size):
    xs, m, s = _invariant_form(x, metric)
    d = _condense(pairwise_distances(xs, metric=m, block_size=block_size))
    if metric == "euclidean":
        d = d * s
    elif metric == "sqeuclidean":
        d = (d * s) * s
    return d


def _sampled_pairs(key, n, m):
    """M unordered pairs (i < j) drawn uniformly with replacement from the n(n-1)/2 pairs."""
    ki, kj = jax.random.split(key)
    i = jax.random.randint(ki, (m,), 0, n)
    j = jax.random.randint(kj, (m,), 0, n - 1)
    j = j + (j >= i)
    return jnp.minimum(i, j), jnp.maximum(i, j)


def _pointwise(xa, xb, metric):
    """Distances between matched rows of xa and xb (same primitive as the dense kernels)."""
    if metric == "cosine":
        na = jnp.linalg.norm(xa, axis=1)
        nb = jnp.linalg.norm(xb, axis=1)
        ok = (na > 0) & (nb > 0)
        cos = jnp.sum(xa * xb, axis=1) / jnp.where(ok, na * nb, 1.0)
        return jnp.where(ok, 1.0 - jnp.clip(cos, -1.0, 1.0), 1.0)
    diff = xa - xb
    sq = jnp.sum(diff * diff, axis=1)
    return sq if metric == "sqeuclidean" else safe_sqrt(sq)


#: sampled pairs are turned into distances this many at a time (bounds the row gathers)
PAIR_CHUNK = 1 << 14


def _paired_distances(x, y, i, j, metric):
    """Distances of the sampled pairs in both spaces, chunk by chunk (O(chunk * d) memory)."""
    m = i.shape[0]
    if m <= PAIR_CHUNK:
        return _pointwise(x[i], x[j], metric), _pointwise(y[i], y[j], metric)
    pad = (-m) % PAIR_CHUNK
    ic = jnp.pad(i, (0, pad)).reshape(-1, PAIR_CHUNK)
    jc = jnp.pad(j, (0, pad)).reshape(-1, PAIR_CHUNK)

    def chunk(args):
        a, b = args
        return _pointwise(x[a], x[b], metric), _pointwise(y[a], y[b], metric)

    u, v = jax.lax.map(jax.checkpoint(chunk), (ic, jc))
    return u.reshape(-1)[:m], v.reshape(-1)[:m]


def _resolve_rank_method(rank_method, count):
    if rank_method == "auto":
        return "exact" if count <= AUTO_EXACT_MAX else "binned"
    return rank_method


def _check_key(key, function):
    """A typed PRNG key (``jax.random.key``) or a raw ``uint32[2]`` one (``PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == jnp.uint32 and tuple(getattr(key, "shape", ())) == (2,)
    if not (typed or raw) or (typed and key.shape != ()):
        raise TypeError(
            f"{function}: key must be a single PRNG key (jax.random.key(seed)), got {key!r}"
        )


def _prepare_similarity(
    x,
    y,
    *,
    metric,
    method,
    max_pairs,
    key,
    block_size,
    rank_method,
    zero_norm,
    soft_rank_temperature,
    throw,
    function,
):
    """Validate every option (static, before compiling); return the arguments of the impls."""
    check_choice("metric", metric, RDM_METRICS)
    check_choice("method", method, RDM_METHODS)
    check_choice("rank_method", rank_method, RDM_RANK_METHODS)
    check_choice("zero_norm", zero_norm, ZERO_NORM_POLICIES)
    throw = check_bool("throw", throw)
    block_size = _check_block_size(block_size)
    if method == "pearson" and rank_method != "auto":
        raise ValueError(
            f"{function}: rank_method applies to method='spearman' only; got "
            f"rank_method={rank_method!r} with method='pearson'"
        )
    if soft_rank_temperature is None:
        temperature = SOFT_RANK_TEMPERATURE
    elif rank_method != "soft":
        raise ValueError(
            f"{function}: soft_rank_temperature applies to rank_method='soft' only; got "
            f"soft_rank_temperature={soft_rank_temperature!r} with rank_method={rank_method!r}"
        )
    else:
        temperature = check_float("soft_rank_temperature", soft_rank_temperature, positive=True)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=3, what=function)
    temperature = jnp.asarray(temperature, x.dtype)  # an array: a new value does not recompile
    n = x.shape[0]
    block_size = _rows_per_tile(block_size, n, x.dtype.itemsize)
    if max_pairs is not None:
        max_pairs = check_int("max_pairs", max_pairs, minimum=2 * SE_GROUPS)
        if key is None:
            raise ValueError(f"{function} with max_pairs needs an explicit PRNG `key`")
        _check_key(key, function)
    count = max_pairs if max_pairs is not None else n * (n - 1) // 2
    if rank_method == "soft" and count > SOFT_MAX_VALUES:
        raise ValueError(
            f"{function}: rank_method='soft' compares every pair of RDM entries (O(p^2) time); "
            f"p = {count:,} pairs exceeds the limit of {SOFT_MAX_VALUES:,}; pass "
            f"max_pairs=<= {SOFT_MAX_VALUES} with a key to use sampled pairs"
        )
    if method == "spearman" and rank_method != "soft":
        msg = (
            f"{function}(method='spearman', rank_method={rank_method!r}) uses exact ranks, which "
            "are piecewise constant in the inputs: its derivative is zero almost everywhere. For "
            "a training signal pass rank_method='soft' (differentiable soft ranks; see "
            "soft_rank_temperature) or method='pearson'"
        )
        x, y = no_derivative(x, msg), no_derivative(y, msg)
    details = "an RDM is constant (for example, all rows of an input are identical)"
    if metric in ("cosine", "correlation") and zero_norm == "raise":
        details += (
            f", or a zero-norm row has no direction under metric={metric!r}; pass "
            "zero_norm='fill_one' to define its distances as 1.0"
        )
    opts = dict(metric=metric, method=method, zero_norm_raise=zero_norm == "raise")
    return x, y, finite, temperature, max_pairs, block_size, count, opts, throw, details


def _similarity(x, y, *, function, max_pairs, key, block_size, rank_method, **kwargs):
    x, y, finite, temperature, m, block_size, count, opts, throw, details = _prepare_similarity(
        x,
        y,
        max_pairs=max_pairs,
        key=key,
        block_size=block_size,
        rank_method=rank_method,
        function=function,
        **kwargs,
    )
    rm = _resolve_rank_method(rank_method, count)
    if m is not None:
        res = _sampled_similarity_impl(x, y, finite, key, temperature, m=m, rank_method=rm, **opts)
    else:
        res = _similarity_impl(
            x, y, finite, temperature, block_size=block_size, rank_method=rm, **opts
        )
    return res, throw, {"degenerate_input": details}


def rdm_similarity(
    x: Samples,
    y: Samples,
    *,
    metric: str = "cosine",
    method: str = "spearman",
    max_pairs: int | None = None,
    key: KeyArray | None = None,
    block_size: int | str | None = "auto",
    rank_method: str = "auto",
    zero_norm: str = "raise",
    soft_rank_temperature: float | None = None,
    throw: bool = True,
) -> RDMSimilarityResult:
    r"""Correlation between the RDMs of two paired embeddings (paired).

    .. math:: s = \mathrm{corr}\big(\mathrm{RDM}(x), \mathrm{RDM}(y)\big)

    over the :math:`N = n(n-1)/2` condensed pairs; ``method="spearman"`` (default) uses average
    ranks for ties, ``"pearson"`` the raw distances (smooth, so differentiable). Invariant to
    any strictly monotone transform of the distances (Spearman); cosine RDMs are invariant to
    positive row rescaling and orthogonal maps (not translation), Euclidean RDMs to rotation,
    translation and global scale. These invariances hold in float32 too: each input is brought
    to its metric's invariant form before any distance (see the module docstring).
    Definitions and sources: docs/reference/geometry.md.

    **Exactness.** Pearson is exact (streamed tile by tile with ``block_size``, the n x n matrix
    is never built). Spearman ranks the two condensed RDMs: ``rank_method="exact"`` sorts packed
    integer keys once and is exact including ties; ``"binned"`` gives each distance the average
    rank of its histogram bucket (at most 2^16 buckets) and returns a *proven* bound
    ``rank_error_bound`` on ``|s - exact|`` (about 1e-4 at n = 4,000, smaller for fewer
    pairs); ``"auto"`` (default) is exact up to 2^20 pairs (n <= 1,448) and binned above.
    Binned ranks stream (three tiled passes: key range, bucket histogram, rank products), so
    their memory is one tile plus the buckets at any n; exact and soft ranks hold the two
    condensed RDMs (n(n-1)/2 values each, built tile by tile, never as an n x n matrix).

    **Gradients.** Exact and binned ranks are piecewise constant in the inputs, so
    differentiating ``method="spearman"`` with them raises ``TypeError`` (instead of returning
    zeros). ``rank_method="soft"`` is a differentiable relaxation: each RDM entry's rank is
    :math:`\tfrac12 + \sum_j \sigma((z_i - z_j)/t)` with :math:`z` the standardised RDM values
    and :math:`t` = ``soft_rank_temperature`` (default 0.01, in standard deviations of the RDM
    values), and the value is the Pearson correlation of these soft ranks. It tends to the
    exact Spearman coefficient as :math:`t \to 0` (ties included) and is smaller in magnitude
    for larger :math:`t`. It costs O(p^2) time for p pairs (tiled, O(p) memory) and is limited
    to p <= 65,536 pairs (n <= 362, or ``max_pairs`` sampled pairs); beyond that it raises.

    **Sampled pairs.** With ``max_pairs = m`` the correlation is computed on ``m`` pairs drawn
    uniformly with replacement (needs ``key``; O(m) memory). The estimate is consistent, with
    bias O(1/m) far below its standard error, which is returned as ``stderr`` (Pearson: the
    influence-function formula; Spearman: the spread of 32 independent exact-rank group
    estimates).

    Args:
        x: reference embedding, shape (n, d_x), n >= 3.
        y: embedding paired row by row with ``x``, shape (n, d_y).
        metric: ``"cosine"`` (default), ``"euclidean"``, ``"sqeuclidean"`` or ``"correlation"``.
        method: ``"spearman"`` or ``"pearson"``.
        max_pairs: number of sampled pairs (an int >= 64), or ``None`` for all pairs.
        key: PRNG key, required with ``max_pairs``.
        block_size: rows per tile: ``"auto"`` (default) keeps every tile under 64 MiB, ``None``
            computes one dense pass (an n x n matrix), or a positive int. Pearson then streams
            (no n x n intermediate), so does binned Spearman; exact Spearman builds its two
            condensed RDMs tile by tile.
        rank_method: ``"auto"``, ``"exact"``, ``"binned"`` or ``"soft"`` (Spearman only).
        zero_norm: ``"raise"`` (a zero-norm row under cosine/correlation is
            ``degenerate_input``) or ``"fill_one"`` (see :func:`rdm`).
        soft_rank_temperature: temperature of ``rank_method="soft"`` (a finite number > 0);
            only with that rank method.
        throw: raise :class:`~geomtax.StatusError` on a non-``ok`` status (default); with
            ``False`` the result is returned with its status, under ``jit`` too.

    Returns:
        :class:`RDMSimilarityResult`. Status ``nonfinite_input`` (NaN or inf in an input) or
        ``degenerate_input`` (a constant RDM, e.g. all rows identical; a zero-norm row under
        cosine/correlation with ``zero_norm="raise"``); the value is NaN for both.

    Raises:
        ValueError: mismatched rows, rank other than 2, n < 3, unknown metric / method /
            rank_method / zero_norm, ``max_pairs`` without ``key`` or below 64, a
            ``rank_method`` with ``method="pearson"``, ``soft_rank_temperature`` without
            ``rank_method="soft"``, too many pairs for ``"soft"``.
        TypeError: complex (or other non-real) input, non-int ``max_pairs`` / ``block_size``;
            under ``jax.grad`` / ``jax.jvp``, exact- or binned-rank Spearman.
        StatusError: with ``throw=True``, a non-``ok`` status (a ``ValueError``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (50, 8))
        >>> r = rdm_similarity(x, 3.0 * x, metric="euclidean")
        >>> round(float(r.value), 4), r.status_name, int(r.n_pairs)
        (1.0, 'ok', 1225)
        >>> y = jnp.tanh(x)
        >>> exact = float(rdm_similarity(x, y).value)
        >>> soft = float(rdm_similarity(x, y, rank_method="soft").value)
        >>> abs(soft - exact) < 1e-2
        True
    """
    res, throw, details = _similarity(
        x,
        y,
        metric=metric,
        method=method,
        max_pairs=max_pairs,
        key=key,
        block_size=block_size,
        rank_method=rank_method,
        zero_norm=zero_norm,
        soft_rank_temperature=soft_rank_temperature,
        throw=throw,
        function="rdm_similarity",
    )
    return finish(res, throw=throw, function="rdm_similarity", details=details)


def _streamed_pearson(x, y, metric, block_size):
    """Pearson of two RDMs summed over all ordered pairs i != j (same value as condensed).

    Returns ``(r, constant)``; ``constant`` is exact (the running min equals the running max).
    """
    n = x.shape[0]
    dtype = x.dtype
    count = float(n * (n - 1))  # a Python int beyond n = 46,341 overflows int32

    def pass1(carry, t):
        sx, sy, lox, hix, loy, hiy = carry
        inf = jnp.asarray(jnp.inf, dtype)
        return (
            sx + jnp.sum(jnp.where(t.mask, t.dx, 0.0)),
            sy + jnp.sum(jnp.where(t.mask, t.dy, 0.0)),
            jnp.minimum(lox, jnp.min(jnp.where(t.mask, t.dx, inf))),
            jnp.maximum(hix, jnp.max(jnp.where(t.mask, t.dx, -inf))),
            jnp.minimum(loy, jnp.min(jnp.where(t.mask, t.dy, inf))),
            jnp.maximum(hiy, jnp.max(jnp.where(t.mask, t.dy, -inf))),
        )

    zero = jnp.zeros((), dtype)
    big = jnp.full((), jnp.inf, dtype)
    init = (zero, zero, big, -big, big, -big)
    opts = dict(metric=metric, block_size=block_size, remat=True)  # differentiable: remat
    sx, sy, lox, hix, loy, hiy = stream(pass1, init, x, y, **opts)
    mx, my = sx / count, sy / count

    def pass2(carry, t):
        a = jnp.where(t.mask, t.dx - mx, 0.0)
        b = jnp.where(t.mask, t.dy - my, 0.0)
        saa, sbb, sab = carry
        return saa + jnp.sum(a * a), sbb + jnp.sum(b * b), sab + jnp.sum(a * b)

    saa, sbb, sab = stream(pass2, (zero, zero, zero), x, y, **opts)
    constant = (lox == hix) | (loy == hiy) | (saa <= 0) | (sbb <= 0)
    r = sab / jnp.sqrt(jnp.where(constant, 1.0, saa * sbb))
    return jnp.where(constant, 0.0, jnp.clip(r, -1.0, 1.0)), constant


def _streamed_binned_spearman(x, y, metric, block_size):
    """Binned Spearman of the two condensed RDMs in three tiled passes: O(tile + buckets).

    The ranks are those of :func:`~geomtax.geometry._ranks.twice_ranks_binned` on the
    condensed pairs (``i < j``): pass 1 finds each RDM's key range, pass 2 its bucket
    histogram (so every pair's bucket-average rank is known), pass 3 sums the products of the
    two centred ranks. The rank vectors never exist, so memory does not grow with n(n-1)/2.
    """
    n = x.shape[0]
    count = n * (n - 1) // 2
    nb = min(num_buckets_for(count), MAX_BINNED_BUCKETS)
    dtype = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    (xf, sx), (yf, sy) = (_pair_frame(v, metric) for v in (x, y))
    cols = jnp.arange(n)
    opts = dict(metric=metric, block_size=block_size, sx=sx, sy=sy)

    def keys(t):
        upper = (t.rows[:, None] < cols[None, :]) & t.valid[:, None]
        kx = sortable_keys(rescale(t.dx, t.sx, metric))
        ky = sortable_keys(rescale(t.dy, t.sy, metric))
        return upper, kx, ky

    def pass1(c, t):
        upper, kx, ky = keys(t)
        hi_key, lo_key = jnp.iinfo(kx.dtype).max, jnp.iinfo(kx.dtype).min
        return (
            jnp.minimum(c[0], jnp.min(jnp.where(upper, kx, hi_key))),
            jnp.maximum(c[1], jnp.max(jnp.where(upper, kx, lo_key))),
            jnp.minimum(c[2], jnp.min(jnp.where(upper, ky, hi_key))),
            jnp.maximum(c[3], jnp.max(jnp.where(upper, ky, lo_key))),
        )

    ktype = sortable_keys(jnp.zeros((1,), dtype)).dtype
    big, small = jnp.iinfo(ktype).max, jnp.iinfo(ktype).min
    init = tuple(jnp.asarray(v, ktype) for v in (big, small, big, small))
    lox, hix, loy, hiy = stream(pass1, init, xf, yf, **opts)

    def pass2(c, t):
        upper, kx, ky = keys(t)
        w = upper.astype(jnp.int32).reshape(-1)
        bx = bucket_index(kx, lox, hix, nb).reshape(-1)
        by = bucket_index(ky, loy, hiy, nb).reshape(-1)
        return c[0].at[bx].add(w), c[1].at[by].add(w)

    zeros = jnp.zeros((nb,), jnp.int32)
    cx, cy = stream(pass2, (zeros, zeros), xf, yf, **opts)

    def centred(counts):  # the centred, scaled rank of each bucket (as rank_correlation)
        twice = 2 * (jnp.cumsum(counts) - counts) + counts + 1
        return (twice - (count + 1)).astype(dtype) / count

    ax, ay = centred(cx), centred(cy)

    def pass3(c, t):
        upper, kx, ky = keys(t)
        a = ax[bucket_index(kx, lox, hix, nb)]
        b = ay[bucket_index(ky, loy, hiy, nb)]
        return c + jnp.sum(jnp.where(upper, a * b, 0.0))

    sab = stream(pass3, jnp.zeros((), dtype), xf, yf, **opts)
    saa = jnp.sum(cx.astype(dtype) * ax * ax)
    sbb = jnp.sum(cy.astype(dtype) * ay * ay)
    rho, constant, norm_x, norm_y = correlation_from_sums(saa, sbb, sab, count)
    bound = binned_bound(binned_error(cx), binned_error(cy), norm_x, norm_y, dtype)
    return rho, constant, jnp.where(constant, 0.0, bound)


def _pair_frame(x, metric):
    """The frame :func:`_pair_values_tiled` computes the distances in, and its scale."""
    if metric == "cosine":
        return x, jnp.ones((), x.dtype)
    xf, _, s = frame(x)
    return xf, s


def _degenerate_inputs(x, y, metric, zero_norm_raise):
    """Input-level degeneracy: all rows identical, or (``zero_norm='raise'``) a zero-norm row."""
    bad = is_constant(x) | is_constant(y)
    if zero_norm_raise:
        bad = bad | _zero_norm_rows(x, metric) | _zero_norm_rows(y, metric)
    return bad


def _result(r, constant, degenerate, finite, n_pairs, stderr, bound, dtype):
    status = select(
        (~finite, Status.nonfinite_input), (degenerate | constant, Status.degenerate_input)
    )
    return RDMSimilarityResult(
        nan_unless_ok(jnp.asarray(r, dtype), status),
        status,
        int(n_pairs),
        nan_unless_ok(jnp.asarray(stderr, dtype), status),
        nan_unless_ok(jnp.asarray(bound, dtype), status),
    )


@eqx.filter_jit
def _similarity_impl(
    x, y, finite, temperature, *, metric, method, block_size, rank_method, zero_norm_raise
):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    degenerate = _degenerate_inputs(x, y, metric, zero_norm_raise)
    x, m = _prep_metric(x, metric)
    y, _ = _prep_metric(y, metric)
    n = x.shape[0]
    n_pairs = n * (n - 1) // 2
    zero = jnp.zeros((), x.dtype)
    if method == "pearson":
        if block_size is not None and block_size < n:
            r, constant = _streamed_pearson(x, y, m, block_size)
        else:
            r, constant = pearson(
                _pair_values(pairwise_distances(x, metric=m)),
                _pair_values(pairwise_distances(y, metric=m)),
            )
        return _result(r, constant, degenerate, finite, n_pairs, zero, zero, x.dtype)
    if rank_method == "binned" and block_size is not None and block_size < n:
        rho, constant, bound = _streamed_binned_spearman(x, y, m, block_size)
        return _result(rho, constant, degenerate, finite, n_pairs, zero, bound, x.dtype)
    u = _pair_values_tiled(x, m, block_size)
    v = _pair_values_tiled(y, m, block_size)
    if rank_method == "soft":
        rho, constant = soft_spearman(u, v, temperature)
        bound = zero
    else:
        rho, constant, bound = spearman(u, v, rank_method=rank_method)
    return _result(rho, constant, degenerate, finite, n_pairs, zero, bound, x.dtype)


def _sampled_core(x, y, key, temperature, *, metric, method, m, rank_method):
    """``(value, constant, stderr, bound)`` on ``m`` sampled pairs of prepared inputs."""
    x, mt = _prep_metric(x, metric)
    y, _ = _prep_metric(y, metric)
    n = x.shape[0]
    i, j = _sampled_pairs(key, n, m)
    u, v = _paired_distances(x, y, i, j, mt)
    zero = jnp.zeros((), x.dtype)
    if method == "pearson":
        r, constant = pearson(u, v)
        se = pearson_influence_se(jax.lax.stop_gradient(u), jax.lax.stop_gradient(v))
        return r, constant, se, zero
    if rank_method == "soft":
        rho, constant = soft_spearman(u, v, temperature)
        bound = zero
    else:
        rho, constant, bound = spearman(u, v, rank_method=rank_method)
    g = SE_GROUPS
    mg = m // g
    us, vs = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    ug = us[: mg * g].reshape(g, mg)
    vg = vs[: mg * g].reshape(g, mg)
    nb = num_buckets_for(mg)
    rho_g, _, _ = jax.vmap(lambda a, b: spearman(a, b, rank_method="exact", num_buckets=nb))(ug, vg)
    se = jnp.std(rho_g, ddof=1) / jnp.sqrt(g)
    return rho, constant, se, bound


@eqx.filter_jit
def _sampled_similarity_impl(
    x, y, finite, key, temperature, *, metric, method, m, rank_method, zero_norm_raise
):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    degenerate = _degenerate_inputs(x, y, metric, zero_norm_raise)
    r, constant, se, bound = _sampled_core(
        x, y, key, temperature, metric=metric, method=method, m=m, rank_method=rank_method
    )
    return _result(r, constant, degenerate, finite, m, se, bound, x.dtype)


def rdm_drift(
    x: Samples,
    y: Samples,
    *,
    metric: str = "cosine",
    method: str = "spearman",
    max_pairs: int | None = None,
    key: KeyArray | None = None,
    block_size: int | str | None = "auto",
    rank_method: str = "auto",
    zero_norm: str = "raise",
    soft_rank_temperature: float | None = None,
    throw: bool = True,
) -> RDMSimilarityResult:
    r"""RDM drift :math:`1 - \mathrm{rdm\_similarity}(x, y)` in [0, 2] (paired).

    Takes exactly the options of :func:`rdm_similarity` and has the same status codes
    (``nonfinite_input``, ``degenerate_input``: value NaN); the returned result's ``value`` is
    the drift; ``stderr`` and ``rank_error_bound`` carry over unchanged.

    Args:
        x: reference embedding, shape (n, d_x), n >= 3.
        y: embedding paired row by row with ``x``.
        metric: see :func:`rdm_similarity`.
        method: see :func:`rdm_similarity`.
        max_pairs: see :func:`rdm_similarity`.
        key: see :func:`rdm_similarity`.
        block_size: see :func:`rdm_similarity`.
        rank_method: see :func:`rdm_similarity`.
        zero_norm: see :func:`rdm_similarity`.
        soft_rank_temperature: see :func:`rdm_similarity`.
        throw: raise :class:`~geomtax.StatusError` on a non-``ok`` status (default).

    Returns:
        :class:`RDMSimilarityResult` holding the drift.

    Raises:
        ValueError: as :func:`rdm_similarity`.
        TypeError: as :func:`rdm_similarity`.
        StatusError: with ``throw=True``, a non-``ok`` status.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (30, 4))
        >>> round(float(rdm_drift(x, 2.0 * x).value), 4)
        0.0
    """
    res, throw, details = _similarity(
        x,
        y,
        metric=metric,
        method=method,
        max_pairs=max_pairs,
        key=key,
        block_size=block_size,
        rank_method=rank_method,
        zero_norm=zero_norm,
        soft_rank_temperature=soft_rank_temperature,
        throw=throw,
        function="rdm_drift",
    )
    res = eqx.tree_at(lambda t: t.value, res, 1.0 - res.value)
    return finish(res, throw=throw, function="rdm_drift", details=details)
