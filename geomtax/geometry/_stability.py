r"""Self-consistency and perturbation stability (REFERENCE sections 2.5-2.8).

* single-set: :func:`feature_split_stability` (Shesha), :func:`sample_split_stability` and
  :func:`anchor_stability` (both legacy: shesha 0.3 deprecates them as not identifiable);
* unpaired: :func:`perturbation_coherence`, :func:`perturbation_effect_size`;
* paired: :func:`paired_perturbation_coherence`;
* composites: :func:`composite_stability` (4-part reference) and
  :func:`identifiable_composite_stability` (feature split + RDM similarity).

Randomness comes from an explicit ``key``; JAX PRNG streams differ from the NumPy reference, so
compare with it statistically, never bitwise.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import KeyArray, Samples
from .._errors import check_choice
from ._checks import check_zero_norm, prepare_paired, prepare_single
from ._distances import pairwise_distances
from ._ranks import num_buckets_for, spearman, twice_ranks_exact
from ._rdm import AUTO_EXACT_MAX, RANK_METHODS, RDM_METRICS, _pair_values, _prep_metric

#: shifted-centroid norms below this count as zero (REFERENCE 2.7)
COHERENCE_EPS = 1e-12


class StabilityResult(eqx.Module):
    """Result of a split-based stability score (arrays only).

    Attributes:
        value: mean Spearman correlation over the valid splits, in [-1, 1]; NaN when
            ``undefined``.
        n_valid: number of splits used (splits with a constant RDM are skipped).
        undefined: True when no split was valid.
        rank_error_bound: largest per-split bound on the Spearman error from binned ranking
            (0 when ranks are exact).
    """

    value: Float[Array, ""]
    n_valid: Int[Array, ""]
    undefined: Bool[Array, ""]
    rank_error_bound: Float[Array, ""]


def _key_check(key):
    if key is None:
        raise ValueError("this stability score is random: pass an explicit PRNG `key`")


def _int_check(name, v, minimum):
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")


def _rm(rank_method, n_rows):
    if rank_method == "auto":
        return "exact" if n_rows * (n_rows - 1) // 2 <= AUTO_EXACT_MAX else "binned"
    return rank_method


def _crdm(x, metric):
    x, m = _prep_metric(x, metric)
    return _pair_values(pairwise_distances(x, metric=m))


def _summarize(rhos, valid, bounds):
    nv = jnp.sum(valid)
    undefined = nv == 0
    mean = jnp.sum(jnp.where(valid, rhos, 0.0)) / jnp.maximum(nv, 1)
    bound = jnp.max(jnp.where(valid, bounds, 0.0))
    return StabilityResult(
        jnp.where(undefined, jnp.nan, mean).astype(rhos.dtype),
        nv.astype(jnp.int32),
        undefined,
        bound.astype(rhos.dtype),
    )


def _subsample(x, key, max_samples):
    n = x.shape[0]
    if max_samples is None or n <= max_samples:
        return x
    idx = jax.random.choice(key, n, (max_samples,), replace=False)
    return x[idx]


def feature_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
    rank_method: str = "auto",
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
    invariant to rotations (they mix features across halves). Splits run sequentially
    (``lax.map``), so memory is that of one split. Ranks: see
    :func:`~geomtax.geometry.rdm_similarity` (``rank_method``; ``"auto"`` uses bounded binned
    ranks above 2^20 pairs, e.g. at the default 1,600 rows).

    Args:
        x: shape (n, d), n >= 4, d >= 4.
        key: PRNG key (subsampling and permutations).
        n_splits: number of random splits.
        metric: RDM distance (default ``"cosine"``).
        max_samples: row cap (shesha default 1,600; the reference harness uses 2,500).
        rank_method: ``"auto"``, ``"exact"`` or ``"binned"``.

    Returns:
        :class:`StabilityResult`.

    Examples:
        >>> import jax
        >>> k1, k2 = jax.random.split(jax.random.key(0))
        >>> z = jax.random.normal(k1, (60, 2))
        >>> x = jax.numpy.tile(z, (1, 8)) + 0.01 * jax.random.normal(k2, (60, 16))
        >>> r = feature_split_stability(x, key=jax.random.key(1), n_splits=5)
        >>> float(r.value) > 0.9, int(r.n_valid)
        (True, 5)
    """
    check_choice("metric", metric, RDM_METRICS)
    check_choice("rank_method", rank_method, RANK_METHODS)
    _key_check(key)
    _int_check("n_splits", n_splits, 1)
    x = prepare_single("x", x, min_rows=4, what="feature_split_stability")
    if x.shape[1] < 4:
        raise ValueError(f"feature_split_stability needs d >= 4 features; got shape {x.shape}")
    rows = x.shape[0] if max_samples is None else min(x.shape[0], max_samples)
    return _feature_split_impl(
        x, key, n_splits=n_splits, metric=metric, max_samples=max_samples, rm=_rm(rank_method, rows)
    )


