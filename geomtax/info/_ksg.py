r"""The Kraskov–Stögbauer–Grassberger (KSG) k-nearest-neighbour MI estimator.

The estimate, its checks (zero radii, ties, k-sensitivity) and its status. The tiled Chebyshev
neighbour search and the strict-radius counts are in `_ksg_search.py` (memory O(block_size * n),
the n x n matrix is never built).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import digamma
from jaxtyping import Array, Float

from .._custom_types import KeyArray
from .._errors import (
    check_bool,
    check_float,
    check_int,
    check_min_rows,
    check_paired,
    check_real_array,
    finite_mask,
    no_derivative,
)
from .._numerics import center
from .._status import AbstractResult, Status, finish, nan_unless_ok, select
from ._ksg_search import _ksg_1d, _ksg_1d_plan, _ksg_brute

#: Fraction of rows with a tie at their radius above which the estimate is ``implausible``.
TIE_FRACTION = 0.01
#: A row's radius counts as zero when it is at most this many jitter standard deviations.
JITTER_RADIUS = 10.0
#: The k-sensitivity check compares the estimate at ``k`` with the one at ``3 k + 1``; it is
#: skipped (``k_gap`` NaN) below ``K_CHECK_MIN_ROWS_PER_K * (3 k + 1)`` rows.
K_CHECK_MIN_ROWS_PER_K = 8
#: The k-sensitivity rule: ``implausible`` when ``I(k) - I(3k + 1)`` exceeds
#: ``K_GAP_ABS + K_GAP_REL * |I(k)| + 3 se``.
K_GAP_ABS = 0.02
K_GAP_REL = 0.05


class KSGResult(AbstractResult):
    """Result of :func:`ksg_mi` (arrays only, so a vmapped call returns a batched result).

    Attributes:
        value: the KSG estimate in nats (NaN unless ``status`` is ``ok``).
        status: a :class:`geomtax.Status`: ``ok``, ``nonfinite_input``, ``degenerate_input``
            (some row has a zero k-NN radius) or ``implausible`` (more than 1% of rows have a
            tie at their radius, or the estimate depends on k more than its accuracy allows);
            see :func:`ksg_mi`.
        raw: the estimate whatever the status, for diagnostics and for tests that compare
            estimates with each other (a calibration against a random baseline); NaN only
            where there is no number (non-finite input, a zero radius).
        zero_radius_fraction: fraction of rows whose k-th joint neighbour is at distance 0
            (k or more exact copies of the row), or, with ``jitter``, within ten jitter
            standard deviations.
        tie_fraction: fraction of the other rows with at least two further points exactly at
            their radius in the marginal spaces (the signature of rounded or discrete data).

        k_gap: ``I(k) - I(3k + 1)`` in nats on the same data (NaN when the check is off or
            there are fewer than ``8 (3k + 1)`` rows).
        k_gap_se: its standard error over rows.
    """

    value: Float[Array, ""]
    status: object
    raw: Float[Array, ""]
    zero_radius_fraction: Float[Array, ""]
    tie_fraction: Float[Array, ""]
    k_gap: Float[Array, ""]
    k_gap_se: Float[Array, ""]


def _ksg(x, y, *, k: int, block_size: int | None, radius_floor=0.0):
    """Raw KSG value (no status), zero-radius and tie fractions (traceable)."""
    n = x.shape[0]
    dt = x.dtype
    plan = _ksg_1d_plan(n, k, block_size) if x.shape[1] == 1 and y.shape[1] == 1 else None
    if plan is not None:
        terms, eps, ties = _ksg_1d(x, y, k=k, **plan)
    else:
        terms, eps, ties = _ksg_brute(x, y, k=k, block_size=block_size)
    value = (
        digamma(jnp.asarray(k, dt))
        + digamma(jnp.asarray(n, dt))
        - jnp.sum(terms) / jnp.asarray(n, dt)
    )
    # At a positive radius one point (the k-th neighbour) lies exactly at the radius in one
    # marginal space for continuous data (a second one, rarely, by a float coincidence); two or
    # more further points there are ties (rounded or discrete data).
    zero = eps <= jnp.asarray(radius_floor, dt)
    zero_fraction = jnp.mean(zero.astype(dt))
    tie_fraction = jnp.mean(((ties >= 3) & ~zero).astype(dt))
    return value, zero_fraction, tie_fraction, terms


def check_k(n: int, k: int) -> int | None:
    """The second k of the k-sensitivity check (``3 k + 1``), or None when ``n`` is too small."""
    k2 = 3 * k + 1
    return k2 if n >= K_CHECK_MIN_ROWS_PER_K * k2 else None


def is_k_sensitive(value, k_gap, k_gap_se):
    """The k-sensitivity rule: ``I(k) - I(3k+1) > 0.02 + 0.05 |I(k)| + 3 se`` (False on NaN)."""
    return k_gap > K_GAP_ABS + K_GAP_REL * jnp.abs(value) + 3.0 * k_gap_se


def _k_gap(x, y, value, terms, *, k: int, block_size: int | None):
    """``I(k) - I(k2)`` and its standard error over rows (NaN when the check is skipped).

    In high dimension at high MI KSG underestimates, and the more so the larger k (a larger
    neighbourhood averages the density over a region where it is far from constant), so a gap
    that exceeds the noise says that the estimate at ``k`` is still far from its limit too: on
    the ground-truth tasks its error was 2.3-3x the gap where the gap fired.
    """
    dt = value.dtype
    n = x.shape[0]
    k2 = check_k(n, k)
    if k2 is None:
        nan = jnp.asarray(jnp.nan, dt)
        return nan, nan
    value2, _, _, terms2 = _ksg(x, y, k=k2, block_size=block_size)
    gap = value - value2
    se = jnp.std(terms - terms2) / jnp.sqrt(jnp.asarray(n, dt))
    return gap, se


def _safe_std(x):
    """Per-column standard deviation (ddof 0) without squaring large or tiny values."""
    m = jnp.max(jnp.abs(x), axis=0, keepdims=True)
    m = jnp.where(m > 0, m, jnp.ones_like(m))
    return m[0] * jnp.std(x / m, axis=0)


@eqx.filter_jit
def _ksg_impl(x, y, key, *, k, block_size, rescale, jitter, clip_negative, k_check):
    n = x.shape[0]
    finite = finite_mask(x) & finite_mask(y)
    # Non-finite input: run on harmless distinct values (the result is flagged and NaN).
    filler = jnp.arange(n, dtype=x.dtype)[:, None]
    x = jnp.where(finite, x, filler)
    y = jnp.where(finite, y, filler)
    if rescale:
        sx, sy = _safe_std(x), _safe_std(y)
        x = x / jnp.where(sx > 0, sx, jnp.ones_like(sx))[None, :]
        y = y / jnp.where(sy > 0, sy, jnp.ones_like(sy))[None, :]
    radius_floor = jnp.zeros((), x.dtype)
    if jitter > 0:
        # Centre first (KSG is translation invariant) so that the noise is representable.
        x, y = center(x), center(y)
        nx_scale, ny_scale = jitter * _safe_std(x), jitter * _safe_std(y)
        kx, ky = jax.random.split(key)
        x = x + nx_scale[None, :] * jax.random.normal(kx, x.shape, x.dtype)
        y = y + ny_scale[None, :] * jax.random.normal(ky, y.shape, y.dtype)
        radius_floor = JITTER_RADIUS * jnp.maximum(jnp.max(nx_scale), jnp.max(ny_scale))
    value, zero_fraction, tie_fraction, terms = _ksg(
        x, y, k=k, block_size=block_size, radius_floor=radius_floor
    )
    if k_check:
        k_gap, k_gap_se = _k_gap(x, y, value, terms, k=k, block_size=block_size)
    else:
        k_gap = k_gap_se = jnp.asarray(jnp.nan, value.dtype)
    k_sensitive = is_k_sensitive(value, k_gap, k_gap_se)
    status = select(
        (~finite, Status.nonfinite_input),
        (zero_fraction > 0, Status.degenerate_input),
        (tie_fraction > TIE_FRACTION, Status.implausible),
        (k_sensitive, Status.implausible),
    )
    if clip_negative:
        value = jnp.maximum(value, 0.0)
    nan = jnp.asarray(jnp.nan, value.dtype)
    has_number = finite & (zero_fraction <= 0)
    return KSGResult(
        value=nan_unless_ok(value, status),
        status=status,
        raw=jnp.where(has_number, value, nan),
        zero_radius_fraction=jnp.where(finite, zero_fraction, nan),
        tie_fraction=jnp.where(finite, tie_fraction, nan),
        k_gap=jnp.where(finite, k_gap, nan),
        k_gap_se=jnp.where(finite, k_gap_se, nan),
    )


_NOT_DIFFERENTIABLE = (
    "ksg_mi is not differentiable: its neighbour counts are piecewise constant in the "
    "data, so every gradient would be zero; for a training signal use a neural bound "
    "(geomtax.info.mutual_information or the *_bound functions)"
)


def _as_samples(name, v):
    v = v if isinstance(v, jax.Array) else jnp.asarray(v)
    return v[:, None] if v.ndim == 1 else v


def ksg_mi(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    k: int = 3,
    block_size: int | None = 1024,
    rescale: bool = False,
    clip_negative: bool = False,
    jitter: float = 0.0,
    key: KeyArray | None = None,
    k_check: bool = True,
    throw: bool = True,
) -> KSGResult:
    r"""KSG estimator of \(I(X; Y)\) (Kraskov et al. 2004, algorithm 1, eq. 8), in nats.

    $$\hat I = \psi(k) + \psi(N) - \frac{1}{N}\sum_{i=1}^{N}
    \big[\psi(n_x(i) + 1) + \psi(n_y(i) + 1)\big]$$

    where \(\varepsilon_i\) is the Chebyshev (max-norm) distance from point i to its k-th
    nearest neighbour in the joint space \((x, y)\), with
    \(\lVert(x, y)\rVert = \max(\lVert x\rVert_\infty, \lVert y\rVert_\infty)\), and
    \(n_x(i) = \#\{j \ne i : \lVert x_j - x_i\rVert_\infty < \varepsilon_i\}\) (likewise
    \(n_y\)).

    Tie rule (type I, strict radius): points at exactly \(\varepsilon_i\) in a marginal
    space are *not* counted, and the point itself is excluded by index. This matches NPEET and
    scikit-learn's ``mutual_info_regression`` (which shrinks the radius by one ulp and subtracts
    the self match); scikit-learn additionally rescales each variable to unit variance
    (``rescale=True`` here), adds 1e-10-scale noise (``jitter=1e-10, key=...`` here) and clips at
    0 (``clip_negative=True`` here). geomtax returns the raw value by default, which may be
    slightly negative for independent variables.

    KSG assumes continuous densities. Two data problems make the formula return large numbers
    that are not estimates, and both are detected and flagged (value NaN):

    * **Zero radius** (``degenerate_input``): a row with k or more exact copies in the joint
      space has \(\varepsilon_i = 0\), counts 0 and a term \(-2\gamma\) that pushes the estimate
      towards \(\psi(N)\) (every row repeated 5 times with independent x and y gives 7.4 nats
      instead of 0). Any such row flags the result (``zero_radius_fraction > 0``). With
      ``jitter`` a radius of at most ten jitter standard deviations counts as zero: the
      neighbourhood is then made of the noise, so jitter cannot make repeated rows informative.
      Deduplicate repeated rows first.
    * **Ties at the radius** (``implausible``): for continuous data one point (the k-th
      neighbour) lies at distance \(\varepsilon_i\) in a marginal space (a second one, rarely,
      by a float coincidence); rounded or discrete data put several there, which the strict
      counts drop, biasing the estimate upwards (independent x and y, n = 5,000, rounded to
      0.01, give 0.11 nats instead of 0). More than 1% of rows with at least two further
      points exactly at their radius (``tie_fraction > 0.01``) flags the result. ``jitter``
      (Gaussian noise relative to each column's standard deviation, drawn with ``key``) breaks
      such ties; it is never added unless asked for. It must exceed the float resolution of
      the data to do anything: about 1e-5 in float32 (scikit-learn's 1e-10 is for float64).
    * **k-sensitivity** (``implausible``): in high dimension at high MI KSG underestimates, and
      more so for larger k. With ``k_check=True`` (the default) the estimate is recomputed at
      \(k_2 = 3k + 1\) on the same data (about twice the time) and the result is flagged when
      \(\hat I_k - \hat I_{k_2} > 0.02 + 0.05\,|\hat I_k| + 3\,\mathrm{se}\) (``se``: the
      standard error of the per-row difference of the two sums). On the ground-truth tasks
      (n = 5,000) the error of \(\hat I_3\) was 2.3-3x the gap where the gap fired (a 5 + 5
      dimensional Gaussian with 2.55 nats read 2.00, a 3 + 3 spiral with 1.24 read 0.94), and
      every task the rule passed was within 0.1 nats or 15 %. The check is skipped (``k_gap``
      NaN) below \(8 k_2\) rows (80 at k = 3), where KSG's noise dominates; ``k_check=False``
      turns it off.

    Scale: the estimate is unchanged when x and y are scaled by the same factor, and with
    ``rescale=True`` when each column is scaled separately (the standard deviations are taken
    without squaring large values, so data scaled by 1e-30 or 1e30 in float32 give the same
    value). Without ``rescale`` the estimate depends on the relative scale of x and y (the
    max-norm mixes them), as in the paper. float16 and bfloat16 inputs are computed in float32.

    Brute force over row blocks: O(N^2 (d_x + d_y)) time and O(block_size * N) memory, so it
    scales to tens of thousands of rows on CPU and further on an accelerator. For scalar x and y
    (N >= 256) an exact fast path is used: the k-th joint neighbour is searched near each point
    in x-major and y-major slab grids (slabs of about \(\sqrt{kN}\) points, \(\pm 32\)
    neighbours in the other coordinate), then in x- and y-order bands for rows in sparse corners,
    and each row is accepted only where the searched region provably contains its neighbour;
    the few rows left are done by brute force, min(block_size, max(64, N/256)) at a time, until
    none is left (a constant or heavily tied variable thus ends up fully brute force). The
    strict counts are exact bisections in the sorted marginals. About O(N (64 + log N)) in
    all: 2-3x faster than scikit-learn's KD-tree at N = 20,000 on a 2-core CPU
    (``benchmarks/mi.py``). Under ``vmap`` the repair loop runs as many passes as the batch
    member that needs most.
    Not differentiable: the counts are piecewise constant, so ``jax.grad`` / ``jax.jvp``
    through ``ksg_mi`` raises ``TypeError`` instead of returning zeros. Known bias: strong
    underestimation in high dimension at high MI (flagged by the k-sensitivity check; see
    docs/reference/information.md).

    Args:
        x: Samples of X, shape (n, d_x) (a 1-D array is read as (n, 1)), paired with ``y``.
        y: Samples of Y, shape (n, d_y).
        k: Number of neighbours (static int; NumPy integers accepted), 1 <= k < n.
        block_size: Query rows per tile (static); ``None`` builds the full n x n distances.
        rescale: Divide each column by its standard deviation (ddof 0) first, as scikit-learn
            does.
        clip_negative: Return ``max(0, I)``, as scikit-learn does.
        jitter: Standard deviation of Gaussian noise added to each column, relative to the
            column's standard deviation (after ``rescale``); 0 (the default) adds none.
            scikit-learn uses 1e-10 (float64); in float32 use about 1e-5. Requires ``key``.
        key: PRNG key for ``jitter``.
        k_check: Recompute at ``3k + 1`` and flag a k-sensitive estimate (see above).
        throw: If True, a status other than ``ok`` raises :class:`geomtax.StatusError` (one
            line); if False the result is returned with its status, under ``jit`` as well.

    Returns:
        A :class:`KSGResult`: ``value`` in nats (the dtype of ``x``, float32 at least), a
        ``status`` (``ok``, ``nonfinite_input``, ``degenerate_input`` or ``implausible``, see
        above) and the diagnostics ``zero_radius_fraction``, ``tie_fraction``, ``k_gap`` and
        ``k_gap_se``.

    Raises:
        ValueError: Mismatched rows, ``k`` out of range, fewer than ``k + 1`` rows, a
            non-positive ``block_size`` or a negative ``jitter``.
        TypeError: Complex or non-numeric data; ``k``/``block_size`` not an int;
            ``jitter > 0`` without ``key``; differentiation (``jax.grad``, ``jax.jvp``).
        geomtax.StatusError: With ``throw=True``, a status other than ``ok``.

    Examples:
        >>> from geomtax.info import ksg_mi
        >>> import jax.numpy as jnp
        >>> x = jnp.array([1.3, 3.7, 5.1, 2.4, 3.4])
        >>> y = jnp.array([1.5, 3.32, 5.3, 2.3, 3.3])
        >>> res = ksg_mi(x, y, k=3)
        >>> round(float(res.value), 6), res.status_name  # NPEET's README: 0.168314 bits
        (0.116667, 'ok')
    """
    x, y = _as_samples("x", x), _as_samples("y", y)
    check_paired(x, y)
    check_real_array("x", x)
    check_real_array("y", y)
    k = check_int("k", k, minimum=1)
    check_min_rows("x", x, k + 1, what=f"ksg_mi with k={k}")
    if block_size is not None:
        block_size = check_int("block_size", block_size, minimum=1)
    rescale = check_bool("rescale", rescale)
    k_check = check_bool("k_check", k_check)
    clip_negative = check_bool("clip_negative", clip_negative)
    throw = check_bool("throw", throw)
    jitter = check_float("jitter", jitter, nonnegative=True, allow_traced=False)
    if jitter > 0 and key is None:
        raise TypeError("ksg_mi: jitter > 0 needs a PRNG key (key=jax.random.key(...))")
    dtype = jnp.promote_types(jnp.promote_types(x.dtype, y.dtype), jnp.float32)
    x = no_derivative(x.astype(dtype), _NOT_DIFFERENTIABLE)
    y = no_derivative(y.astype(dtype), _NOT_DIFFERENTIABLE)
    result = _ksg_impl(
        x,
        y,
        key if jitter > 0 else None,
        k=k,
        block_size=block_size,
        rescale=rescale,
        jitter=float(jitter),
        clip_negative=clip_negative,
        k_check=k_check,
    )
    return finish(
        result,
        throw=throw,
        function="ksg_mi",
        details={
            "degenerate_input": "rows with a zero k-NN radius (k or more exact copies); "
            "deduplicate them",
            "implausible": "more than 1% of rows have ties at their radius (rounded or "
            "discrete data; pass jitter= and key= to break them), or the estimate moves "
            "with k more than its accuracy allows (k_gap; the high-dimensional bias)",
        },
    )
