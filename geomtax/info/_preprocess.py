"""Preprocessing used by the MI protocol: PCA and z-scoring, in JAX (jittable, vmappable)."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._errors import check_finite, check_floating, check_min_rows, check_rank

#: A feature whose standard deviation is at most this multiple of its largest absolute value
#: (or exactly zero) is treated as constant by `zscore`.
CONSTANT_RTOL = 1e-6


class ZScoreResult(eqx.Module):
    """Output of `zscore`; arrays only.

    Attributes:
        values: Z-scored features, shape (n, d); constant features are set to 0.
        mean: Per-feature mean, shape (d,).
        std: Per-feature standard deviation (ddof 0), shape (d,).
        constant: True for features treated as constant (dropped), shape (d,).
        num_constant: Number of constant features.
    """

    values: Float[Array, "n d"]
    mean: Float[Array, " d"]
    std: Float[Array, " d"]
    constant: Bool[Array, " d"]
    num_constant: Int[Array, ""]


def zscore(x: Float[Array, "n d"]) -> ZScoreResult:
    r"""Standardize each feature to mean 0 and standard deviation 1 (ddof 0).

    $$z_{ij} = (x_{ij} - \bar x_j) / s_j$$

    Constant features (\(s_j \le 10^{-6} \max_i |x_{ij}|\), or \(s_j = 0\)) carry no
    information; they are dropped and flagged (REFERENCE section 11.5). To keep shapes static
    under ``jit``/``vmap`` a dropped feature is returned as a column of zeros, which is
    equivalent to removing it for every estimator in `geomtax.info` (a zero column changes
    no Chebyshev distance and feeds nothing to a critic). On the host,
    ``r.values[:, ~r.constant]`` removes them physically.

    Args:
        x: Samples, shape (n, d), n >= 2.

    Returns:
        A `ZScoreResult`.

    Raises:
        ValueError: ``x`` not rank 2, fewer than 2 rows, or non-finite.
        TypeError: Non-floating ``x``.

    Examples:
        >>> from geomtax.info import pca, zscore
        >>> import jax.numpy as jnp
        >>> r = zscore(jnp.array([[1.0, 5.0], [3.0, 5.0]]))
        >>> r.values
        Array([[-1.,  0.],
               [ 1.,  0.]], dtype=float32)
        >>> r.constant
        Array([False,  True], dtype=bool)
    """
    x = jnp.asarray(x)
    check_rank("x", x, 2)
    check_floating("x", x)
    check_min_rows("x", x, 2, what="zscore")
    x = check_finite("x", x)
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    scale = jnp.max(jnp.abs(x), axis=0)
    constant = (std == 0) | (std <= CONSTANT_RTOL * scale)
    safe = jnp.where(constant, 1.0, std)
    values = jnp.where(constant[None, :], 0.0, (x - mean[None, :]) / safe[None, :])
    return ZScoreResult(
        values=values,
        mean=mean,
        std=std,
        constant=constant,
        num_constant=jnp.sum(constant).astype(jnp.int32),
    )


def pca(x: Float[Array, "n d"], k: int) -> Float[Array, "n k"]:
    r"""Project centered samples onto their first ``k`` principal components.

    With the thin SVD \(X - \bar X = U S V^\top\), the scores are
    \((X - \bar X) V_{:, :k} = U_{:, :k} S_{:k}\). Sign convention (as scikit-learn's
    ``svd_flip``): each component is oriented so that its largest-magnitude loading is positive,
    so the output is deterministic. Components beyond the rank of the data have score 0.

    Args:
        x: Samples, shape (n, d).
        k: Number of components (static), 1 <= k <= min(n, d).

    Returns:
        Scores, shape (n, k), in the input's units; column variances decrease.

    Raises:
        ValueError: ``x`` not rank 2, non-finite, or ``k`` out of range.
        TypeError: Non-floating ``x``.

    Examples:
        >>> from geomtax.info import pca, zscore
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 0.0], [2.0, 0.1], [4.0, -0.1]])
        >>> pca(x, 1).shape
        (3, 1)
    """
    x = jnp.asarray(x)
    check_rank("x", x, 2)
    check_floating("x", x)
    k = int(k)
    n, d = x.shape
    if not 1 <= k <= min(n, d):
        raise ValueError(f"pca needs 1 <= k <= min(n, d) = {min(n, d)} for x of shape {x.shape}")
    x = check_finite("x", x)
    xc = x - jnp.mean(x, axis=0)[None, :]
    _, _, vt = jnp.linalg.svd(xc, full_matrices=False)
    v = vt[:k].T  # (d, k)
    idx = jnp.argmax(jnp.abs(v), axis=0)
    signs = jnp.sign(v[idx, jnp.arange(k)])
    v = v * jnp.where(signs == 0, 1.0, signs)[None, :]
    return xc @ v
