r"""Centred kernel alignment (Kornblith et al. 2019, https://arxiv.org/abs/1905.00414).

Pairing: *paired*. :math:`H = I - 11^\top/n`, :math:`K = k(x_i, x_j)`, :math:`L = k(y_i, y_j)`:

.. math:: \mathrm{CKA}(K, L) = \frac{\langle HKH, HLH\rangle_F}{\lVert HKH\rVert_F\,
          \lVert HLH\rVert_F}.

The linear kernel uses the feature-space identity
:math:`\lVert Y_c^\top X_c\rVert_F^2 / (\lVert X_c^\top X_c\rVert_F \lVert Y_c^\top Y_c\rVert_F)`
(O(n d^2), no n x n matrix); ``debiased=True`` replaces HSIC by its unbiased U-statistic
(Song et al. 2012), in the same feature-space form. The RBF kernel is
:math:`\exp(-\lVert x_i - x_j\rVert^2 / (2\sigma^2 m))` with :math:`m` the median of the squared
distances over the full n x n matrix including the diagonal zeros (Kornblith's convention) and
``sigma_scale`` = :math:`\sigma` = 0.5 by default; it materialises n x n Gram matrices.

Both kernels are invariant to translation and isotropic scaling of either input (the RBF one
through its median bandwidth), and are computed that way: each input is centred (two-pass) and
divided by its largest absolute entry before any product or Gram-matrix distance, so offsets of
1e6 and scales of 1e-30 or 1e30 in float32 give the unshifted value. Definitions and sources:
docs/reference/geometry.md.
"""

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Samples
from .._errors import check_bool, check_choice, check_float
from .._numerics import is_constant, standardize_cloud
from .._status import Estimate, Status, finish, nan_unless_ok, select
from ._checks import prepare_paired_flagged, zero_nonfinite

KERNELS = ("linear", "rbf")


def _debias(xty, rx, ry, sx, sy, n):
    return xty - n / (n - 2.0) * jnp.dot(rx, ry) + sx * sy / ((n - 1.0) * (n - 2.0))


def _linear(x, y, debiased):
    """HSIC terms ``(xy, xx, yy)`` of the linear kernel on centred, max-scaled inputs.

    CKA is a ratio of these terms, so the per-input scale cancels; standardising first keeps
    the fourth powers of the data inside the float32 range at any input scale.
    """
    n = x.shape[0]
    xc = standardize_cloud(x)
    yc = standardize_cloud(y)
    hxy = jnp.sum((xc.T @ yc) ** 2)
    hxx = jnp.sum((xc.T @ xc) ** 2)
    hyy = jnp.sum((yc.T @ yc) ** 2)
    if debiased:
        rx = jnp.sum(xc * xc, axis=1)
        ry = jnp.sum(yc * yc, axis=1)
        sx, sy = jnp.sum(rx), jnp.sum(ry)
        hxy = _debias(hxy, rx, ry, sx, sy, n)
        hxx = _debias(hxx, rx, rx, sx, sx, n)
        hyy = _debias(hyy, ry, ry, sy, sy, n)
    return hxy, hxx, hyy


def _center_gram(k, debiased):
    n = k.shape[0]
    if debiased:
        k = k * (1.0 - jnp.eye(n, dtype=k.dtype))
        means = jnp.sum(k, axis=0) / (n - 2.0)
        means = means - jnp.sum(means) / (2.0 * (n - 1.0))
        k = k - means[:, None] - means[None, :]
        return k * (1.0 - jnp.eye(n, dtype=k.dtype))
    means = jnp.mean(k, axis=0)
    means = means - jnp.mean(means) / 2.0
    return k - means[:, None] - means[None, :]