@eqx.filter_jit
def _feature_split_impl(x, key, *, n_splits, metric, max_samples, rm):
    ks, kp = jax.random.split(key)
    x = _subsample(x, ks, max_samples)
    d = x.shape[1]
    h = d // 2

    def one(k):
        perm = jax.random.permutation(k, d)
        u = _crdm(x[:, perm[:h]], metric)
        v = _crdm(x[:, perm[h : 2 * h]], metric)
        rho, constant, bound = spearman(u, v, rank_method=rm)
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(kp, n_splits))
    return _summarize(rhos, valid, bounds)


def sample_split_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    fraction: float = 0.4,
    metric: str = "cosine",
    rank_method: str = "auto",
) -> StabilityResult:
    r"""Legacy sample-split stability (single-set; deprecated upstream as not identifiable).

    For each of ``n_splits`` repeats draw two independent random subsamples of
    :math:`m = \lfloor \mathrm{fraction}\cdot n\rfloor` rows (each without replacement; the two
    may overlap) and take the Spearman correlation of their condensed RDMs, which index
    *different* items; the score is the mean over repeats with non-constant RDMs. Zero-norm
    rows raise under cosine.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 5))
        >>> r = sample_split_stability(x, key=jax.random.key(1), n_splits=4)
        >>> -1.0 <= float(r.value) <= 1.0
        True
    """
    check_choice("metric", metric, RDM_METRICS)
    check_choice("rank_method", rank_method, RANK_METHODS)
    _key_check(key)
    _int_check("n_splits", n_splits, 1)
    x = prepare_single("x", x, min_rows=4, what="sample_split_stability")
    x = check_zero_norm("x", x, metric, "raise")
    m = int(fraction * x.shape[0])
    if m < 3:
        raise ValueError(
            f"sample_split_stability needs floor(fraction * n) >= 3; got fraction={fraction} "
            f"with shape {x.shape}"
        )
    return _sample_split_impl(x, key, n_splits=n_splits, m=m, metric=metric, rm=_rm(rank_method, m))


@eqx.filter_jit
def _sample_split_impl(x, key, *, n_splits, m, metric, rm):
    n = x.shape[0]

    def one(k):
        k1, k2 = jax.random.split(k)
        a = x[jax.random.choice(k1, n, (m,), replace=False)]
        b = x[jax.random.choice(k2, n, (m,), replace=False)]
        rho, constant, bound = spearman(_crdm(a, metric), _crdm(b, metric), rank_method=rm)
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(key, n_splits))
    return _summarize(rhos, valid, bounds)


