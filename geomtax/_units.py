"""Log-domain reductions. geomtax computes in nats (divide by ln 2 for bits, at report time)."""

import jax.numpy as jnp
from jax.scipy.special import logsumexp


def logmeanexp(x, axis=None):
    r"""Numerically stable :math:`\log \frac{1}{m}\sum_i e^{x_i}` over ``axis``."""
    x = jnp.asarray(x)
    m = x.size if axis is None else x.shape[axis]
    return logsumexp(x, axis=axis) - jnp.log(jnp.asarray(m, dtype=x.dtype))


def logmeanexp_offdiagonal(scores):
    r"""Log-mean-exp over the off-diagonal entries of a square ``(b, b)`` score matrix.

    Used for product-of-marginals terms where the diagonal holds the joint pairs.
    """
    scores = jnp.asarray(scores)
    b = scores.shape[0]
    masked = jnp.where(jnp.eye(b, dtype=bool), -jnp.inf, scores)
    return logsumexp(masked) - jnp.log(jnp.asarray(b * (b - 1), dtype=scores.dtype))
