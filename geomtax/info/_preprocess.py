r"""Preprocessing for MI estimation: z-scoring, PCA and the rank-Gaussian (copula) transform.

All three are jittable and vmappable, and safe for data whose entries are around 1e30 or
1e-30 in float32: every column is centred (two passes, so a large common offset cancels first)
and divided by its largest absolute centred entry *before* anything is squared, so no variance
overflows or underflows.

Mutual information is invariant under any invertible map of each variable, in particular under
a strictly increasing map of each column, so both `zscore` and `copula` leave the true MI
unchanged; they only change how hard it is for an estimator to find it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri
from jaxtyping import Array, Bool, Float, Int

from .._errors import check_bool, check_int, check_min_rows, check_rank, check_real_array
from .._numerics import center, is_constant
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ..geometry._checks import as_float

__all__ = ["PCAResult", "ZScoreResult", "copula", "pca", "zscore"]


def _scaled_columns(x):
    """``(u, scale)``: centred columns divided by their max |entry| (1 for constant columns)."""
    xc = center(x)
    scale = jnp.max(jnp.abs(xc), axis=0)
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    return xc / scale[None, :], scale


def standardize_columns(x):
    """``(z, mean, std, constant)``: the overflow-safe z-score of every column (traceable).

    Constant columns (every entry equal; an exact, scale-free test) become zeros.
    """
    u, scale = _scaled_columns(x)
    constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
    su = jnp.std(u, axis=0)
    safe = jnp.where(constant | (su == 0), jnp.ones_like(su), su)
    z = jnp.where(constant[None, :], jnp.zeros_like(u), u / safe[None, :])
    x0 = x[0]
    mean = x0 + jnp.mean(x - x0[None, :], axis=0)
    std = jnp.where(constant, jnp.zeros_like(su), su * scale)
    return z, mean, std, constant


def copula_columns(x):
    r"""Rank-Gaussianise every column: \(\Phi^{-1}(r_{ij} / (n + 1))\), ties averaged (traceable).

    ``r`` is the 1-based rank of ``x[i, j]`` in column j; tied entries share their average rank,
    so tied values stay tied (no order is invented). Constant columns become zeros.
    """
    n = x.shape[0]

    def one(col):
        s = jnp.sort(col)
        lo = jnp.searchsorted(s, col, side="left")
        hi = jnp.searchsorted(s, col, side="right")
        rank = 0.5 * (lo + hi + 1).astype(x.dtype)  # average of ranks lo+1 .. hi
        return ndtri(rank / (n + 1))

    g = jax.vmap(one, in_axes=1, out_axes=1)(x)
    constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
    return jnp.where(constant[None, :], jnp.zeros_like(g), g)


class ZScoreResult(AbstractResult):
    """Output of `zscore`; arrays only.

    Attributes:
        values: Z-scored features, shape (n, d); constant features are set to 0 (NaN everywhere
            unless ``status`` is ok).
        mean: Per-feature mean, shape (d,).
        std: Per-feature standard deviation (ddof 0), shape (d,).
        constant: True for features whose entries are all equal (dropped), shape (d,).
        num_constant: Number of constant features.
        status: ``ok``; ``nonfinite_input`` (a NaN or inf entry); ``degenerate_input`` (every
            feature is constant: nothing is left to standardise).
    """

    values: Float[Array, "n d"]
    mean: Float[Array, " d"]
    std: Float[Array, " d"]
    constant: Bool[Array, " d"]
    num_constant: Int[Array, ""]
    status: object


@eqx.filter_jit
def _zscore_impl(x):
    finite = jnp.all(jnp.isfinite(x))
    z, mean, std, constant = standardize_columns(x)
    status = select((~finite, Status.nonfinite_input), (jnp.all(constant), Status.degenerate_input))
    return ZScoreResult(
        values=nan_unless_ok(z, status),
        mean=mean,
        std=std,
        constant=constant,
        num_constant=jnp.sum(constant).astype(jnp.int32),
        status=status,
    )


def _prepare(name, x, minimum, what):
    check_rank(name, x, 2)
    check_real_array(name, x)
    check_min_rows(name, x, minimum, what=what)
    return as_float(name, x)


def zscore(x: Float[Array, "n d"], *, throw: bool = True) -> ZScoreResult:
    r"""Standardize each feature to mean 0 and standard deviation 1 (ddof 0).

    $$z_{ij} = (x_{ij} - \bar x_j) / s_j$$

    computed as \(u_{ij} = (x_{ij} - \bar x_j) / \max_i |x_{ij} - \bar x_j|\), then
    \(z_{ij} = u_{ij} / \mathrm{sd}(u_{\cdot j})\), so nothing large or tiny is squared: data
    around 1e30 or 1e-30 in float32 standardise correctly. A constant feature (every entry
    equal, an exact test) carries no information; it is dropped and flagged in ``constant``. To
    keep shapes static under ``jit``/``vmap`` a dropped feature is returned as a column of zeros,
    which is equivalent to removing it for every estimator in `geomtax.info` (a zero column
    changes no Chebyshev distance and feeds nothing to a critic). On the host,
    ``r.values[:, ~r.constant]`` removes them physically.

    Status codes: ``ok``; ``nonfinite_input`` (NaN or inf in ``x``); ``degenerate_input``
    (every feature is constant).

    Args:
        x: Samples, shape (n, d), n >= 2.
        throw: Raise `geomtax.StatusError` on a status other than ``ok`` (``False``: return
            the result with its status).

    Returns:
        A `ZScoreResult`.

    Raises:
        ValueError: ``x`` not rank 2 or fewer than 2 rows.
        TypeError: Complex, boolean or non-numeric ``x``.
        geomtax.StatusError: With ``throw=True``, when the status is not ``ok``.

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
    throw = check_bool("throw", throw)
    x = _prepare("x", x, 2, "zscore")
    return finish(_zscore_impl(x), throw=throw, function="zscore")


