r"""Self-consistency and perturbation stability (see docs/reference/geometry.md).

* single-set: :func:`feature_split_stability` (Shesha), :func:`sample_split_stability` and
  :func:`anchor_stability` (both legacy: shesha 0.3 deprecates them as not identifiable);
* unpaired: :func:`perturbation_coherence`, :func:`perturbation_effect_size`;
* paired: :func:`paired_perturbation_coherence`;
* composites: :func:`composite_stability` (4-part reference) and
  :func:`identifiable_composite_stability` (feature split + RDM similarity).

Randomness comes from an explicit ``key``; JAX PRNG streams differ from the NumPy reference, so
compare with it statistically, never bitwise.

Result contract: every function returns a result with a ``status`` (:class:`geomtax.Status`)
and takes ``throw``; values are NaN unless the status is ``ok``. The split and composite
scores (Spearman correlations of RDMs) are piecewise constant in the data and raise
``TypeError`` under differentiation; coherence and effect size are smooth. Invariances hold by
construction in float32: Euclidean RDMs are computed on centred, unit-scaled clouds, cosine
directions on row-scaled rows, correlation RDMs on two-pass row-centred rows; coherence and
effect size centre both sets on the clean set's mean before anything is squared.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .._chunking import resolve_block_size
from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_choice, check_float, check_int
from .._numerics import center, standardize_cloud
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import (
    nondifferentiable,
    prepare_paired_flagged,
    prepare_single_flagged,
    zero_nonfinite,
    zero_norm_mask,
)
from ._ranks import RANK_METHODS, num_buckets_for, spearman, twice_ranks_exact
from ._rdm import AUTO_EXACT_MAX, RDM_METRICS, _pair_values
from ._tiles import map_tiles

#: shift norms at most this many float eps times the data's magnitude (times sqrt(d)) count as
#: zero in the coherence scores (a relative test: scale-free)
COHERENCE_RTOL = 4.0

_ZERO_NORM = "a row has zero norm, so its cosine (or correlation) distance is undefined"
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
    if rank_method == "auto":
        return "exact" if n_rows * (n_rows - 1) // 2 <= AUTO_EXACT_MAX else "binned"
    return rank_method


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


def _split_options(key, n_splits, metric, rank_method, throw):
    check_choice("metric", metric, RDM_METRICS)
    if rank_method is not None:
        check_choice("rank_method", rank_method, RANK_METHODS)
    check_bool("throw", throw)
    _key_check(key)
    return check_int("n_splits", n_splits, minimum=1)


def feature_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
    rank_method: str = "auto",
    throw: bool = True,
) -> StabilityResult:
    r"""Shesha feature-split stability: split-half RDM agreement over random feature halves.

    Single-set. After subsampling to ``max_samples`` rows (without replacement), for each of
    ``n_splits`` random permutations :math:`\pi` of the d features,
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
        n_splits: number of random splits (int >= 1).
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
        >>> r = feature_split_stability(x, key=jax.random.key(1), n_splits=5)
        >>> float(r.value) > 0.9, int(r.n_valid)
        (True, 5)
    """
    n_splits = _split_options(key, n_splits, metric, rank_method, throw)
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
        n_splits=n_splits,
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


def _feature_split(x, finite, key, *, n_splits, metric, max_samples, rm):
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

    rhos, valid, bounds = lax.map(one, jax.random.split(kp, n_splits))
    return _summarize(rhos, valid, bounds, finite)


_feature_split_impl = eqx.filter_jit(_feature_split)


def sample_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    fraction: float = 0.4,
    metric: str = "cosine",
    rank_method: str = "auto",
    throw: bool = True,
) -> StabilityResult:
    r"""Legacy sample-split stability (single-set; deprecated upstream as not identifiable).

    For each of ``n_splits`` repeats draw two independent random subsamples of
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
        >>> r = sample_split_stability(x, key=jax.random.key(1), n_splits=4)
        >>> -1.0 <= float(r.value) <= 1.0
        True
    """
    n_splits = _split_options(key, n_splits, metric, rank_method, throw)
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
        x, finite, key, n_splits=n_splits, m=m, metric=metric, rm=_rm(rank_method, m)
    )
    return finish(
        result,
        throw=throw,
        function="sample_split_stability",
        details={"degenerate_input": f"{_NO_SPLIT}, or {_ZERO_NORM}"},
    )


def _sample_split(x, finite, key, *, n_splits, m, metric, rm):
    n = x.shape[0]
    x = zero_nonfinite(x, finite)
    zero = zero_norm_mask(x, metric)

    def one(k):
        k1, k2 = jax.random.split(k)
        a = x[jax.random.choice(k1, n, (m,), replace=False)]
        b = x[jax.random.choice(k2, n, (m,), replace=False)]
        rho, constant, bound = spearman(_crdm(a, metric), _crdm(b, metric), rank_method=rm)
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(key, n_splits))
    return _summarize(rhos, valid, bounds, finite, zero)


_sample_split_impl = eqx.filter_jit(_sample_split)


def anchor_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    n_anchors: int = 100,
    n_set: int = 200,
    metric: str = "cosine",
    throw: bool = True,
) -> StabilityResult:
    r"""Legacy anchor stability (single-set; deprecated upstream as not identifiable).

    Each repeat draws ``n_anchors`` anchor rows and two further disjoint sets of ``n_set`` rows
    (all disjoint), forms :math:`D_s = \delta(\mathrm{anchors}, \mathrm{set}_s)`
    (n_anchors x n_set), replaces every row of :math:`D_s` by its average ranks divided by
    ``n_set``, and takes the Spearman correlation of the flattened :math:`D_1, D_2`; the score
    is the mean over repeats. Needs n >= n_anchors + 2 n_set (500 by default). Ranks are exact.
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
        >>> r = anchor_stability(x, key=jax.random.key(1), n_splits=3, n_anchors=10, n_set=20)
        >>> int(r.n_valid)
        3
    """
    n_splits = _split_options(key, n_splits, metric, None, throw)
    n_anchors = check_int("n_anchors", n_anchors, minimum=1)
    n_set = check_int("n_set", n_set, minimum=2)
    need = n_anchors + 2 * n_set
    x, finite = prepare_single_flagged(
        "x", x, min_rows=need, what=f"anchor_stability (n_anchors + 2 n_set = {need})"
    )
    x = nondifferentiable(x, "anchor_stability")
    result = _anchor_impl(x, finite, key, n_splits=n_splits, na=n_anchors, ns=n_set, metric=metric)
    return finish(
        result,
        throw=throw,
        function="anchor_stability",
        details={"degenerate_input": f"{_NO_SPLIT}, or {_ZERO_NORM}"},
    )


def _anchor(x, finite, key, *, n_splits, na, ns, metric):
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

    rhos, valid, bounds = lax.map(one, jax.random.split(key, n_splits))
    return _summarize(rhos, valid, bounds, finite, zero)


_anchor_impl = eqx.filter_jit(_anchor)


class CoherenceResult(AbstractResult):
    """Result of :func:`perturbation_coherence` / :func:`paired_perturbation_coherence`.

    Attributes:
        value: mean cosine between each shift and the mean shift, in [-1, 1]; NaN unless
            ``status`` is ``ok``.
        n_used: rows whose shift is not zero to rounding (the others are excluded).
        status: a :class:`geomtax.Status`: ``ok``, ``nonfinite_input``, ``degenerate_input``
            (the mean shift is zero to rounding, or no row has a nonzero shift).
    """

    value: Float[Array, ""]
    n_used: Int[Array, ""]
    status: object


def _coherence(shift, magnitude, finite):
    """Coherence of the rows of ``shift``; shifts at most ``tol`` (relative) count as zero.

    ``magnitude`` is the largest absolute entry of the raw inputs: rounding in the inputs
    (and in the subtraction) is relative to it, so the zero test is scale-free.
    """
    d = shift.shape[1]
    eps = jnp.finfo(shift.dtype).eps
    m = jnp.max(jnp.abs(shift))
    m = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))
    s = shift / m  # nothing squared before this: safe at 1e30 and 1e-30
    tol = COHERENCE_RTOL * eps * jnp.sqrt(jnp.asarray(d, shift.dtype)) * (magnitude / m)
    norms = jnp.linalg.norm(s, axis=1)
    use = norms > tol
    nu = jnp.sum(use)
    mean = jnp.sum(jnp.where(use[:, None], s, 0.0), axis=0) / jnp.maximum(nu, 1)
    mn = jnp.linalg.norm(mean)
    degenerate = (mn <= tol) | (nu == 0)
    cos = (s @ mean) / (jnp.where(use, norms, 1.0) * jnp.where(degenerate, 1.0, mn))
    value = jnp.sum(jnp.where(use, cos, 0.0)) / jnp.maximum(nu, 1)
    status = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    return CoherenceResult(
        nan_unless_ok(value.astype(shift.dtype), status), nu.astype(jnp.int32), status
    )


def _clean_frame(xc, xp):
    """Both sets minus the clean set's mean (two-pass: exact enough at offsets of 1e6)."""
    ref = lax.stop_gradient(xc[:1])
    a, b = xc - ref, xp - ref
    mu = lax.stop_gradient(jnp.mean(a, axis=0, keepdims=True))
    return a - mu, b - mu


