r"""Perturbation scores: the direction and size of a shift between two states of one cloud.

* unpaired: :func:`perturbation_coherence`, :func:`perturbation_effect_size`;
* paired: :func:`paired_perturbation_coherence`.

Result contract: every function returns a result with a ``status`` (:class:`geomtax.Status`)
and takes ``throw``; values are NaN unless the status is ``ok``. Coherence and effect size are
smooth. Invariances hold by construction in float32: both sets are centred on the clean set's
mean before anything is squared.
"""

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray, Samples
from .._errors import check_bool, check_int
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import (
    check_same_columns,
    prepare_paired_flagged,
    prepare_single_flagged,
    zero_nonfinite,
)
from ._stability import _key_check, _subsample

#: shift norms at most this many float eps times the data's magnitude (times sqrt(d)) count as
#: zero in the coherence scores (a relative test: scale-free)
COHERENCE_RTOL = 4.0


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
    check_same_columns(xc, xp, what, names=_NAMES)
    dtype = jnp.promote_types(xc.dtype, xp.dtype)
    return xc.astype(dtype), xp.astype(dtype), fc & fp


_NAMES = ("x_clean", "x_perturbed")


def _coherence_public(xc, xp, finite, *, paired, throw, function):
    """Run the jitted coherence and attach the status contract (shared by both pairings)."""
    return finish(
        _coherence_impl(xc, xp, finite, paired=paired),
        throw=throw,
        function=function,
        details={"degenerate_input": "the mean shift is zero to rounding, or no row moved"},
    )


@eqx.filter_jit
def _coherence_impl(xc, xp, finite, *, paired):
    """Coherence of the shifts from the clean centroid (unpaired) or from each twin (paired)."""
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    a, b = _clean_frame(xc, xp)
    return _coherence(b - a if paired else b, _magnitude(xc, xp), finite)


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
    return _coherence_public(
        xc, xp, finite, paired=False, throw=throw, function="perturbation_coherence"
    )


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
    what = "paired_perturbation_coherence"
    xc, xp, finite = prepare_paired_flagged(
        x_clean, x_perturbed, min_rows=1, what=what, names=_NAMES
    )
    check_same_columns(xc, xp, what, names=_NAMES)
    return _coherence_public(xc, xp, finite, paired=True, throw=throw, function=what)


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