def anchor_stability(
    x: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    n_anchors: int = 100,
    n_set: int = 200,
    metric: str = "cosine",
) -> StabilityResult:
    r"""Legacy anchor stability (single-set; deprecated upstream as not identifiable).

    Each repeat draws ``n_anchors`` anchor rows and two further disjoint sets of ``n_set`` rows
    (all disjoint), forms :math:`D_s = \delta(\mathrm{anchors}, \mathrm{set}_s)`
    (n_anchors x n_set), replaces every row of :math:`D_s` by its average ranks divided by
    ``n_set``, and takes the Spearman correlation of the flattened :math:`D_1, D_2`; the score
    is the mean over repeats. Needs n >= n_anchors + 2 n_set (500 by default). Ranks are exact.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (50, 4))
        >>> r = anchor_stability(x, key=jax.random.key(1), n_splits=3, n_anchors=10, n_set=20)
        >>> int(r.n_valid)
        3
    """
    check_choice("metric", metric, RDM_METRICS)
    _key_check(key)
    _int_check("n_splits", n_splits, 1)
    _int_check("n_anchors", n_anchors, 1)
    _int_check("n_set", n_set, 2)
    need = n_anchors + 2 * n_set
    x = prepare_single(
        "x", x, min_rows=need, what=f"anchor_stability (n_anchors + 2 n_set = {need})"
    )
    x = check_zero_norm("x", x, metric, "raise")
    return _anchor_impl(x, key, n_splits=n_splits, na=n_anchors, ns=n_set, metric=metric)


@eqx.filter_jit
def _anchor_impl(x, key, *, n_splits, na, ns, metric):
    n = x.shape[0]
    xm, m = _prep_metric(x, metric)
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

        r1 = rank_rows(pairwise_distances(a, s1, metric=m)).reshape(-1)
        r2 = rank_rows(pairwise_distances(a, s2, metric=m)).reshape(-1)
        rho, constant, bound = spearman(r1, r2, rank_method="exact")
        return rho.astype(x.dtype), ~constant, bound.astype(x.dtype)

    rhos, valid, bounds = lax.map(one, jax.random.split(key, n_splits))
    return _summarize(rhos, valid, bounds)


class CoherenceResult(eqx.Module):
    """Result of :func:`perturbation_coherence` / :func:`paired_perturbation_coherence`.

    Attributes:
        value: mean cosine between each shift and the mean shift, in [-1, 1]; 0.0 when
            ``degenerate``.
        n_used: rows whose shift norm is >= 1e-12 (the others are excluded).
        degenerate: True when the mean shift has norm < 1e-12 (or no row is usable).
    """

    value: Float[Array, ""]
    n_used: Int[Array, ""]
    degenerate: Bool[Array, ""]


def _coherence(s):
    norms = jnp.linalg.norm(s, axis=1)
    use = norms >= COHERENCE_EPS
    nu = jnp.sum(use)
    mean = jnp.sum(jnp.where(use[:, None], s, 0.0), axis=0) / jnp.maximum(nu, 1)
    mn = jnp.linalg.norm(mean)
    degenerate = (mn < COHERENCE_EPS) | (nu == 0)
    cos = (s @ mean) / (jnp.where(use, norms, 1.0) * jnp.where(degenerate, 1.0, mn))
    value = jnp.sum(jnp.where(use, cos, 0.0)) / jnp.maximum(nu, 1)
    return CoherenceResult(
        jnp.where(degenerate, 0.0, value).astype(s.dtype), nu.astype(jnp.int32), degenerate
    )


def _unpaired(x_clean, x_perturbed, what):
    xc = prepare_single("x_clean", x_clean, min_rows=1, what=what)
    xp = prepare_single("x_perturbed", x_perturbed, min_rows=1, what=what)
    if xc.shape[1] != xp.shape[1]:
        raise ValueError(
            f"{what} needs the same number of columns; got x_clean {tuple(xc.shape)} and "
            f"x_perturbed {tuple(xp.shape)}"
        )
    dtype = jnp.promote_types(xc.dtype, xp.dtype)
    return xc.astype(dtype), xp.astype(dtype)


