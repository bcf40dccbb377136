r"""Token perturbations: value noise, time reversal, codebook noise, interpolation.

Definitions: docs/reference/systems.md#perturbations.

All are pure functions of their inputs and an explicit key, work on any leading batch shape
(the last axis is time), and are vmappable over keys and rates.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray, ScalarLike
from .._errors import is_traced
from ._tokenize import KMeansCodebook


def _check_rate(rate):
    if not is_traced(rate):
        r = float(np.asarray(rate))
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")


def _check_sigma(sigma_fraction):
    if not is_traced(sigma_fraction) and not float(np.asarray(sigma_fraction)) >= 0.0:
        raise ValueError(f"sigma_fraction must be >= 0, got {sigma_fraction!r}")


def value_noise(
    tokens: Int[Array, "..."],
    *,
    key: KeyArray,
    rate: ScalarLike,
    num_bins: int = 256,
    sigma_fraction: ScalarLike = 0.1,
) -> Int[Array, "..."]:
    r"""SNP-analogue value noise on tokens (docs/reference/systems.md#perturbations).

    Each position is selected independently with probability ``rate``; a selected token ``b``
    becomes :math:`\mathrm{clip}(b + \mathrm{trunc}(\epsilon), 0, K-1)` with
    :math:`\epsilon \sim N(0, (\texttt{sigma\_fraction}\cdot K)^2)` (``trunc`` rounds toward 0, as
    the reference's ``int``). With the defaults :math:`\sigma = 25.6` bins. Tokens outside
    ``[0, K)`` (special tokens such as PAD = K, MASK = K + 1) are never changed.

    Args:
        tokens: int tokens of any shape.
        key: PRNG key (required).
        rate: selection probability in [0, 1] (reference: 0.01, 0.02, 0.05, 0.10).
        num_bins: K, the number of value bins.
        sigma_fraction: noise standard deviation as a fraction of K.

    Returns:
        Perturbed tokens, same shape and dtype.

    Raises:
        ValueError: if ``rate`` is outside [0, 1], ``sigma_fraction < 0`` or ``num_bins < 2``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> t = jnp.full((1000,), 128, jnp.int32)
        >>> out = value_noise(t, key=jax.random.key(0), rate=0.1)
        >>> 0.05 < float((out != t).mean()) < 0.15
        True
        >>> bool((value_noise(t, key=jax.random.key(0), rate=0.0) == t).all())
        True
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
    _check_rate(rate)
    _check_sigma(sigma_fraction)
    tokens = jnp.asarray(tokens)
    k_sel, k_noise = jax.random.split(key)
    selected = jax.random.uniform(k_sel, tokens.shape) < rate
    sigma = sigma_fraction * num_bins
    delta = jnp.trunc(sigma * jax.random.normal(k_noise, tokens.shape)).astype(tokens.dtype)
    is_value = (tokens >= 0) & (tokens < num_bins)
    noisy = jnp.clip(tokens + delta, 0, num_bins - 1)
    return jnp.where(selected & is_value, noisy, tokens)


def time_reversal(tokens: Array) -> Array:
    """Reverse the sequence along the last (time) axis (the reverse-complement analogue).

    Args:
        tokens: array of shape (..., L).

    Returns:
        ``tokens[..., ::-1]``.

    Raises:
        ValueError: if ``tokens`` is 0-d.

    Examples:
        >>> import jax.numpy as jnp
        >>> time_reversal(jnp.array([[1, 2, 3]])).tolist()
        [[3, 2, 1]]
    """
    if np.ndim(tokens) == 0:
        raise ValueError("tokens must have a time axis; got a 0-d array")
    return jnp.flip(jnp.asarray(tokens), axis=-1)


def codebook_noise(
    values: Float[Array, "..."],
    codebook: KMeansCodebook,
    *,
    key: KeyArray,
    rate: ScalarLike,
    sigma_fraction: ScalarLike = 0.1,
) -> Int[Array, "..."]:
    r"""Noise in continuous space, then re-encoding by a codebook.

    Definition: docs/reference/systems.md#perturbations.

    Each position is selected with probability ``rate``; selected values get
    :math:`v + \epsilon`, :math:`\epsilon \sim N(0, \sigma^2)`,
    :math:`\sigma = \texttt{sigma\_fraction} \cdot (\mathrm{high} - \mathrm{low})` (the codebook's
    training value range); all positions are then encoded with ``codebook.encode``.

    Args:
        values: raw floating values of any shape.
        codebook: a fitted :class:`KMeansCodebook`.
        key: PRNG key (required).
        rate: selection probability in [0, 1].
        sigma_fraction: noise standard deviation as a fraction of the training range.

    Returns:
        int32 tokens of the perturbed values, same shape as ``values``.

    Raises:
        ValueError: if ``rate`` is outside [0, 1] or ``sigma_fraction < 0``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from geomtax.dynamics import kmeans_codebook
        >>> v = jnp.linspace(0.0, 1.0, 200)
        >>> cb = kmeans_codebook(v, num_codes=8, key=jax.random.key(0))
        >>> clean = codebook_noise(v, cb, key=jax.random.key(1), rate=0.0)
        >>> bool((clean == cb.encode(v)).all())
        True
    """
    _check_rate(rate)
    _check_sigma(sigma_fraction)
    values = jnp.asarray(values)
    k_sel, k_noise = jax.random.split(key)
    selected = jax.random.uniform(k_sel, values.shape) < rate
    sigma = sigma_fraction * (codebook.high - codebook.low)
    eps = sigma * jax.random.normal(k_noise, values.shape, values.dtype)
    return codebook.encode(jnp.where(selected, values + eps, values))


def interpolate_tokens(
    tokens_a: Int[Array, "..."], tokens_b: Int[Array, "..."], alpha: ScalarLike
) -> Int[Array, "..."]:
    r"""Track A token path: :math:`\mathrm{round}((1-\alpha) a + \alpha b)`.

    Definition: docs/reference/systems.md#perturbations.

    Rounding is half-to-even (as NumPy's ``round``). Deterministic; vmap over ``alpha`` for the
    101-step path ``alpha = 0, 0.01, ..., 1``.

    Args:
        tokens_a: int tokens (path start, alpha = 0).
        tokens_b: int tokens of the same shape (path end, alpha = 1).
        alpha: mixing weight in [0, 1].

    Returns:
        int32 tokens, same shape.

    Raises:
        ValueError: if the shapes differ.

    Examples:
        >>> import jax.numpy as jnp
        >>> interpolate_tokens(jnp.array([0, 10]), jnp.array([10, 20]), 0.25).tolist()
        [2, 12]
    """
    if np.shape(tokens_a) != np.shape(tokens_b):
        raise ValueError(
            f"tokens_a and tokens_b must have the same shape, got {np.shape(tokens_a)} and "
            f"{np.shape(tokens_b)}"
        )
    a = jnp.asarray(tokens_a).astype(jnp.float32)
    b = jnp.asarray(tokens_b).astype(jnp.float32)
    return jnp.round((1.0 - alpha) * a + alpha * b).astype(jnp.int32)
