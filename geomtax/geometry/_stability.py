r"""Split-half self-consistency scores of one embedding (see docs/reference/geometry.md).

Single-set: :func:`feature_split_stability` (Shesha), :func:`sample_split_stability` and
:func:`anchor_stability` (both legacy: shesha 0.3 deprecates them as not identifiable). The
perturbation scores are in ``_perturbation.py``, the composites that combine these scores in
``_composite.py``.

Randomness comes from an explicit ``key``; JAX PRNG streams differ from the NumPy reference, so
compare with it statistically, never bitwise.

Result contract: every function returns a result with a ``status`` (:class:`geomtax.Status`)
and takes ``throw``; values are NaN unless the status is ``ok``. The scores (Spearman
correlations of RDMs) are piecewise constant in the data and raise ``TypeError`` under
differentiation. Invariances hold by construction in float32: Euclidean RDMs are computed on
centred, unit-scaled clouds, cosine directions on row-scaled rows, correlation RDMs on two-pass
row-centred rows.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .._chunking import resolve_block_size
from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_float, check_int, renamed_options
from .._numerics import center, standardize_cloud
from .._status import AbstractResult, Status, finish, nan_unless_ok, select
from ._checks import (
    nondifferentiable,
    prepare_single_flagged,
    zero_nonfinite,
    zero_norm_mask,
)
from ._ranks import (
    RANK_METHODS,
    num_buckets_for,
    resolve_rank_method,
    spearman,
    twice_ranks_exact,
)
from ._rdm import RDM_METRICS, _pair_values
from ._tiles import map_tiles

ZERO_NORM_DETAIL = "a row has zero norm, so its cosine (or correlation) distance is undefined"
_NO_SPLIT = "no split had a non-constant RDM (constant data or constant halves)"


class StabilityResult(AbstractResult):
    """Result of a split-based stability score (arrays only).

    Attributes:
        value: mean Spearman correlation over the valid splits, in [-1, 1]; NaN unless
            ``status`` is ``ok``.
        n_valid: number of splits used (splits with a constant RDM are skipped).
        rank_error_bound: largest per-split bound on the Spearman error from binned ranking
            (0 when ranks are exact).
        status: a :class:`geomtax.Status`: ``ok``, ``nonfinite_input`` (NaN or inf in ``x``),
            ``degenerate_input`` (no valid split, or a zero-norm row under a cosine metric
            where the function does not define one).
    """

    value: Float[Array, ""]
    n_valid: Int[Array, ""]
    rank_error_bound: Float[Array, ""]
    status: object


def _key_check(key):
    if key is None:
        raise ValueError("this stability score is random: pass an explicit PRNG `key`")


def _rm(rank_method, n_rows):
    """The concrete rank method for the condensed RDM of ``n_rows`` rows."""
    return resolve_rank_method(rank_method, n_rows * (n_rows - 1) // 2)


def _metric_frame(x, metric):
    """The cloud in the frame its RDM is invariant to, and the kernel metric to apply."""
    if metric == "correlation":
        return center(x.T).T, "cosine"  # two-pass row centring: no cancellation at 1e6
    if metric == "cosine":
        return x, "cosine"  # rows are max-scaled inside the kernel
    return standardize_cloud(x), metric


def _distances(a, b, metric):
    """(n_a, n_b) distances in the kernel's frame, tiled so a tile stays under 64 MiB."""
    bs = resolve_block_size("auto", a.shape[0], row_bytes=3 * b.shape[0] * a.dtype.itemsize)
    return map_tiles(lambda d, ids, rows: d, a, b, metric=metric, block_size=bs)


def _crdm(x, metric):
    xf, m = _metric_frame(x, metric)
    return _pair_values(_distances(xf, xf, m))


def _summarize(rhos, valid, bounds, finite, extra_degenerate=None):
    nv = jnp.sum(valid)
    degenerate = nv == 0
    if extra_degenerate is not None:
        degenerate = degenerate | extra_degenerate
    status = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    mean = jnp.sum(jnp.where(valid, rhos, 0.0)) / jnp.maximum(nv, 1)
    bound = jnp.max(jnp.where(valid, bounds, 0.0))
    return StabilityResult(
        nan_unless_ok(mean.astype(rhos.dtype), status),
        nv.astype(jnp.int32),
        bound.astype(rhos.dtype),
        status,
    )


def _subsample(x, key, max_samples):
    n = x.shape[0]
    if max_samples is None or n <= max_samples:
        return x
    idx = jax.random.choice(key, n, (max_samples,), replace=False)
    return x[idx]


def _split_options(key, num_splits, metric, rank_method, throw):
    check_choice("metric", metric, RDM_METRICS)
    if rank_method is not None:
        check_choice("rank_method", rank_method, RANK_METHODS)
    check_bool("throw", throw)
    _key_check(key)
    return check_int("num_splits", num_splits, minimum=1)