def _magnitude(*xs):
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in xs]))


def _unpaired(x_clean, x_perturbed, what):
    xc, fc = prepare_single_flagged("x_clean", x_clean, min_rows=1, what=what)
    xp, fp = prepare_single_flagged("x_perturbed", x_perturbed, min_rows=1, what=what)
    if xc.shape[1] != xp.shape[1]:
        raise ValueError(
            f"{what} needs the same number of columns; got x_clean {tuple(xc.shape)} and "
            f"x_perturbed {tuple(xp.shape)}"
        )
    dtype = jnp.promote_types(xc.dtype, xp.dtype)
    return xc.astype(dtype), xp.astype(dtype), fc & fp


_COHERENCE_DETAIL = "the mean shift is zero to rounding, or no row moved"


def perturbation_coherence(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    max_samples: int | None = None,
    key: KeyArray | None = None,
    throw: bool = True,
) -> CoherenceResult:
    r"""Unpaired perturbation coherence: do perturbed points move in one direction?

    .. math:: \mu = \overline{X_{\mathrm{clean}}},\; s_i = x_i^{\mathrm{pert}} - \mu,\;
              m = \overline{s},\; \mathrm{coherence} = \mathrm{mean}_i \cos(s_i, m)

    **Unpaired**: each perturbed vector is compared with the clean *centroid*, not with its own
    clean twin (see :func:`paired_perturbation_coherence`); the two sets may have different row
    counts. Rows whose shift is zero to rounding (:math:`\lVert s_i\rVert \le 4\,
    \varepsilon \sqrt d \max|x|`, a relative test) are excluded (counted in ``n_used``).
    Invariant to translating and scaling both sets together (by construction in float32: both
    are centred on the clean mean first). ``max_samples`` (reference: 1,000) subsamples the
    perturbed rows and then needs ``key``.

    Returns:
        :class:`CoherenceResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (the mean shift is zero to rounding, or no row moved).

    Raises:
        ValueError: mismatched columns, ``max_samples`` without ``key``;
            :class:`geomtax.StatusError` for a non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-int ``max_samples``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> xc = jax.random.normal(jax.random.key(0), (30, 3))
        >>> r = perturbation_coherence(xc, xc + jnp.array([[5.0, 0.0, 0.0]]))
        >>> float(r.value) > 0.9
        True
    """
    check_bool("throw", throw)
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=1)
    xc, xp, finite = _unpaired(x_clean, x_perturbed, "perturbation_coherence")
    if max_samples is not None and xp.shape[0] > max_samples:
        _key_check(key)
        xp = _subsample(xp, key, max_samples)
    result = _coherence_impl(xc, xp, finite)
    return finish(
        result,
        throw=throw,
        function="perturbation_coherence",
        details={"degenerate_input": _COHERENCE_DETAIL},
    )