def perturbation_coherence(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    max_samples: int | None = None,
    key: KeyArray | None = None,
) -> CoherenceResult:
    r"""Unpaired perturbation coherence: do perturbed points move in one direction?

    .. math:: \mu = \overline{X_{\mathrm{clean}}},\; s_i = x_i^{\mathrm{pert}} - \mu,\;
              m = \overline{s},\; \mathrm{coherence} = \mathrm{mean}_i \cos(s_i, m)

    **Unpaired**: each perturbed vector is compared with the clean *centroid*, not with its own
    clean twin (see :func:`paired_perturbation_coherence`); the two sets may have different row
    counts. Rows with :math:`\lVert s_i\rVert < 10^{-12}` are excluded (counted in ``n_used``);
    :math:`\lVert m\rVert < 10^{-12}` gives 0.0 with ``degenerate = True``. ``max_samples``
    (reference: 1,000) subsamples the perturbed rows and then needs ``key``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> xc = jax.random.normal(jax.random.key(0), (30, 3))
        >>> r = perturbation_coherence(xc, xc + jnp.array([[5.0, 0.0, 0.0]]))
        >>> float(r.value) > 0.9
        True
    """
    xc, xp = _unpaired(x_clean, x_perturbed, "perturbation_coherence")
    if max_samples is not None and xp.shape[0] > max_samples:
        _key_check(key)
        xp = _subsample(xp, key, max_samples)
    return _coherence_impl(xc, xp)


@eqx.filter_jit
def _coherence_impl(xc, xp):
    return _coherence(xp - jnp.mean(xc, axis=0, keepdims=True))


