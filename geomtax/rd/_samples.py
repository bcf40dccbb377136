"""From samples to a discrete rate–distortion problem (k-means quantization), then the curve."""

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, KeyArray, Samples, ScalarLike
from .._errors import check_choice, check_finite, check_floating, check_rank, is_traced
from ._blahut_arimoto import RDCurve, rd_curve
from ._kmeans import kmeans

RD_DISTORTIONS = ("sqeuclidean", "cosine")


def _unit(v):
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v / jnp.where(norm > 0, norm, 1.0)


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
    r"""Turn samples into a discrete source pmf and a distortion matrix (REFERENCE 5.1).

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

    Raises:
        ValueError: for too few samples for the requested codes or cells, shape problems,
            a constant sample (zero total variance) or non-finite samples.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> p, d, c = quantize_for_rd(x, key=jax.random.key(1), num_codes=4)
        >>> p.shape, d.shape, c.shape
        ((64,), (64, 4), (4, 2))
    """
    check_rank("x", x)
    check_floating("x", x)
    check_choice("distortion", distortion, RD_DISTORTIONS)
    n, dim = np.shape(x)
    if codes is None:
        if int(num_codes) < 1 or n < int(num_codes):
            raise ValueError(
                f"too few samples for the number of codes: num_codes={num_codes} needs at least "
                f"that many rows, x has shape {(n, dim)}"
            )
    else:
        codes = jnp.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != dim:
            raise ValueError(f"codes must have shape (M, {dim}); got {codes.shape}")
    if num_cells is not None and not 1 <= int(num_cells) <= n:
        raise ValueError(f"num_cells must be in [1, n]; got {num_cells} for x of shape {(n, dim)}")
    x = jnp.asarray(check_finite("x", x))
    k_codes, k_cells = jax.random.split(key)
    if codes is None:
        codes = kmeans(x, int(num_codes), key=k_codes, num_iters=num_iters).centroids
    if num_cells is None:
        src = x
        p_x = jnp.full((n,), 1.0 / n, x.dtype)
    else:
        cells = kmeans(x, int(num_cells), key=k_cells, num_iters=num_iters)
        counts = jnp.bincount(cells.assignments, length=int(num_cells)).astype(x.dtype)
        src = cells.centroids
        p_x = counts / n
    if distortion == "sqeuclidean":
        total_var = jnp.sum(jnp.var(x, axis=0))
        if not is_traced(total_var) and float(total_var) <= 0:
            raise ValueError("x has zero total variance; the normalized distortion is undefined")
        sq = jnp.sum((src[:, None, :] - codes[None, :, :]) ** 2, axis=-1)
        dm = sq / total_var
    else:
        dm = jnp.clip(1.0 - _unit(src) @ _unit(codes).T, 0.0, 2.0)
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
        throw: raise if a point did not converge.
        beta_batch_size: see :func:`rd_curve`.
        num_iters: Lloyd iterations for each k-means.

    Returns:
        An :class:`RDCurve` (nats; distortion normalized as above).

    Raises:
        ValueError: as :func:`quantize_for_rd` and :func:`rd_curve`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (64, 2))
        >>> curve = rd_curve_from_samples(
        ...     x, key=jax.random.key(1), num_codes=4, betas=jnp.array([1.0, 4.0]), tol=1e-3
        ... )
        >>> bool(curve.rate[1] > curve.rate[0]), bool(curve.distortion[1] < curve.distortion[0])
        (True, True)
    """
    p_x, dm, _ = quantize_for_rd(
        x,
        key=key,
        num_codes=num_codes,
        num_cells=num_cells,
        codes=codes,
        distortion=distortion,
        num_iters=num_iters,
    )
    return rd_curve(
        p_x,
        dm,
        betas=betas,
        max_steps=max_steps,
        tol=tol,
        throw=throw,
        beta_batch_size=beta_batch_size,
    )