@renamed_options(n_splits="num_splits")
def feature_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    num_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
    rank_method: str = "auto",
    throw: bool = True,
) -> StabilityResult:
    r"""Shesha feature-split stability: split-half RDM agreement over random feature halves.

    Single-set. After subsampling to ``max_samples`` rows (without replacement), for each of
    ``num_splits`` random permutations :math:`\pi` of the d features,
    :math:`F_1 = \pi[:\lfloor d/2\rfloor]`, :math:`F_2 = \pi[\lfloor d/2\rfloor:2\lfloor
    d/2\rfloor]` (odd d drops one feature) and

    .. math:: \rho_k = \mathrm{Spearman}\big(\mathrm{RDM}(X_{:,F_1}),
              \mathrm{RDM}(X_{:,F_2})\big), \qquad \mathrm{score} = \mathrm{mean}_k\,\rho_k.

    Splits where either RDM is constant are skipped. Zero-norm rows *within a half* get cosine
    distance 1.0 (``fill_one``), since a half can vanish even when the row does not. Not
    invariant to rotations (they mix features across halves); invariant to a global scale
    (every metric) and to translation (Euclidean metrics), by construction in float32. Splits
    run sequentially (``lax.map``), so memory is that of one split. Ranks: see
    :func:`~geomtax.geometry.rdm_similarity` (``rank_method``; ``"auto"`` uses bounded binned
    ranks above 2^20 pairs, e.g. at the default 1,600 rows).

    Args:
        x: shape (n, d), n >= 4, d >= 4.
        key: PRNG key (subsampling and permutations).
        num_splits: number of random splits (int >= 1).
        metric: RDM distance (default ``"cosine"``).
        max_samples: row cap (shesha default 1,600; the reference harness uses 2,500), or
            ``None``.
        rank_method: ``"auto"``, ``"exact"`` or ``"binned"``.
        throw: raise :class:`geomtax.StatusError` unless the status is ``ok``.

    Returns:
        :class:`StabilityResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (no split had two non-constant RDMs).

    Raises:
        ValueError: too few rows or features, bad options; :class:`geomtax.StatusError` for a
            non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-int options, differentiation (rank-based).

    Examples:
        >>> import jax
        >>> k1, k2 = jax.random.split(jax.random.key(0))
        >>> z = jax.random.normal(k1, (60, 2))
        >>> x = jax.numpy.tile(z, (1, 8)) + 0.01 * jax.random.normal(k2, (60, 16))
        >>> r = feature_split_stability(x, key=jax.random.key(1), num_splits=5)
        >>> float(r.value) > 0.9, int(r.n_valid)
        (True, 5)
    """
    num_splits = _split_options(key, num_splits, metric, rank_method, throw)
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=4)
    x, finite = prepare_single_flagged("x", x, min_rows=4, what="feature_split_stability")
    if x.shape[1] < 4:
        raise ValueError(f"feature_split_stability needs d >= 4 features; got shape {x.shape}")
    x = nondifferentiable(x, "feature_split_stability")
    rows = x.shape[0] if max_samples is None else min(x.shape[0], max_samples)
    result = _feature_split_impl(
        x,
        finite,
        key,
        num_splits=num_splits,
        metric=metric,
        max_samples=max_samples,
        rm=_rm(rank_method, rows),
    )
    return finish(
        result,
        throw=throw,
        function="feature_split_stability",
        details={"degenerate_input": _NO_SPLIT},
    )


def _feature_split(x, finite, key, *, num_splits, metric, max_samples, rm):
    ks, kp = jax.random.split(key)
    x = _subsample(zero_nonfinite(x, finite), ks, max_samples)
    d = x.shape[1]
    h = d // 2

    def one(k):
        perm = jax.random.permutation(k, d)
        u = _crdm(x[:, perm[:h]], metric)
        v = _crdm(x[:, perm[h : 2 * h]], metric)
        rho, constant, bound = spearman(u, v, rank_method=rm)
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(kp, num_splits))
    return _summarize(rhos, valid, bounds, finite)


_feature_split_impl = eqx.filter_jit(_feature_split)


@renamed_options(n_splits="num_splits")
def sample_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    num_splits: int = 30,
    fraction: float = 0.4,
    metric: str = "cosine",
    rank_method: str = "auto",
    throw: bool = True,
) -> StabilityResult:
    r"""Legacy sample-split stability (single-set; deprecated upstream as not identifiable).

    For each of ``num_splits`` repeats draw two independent random subsamples of
    :math:`m = \lfloor \mathrm{fraction}\cdot n\rfloor` rows (each without replacement; the two
    may overlap) and take the Spearman correlation of their condensed RDMs, which index
    *different* items; the score is the mean over repeats with non-constant RDMs. Invariances
    as :func:`feature_split_stability`.

    Returns:
        :class:`StabilityResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (no valid repeat, or a zero-norm row under cosine/correlation).

    Raises:
        ValueError: ``fraction`` outside (0, 1] or ``floor(fraction * n) < 3``, bad options;
            :class:`geomtax.StatusError` for a non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-int options, differentiation (rank-based).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 5))
        >>> r = sample_split_stability(x, key=jax.random.key(1), num_splits=4)
        >>> -1.0 <= float(r.value) <= 1.0
        True
    """
    num_splits = _split_options(key, num_splits, metric, rank_method, throw)
    fraction = check_float("fraction", fraction, positive=True, maximum=1.0, allow_traced=False)
    x, finite = prepare_single_flagged("x", x, min_rows=4, what="sample_split_stability")
    m = int(fraction * x.shape[0])
    if m < 3:
        raise ValueError(
            f"sample_split_stability needs floor(fraction * n) >= 3; got fraction={fraction} "
            f"with shape {x.shape}"
        )
    x = nondifferentiable(x, "sample_split_stability")
    result = _sample_split_impl(
        x, finite, key, num_splits=num_splits, m=m, metric=metric, rm=_rm(rank_method, m)
    )
    return finish(
        result,
        throw=throw,
        function="sample_split_stability",
        details={"degenerate_input": f"{_NO_SPLIT}, or {ZERO_NORM_DETAIL}"},
    )