@eqx.filter_jit
def _coherence_impl(xc, xp, finite):
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    _, b = _clean_frame(xc, xp)
    return _coherence(b, _magnitude(xc, xp), finite)


def paired_perturbation_coherence(
    x_clean: Samples, x_perturbed: Samples, *, throw: bool = True
) -> CoherenceResult:
    r"""Paired perturbation coherence, with each row's own shift (paired).

    Shifts :math:`s_i = x_i^{\mathrm{pert}} - x_i^{\mathrm{clean}}`;
    ``mean_i cos(s_i, mean(s))`` with the same exclusion rule, invariances and statuses
    (``ok``, ``nonfinite_input``, ``degenerate_input``) as :func:`perturbation_coherence`;
    1.0 for a pure translation.

    Returns:
        :class:`CoherenceResult`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> xc = jax.random.normal(jax.random.key(0), (30, 3))
        >>> round(float(paired_perturbation_coherence(xc, xc + 1.0).value), 4)
        1.0
    """
    check_bool("throw", throw)
    xc, xp, finite = prepare_paired_flagged(
        x_clean,
        x_perturbed,
        min_rows=1,
        what="paired_perturbation_coherence",
        names=("x_clean", "x_perturbed"),
    )
    if xc.shape[1] != xp.shape[1]:
        raise ValueError(
            f"paired_perturbation_coherence needs equal shapes; got {tuple(xc.shape)} and "
            f"{tuple(xp.shape)}"
        )
    result = _paired_coherence_impl(xc, xp, finite)
    return finish(
        result,
        throw=throw,
        function="paired_perturbation_coherence",
        details={"degenerate_input": _COHERENCE_DETAIL},
    )


