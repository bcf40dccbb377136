"""From samples to a discrete rate–distortion problem (k-means quantization), then the curve."""

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, KeyArray, Samples, ScalarLike
from .._errors import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_rank,
    check_real_array,
    finite_mask,
    is_traced,
)
from .._status import Status, finish, nan_unless_ok, select, worst
from ..geometry import pairwise_distances
from ._blahut_arimoto import _DETAILS, RDCurve, rd_curve
from ._kmeans import _standardize, kmeans

RD_DISTORTIONS = ("sqeuclidean", "cosine")


def _unit(v):
    # Divide by the largest entry before squaring (no overflow at 1e30, no underflow at 1e-30).
    m = jnp.max(jnp.abs(v), axis=-1, keepdims=True)
    v = v / jnp.where(m > 0, m, 1.0)
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v / jnp.where(norm > 0, norm, 1.0)


def _check_quantize_options(x, num_codes, num_cells, codes, distortion, num_iters):
    check_rank("x", x)
    check_real_array("x", x)
    check_choice("distortion", distortion, RD_DISTORTIONS)
    n, dim = np.shape(x)
    num_codes = check_int("num_codes", num_codes, minimum=1)
    if codes is None:
        if n < num_codes:
            raise ValueError(
                f"too few samples for the number of codes: num_codes={num_codes} needs at least "
                f"that many rows, x has shape {(n, dim)}"
            )
    else:
        codes = jnp.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != dim:
            raise ValueError(f"codes must have shape (M, {dim}); got {codes.shape}")
    if num_cells is not None:
        num_cells = check_int("num_cells", num_cells)
        if not 1 <= num_cells <= n:
            raise ValueError(
                f"num_cells must be in [1, n]; got {num_cells} for x of shape {(n, dim)}"
            )
    num_iters = check_int("num_iters", num_iters, minimum=1)
    return num_codes, num_cells, codes, num_iters


def _quantize(x, key, num_codes, num_cells, codes, distortion, num_iters):
    """The discrete problem and two traced flags (non-finite input, degenerate input).

    Never raises on values: non-finite samples are replaced by harmless ones and flagged.
    """
    n = x.shape[0]
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    finite = finite_mask(x)
    x = jnp.where(finite, x, jnp.arange(n, dtype=x.dtype)[:, None])
    # Work in the centred frame scaled by the largest entry: the trace-normalised squared
    # distortion is invariant to translation and scale, the cosine one to scale.
    xs, shift, scale = _standardize(x)
    if distortion == "cosine":
        shift = jnp.zeros_like(shift)
        m = jnp.max(jnp.abs(x))
        scale = jnp.where(m > 0, m, jnp.ones_like(m))
        xs = x / scale
    degenerate = jnp.zeros((), bool)
    k_codes, k_cells = jax.random.split(key)
    if codes is None:
        fit = kmeans(xs, num_codes, key=k_codes, num_iters=num_iters, throw=False)
        degenerate = degenerate | (fit.status == Status.degenerate_input)
        codes_s = jnp.where(jnp.isfinite(fit.centroids), fit.centroids, 0.0)
    else:
        codes_s = (jnp.asarray(codes).astype(x.dtype) - shift) / scale
    if num_cells is None:
        src = xs
        p_x = jnp.full((n,), 1.0 / n, x.dtype)
    else:
        cells = kmeans(xs, num_cells, key=k_cells, num_iters=num_iters, throw=False)
        degenerate = degenerate | (cells.status == Status.degenerate_input)
        counts = jnp.bincount(cells.assignments, length=num_cells).astype(x.dtype)
        src = jnp.where(jnp.isfinite(cells.centroids), cells.centroids, 0.0)
        p_x = counts / n
    if distortion == "sqeuclidean":
        total_var = jnp.sum(jnp.var(xs, axis=0))
        degenerate = degenerate | ~(total_var > 0)
        # Tiled (never the (n, m, d) difference tensor: 10 GB at 20,000 x 32 x 4,096), in the
        # distances' own centred frame.
        sq = pairwise_distances(src, codes_s, metric="sqeuclidean")
        dm = sq / jnp.where(total_var > 0, total_var, 1.0)
    else:
        dm = jnp.clip(1.0 - _unit(src) @ _unit(codes_s).T, 0.0, 2.0)
    return p_x, dm, codes_s * scale + shift, finite, degenerate