def _sample_split(x, finite, key, *, num_splits, m, metric, rm):
    n = x.shape[0]
    x = zero_nonfinite(x, finite)
    zero = zero_norm_mask(x, metric)

    def one(k):
        k1, k2 = jax.random.split(k)
        a = x[jax.random.choice(k1, n, (m,), replace=False)]
        b = x[jax.random.choice(k2, n, (m,), replace=False)]
        rho, constant, bound = spearman(_crdm(a, metric), _crdm(b, metric), rank_method=rm)
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(key, num_splits))
    return _summarize(rhos, valid, bounds, finite, zero)


_sample_split_impl = eqx.filter_jit(_sample_split)


@renamed_options(n_splits="num_splits", n_anchors="num_anchors", n_set="num_set_rows")
def anchor_stability(
    x: Samples,
    *,
    key: KeyArray,
    num_splits: int = 30,
    num_anchors: int = 100,
    num_set_rows: int = 200,
    metric: str = "cosine",
    throw: bool = True,
) -> StabilityResult:
    r"""Legacy anchor stability (single-set; deprecated upstream as not identifiable).

    Each repeat draws ``num_anchors`` anchor rows and two further sets of ``num_set_rows`` rows
    (all disjoint), forms :math:`D_s = \delta(\mathrm{anchors}, \mathrm{set}_s)`
    (num_anchors x num_set_rows), replaces every row of :math:`D_s` by its average ranks
    divided by ``num_set_rows``, and takes the Spearman correlation of the flattened
    :math:`D_1, D_2`; the score is the mean over repeats. Needs n >= num_anchors + 2
    num_set_rows (500 by default). Ranks are exact.
    Invariances as :func:`feature_split_stability`.

    Returns:
        :class:`StabilityResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (no valid repeat, or a zero-norm row under cosine/correlation).

    Raises:
        ValueError: too few rows, bad options; :class:`geomtax.StatusError` for a non-``ok``
            status when ``throw=True``.
        TypeError: complex input, non-int options, differentiation (rank-based).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (50, 4))
        >>> key = jax.random.key(1)
        >>> r = anchor_stability(x, key=key, num_splits=3, num_anchors=10, num_set_rows=20)
        >>> int(r.n_valid)
        3
    """
    num_splits = _split_options(key, num_splits, metric, None, throw)
    num_anchors = check_int("num_anchors", num_anchors, minimum=1)
    num_set_rows = check_int("num_set_rows", num_set_rows, minimum=2)
    need = num_anchors + 2 * num_set_rows
    x, finite = prepare_single_flagged(
        "x", x, min_rows=need, what=f"anchor_stability (num_anchors + 2 num_set_rows = {need})"
    )
    x = nondifferentiable(x, "anchor_stability")
    result = _anchor_impl(
        x, finite, key, num_splits=num_splits, na=num_anchors, ns=num_set_rows, metric=metric
    )
    return finish(
        result,
        throw=throw,
        function="anchor_stability",
        details={"degenerate_input": f"{_NO_SPLIT}, or {ZERO_NORM_DETAIL}"},
    )


def _anchor(x, finite, key, *, num_splits, na, ns, metric):
    n = x.shape[0]
    x = zero_nonfinite(x, finite)
    zero = zero_norm_mask(x, metric)
    xm, m = _metric_frame(x, metric)
    nb = num_buckets_for(ns)

    def one(k):
        perm = jax.random.permutation(k, n)
        a = xm[perm[:na]]
        s1 = xm[perm[na : na + ns]]
        s2 = xm[perm[na + ns : na + 2 * ns]]

        def rank_rows(dm):
            return jax.vmap(lambda r: twice_ranks_exact(r, num_buckets=nb))(dm).astype(x.dtype) / (
                2.0 * ns
            )

        r1 = rank_rows(_distances(a, s1, m)).reshape(-1)
        r2 = rank_rows(_distances(a, s2, m)).reshape(-1)
        rho, constant, bound = spearman(r1, r2, rank_method="exact")
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(key, num_splits))
    return _summarize(rhos, valid, bounds, finite, zero)


_anchor_impl = eqx.filter_jit(_anchor)