@eqx.filter_jit
def _paired_coherence_impl(xc, xp, finite):
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    a, b = _clean_frame(xc, xp)
    return _coherence(b - a, _magnitude(xc, xp), finite)


def perturbation_effect_size(
    x_clean: Samples, x_perturbed: Samples, *, throw: bool = True
) -> Estimate:
    r"""Perturbation magnitude, the distance between the two centroids (unpaired).

    .. math:: \lVert \overline{X_{\mathrm{pert}}} - \overline{X_{\mathrm{clean}}}\rVert_2

    in embedding units; the two sets may have different row counts. Both sets are moved by the
    first clean row before the means are taken and the norm is taken after dividing by the
    largest entry, so the value is translation invariant and scale equivariant in float32
    (offsets of 1e6, scales of 1e-30 / 1e30). Differentiable.

    Returns:
        :class:`geomtax.Estimate` with status ``ok`` or ``nonfinite_input`` (NaN or inf in
        either set; value NaN).

    Raises:
        ValueError: mismatched columns; :class:`geomtax.StatusError` for a non-``ok`` status
            when ``throw=True``.
        TypeError: complex input.

    Examples:
        >>> import jax.numpy as jnp
        >>> xp = jnp.tile(jnp.array([[3.0, 4.0]]), (3, 1))
        >>> float(perturbation_effect_size(jnp.zeros((4, 2)), xp).value)
        5.0
    """
    check_bool("throw", throw)
    xc, xp, finite = _unpaired(x_clean, x_perturbed, "perturbation_effect_size")
    return finish(_effect_impl(xc, xp, finite), throw=throw, function="perturbation_effect_size")


@eqx.filter_jit
def _effect_impl(xc, xp, finite):
    status = select((~finite, Status.nonfinite_input))
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    ref = lax.stop_gradient(xc[:1])
    diff = jnp.mean(xp - ref, axis=0) - jnp.mean(xc - ref, axis=0)
    m = lax.stop_gradient(jnp.max(jnp.abs(diff)))
    m = jnp.where(m > 0, m, jnp.ones_like(m))
    return Estimate(nan_unless_ok(jnp.linalg.norm(diff / m) * m, status), status)


class CompositeResult(AbstractResult):
    """Result of :func:`composite_stability` / :func:`identifiable_composite_stability`.

    Attributes:
        value: mean of the components that are part of the composite; NaN unless ``status``
            is ``ok``.
        feature_split: :func:`feature_split_stability` of ``x_clean`` (NaN if undefined).
        sample_split: :func:`sample_split_stability` of ``x_clean`` (NaN when not part of it).
        anchor: :func:`anchor_stability` of ``x_clean`` (NaN when n < 500 or not part of it).
        rdm_similarity: Spearman RDM similarity of ``x_clean`` and ``x_perturbed`` (NaN when
            an RDM is constant).
        n_terms: how many components entered the mean.
        status: a :class:`geomtax.Status`: ``ok``, ``nonfinite_input``, ``degenerate_input``
            (a component that is part of the composite is undefined, e.g. constant data, or a
            zero-norm row under a cosine metric).
    """

    value: Float[Array, ""]
    feature_split: Float[Array, ""]
    sample_split: Float[Array, ""]
    anchor: Float[Array, ""]
    rdm_similarity: Float[Array, ""]
    n_terms: Int[Array, ""]
    status: object


def _composite(xc, xp, finite, key, *, n_splits, metric, max_samples, parts):
    k0, k1, k2, k3 = jax.random.split(key, 4)
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    n = xc.shape[0]
    if max_samples is not None and n > max_samples:
        idx = jax.random.choice(k0, n, (max_samples,), replace=False)
        xc, xp = xc[idx], xp[idx]
        n = max_samples
    zero = zero_norm_mask(xc, metric) | zero_norm_mask(xp, metric)
    nan = jnp.full((), jnp.nan, xc.dtype)
    fs = _feature_split(
        xc, finite, k1, n_splits=n_splits, metric=metric, max_samples=None, rm=_rm("auto", n)
    ).value
    u, v = _crdm(xc, metric), _crdm(xp, metric)
    rho, constant, _ = spearman(u, v, rank_method=_rm("auto", n))
    rs = jnp.where(constant, jnp.nan, rho).astype(xc.dtype)
    ss = an = nan
    included = [fs, rs]
    if "sample" in parts:
        m = int(0.4 * n)
        ss = _sample_split(
            xc, finite, k2, n_splits=n_splits, m=m, metric=metric, rm=_rm("auto", m)
        ).value
        included.append(ss)
    if "anchor" in parts and n >= 500:
        an = _anchor(xc, finite, k3, n_splits=n_splits, na=100, ns=200, metric=metric).value
        included.append(an)
    terms = jnp.stack(included)
    undefined = jnp.any(jnp.isnan(terms)) | zero
    status = select((~finite, Status.nonfinite_input), (undefined, Status.degenerate_input))
    value = jnp.mean(terms)
    return CompositeResult(
        nan_unless_ok(value.astype(xc.dtype), status),
        fs,
        ss,
        an,
        rs,
        jnp.asarray(len(included), jnp.int32),
        status,
    )


