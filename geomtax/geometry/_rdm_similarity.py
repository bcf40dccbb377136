r"""RDM similarity and drift: the correlation of the RDMs of two paired embeddings.

Pairing: *paired* (row ``i`` of ``x`` and ``y`` is the same item). The RDMs are built as in
``_rdm.py`` (each input in its metric's invariant form, pairs in a fixed circulant order); the
correlation is dense, streamed tile by tile or computed on sampled pairs (``_rdm_kernels.py``).
Options are validated once, before compiling, by :func:`_prepare_similarity`.
Definitions and sources: docs/reference/geometry.md.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_float, check_int
from .._numerics import is_constant
from .._status import AbstractResult, Status, finish, nan_unless_ok, select
from ._checks import ZERO_NORM_POLICIES, prepare_paired_flagged, zero_nonfinite
from ._distances import pairwise_distances
from ._ranks import (
    RANK_METHODS,
    SOFT_MAX_VALUES,
    no_derivative,
    pearson,
    resolve_rank_method,
    soft_spearman,
    spearman,
)
from ._rdm import (
    RDM_METRICS,
    _check_block_size,
    _pair_values,
    _pair_values_tiled,
    _prep_metric,
    _rows_per_tile,
)
from ._rdm_kernels import SE_GROUPS, sampled_core, streamed_binned_spearman, streamed_pearson

RDM_METHODS = ("spearman", "pearson")
#: rank methods of :func:`rdm_similarity`: the above plus the differentiable ``"soft"``
RDM_RANK_METHODS = (*RANK_METHODS, "soft")
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


def _zero_norm_rows(x, metric):
    """Scalar bool: ``x`` has a row without a cosine direction under ``metric`` (exact)."""
    if metric == "cosine":
        return jnp.any(jnp.all(x == 0, axis=1))
    if metric == "correlation":
        return jnp.any(jnp.max(x, axis=1) == jnp.min(x, axis=1))
    return jnp.zeros((), bool)


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
    rm = resolve_rank_method(rank_method, count)
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
            r, constant = streamed_pearson(x, y, m, block_size)
        else:
            r, constant = pearson(
                _pair_values(pairwise_distances(x, metric=m)),
                _pair_values(pairwise_distances(y, metric=m)),
            )
        return _result(r, constant, degenerate, finite, n_pairs, zero, zero, x.dtype)
    if rank_method == "binned" and block_size is not None and block_size < n:
        rho, constant, bound = streamed_binned_spearman(x, y, m, block_size)
        return _result(rho, constant, degenerate, finite, n_pairs, zero, bound, x.dtype)
    u = _pair_values_tiled(x, m, block_size)
    v = _pair_values_tiled(y, m, block_size)
    if rank_method == "soft":
        rho, constant = soft_spearman(u, v, temperature)
        bound = zero
    else:
        rho, constant, bound = spearman(u, v, rank_method=rank_method)
    return _result(rho, constant, degenerate, finite, n_pairs, zero, bound, x.dtype)


@eqx.filter_jit
def _sampled_similarity_impl(
    x, y, finite, key, temperature, *, metric, method, m, rank_method, zero_norm_raise
):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    degenerate = _degenerate_inputs(x, y, metric, zero_norm_raise)
    r, constant, se, bound = sampled_core(
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