def copula(x: Float[Array, "n d"], *, throw: bool = True) -> Estimate:
    r"""Marginal rank-Gaussianisation: \(\Phi^{-1}(\mathrm{rank}_{ij} / (n + 1))\) per column.

    Every column is replaced by standard-normal quantiles of its ranks (ties share their average
    rank, so tied values stay tied). The map is strictly increasing in each column, so mutual
    information is unchanged, while heavy tails, skew and scale disappear: it is the default
    preprocessing of `mutual_information`. Constant columns become zeros.

    Status codes: ``ok``; ``nonfinite_input`` (NaN or inf in ``x``); ``degenerate_input``
    (every column constant).

    Args:
        x: Samples, shape (n, d), n >= 2.
        throw: Raise `geomtax.StatusError` on a status other than ``ok``.

    Returns:
        A `geomtax.Estimate` whose ``value`` is the transformed array, shape (n, d).

    Examples:
        >>> from geomtax.info import copula
        >>> import jax.numpy as jnp
        >>> copula(jnp.array([[1.0], [1e30], [-3.0]])).value.ravel()
        Array([ 0.       ,  0.6744898, -0.6744898], dtype=float32)
    """
    throw = check_bool("throw", throw)
    x = _prepare("x", x, 2, "copula")

    @eqx.filter_jit
    def impl(x):
        finite = jnp.all(jnp.isfinite(x))
        status = select(
            (~finite, Status.nonfinite_input), (is_constant(x), Status.degenerate_input)
        )
        return Estimate(value=nan_unless_ok(copula_columns(x), status), status=status)

    return finish(impl(x), throw=throw, function="copula")