def quantize_for_rd(
    x: Samples,
    *,
    key: KeyArray,
    num_codes: int,
    num_cells: int | None = None,
    codes: Float[Array, "m d"] | None = None,
    distortion: str = "sqeuclidean",
    num_iters: int = 100,
) -> tuple[Float[Array, " n"], Float[Array, "n m"], Float[Array, "m d"]]:
    r"""Turn samples into a discrete source pmf and a distortion matrix.

    See docs/reference/rate-distortion.md for the construction.

    Source: with ``num_cells=None`` the empirical distribution of the rows, $p(x_i) = 1/n$;
    otherwise ``num_cells`` k-means cells of ``x`` with $p$ = the cell frequencies and each
    cell represented by its centroid. Reproduction alphabet: ``num_codes`` k-means atoms $c_m$
    fitted on ``x`` (or the given ``codes``). Distortion:

    * ``"sqeuclidean"``:
      $d(x, m) = \lVert x - c_m\rVert^2 / \operatorname{tr}\operatorname{Cov}(x)$,
      so that $D \approx 1$ at $R = 0$ for any representation;
    * ``"cosine"``: $d(x, m) = 1 - \cos(x, c_m)$ (rows with zero norm give $d = 1$).

    Args:
        x: (n, d) samples.
        key: PRNG key for the k-means seeding.
        num_codes: $M$, the reproduction alphabet size; ``num_codes <= n``.
        num_cells: source cells (``None``: every row is its own symbol).
        codes: optional (M, d) reproduction points; then no k-means is run for them.
        distortion: ``"sqeuclidean"`` or ``"cosine"``.
        num_iters: Lloyd iterations for each k-means.

    Returns:
        ``(p_x, distortion_matrix, codes)`` with shapes (n_src,), (n_src, M), (M, d).

    Computed on the cloud centred and divided by its largest entry (``"cosine"``: divided
    only), so the distortion matrix is invariant to translation (``"sqeuclidean"``) and scale,
    also for offsets of 1e6 and scales of 1e+-30 in float32; the codes are returned in the
    coordinates of ``x``.

    Raises:
        ValueError: for too few samples for the requested codes or cells, shape problems,
            a constant sample (zero total variance), fewer distinct rows than ``num_codes``
            or ``num_cells``, or non-finite samples (this is a primitive returning arrays;
            :func:`rd_curve_from_samples` reports these through its status instead).

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> p, d, c = quantize_for_rd(x, key=jax.random.key(1), num_codes=4)
        >>> p.shape, d.shape, c.shape
        ((64,), (64, 4), (4, 2))
    """
    num_codes, num_cells, codes, num_iters = _check_quantize_options(
        x, num_codes, num_cells, codes, distortion, num_iters
    )
    x = check_finite("x", x)  # a primitive: non-finite samples are an error here
    p_x, dm, codes, _, degenerate = _quantize(
        x, key, num_codes, num_cells, codes, distortion, num_iters
    )
    if not is_traced(degenerate) and bool(degenerate):
        raise ValueError(
            "x is degenerate for quantize_for_rd: zero total variance (the normalized "
            "distortion is undefined) or fewer distinct rows than num_codes / num_cells"
        )
    return p_x, dm, codes