def _composite_prep(x_clean, x_perturbed, key, metric, n_splits, max_samples, throw, what):
    n_splits = _split_options(key, n_splits, metric, None, throw)
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=10)
    xc, xp, finite = prepare_paired_flagged(
        x_clean,
        x_perturbed,
        min_rows=10,
        what="composite stability",
        names=("x_clean", "x_perturbed"),
    )
    if xc.shape[1] < 4:
        raise ValueError(f"composite stability needs d >= 4 features; got shape {xc.shape}")
    if xc.shape[1] != xp.shape[1]:
        raise ValueError(
            f"composite stability needs equal shapes; got {tuple(xc.shape)} and {tuple(xp.shape)}"
        )
    xc, xp = nondifferentiable(xc, what), nondifferentiable(xp, what)
    return xc, xp, finite, n_splits, max_samples


_COMPOSITE_DETAIL = f"a component is undefined (constant data or RDM), or {_ZERO_NORM}"


def composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
    throw: bool = True,
) -> CompositeResult:
    r"""Four-part reference composite stability (paper parity).

    Paired (``x_clean`` row i and ``x_perturbed`` row i are the same item). After subsampling
    both to ``max_samples`` rows with the same indices:

    .. math:: \mathrm{composite} = \mathrm{mean}\{\mathrm{feature\_split}(X_c),
              \mathrm{sample\_split}(X_c), \mathrm{anchor}(X_c),
              \mathrm{rdm\_similarity}(X_c, X_p)\}

    Three of the four terms ignore the perturbation; ``anchor`` is left out (NaN, not counted
    in ``n_terms``) below 500 rows. Coherence and magnitude are not included. All components
    are returned.

    Returns:
        :class:`CompositeResult` with status ``ok``, ``nonfinite_input`` or
        ``degenerate_input`` (a component is undefined, or a zero-norm row under cosine).

    Raises:
        ValueError: fewer than 10 rows or 4 features, mismatched shapes, bad options;
            :class:`geomtax.StatusError` for a non-``ok`` status when ``throw=True``.
        TypeError: complex input, non-int options, differentiation (rank-based).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 6))
        >>> r = composite_stability(x, 2.0 * x, key=jax.random.key(1), n_splits=3)
        >>> int(r.n_terms), round(float(r.rdm_similarity), 4)
        (3, 1.0)
    """
    xc, xp, finite, n_splits, max_samples = _composite_prep(
        x_clean, x_perturbed, key, metric, n_splits, max_samples, throw, "composite_stability"
    )
    result = _composite_impl(
        xc,
        xp,
        finite,
        key,
        n_splits=n_splits,
        metric=metric,
        max_samples=max_samples,
        parts=("sample", "anchor"),
    )
    return finish(
        result,
        throw=throw,
        function="composite_stability",
        details={"degenerate_input": _COMPOSITE_DETAIL},
    )


def identifiable_composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
    throw: bool = True,
) -> CompositeResult:
    r"""Identifiable composite: mean(feature_split(X_c), rdm_similarity(X_c, X_p)) (paired).

    The reference composite without the two upstream-deprecated terms (their fields are NaN).
    Statuses and errors as :func:`composite_stability`.

    Returns:
        :class:`CompositeResult`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 6))
        >>> r = identifiable_composite_stability(x, x, key=jax.random.key(1), n_splits=3)
        >>> int(r.n_terms)
        2
    """
    xc, xp, finite, n_splits, max_samples = _composite_prep(
        x_clean,
        x_perturbed,
        key,
        metric,
        n_splits,
        max_samples,
        throw,
        "identifiable_composite_stability",
    )
    result = _composite_impl(
        xc, xp, finite, key, n_splits=n_splits, metric=metric, max_samples=max_samples, parts=()
    )
    return finish(
        result,
        throw=throw,
        function="identifiable_composite_stability",
        details={"degenerate_input": _COMPOSITE_DETAIL},
    )


_composite_impl = eqx.filter_jit(_composite)
