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
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._custom_types import Samples
from .._errors import check_choice
from ._checks import prepare_paired

KERNELS = ("linear", "rbf")


class CKAResult(eqx.Module):
    """Result of :func:`cka` (arrays only).

    Attributes:
        value: CKA in [0, 1] (the debiased estimate may be slightly negative); NaN when
            ``undefined``.
        undefined: True for a constant input (zero centred Gram matrix) or, when debiased, a
            non-positive self-term.
    """

    value: Float[Array, ""]
    undefined: Bool[Array, ""]


def _debias(xty, rx, ry, sx, sy, n):
    return xty - n / (n - 2.0) * jnp.dot(rx, ry) + sx * sy / ((n - 1.0) * (n - 2.0))


def _linear(x, y, debiased):
    n = x.shape[0]
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    yc = y - jnp.mean(y, axis=0, keepdims=True)
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
) -> CKAResult:
    r"""Centred kernel alignment between two paired embeddings (paired).

    See the module docstring for the formulas. Invariant to orthogonal maps and isotropic
    scaling of either input; differentiable (use ``.value`` in a loss).

    Args:
        x: shape (n, d_x); n >= 2 (n >= 4 when ``debiased``).
        y: shape (n, d_y), paired row by row.
        kernel: ``"linear"`` (O(n d^2) memory-free form) or ``"rbf"`` (n x n Gram matrices).
        debiased: use the unbiased HSIC estimator.
        sigma_scale: RBF bandwidth factor :math:`\sigma` (relative to the median distance).

    Returns:
        :class:`CKAResult`; constant inputs give NaN with ``undefined = True``.

    Raises:
        ValueError: mismatched rows, rank other than 2, too few rows, non-finite values, unknown
            kernel.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (30, 4))
        >>> round(float(cka(x, -2.0 * x).value), 4)
        1.0
    """
    check_choice("kernel", kernel, KERNELS)
    if not isinstance(debiased, bool):
        raise TypeError(f"debiased must be a bool, got {debiased!r}")
    x, y = prepare_paired(x, y, min_rows=4 if debiased else 2, what="cka")
    return _cka_impl(x, y, kernel=kernel, debiased=debiased, sigma_scale=sigma_scale)


@eqx.filter_jit
def _cka_impl(x, y, *, kernel, debiased, sigma_scale):
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
    undefined = (hxx <= 0) | (hyy <= 0) | ~ok
    den = jnp.sqrt(jnp.where(undefined, 1.0, hxx)) * jnp.sqrt(jnp.where(undefined, 1.0, hyy))
    value = jnp.where(undefined, jnp.nan, hxy / den)
    return CKAResult(value.astype(x.dtype), undefined)
