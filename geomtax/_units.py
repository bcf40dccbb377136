"""Units and log-domain reductions. geomtax computes in nats; bits appear only at report time."""

import math

import jax.numpy as jnp
from jax.scipy.special import logsumexp

LN2 = math.log(2.0)


def to_bits(nats):
    """Convert nats to bits (divide by ln 2). Accepts Python floats or arrays."""
    return nats / LN2


def to_nats(bits):
    """Convert bits to nats (multiply by ln 2)."""
    return bits * LN2


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