def rd_curve_from_samples(
    x: Samples,
    *,
    key: KeyArray,
    num_codes: int,
    betas: Float[Array, " b"],
    num_cells: int | None = None,
    codes: Float[Array, "m d"] | None = None,
    distortion: str = "sqeuclidean",
    max_steps: int = 10_000,
    tol: ScalarLike | None = None,
    throw: bool = True,
    beta_batch_size: int | None = 8,
    num_iters: int = 100,
) -> RDCurve:
    r"""R(D) curve of a sample cloud: :func:`quantize_for_rd` then :func:`rd_curve`.

    Discretization caveats: the result is the rate–distortion function of the *discretized*
    problem. Restricting the reproduction alphabet to ``num_codes`` atoms can only raise
    $R(D)$, so the curve is an upper bound on the continuous source's curve at distortions
    well above the quantization error of the atoms, and it cannot go below the distortion of
    the best ``num_codes``-point quantizer. With the empirical source (``num_cells=None``) the
    rate is capped by $\ln n$, so for large $\beta$ it measures the sample size, not the
    geometry. Distortions are normalized by $\operatorname{tr}\operatorname{Cov}(x)$
    (``"sqeuclidean"``), which makes curves of different representations comparable.

    Args:
        x: (n, d) samples.
        key: PRNG key for the k-means quantization.
        num_codes: reproduction alphabet size $M \le n$.
        betas: (b,) positive slope magnitudes.
        num_cells: k-means source cells (``None``: every row, $p = 1/n$).
        codes: optional (M, d) reproduction points.
        distortion: ``"sqeuclidean"`` (trace-normalized) or ``"cosine"``.
        max_steps: BA iteration cap per point.
        tol: BA gap tolerance in nats.
        throw: if True, a point whose status is not ``ok`` raises
            :class:`geomtax.StatusError` (one line); if False the curve is returned with a
            status per point, under ``jit`` too.
        beta_batch_size: see :func:`rd_curve`.
        num_iters: Lloyd iterations for each k-means.

    Returns:
        An :class:`RDCurve` (nats; distortion normalized as above) with a ``status`` per
        point: as :func:`rd_curve`, plus ``nonfinite_input`` (NaN or inf in ``x``) and
        ``degenerate_input`` (zero total variance, or fewer distinct rows than ``num_codes``
        or ``num_cells``) on every point, with NaN values.

    Raises:
        ValueError: for invalid shapes and options, as :func:`quantize_for_rd` and
            :func:`rd_curve` (before any work).
        geomtax.StatusError: with ``throw=True``, a point whose status is not ``ok``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> curve = rd_curve_from_samples(
        ...     x, key=jax.random.key(1), num_codes=4, betas=jnp.array([1.0, 4.0]), tol=1e-3
        ... )
        >>> bool(curve.rate[1] > curve.rate[0]), bool(curve.distortion[1] < curve.distortion[0])
        (True, True)
    """
    num_codes, num_cells, codes, num_iters = _check_quantize_options(
        x, num_codes, num_cells, codes, distortion, num_iters
    )
    throw = check_bool("throw", throw)
    p_x, dm, _, finite, degenerate = _quantize(
        x, key, num_codes, num_cells, codes, distortion, num_iters
    )
    curve = rd_curve(
        p_x,
        dm,
        betas=betas,
        max_steps=max_steps,
        tol=tol,
        throw=False,
        beta_batch_size=beta_batch_size,
    )
    data = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    status = jax.vmap(lambda point: worst(data, point))(curve.status)  # where() is scalar-only
    keep = ("not_converged",)
    curve = RDCurve(
        beta=curve.beta,
        rate=nan_unless_ok(curve.rate, status, keep),
        distortion=nan_unless_ok(curve.distortion, status, keep),
        rate_upper=nan_unless_ok(curve.rate_upper, status, keep),
        rate_lower=nan_unless_ok(curve.rate_lower, status, keep),
        gap=nan_unless_ok(curve.gap, status, keep),
        num_steps=curve.num_steps,
        converged=curve.converged & (data == Status.ok),
        monotone=curve.monotone,
        convex=curve.convex,
        status=status,
    )
    details = dict(_DETAILS)
    details["degenerate_input"] = (
        "zero total variance, or fewer distinct rows than num_codes / num_cells"
    )
    return finish(curve, throw=throw, function="rd_curve_from_samples", details=details)