def _rbf_gram(x, sigma_scale):
    """RBF Gram matrix with the median bandwidth, and whether that median is positive."""
    x = standardize_cloud(x)  # the kernel depends on distances / median distance only
    sq = jnp.sum(x * x, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    d2 = d2 * (1.0 - jnp.eye(x.shape[0], dtype=x.dtype))
    med = jnp.median(d2)
    return jnp.exp(-d2 / (2.0 * sigma_scale**2 * jnp.where(med > 0, med, 1.0))), med > 0


def cka(
    x: Samples,
    y: Samples,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    sigma_scale: float = 0.5,
    throw: bool = True,
) -> Estimate:
    r"""Centred kernel alignment between two paired embeddings (paired).

    See the module docstring for the formulas and docs/reference/geometry.md for the
    definitions. Invariant to translation, orthogonal maps and isotropic scaling of either
    input (computed in an invariant form); differentiable (use ``.value`` in a loss).

    Args:
        x: shape (n, d_x); n >= 2 (n >= 4 when ``debiased``).
        y: shape (n, d_y), paired row by row.
        kernel: ``"linear"`` (O(n d^2) memory-free form) or ``"rbf"`` (n x n Gram matrices).
        debiased: use the unbiased HSIC estimator.
        sigma_scale: RBF bandwidth factor :math:`\sigma` (relative to the median distance),
            a finite number > 0.
        throw: raise :class:`~geomtax.StatusError` on a non-``ok`` status (default); with
            ``False`` the result is returned with its status, under ``jit`` too.

    Returns:
        :class:`~geomtax.Estimate`: CKA in [0, 1] (the debiased estimate may be slightly
        negative). Status ``nonfinite_input`` (NaN or inf in an input) or ``degenerate_input``
        (an input with all rows identical, a non-positive debiased self-term, or, for the RBF
        kernel, a zero median distance); the value is NaN for both.

    Raises:
        ValueError: mismatched rows, rank other than 2, too few rows, unknown kernel, a
            non-positive or non-finite ``sigma_scale``.
        TypeError: complex (or other non-real) input, non-bool ``debiased`` / ``throw``.
        StatusError: with ``throw=True``, a non-``ok`` status (a ``ValueError``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (30, 4))
        >>> round(float(cka(x, -2.0 * x).value), 4)
        1.0
        >>> cka(jnp.full((30, 4), 0.1), x, throw=False).status_name
        'degenerate_input'
    """
    check_choice("kernel", kernel, KERNELS)
    debiased = check_bool("debiased", debiased)
    throw = check_bool("throw", throw)
    sigma_scale = check_float("sigma_scale", sigma_scale, positive=True)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=4 if debiased else 2, what="cka")
    res = _cka_impl(x, y, finite, sigma_scale, kernel=kernel, debiased=debiased)
    return finish(
        res,
        throw=throw,
        function="cka",
        details={
            "degenerate_input": "an input has all rows identical"
            + (", or a debiased self-term is not positive" if debiased else "")
            + (", or a median distance is zero" if kernel == "rbf" else "")
        },
    )


@eqx.filter_jit
def _cka_impl(x, y, finite, sigma_scale, *, kernel, debiased):
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    constant = is_constant(x) | is_constant(y)
    if kernel == "linear":
        hxy, hxx, hyy = _linear(x, y, debiased)
        ok = jnp.ones((), bool)
    else:
        kx, okx = _rbf_gram(x, sigma_scale)
        ky, oky = _rbf_gram(y, sigma_scale)
        kx = _center_gram(kx, debiased)
        ky = _center_gram(ky, debiased)
        hxy, hxx, hyy = jnp.sum(kx * ky), jnp.sum(kx * kx), jnp.sum(ky * ky)
        ok = okx & oky
    degenerate = constant | (hxx <= 0) | (hyy <= 0) | ~ok
    status = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    den = jnp.sqrt(jnp.where(degenerate, 1.0, hxx)) * jnp.sqrt(jnp.where(degenerate, 1.0, hyy))
    value = hxy / den
    return Estimate(nan_unless_ok(value.astype(x.dtype), status), status)