def paired_perturbation_coherence(x_clean: Samples, x_perturbed: Samples) -> CoherenceResult:
    r"""Paired perturbation coherence, with each row's own shift (paired).

    Shifts :math:`s_i = x_i^{\mathrm{pert}} - x_i^{\mathrm{clean}}`;
    ``mean_i cos(s_i, mean(s))`` with the same exclusion and degenerate rules as
    :func:`perturbation_coherence`; 1.0 for a pure translation.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> xc = jax.random.normal(jax.random.key(0), (30, 3))
        >>> round(float(paired_perturbation_coherence(xc, xc + 1.0).value), 4)
        1.0
    """
    xc, xp = prepare_paired(
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
    return _paired_coherence_impl(xc, xp)


@eqx.filter_jit
def _paired_coherence_impl(xc, xp):
    return _coherence(xp - xc)


def perturbation_effect_size(x_clean: Samples, x_perturbed: Samples) -> Float[Array, ""]:
    r"""Perturbation magnitude, the distance between the two centroids (unpaired).

    .. math:: \lVert \overline{X_{\mathrm{pert}}} - \overline{X_{\mathrm{clean}}}\rVert_2

    in embedding units; the two sets may have different row counts.

    Examples:
        >>> import jax.numpy as jnp
        >>> xp = jnp.tile(jnp.array([[3.0, 4.0]]), (3, 1))
        >>> float(perturbation_effect_size(jnp.zeros((4, 2)), xp))
        5.0
    """
    xc, xp = _unpaired(x_clean, x_perturbed, "perturbation_effect_size")
    return _effect_impl(xc, xp)


@eqx.filter_jit
def _effect_impl(xc, xp):
    return jnp.linalg.norm(jnp.mean(xp, axis=0) - jnp.mean(xc, axis=0))


class CompositeResult(eqx.Module):
    """Result of :func:`composite_stability` / :func:`identifiable_composite_stability`.

    Attributes:
        value: mean of the non-NaN components (NaN with ``n_terms = 0``).
        feature_split: :func:`feature_split_stability` of ``x_clean``.
        sample_split: :func:`sample_split_stability` of ``x_clean`` (NaN when not part of it).
        anchor: :func:`anchor_stability` of ``x_clean`` (NaN when n < 500 or not part of it).
        rdm_similarity: Spearman RDM similarity of ``x_clean`` and ``x_perturbed``.
        n_terms: how many components entered the mean.
    """

    value: Float[Array, ""]
    feature_split: Float[Array, ""]
    sample_split: Float[Array, ""]
    anchor: Float[Array, ""]
    rdm_similarity: Float[Array, ""]
    n_terms: Int[Array, ""]


def _composite(xc, xp, key, *, n_splits, metric, max_samples, parts):
    k0, k1, k2, k3 = jax.random.split(key, 4)
    n = xc.shape[0]
    if max_samples is not None and n > max_samples:
        idx = jax.random.choice(k0, n, (max_samples,), replace=False)
        xc, xp = xc[idx], xp[idx]
        n = max_samples
    nan = jnp.full((), jnp.nan, xc.dtype)
    fs = _feature_split_impl(
        xc, k1, n_splits=n_splits, metric=metric, max_samples=None, rm=_rm("auto", n)
    ).value
    u, v = _crdm(xc, metric), _crdm(xp, metric)
    rho, constant, _ = spearman(u, v, rank_method=_rm("auto", n))
    rs = jnp.where(constant, 0.0, rho).astype(xc.dtype)
    ss = an = nan
    if "sample" in parts:
        m = int(0.4 * n)
        ss = _sample_split_impl(
            xc, k2, n_splits=n_splits, m=m, metric=metric, rm=_rm("auto", m)
        ).value
    if "anchor" in parts and n >= 500:
        an = _anchor_impl(xc, k3, n_splits=n_splits, na=100, ns=200, metric=metric).value
    terms = jnp.stack([fs, ss, an, rs])
    ok = ~jnp.isnan(terms)
    nt = jnp.sum(ok)
    value = jnp.where(nt > 0, jnp.sum(jnp.where(ok, terms, 0.0)) / jnp.maximum(nt, 1), jnp.nan)
    return CompositeResult(value.astype(xc.dtype), fs, ss, an, rs, nt.astype(jnp.int32))


def _composite_prep(x_clean, x_perturbed, key, metric, n_splits):
    check_choice("metric", metric, RDM_METRICS)
    _key_check(key)
    _int_check("n_splits", n_splits, 1)
    xc, xp = prepare_paired(
        x_clean,
        x_perturbed,
        min_rows=10,
        what="composite stability",
        names=("x_clean", "x_perturbed"),
    )
    if xc.shape[1] < 4:
        raise ValueError(f"composite stability needs d >= 4 features; got shape {xc.shape}")
    xc = check_zero_norm("x_clean", xc, metric, "raise")
    xp = check_zero_norm("x_perturbed", xp, metric, "raise")
    return xc, xp


def composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
) -> CompositeResult:
    r"""Four-part reference composite stability (paper parity).

    Paired (``x_clean`` row i and ``x_perturbed`` row i are the same item). After subsampling
    both to ``max_samples`` rows with the same indices:

    .. math:: \mathrm{composite} = \mathrm{mean}_{\text{non-NaN}}\{\mathrm{feature\_split}(X_c),
              \mathrm{sample\_split}(X_c), \mathrm{anchor}(X_c),
              \mathrm{rdm\_similarity}(X_c, X_p)\}

    Three of the four terms ignore the perturbation; ``anchor`` is NaN (excluded) below 500
    rows. Coherence and magnitude are not included. All components are returned.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 6))
        >>> r = composite_stability(x, 2.0 * x, key=jax.random.key(1), n_splits=3)
        >>> int(r.n_terms), round(float(r.rdm_similarity), 4)
        (3, 1.0)
    """
    xc, xp = _composite_prep(x_clean, x_perturbed, key, metric, n_splits)
    return _composite_impl(
        xc,
        xp,
        key,
        n_splits=n_splits,
        metric=metric,
        max_samples=max_samples,
        parts=("sample", "anchor"),
    )


def identifiable_composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    n_splits: int = 30,
    metric: str = "cosine",
    max_samples: int | None = 1600,
) -> CompositeResult:
    r"""Identifiable composite: mean(feature_split(X_c), rdm_similarity(X_c, X_p)) (paired).

    The reference composite without the two upstream-deprecated terms (their fields are NaN).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (40, 6))
        >>> r = identifiable_composite_stability(x, x, key=jax.random.key(1), n_splits=3)
        >>> int(r.n_terms)
        2
    """
    xc, xp = _composite_prep(x_clean, x_perturbed, key, metric, n_splits)
    return _composite_impl(
        xc, xp, key, n_splits=n_splits, metric=metric, max_samples=max_samples, parts=()
    )


@eqx.filter_jit
def _composite_impl(xc, xp, key, *, n_splits, metric, max_samples, parts):
    return _composite(
        xc, xp, key, n_splits=n_splits, metric=metric, max_samples=max_samples, parts=parts
    )
