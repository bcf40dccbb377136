r"""Composite stability: the split scores and the RDM similarity of a perturbation, averaged.

Paired: :func:`composite_stability` (the 4-part reference) and
:func:`identifiable_composite_stability` (feature split + RDM similarity). The components are
the functions of ``_stability.py`` on ``x_clean`` and the Spearman RDM similarity of
``x_clean`` and ``x_perturbed``; like them, the composites are piecewise constant in the data
and raise ``TypeError`` under differentiation.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray, Samples
from .._errors import check_int, renamed_options
from .._status import AbstractResult, Status, finish, nan_unless_ok, select
from ._checks import (
    check_same_columns,
    nondifferentiable,
    prepare_paired_flagged,
    zero_nonfinite,
    zero_norm_mask,
)
from ._ranks import spearman
from ._stability import (
    ZERO_NORM_DETAIL,
    _anchor,
    _crdm,
    _feature_split,
    _rm,
    _sample_split,
    _split_options,
)


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


def _composite(xc, xp, finite, key, *, num_splits, metric, max_samples, parts):
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
        xc, finite, k1, num_splits=num_splits, metric=metric, max_samples=None, rm=_rm("auto", n)
    ).value
    u, v = _crdm(xc, metric), _crdm(xp, metric)
    rho, constant, _ = spearman(u, v, rank_method=_rm("auto", n))
    rs = jnp.where(constant, jnp.nan, rho).astype(xc.dtype)
    ss = an = nan
    included = [fs, rs]
    if "sample" in parts:
        m = int(0.4 * n)
        ss = _sample_split(
            xc, finite, k2, num_splits=num_splits, m=m, metric=metric, rm=_rm("auto", m)
        ).value
        included.append(ss)
    if "anchor" in parts and n >= 500:
        an = _anchor(xc, finite, k3, num_splits=num_splits, na=100, ns=200, metric=metric).value
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


def _composite_public(
    x_clean, x_perturbed, key, *, num_splits, metric, max_samples, throw, what, parts
):
    """Static checks, the jitted composite and the status contract (both public composites)."""
    num_splits = _split_options(key, num_splits, metric, None, throw)
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
    check_same_columns(xc, xp, "composite stability", names=("x_clean", "x_perturbed"))
    xc, xp = nondifferentiable(xc, what), nondifferentiable(xp, what)
    result = _composite_impl(
        xc,
        xp,
        finite,
        key,
        num_splits=num_splits,
        metric=metric,
        max_samples=max_samples,
        parts=parts,
    )
    detail = f"a component is undefined (constant data or RDM), or {ZERO_NORM_DETAIL}"
    return finish(result, throw=throw, function=what, details={"degenerate_input": detail})


@renamed_options(n_splits="num_splits")
def composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    num_splits: int = 30,
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
        >>> r = composite_stability(x, 2.0 * x, key=jax.random.key(1), num_splits=3)
        >>> int(r.n_terms), round(float(r.rdm_similarity), 4)
        (3, 1.0)
    """
    return _composite_public(
        x_clean,
        x_perturbed,
        key,
        num_splits=num_splits,
        metric=metric,
        max_samples=max_samples,
        throw=throw,
        what="composite_stability",
        parts=("sample", "anchor"),
    )


@renamed_options(n_splits="num_splits")
def identifiable_composite_stability(
    x_clean: Samples,
    x_perturbed: Samples,
    *,
    key: KeyArray,
    num_splits: int = 30,
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
        >>> r = identifiable_composite_stability(x, x, key=jax.random.key(1), num_splits=3)
        >>> int(r.n_terms)
        2
    """
    return _composite_public(
        x_clean,
        x_perturbed,
        key,
        num_splits=num_splits,
        metric=metric,
        max_samples=max_samples,
        throw=throw,
        what="identifiable_composite_stability",
        parts=(),
    )


_composite_impl = eqx.filter_jit(_composite)
