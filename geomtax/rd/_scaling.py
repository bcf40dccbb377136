"""Intrinsic dimension (Levina–Bickel), the capacity scaling fit, and the Shannon lower bound."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._chunking import map_row_blocks
from .._custom_types import Array, Float, Int, Samples, ScalarLike
from .._errors import (
    check_bool,
    check_float,
    check_int,
    check_rank,
    check_real_array,
    finite_mask,
    is_traced,
)
from .._numerics import row_hashes, standardize_cloud
from .._status import AbstractResult, Status, finish, select

#: Extra Gram-form candidates re-ranked by exact distances in the neighbour search.
_CANDIDATE_MARGIN = 8
#: Floats per (rows, candidates, d) refinement tile.
_REFINE_FLOATS = 2**24


class IntrinsicDimensionResult(AbstractResult):
    r"""Output of :func:`intrinsic_dimension` (arrays only).

    Attributes:
        dimension: the estimate $\hat d$ = median over k of the per-k estimates (NaN unless
            ``status`` is ``ok``).
        per_k: (k_max - k_min + 1,) median over points of $\hat m_k(x)$, for k = k_min..k_max.
        num_dropped: rows left out: exact duplicate copies (one copy of each distinct row is
            kept) plus any row whose nearest distinct neighbour is at distance zero after
            standardisation.
        status: ``ok``, ``nonfinite_input`` (NaN or inf in ``x``) or ``degenerate_input``
            (no more than ``k_max`` distinct rows remain).
    """

    dimension: Float[Array, ""]
    per_k: Float[Array, " K"]
    num_dropped: Int[Array, ""]
    status: object


def _first_copies(x):
    """(n,) bool: True for the first copy of each distinct row (exact row equality)."""
    n = x.shape[0]
    h1, h2 = row_hashes(x)
    _, _, order = lax.sort((h1, h2, jnp.arange(n, dtype=jnp.int32)), num_keys=2)
    xs = x[order]
    same_prev = jnp.concatenate([jnp.zeros((1,), bool), jnp.all(xs[1:] == xs[:-1], axis=1)], axis=0)
    return jnp.zeros((n,), bool).at[order].set(~same_prev)


def _knn_distances(xs, use, k: int, block_size: int | None):
    """Sorted Euclidean distances (n, k) from every row to its k nearest other ``use`` rows.

    Candidates come from the Gram form on standardised data, then ``k + margin`` of them are
    re-ranked by exact distances (direct differences, scaled before squaring), so identical
    rows are at exactly zero and near rows lose no digits to cancellation.
    """
    n, d = xs.shape
    kc = min(n - 1, k + _CANDIDATE_MARGIN)
    sq = jnp.sum(xs * xs, axis=1)
    refs = jnp.arange(n)
    rows = max(1, _REFINE_FLOATS // max(1, kc * d))
    bs = rows if block_size is None else min(block_size, rows)
    bs = None if bs >= n else bs

    def block(xb, start, valid):
        b = xb.shape[0]
        ids = start + jnp.arange(b)
        score = sq[None, :] - 2.0 * (xb @ xs.T)
        bad = (ids[:, None] == refs[None, :]) | ~use[None, :]
        score = jnp.where(bad, jnp.inf, score)
        _, idx = lax.top_k(-score, kc)
        diff = xb[:, None, :] - xs[idx]  # (b, kc, d)
        m = jnp.max(jnp.abs(diff), axis=2, keepdims=True)
        ms = jnp.where(m > 0, m, jnp.ones_like(m))
        dist = m[..., 0] * jnp.sqrt(jnp.sum((diff / ms) ** 2, axis=2))
        dist = jnp.where(jnp.take_along_axis(bad, idx, axis=1), jnp.inf, dist)
        return jnp.sort(dist, axis=1)[:, :k]

    return map_row_blocks(block, xs, block_size=bs, remat=False)


@eqx.filter_jit
def _levina_bickel(x, k_min, k_max, block_size):
    n = x.shape[0]
    finite = finite_mask(x)
    x = jnp.where(finite, x, jnp.arange(n, dtype=x.dtype)[:, None])
    keep = _first_copies(x)
    xs = standardize_cloud(x)
    dists = _knn_distances(xs, keep, k_max, block_size)
    ok = keep & (dists[:, 0] > 0) & jnp.all(jnp.isfinite(dists), axis=1)
    log_t = jnp.log(jnp.where(ok[:, None], dists, 1.0))
    csum = jnp.cumsum(log_t, axis=1)  # sum_{j<=i} log T_j
    ks = jnp.arange(k_min, k_max + 1)
    # sum_{j=1}^{k-1} log(T_k / T_j) = (k - 1) log T_k - sum_{j=1}^{k-1} log T_j
    log_tk = log_t[:, ks - 1]
    s = (ks - 1)[None, :] * log_tk - csum[:, ks - 2]
    m_hat = jnp.where(s > 0, (ks - 1)[None, :] / jnp.where(s > 0, s, 1.0), jnp.inf)
    m_hat = jnp.where(ok[:, None], m_hat, jnp.nan)
    distinct = jnp.sum(keep)
    status = select((~finite, Status.nonfinite_input), (distinct <= k_max, Status.degenerate_input))
    good = status == Status.ok
    per_k = jnp.where(good, jnp.nanmedian(m_hat, axis=0), jnp.nan)
    return IntrinsicDimensionResult(
        dimension=jnp.where(good, jnp.median(per_k), jnp.nan),
        per_k=per_k,
        num_dropped=jnp.sum(~ok).astype(jnp.int32),
        status=status,
    )


def intrinsic_dimension(
    x: Samples,
    *,
    k_min: int = 3,
    k_max: int = 30,
    block_size: int | None = 1024,
    throw: bool = True,
) -> IntrinsicDimensionResult:
    r"""Levina–Bickel maximum-likelihood intrinsic dimension, with the reference settings.

    For each point $x$ and each $k \in \{k_{min}, \dots, k_{max}\}$ (Levina & Bickel 2004,
    eq. 8),

    $$\hat m_k(x) = \frac{k-1}{\sum_{j=1}^{k-1} \log\bigl(T_k(x)/T_j(x)\bigr)},$$

    where $T_j(x)$ is the Euclidean distance to the $j$-th nearest other point. The estimate is
    the **median over points** for each $k$, then the **median over $k$** (the reference code's
    choice; the paper averages). Single-set.

    Duplicates: exact duplicate rows are found exactly (rows sorted by an integer hash of their
    bits, then neighbours compared entry by entry) and removed, one copy of each distinct row
    being kept, so the estimate is that of the deduplicated data; ``num_dropped`` counts the
    removed copies. With no more than ``k_max`` distinct rows the result is ``degenerate_input``
    (NaN).

    Invariance: the estimate is invariant to translation, rotation and a global scale, and it
    is computed so: the cloud is centred and divided by its largest entry first
    (see docs/reference/rate-distortion.md), candidate neighbours are re-ranked by exact
    distances taken as direct differences, so offsets of 1e6 and scales of 1e-30 or 1e30 in
    float32 give the value of the unshifted data. Memory is O(block_size * n) for the
    neighbour search.

    Args:
        x: (n, D) samples of a manifold embedded in $\mathbb{R}^D$; ``n > k_max``.
        k_min: smallest neighborhood size, an int ``>= 2``.
        k_max: largest neighborhood size (static int, ``>= k_min``).
        block_size: query rows per kNN tile (a positive int; the tile is (block_size, n) plus a
            (rows, k_max + 8, D) exact re-ranking tile of at most 2**24 floats). ``None`` uses
            the largest tile that re-ranking bound allows, up to the full (n, n) matrix.
        throw: if True, a status other than ``ok`` raises :class:`geomtax.StatusError`; if False
            the result is returned with its status (under ``jit`` too).

    Returns:
        An :class:`IntrinsicDimensionResult` with ``status`` ``ok``, ``nonfinite_input`` or
        ``degenerate_input``.

    Raises:
        ValueError: on a non-(n, D) input, ``k_min < 2``, ``k_max < k_min`` or ``n <= k_max``.
        TypeError: on complex input or options of the wrong type.
        geomtax.StatusError: with ``throw=True``, a status other than ``ok``.

    Examples:
        >>> import jax
        >>> plane = jax.random.uniform(jax.random.key(0), (2000, 2))
        >>> x = jax.numpy.concatenate([plane, plane @ jax.numpy.ones((2, 3))], axis=1)
        >>> res = intrinsic_dimension(x, k_min=5, k_max=20)
        >>> bool(1.8 < float(res.dimension) < 2.2), res.status_name
        (True, 'ok')
    """
    check_rank("x", x)
    check_real_array("x", x)
    n = np.shape(x)[0]
    k_min = check_int("k_min", k_min, minimum=2)
    k_max = check_int("k_max", k_max, minimum=k_min)
    if n <= k_max:
        raise ValueError(f"need more than k_max={k_max} points; got x of shape {np.shape(x)}")
    if block_size is not None:
        block_size = check_int("block_size", block_size, minimum=1)
    throw = check_bool("throw", throw)
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    res = _levina_bickel(x, k_min, k_max, block_size)
    return finish(
        res,
        throw=throw,
        function="intrinsic_dimension",
        details={"degenerate_input": f"no more than k_max={k_max} distinct rows"},
    )


class ScalingFit(AbstractResult):
    r"""Output of :func:`capacity_scaling_fit` (arrays only).

    Attributes:
        slope: OLS slope $a$ of $\log(1/D)$ on $\log S$.
        intercept: OLS intercept $b$.
        r_squared: coefficient of determination $R^2$ (NaN when the distortions are all equal:
            there is no variance to explain, $0/0$; the slope 0 is still defined).
        stderr: standard error of the slope (``n - 2`` degrees of freedom).
        intercept_stderr: standard error of the intercept.
        predicted_slope: $2 / d_M$ (NaN when no intrinsic dimension is given).
        slope_gap: ``slope - predicted_slope`` (NaN when no intrinsic dimension is given).
        status: ``ok``, ``nonfinite_input`` (NaN or inf among the inputs) or
            ``degenerate_input`` (a capacity or distortion ``<= 0``, whose log is undefined,
            all capacities equal, so that the slope is $0/0$, or ``intrinsic_dim <= 0``); every
            value is NaN unless ``status`` is ``ok``.
    """

    slope: Float[Array, ""]
    intercept: Float[Array, ""]
    r_squared: Float[Array, ""]
    stderr: Float[Array, ""]
    intercept_stderr: Float[Array, ""]
    predicted_slope: Float[Array, ""]
    slope_gap: Float[Array, ""]
    status: object


@eqx.filter_jit
def _ols(s, dist, intrinsic_dim):
    finite = jnp.all(jnp.isfinite(s)) & jnp.all(jnp.isfinite(dist))
    positive = jnp.all(s > 0) & jnp.all(dist > 0)
    if intrinsic_dim is not None:
        finite = finite & jnp.isfinite(intrinsic_dim)
        positive = positive & (intrinsic_dim > 0)
    usable = finite & positive
    one = jnp.ones_like(s)
    log_s = jnp.log(jnp.where(usable, s, one))
    log_inv_d = -jnp.log(jnp.where(usable, dist, one))
    n = log_s.shape[0]
    xm = jnp.mean(log_s)
    ym = jnp.mean(log_inv_d)
    dx = log_s - xm
    dy = log_inv_d - ym
    sxx = jnp.sum(dx * dx)
    sxy = jnp.sum(dx * dy)
    syy = jnp.sum(dy * dy)
    # All capacities equal: every dx is exactly 0 (the mean of equal logs is that log).
    constant_s = jnp.all(log_s == log_s[0])
    status = select(
        (~finite, Status.nonfinite_input), (~positive | constant_s, Status.degenerate_input)
    )
    good = status == Status.ok
    sxx_safe = jnp.where(sxx > 0, sxx, 1.0)
    slope = sxy / sxx_safe
    intercept = ym - slope * xm
    resid = dy - slope * dx
    sse = jnp.sum(resid * resid)
    r_squared = jnp.where(syy > 0, 1.0 - sse / jnp.where(syy > 0, syy, 1.0), jnp.nan)
    stderr = jnp.sqrt(sse / (n - 2) / sxx_safe)
    intercept_stderr = stderr * jnp.sqrt(jnp.sum(log_s * log_s) / n)
    if intrinsic_dim is None:
        predicted = jnp.asarray(jnp.nan, log_s.dtype)
    else:
        predicted = 2.0 / jnp.where(usable, intrinsic_dim, 1.0)

    def g(v):
        return jnp.where(good, v, jnp.nan)

    return ScalingFit(
        slope=g(slope),
        intercept=g(intercept),
        r_squared=g(r_squared),
        stderr=g(stderr),
        intercept_stderr=g(intercept_stderr),
        predicted_slope=g(predicted),
        slope_gap=g(slope - predicted),
        status=status,
    )


def capacity_scaling_fit(
    capacities: Float[Array, " s"],
    distortions: Float[Array, " s"],
    *,
    intrinsic_dim: ScalarLike | None = None,
    throw: bool = True,
) -> ScalingFit:
    r"""Fit the capacity scaling law $D \propto S^{-2/d_M}$ by ordinary least squares.

    Fits $\log(1/D) = a \log S + b$ (natural logs; the base cancels in the slope) and compares
    the slope with the high-resolution quantization prediction $a = 2/d_M$ (Zador; see
    docs/reference/rate-distortion.md), e.g. 0.971 for the Lorenz attractor's $d_M = 2.06$.
    Same estimates as ``scipy.stats.linregress``: $R^2 = 1 - SSE/SST$, slope standard error
    $\sqrt{SSE/(s-2)/S_{xx}}$. The fit is on logs, so it is invariant to the units of $S$ and
    $D$ (only the intercept moves).

    Args:
        capacities: (s,) positive model capacities $S$ (e.g. parameter counts).
        distortions: (s,) positive distortions $D$, paired with ``capacities``.
        intrinsic_dim: manifold dimension $d_M > 0$ (e.g. from :func:`intrinsic_dimension`).
        throw: if True, a status other than ``ok`` raises :class:`geomtax.StatusError`; if False
            the result is returned with its status (under ``jit`` too).

    Returns:
        A :class:`ScalingFit` with ``status`` ``ok``, ``nonfinite_input`` (NaN or inf) or
        ``degenerate_input`` (a value ``<= 0``, all capacities equal, or ``intrinsic_dim <= 0``).

    Raises:
        ValueError: if the inputs are not paired 1-D arrays of at least 3 points, or a concrete
            ``intrinsic_dim`` is not finite and positive.
        TypeError: on complex input or options of the wrong type.
        geomtax.StatusError: with ``throw=True``, a status other than ``ok``.

    Examples:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([1e5, 1e6, 1e7])
        >>> fit = capacity_scaling_fit(s, 3.0 * s ** -0.5, intrinsic_dim=4.0)
        >>> round(float(fit.slope), 4), round(float(fit.slope_gap), 4), fit.status_name
        (0.5, 0.0, 'ok')
    """
    check_rank("capacities", capacities, 1)
    check_rank("distortions", distortions, 1)
    check_real_array("capacities", capacities)
    check_real_array("distortions", distortions)
    if np.shape(capacities) != np.shape(distortions):
        raise ValueError(
            f"capacities and distortions must be paired; got shapes {np.shape(capacities)} "
            f"and {np.shape(distortions)}"
        )
    if np.shape(capacities)[0] < 3:
        raise ValueError(
            f"need at least 3 points for a fit with a stderr; got {np.shape(capacities)}"
        )
    if intrinsic_dim is not None:
        intrinsic_dim = check_float("intrinsic_dim", intrinsic_dim, positive=True)
    throw = check_bool("throw", throw)
    s = jnp.asarray(capacities)
    dist = jnp.asarray(distortions)
    dtype = jnp.promote_types(jnp.promote_types(s.dtype, dist.dtype), jnp.float32)
    fit = _ols(
        s.astype(dtype),
        dist.astype(dtype),
        None if intrinsic_dim is None else jnp.asarray(intrinsic_dim, dtype),
    )
    return finish(
        fit,
        throw=throw,
        function="capacity_scaling_fit",
        details={
            "degenerate_input": "capacities and distortions must be positive, the capacities "
            "not all equal and intrinsic_dim positive"
        },
    )


def shannon_lower_bound(
    entropy: ScalarLike, distortion: ScalarLike, *, dim: int = 1
) -> Float[Array, "..."]:
    r"""Shannon lower bound on R(D) for total squared-error distortion, in nats.

    For a source $X \in \mathbb{R}^k$ with differential entropy $h(X)$ (nats) and distortion
    $D = \mathbb{E}\lVert X - \hat X\rVert^2$ (summed over the $k$ coordinates),

    $$R(D) \ge \max\Bigl(0,\; h(X) - \tfrac{k}{2}\ln\bigl(2\pi e D / k\bigr)\Bigr),$$

    with equality for a Gaussian with i.i.d. coordinates and $D/k$ below the per-coordinate
    variance (Cover & Thomas, Elements of Information Theory, Thm. 10.3.3 / Problem 10.8).
    With the trace-normalized distortion of :func:`rd_curve_from_samples`, pass
    ``D * tr(Cov)`` and the entropy of the unnormalized data.

    A closed-form building block, not an estimator: it returns a plain array (no status) and
    cannot fail on valid arguments. At $D = 0$ the bound is $+\infty$ (a continuous source
    needs infinite rate); traced arguments with $D < 0$ or a NaN give NaN.

    Args:
        entropy: $h(X)$ in nats (finite).
        distortion: $D \ge 0$ (may be an array; broadcasts).
        dim: $k$, the number of coordinates summed in $D$ (an int ``>= 1``).

    Returns:
        The bound in nats (clipped at 0), an array of the shape of ``distortion``.

    Raises:
        ValueError: on a concrete non-finite ``entropy`` or a concrete negative or NaN
            ``distortion``.
        TypeError: if ``dim`` is not an int.

    Examples:
        >>> import math
        >>> h = 0.5 * math.log(2 * math.pi * math.e * 1.0)  # N(0, 1)
        >>> round(float(shannon_lower_bound(h, 0.25)), 6)  # = 1/2 ln(1/0.25)
        0.693147
    """
    dim = check_int("dim", dim, minimum=1)
    if not is_traced(entropy) and not np.all(np.isfinite(np.asarray(entropy, dtype=float))):
        raise ValueError(f"entropy must be finite, got entropy={entropy!r}")
    if not is_traced(distortion):
        dv = np.asarray(distortion, dtype=float)
        if np.any(np.isnan(dv)) or np.any(dv < 0):
            raise ValueError(f"distortion must be >= 0 and not NaN, got {dv.tolist()!r}")
    distortion = jnp.asarray(distortion)
    if not jnp.issubdtype(distortion.dtype, jnp.floating):
        distortion = distortion.astype(float)
    h = jnp.asarray(entropy, distortion.dtype)
    k = jnp.asarray(dim, distortion.dtype)
    bound = h - 0.5 * k * jnp.log(2 * jnp.pi * jnp.e * distortion / k)
    bound = jnp.where(distortion < 0, jnp.nan, bound)
    return jnp.where(jnp.isnan(bound), bound, jnp.maximum(bound, 0.0))
