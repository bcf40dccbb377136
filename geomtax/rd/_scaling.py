"""Intrinsic dimension (Levina–Bickel), the capacity scaling fit, and the Shannon lower bound."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Int, Samples, ScalarLike
from .._errors import check_finite, check_floating, check_rank, is_traced
from ..geometry import knn_search


class IntrinsicDimensionResult(eqx.Module):
    r"""Output of :func:`intrinsic_dimension` (arrays only).

    Attributes:
        dimension: the estimate $\hat d$ = median over k of the per-k estimates.
        per_k: (k_max - k_min + 1,) median over points of $\hat m_k(x)$, for k = k_min..k_max.
        num_dropped: points left out because a neighbor distance was zero (duplicates).
    """

    dimension: Float[Array, ""]
    per_k: Float[Array, " K"]
    num_dropped: Int[Array, ""]


@eqx.filter_jit
def _levina_bickel(x, k_min, k_max, block_size):
    dists, _ = knn_search(x, k_max, metric="euclidean", block_size=block_size)
    ok = dists[:, 0] > 0  # T_1 > 0 implies every T_j > 0
    log_t = jnp.log(jnp.where(ok[:, None], dists, 1.0))
    csum = jnp.cumsum(log_t, axis=1)  # sum_{j<=i} log T_j
    ks = jnp.arange(k_min, k_max + 1)
    # sum_{j=1}^{k-1} log(T_k / T_j) = (k - 1) log T_k - sum_{j=1}^{k-1} log T_j
    log_tk = log_t[:, ks - 1]
    s = (ks - 1)[None, :] * log_tk - csum[:, ks - 2]
    m_hat = jnp.where(s > 0, (ks - 1)[None, :] / jnp.where(s > 0, s, 1.0), jnp.inf)
    m_hat = jnp.where(ok[:, None], m_hat, jnp.nan)
    per_k = jnp.nanmedian(m_hat, axis=0)
    return IntrinsicDimensionResult(
        dimension=jnp.median(per_k),
        per_k=per_k,
        num_dropped=jnp.sum(~ok).astype(jnp.int32),
    )


def intrinsic_dimension(
    x: Samples,
    *,
    k_min: int = 3,
    k_max: int = 30,
    block_size: int | None = 1024,
) -> IntrinsicDimensionResult:
    r"""Levina–Bickel maximum-likelihood intrinsic dimension, with the reference settings.

    For each point $x$ and each $k \in \{k_{min}, \dots, k_{max}\}$ (Levina & Bickel 2004,
    eq. 8),

    $$\hat m_k(x) = \frac{k-1}{\sum_{j=1}^{k-1} \log\bigl(T_k(x)/T_j(x)\bigr)},$$

    where $T_j(x)$ is the Euclidean distance to the $j$-th nearest other point. The estimate is
    the **median over points** for each $k$, then the **median over $k$** (the reference code's
    choice; the paper averages). Points with a zero neighbor distance (duplicates) are dropped
    and counted. Single-set. Nearest neighbors come from :func:`geomtax.geometry.knn_search`,
    tiled over rows, so memory is O(block_size * n).

    Args:
        x: (n, D) samples of a manifold embedded in $\mathbb{R}^D$; ``n > k_max``.
        k_min: smallest neighborhood size, ``>= 2``.
        k_max: largest neighborhood size (static).
        block_size: rows per kNN tile; ``None`` builds the (n, n) distance matrix.

    Returns:
        An :class:`IntrinsicDimensionResult`.

    Raises:
        ValueError: on a non-(n, D) input, ``k_min < 2``, ``k_max < k_min``, ``n <= k_max`` or
            non-finite samples.

    Examples:
        >>> import jax
        >>> plane = jax.random.uniform(jax.random.key(0), (2000, 2))
        >>> x = jax.numpy.concatenate([plane, plane @ jax.numpy.ones((2, 3))], axis=1)
        >>> res = intrinsic_dimension(x, k_min=5, k_max=20)
        >>> bool(1.8 < float(res.dimension) < 2.2)
        True
    """
    check_rank("x", x)
    check_floating("x", x)
    n = np.shape(x)[0]
    if int(k_min) < 2 or int(k_max) < int(k_min):
        raise ValueError(f"need 2 <= k_min <= k_max; got k_min={k_min}, k_max={k_max}")
    if n <= int(k_max):
        raise ValueError(f"need more than k_max={k_max} points; got x of shape {np.shape(x)}")
    x = check_finite("x", x)
    return _levina_bickel(jnp.asarray(x), int(k_min), int(k_max), block_size)


class ScalingFit(eqx.Module):
    r"""Output of :func:`capacity_scaling_fit` (arrays only).

    Attributes:
        slope: OLS slope $a$ of $\log(1/D)$ on $\log S$.
        intercept: OLS intercept $b$.
        r_squared: coefficient of determination $R^2$.
        stderr: standard error of the slope (``n - 2`` degrees of freedom).
        intercept_stderr: standard error of the intercept.
        predicted_slope: $2 / d_M$ (NaN when no intrinsic dimension is given).
        slope_gap: ``slope - predicted_slope`` (NaN when no intrinsic dimension is given).
    """

    slope: Float[Array, ""]
    intercept: Float[Array, ""]
    r_squared: Float[Array, ""]
    stderr: Float[Array, ""]
    intercept_stderr: Float[Array, ""]
    predicted_slope: Float[Array, ""]
    slope_gap: Float[Array, ""]


@eqx.filter_jit
def _ols(log_s, log_inv_d, intrinsic_dim):
    n = log_s.shape[0]
    xm = jnp.mean(log_s)
    ym = jnp.mean(log_inv_d)
    dx = log_s - xm
    dy = log_inv_d - ym
    sxx = jnp.sum(dx * dx)
    sxy = jnp.sum(dx * dy)
    syy = jnp.sum(dy * dy)
    slope = sxy / sxx
    intercept = ym - slope * xm
    resid = dy - slope * dx
    sse = jnp.sum(resid * resid)
    r_squared = jnp.where(syy > 0, 1.0 - sse / jnp.where(syy > 0, syy, 1.0), 1.0)
    stderr = jnp.sqrt(sse / (n - 2) / sxx)
    intercept_stderr = stderr * jnp.sqrt(jnp.sum(log_s * log_s) / n)
    if intrinsic_dim is None:
        predicted = jnp.asarray(jnp.nan, log_s.dtype)
    else:
        predicted = 2.0 / jnp.asarray(intrinsic_dim, log_s.dtype)
    return ScalingFit(
        slope=slope,
        intercept=intercept,
        r_squared=r_squared,
        stderr=stderr,
        intercept_stderr=intercept_stderr,
        predicted_slope=predicted,
        slope_gap=slope - predicted,
    )


def capacity_scaling_fit(
    capacities: Float[Array, " s"],
    distortions: Float[Array, " s"],
    *,
    intrinsic_dim: ScalarLike | None = None,
) -> ScalingFit:
    r"""Fit the capacity scaling law $D \propto S^{-2/d_M}$ by ordinary least squares.

    Fits $\log(1/D) = a \log S + b$ (natural logs; the base cancels in the slope) and compares
    the slope with the high-resolution quantization prediction $a = 2/d_M$ (Zador; REFERENCE
    section 5.2), e.g. 0.971 for the Lorenz attractor's $d_M = 2.06$. Same estimates as
    ``scipy.stats.linregress``: $R^2 = 1 - SSE/SST$, slope standard error
    $\sqrt{SSE/(s-2)/S_{xx}}$.

    Args:
        capacities: (s,) positive model capacities $S$ (e.g. parameter counts).
        distortions: (s,) positive distortions $D$, paired with ``capacities``.
        intrinsic_dim: manifold dimension $d_M > 0$ (e.g. from :func:`intrinsic_dimension`).

    Returns:
        A :class:`ScalingFit`.

    Raises:
        ValueError: if the inputs are not paired 1-D arrays of at least 3 points, contain
            non-positive or non-finite values, the capacities are all equal, or
            ``intrinsic_dim <= 0``.

    Examples:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([1e5, 1e6, 1e7])
        >>> fit = capacity_scaling_fit(s, 3.0 * s ** -0.5, intrinsic_dim=4.0)
        >>> round(float(fit.slope), 4), round(float(fit.slope_gap), 4)
        (0.5, 0.0)
    """
    check_rank("capacities", capacities, 1)
    check_rank("distortions", distortions, 1)
    if np.shape(capacities) != np.shape(distortions):
        raise ValueError(
            f"capacities and distortions must be paired; got shapes {np.shape(capacities)} "
            f"and {np.shape(distortions)}"
        )
    if np.shape(capacities)[0] < 3:
        raise ValueError(
            f"need at least 3 points for a fit with a stderr; got {np.shape(capacities)}"
        )
    for name, v in (("capacities", capacities), ("distortions", distortions)):
        if not is_traced(v):
            a = np.asarray(v, dtype=float)
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise ValueError(f"{name} must be finite and positive; got {a.tolist()}")
    if not is_traced(capacities) and np.ptp(np.asarray(capacities, dtype=float)) == 0:
        raise ValueError("capacities are all equal; the slope is undefined")
    if intrinsic_dim is not None and not is_traced(intrinsic_dim):
        if not float(np.asarray(intrinsic_dim)) > 0:
            raise ValueError(f"intrinsic_dim must be positive, got {intrinsic_dim!r}")
    s = jnp.asarray(capacities)
    dist = jnp.asarray(distortions)
    dtype = jnp.result_type(s.dtype if jnp.issubdtype(s.dtype, jnp.floating) else float, dist)
    return _ols(
        jnp.log(s.astype(dtype)),
        -jnp.log(dist.astype(dtype)),
        None if intrinsic_dim is None else jnp.asarray(intrinsic_dim, dtype),
    )


def shannon_lower_bound(
    entropy: ScalarLike, distortion: ScalarLike, *, dim: int = 1
) -> Float[Array, ""]:
    r"""Shannon lower bound on R(D) for total squared-error distortion, in nats.

    For a source $X \in \mathbb{R}^k$ with differential entropy $h(X)$ (nats) and distortion
    $D = \mathbb{E}\lVert X - \hat X\rVert^2$ (summed over the $k$ coordinates),

    $$R(D) \ge \max\Bigl(0,\; h(X) - \tfrac{k}{2}\ln\bigl(2\pi e D / k\bigr)\Bigr),$$

    with equality for a Gaussian with i.i.d. coordinates and $D/k$ below the per-coordinate
    variance (Cover & Thomas, Elements of Information Theory, Thm. 10.3.3 / Problem 10.8).
    With the trace-normalized distortion of :func:`rd_curve_from_samples`, pass
    ``D * tr(Cov)`` and the entropy of the unnormalized data.

    Args:
        entropy: $h(X)$ in nats.
        distortion: $D > 0$ (may be an array; broadcasts).
        dim: $k$, the number of coordinates summed in $D$.

    Returns:
        The bound in nats (clipped at 0).

    Examples:
        >>> import math
        >>> h = 0.5 * math.log(2 * math.pi * math.e * 1.0)  # N(0, 1)
        >>> round(float(shannon_lower_bound(h, 0.25)), 6)  # = 1/2 ln(1/0.25)
        0.693147
    """
    if int(dim) < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    distortion = jnp.asarray(distortion)
    if not jnp.issubdtype(distortion.dtype, jnp.floating):
        distortion = distortion.astype(float)
    h = jnp.asarray(entropy, distortion.dtype)
    k = jnp.asarray(dim, distortion.dtype)
    bound = h - 0.5 * k * jnp.log(2 * jnp.pi * jnp.e * distortion / k)
    return jnp.maximum(bound, 0.0)
