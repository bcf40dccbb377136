"""Numerical forms that keep declared invariances exact in float32 (shared by every namespace).

Metrics whose definition is invariant to translation (and, where the metric allows, to a global
scale) compute on :func:`standardize_cloud` output: the column mean is removed *before* any
Gram-matrix (``|a|^2 + |b|^2 - 2 a.b``) distance, and the cloud is divided by its largest
absolute entry before anything is squared, so offsets of 1e6 and scales of 1e-30 or 1e30 in
float32 neither cancel catastrophically nor under/overflow.
"""

import jax.numpy as jnp
from jax import lax


def is_constant(x):
    """Scalar bool: every row of ``x`` (n, d) is identical (exact: max == min per column)."""
    return jnp.all(jnp.max(x, axis=0) == jnp.min(x, axis=0))


def center(x):
    """Subtract the column means (two-pass: the residual mean of the result is ~eps * spread).

    The first pass subtracts the first row, which removes a large common offset exactly enough
    that the second pass's mean is computed on O(spread) numbers.
    """
    x0 = x - x[:1]
    return x0 - jnp.mean(x0, axis=0, keepdims=True)


def unit_scale(x):
    """Divide by the largest absolute entry (1 where ``x`` is all zeros); no squaring first."""
    m = jnp.max(jnp.abs(x))
    m = jnp.where(m > 0, m, jnp.ones_like(m))
    return x / m


def standardize_cloud(x, *, scale: bool = True):
    """Centre ``x`` (n, d) and, if ``scale``, divide by its largest absolute centred entry."""
    xc = center(x)
    return unit_scale(xc) if scale else xc


def safe_sqrt(x):
    """``sqrt(max(x, 0))`` with a finite (zero) gradient at 0; NaN stays NaN (never NaN -> 0).

    The one zero-safe square root of the library (distances, stress, Procrustes D).
    """
    pos = x > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, x, jnp.ones_like(x))), jnp.zeros_like(x))
    return jnp.where(jnp.isnan(x), x, r)


def row_hashes(x):
    """Two independent 32-bit integer hashes of each row's bits (exact: equal rows, equal hash).

    Integer multiply-add wraps modulo 2**32, so the sums are exact and order independent.
    """
    x = x + jnp.zeros((), x.dtype)  # -0.0 -> +0.0
    bits = lax.bitcast_convert_type(x, jnp.uint32)  # (n, d) or (n, d, 2) for float64
    bits = bits.reshape(x.shape[0], -1)
    m = bits.shape[1]
    j = jnp.arange(m, dtype=jnp.uint32)
    c1 = (j * jnp.uint32(2654435761) + jnp.uint32(0x9E3779B9)) | jnp.uint32(1)
    c2 = (j * jnp.uint32(2246822519) + jnp.uint32(0x85EBCA77)) | jnp.uint32(1)
    b2 = bits ^ (bits >> jnp.uint32(15))
    return jnp.sum(bits * c1[None, :], axis=1), jnp.sum(b2 * c2[None, :], axis=1)


def same_rows(a, b):
    """(na, nb) bool: row i of ``a`` equals row j of ``b`` exactly (bitwise, -0.0 == 0.0).

    Compared through :func:`row_hashes` (two 32-bit hashes; a false match needs both to
    collide), so it is exact for duplicates and never confuses a near pair with a duplicate,
    whatever the scale or the dimension.
    """
    ha1, ha2 = row_hashes(a)
    hb1, hb2 = row_hashes(b)
    return (ha1[:, None] == hb1[None, :]) & (ha2[:, None] == hb2[None, :])