class PCAResult(AbstractResult):
    """Output of `pca`; arrays only.

    Attributes:
        scores: Projections of the centred samples, shape (n, m), in the input's units.
        components: Principal axes as columns, shape (d, m), unit norm, each oriented so its
            largest-magnitude loading is positive.
        explained_variance: Variance of each score column (ddof 1, as scikit-learn), shape (m,),
            in squared input units (inf only where that variance exceeds the dtype's range).
        explained_variance_ratio: ``explained_variance`` over the total variance, shape (m,)
            (scale-free, so finite for any input).
        status: ``ok``; ``nonfinite_input``; ``degenerate_input`` (every row identical: no axis
            is defined). Fields are NaN unless ``status`` is ok.
    """

    scores: Float[Array, "n m"]
    components: Float[Array, "d m"]
    explained_variance: Float[Array, " m"]
    explained_variance_ratio: Float[Array, " m"]
    status: object


@eqx.filter_jit
def _pca_impl(x, *, m: int):
    n = x.shape[0]
    finite = jnp.all(jnp.isfinite(x))
    constant = is_constant(x)
    xc = center(x)
    scale = jnp.max(jnp.abs(xc))
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    u = xc / scale  # |u| <= 1: the SVD squares nothing large or tiny
    u = jnp.where(finite, u, jnp.zeros_like(u))
    _, s, vt = jnp.linalg.svd(u, full_matrices=False)
    v = vt[:m].T  # (d, m)
    idx = jnp.argmax(jnp.abs(v), axis=0)
    signs = jnp.sign(v[idx, jnp.arange(m)])
    v = v * jnp.where(signs == 0, 1.0, signs)[None, :]
    scores = (u @ v) * scale
    var_u = s[:m] ** 2 / max(n - 1, 1)
    total = jnp.sum(s**2)
    ratio = s[:m] ** 2 / jnp.where(total > 0, total, 1.0)
    status = select((~finite, Status.nonfinite_input), (constant, Status.degenerate_input))
    return PCAResult(
        scores=nan_unless_ok(scores, status),
        components=nan_unless_ok(v, status),
        explained_variance=nan_unless_ok(var_u * scale * scale, status),
        explained_variance_ratio=nan_unless_ok(ratio, status),
        status=status,
    )


def pca(x: Float[Array, "n d"], *, num_components: int, throw: bool = True) -> PCAResult:
    r"""Project centred samples onto their first ``num_components`` principal components.

    With the thin SVD \(X - \bar X = U S V^\top\), the scores are
    \((X - \bar X) V_{:, :m} = U_{:, :m} S_{:m}\). The SVD runs on the centred data divided by
    its largest absolute entry, so inputs around 1e30 or 1e-30 in float32 neither overflow nor
    underflow. Sign convention (as scikit-learn's ``svd_flip``): each component is oriented so
    that its largest-magnitude loading is positive, so the output is deterministic. Components
    beyond the rank of the data have score 0.

    Status codes: ``ok``; ``nonfinite_input`` (NaN or inf in ``x``); ``degenerate_input`` (every
    row identical).

    Args:
        x: Samples, shape (n, d), n >= 2.
        num_components: Number of components m (static), 1 <= m <= min(n, d).
        throw: Raise `geomtax.StatusError` on a status other than ``ok``.

    Returns:
        A `PCAResult` (``.scores`` has shape (n, m); column variances decrease).

    Raises:
        ValueError: ``x`` not rank 2 or ``num_components`` out of range.
        TypeError: Complex or non-numeric ``x``; non-integer ``num_components``.
        geomtax.StatusError: With ``throw=True``, when the status is not ``ok``.

    Examples:
        >>> from geomtax.info import pca, zscore
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 0.0], [2.0, 0.1], [4.0, -0.1]])
        >>> pca(x, num_components=1).scores.shape
        (3, 1)
    """
    throw = check_bool("throw", throw)
    x = _prepare("x", x, 2, "pca")
    n, d = x.shape
    m = check_int("num_components", num_components, minimum=1, maximum=min(n, d))
    return finish(_pca_impl(x, m=m), throw=throw, function="pca")
