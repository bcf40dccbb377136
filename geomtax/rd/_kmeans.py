"""General k-means in JAX: k-means++ seeding and Lloyd iterations under ``lax.while_loop``."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._chunking import map_row_blocks
from .._custom_types import Array, Bool, Float, Int, KeyArray, Samples
from .._errors import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_rank,
    check_real_array,
    finite_mask,
)
from .._status import AbstractResult, Status, finish, select
from ._scaling import _first_copies

KMEANS_INITS = ("kmeans++", "random")


class KMeansResult(AbstractResult):
    """Output of :func:`kmeans` (arrays only, so a vmapped call returns a batched result).

    Attributes:
        centroids: (K, d) cluster centres, in the coordinates of ``x``.
        assignments: (n,) index of the nearest centroid of each row (ties -> lower index).
        inertia: sum over rows of the squared Euclidean distance to the assigned centroid, in
            squared units of ``x`` (it overflows to inf where that number is not
            representable, e.g. float32 data of size 1e20; ``relative_inertia`` never does).
        relative_inertia: ``inertia`` divided by the total sum of squares about the mean
            (scale- and translation-free, in [0, 1]; NaN for constant data).
        num_iters: number of Lloyd iterations performed.
        converged: whether the centroid shift fell below the tolerance before ``num_iters``.
        status: ``ok``; ``not_converged`` (``num_iters`` reached first: the values are kept, a
            valid clustering that is not yet a fixed point); ``nonfinite_input`` (NaN or inf
            in ``x``) or ``degenerate_input`` (fewer distinct rows than ``num_clusters``), with
            centroids and inertias NaN.
    """

    centroids: Float[Array, "K d"]
    assignments: Int[Array, " n"]
    inertia: Float[Array, ""]
    relative_inertia: Float[Array, ""]
    num_iters: Int[Array, ""]
    converged: Bool[Array, ""]
    status: object


def _sq_norms(a):
    return jnp.sum(a * a, axis=-1)


def _assign(x, centroids, *, block_size):
    """Nearest centroid (squared Euclidean) of every row, tiled over rows."""
    c_norm = _sq_norms(centroids)

    def tile(xb, start, valid):
        # ||x||^2 is constant per row, so the argmin only needs -2 x.c + ||c||^2.
        scores = c_norm[None, :] - 2.0 * (xb @ centroids.T)
        return jnp.argmin(scores, axis=1).astype(jnp.int32)

    return map_row_blocks(tile, x, block_size=block_size, remat=False)


def _exact_inertia(x, centroids, assignments):
    return jnp.sum(_sq_norms(x - centroids[assignments]))


def _update(x, assignments, old_centroids):
    k = old_centroids.shape[0]
    sums = jax.ops.segment_sum(x, assignments, num_segments=k)
    counts = jax.ops.segment_sum(jnp.ones(x.shape[0], x.dtype), assignments, num_segments=k)
    # An empty cluster keeps its previous centre (it can be re-populated later).
    safe = jnp.where(counts > 0, counts, jnp.ones_like(counts))
    return jnp.where((counts > 0)[:, None], sums / safe[:, None], old_centroids)


def _kmeans_plus_plus(x, num_clusters: int, key):
    """Greedy k-means++ (Arthur & Vassilvitskii 2007), 2 + floor(ln K) local trials per centre.

    Returns the (K, d) seeds and a flag that is True when some step found every remaining point
    at distance 0 from the chosen centres (fewer distinct points than K).
    """
    n, d = x.shape
    num_trials = 2 + int(math.log(num_clusters))
    k0, kloop = jax.random.split(key)
    first = jax.random.randint(k0, (), 0, n)
    c0 = x[first]
    min_d2 = _sq_norms(x - c0[None, :])
    centroids = jnp.zeros((num_clusters, d), x.dtype).at[0].set(c0)
    x_norm = _sq_norms(x)

    def body(i, carry):
        centroids, min_d2, degenerate = carry
        total = jnp.sum(min_d2)
        degenerate = degenerate | (total <= 0)
        logits = jnp.where(min_d2 > 0, jnp.log(jnp.where(min_d2 > 0, min_d2, 1.0)), -jnp.inf)
        # If every distance is zero, fall back to uniform sampling (flagged above).
        logits = jnp.where(total > 0, logits, jnp.zeros_like(logits))
        cand = jax.random.categorical(jax.random.fold_in(kloop, i), logits, shape=(num_trials,))
        cx = x[cand]  # (t, d)
        d2 = jnp.maximum(x_norm[:, None] - 2.0 * (x @ cx.T) + _sq_norms(cx)[None, :], 0.0)
        new_min = jnp.minimum(min_d2[:, None], d2)  # (n, t)
        best = jnp.argmin(jnp.sum(new_min, axis=0))
        centroids = centroids.at[i].set(cx[best])
        return centroids, new_min[:, best], degenerate

    centroids, _, degenerate = lax.fori_loop(
        1, num_clusters, body, (centroids, min_d2, jnp.asarray(False))
    )
    return centroids, degenerate


def _standardize(x):
    """``(xs, shift, scale)`` with ``x = xs * scale + shift`` and ``max |xs| = 1`` (centred)."""
    x0 = x[:1]
    xc = x - x0
    mu = jnp.mean(xc, axis=0, keepdims=True)
    xc = xc - mu
    m = jnp.max(jnp.abs(xc))
    m = jnp.where(m > 0, m, jnp.ones_like(m))
    return xc / m, x0 + mu, m


@eqx.filter_jit
def _kmeans_core(x, init_centroids, key, num_clusters, num_iters, tol, init, block_size):
    n = x.shape[0]
    finite = finite_mask(x)
    x = jnp.where(finite, x, jnp.arange(n, dtype=x.dtype)[:, None])
    distinct = jnp.sum(_first_copies(x))
    # Computed on the centred cloud divided by its largest entry: translation- and
    # scale-equivariant by construction (offsets of 1e6 and scales of 1e+-30 in float32).
    x, shift, scale = _standardize(x)
    if init == "kmeans++":
        centroids, _ = _kmeans_plus_plus(x, num_clusters, key)
    elif init == "random":
        idx = jax.random.choice(key, x.shape[0], (num_clusters,), replace=False)
        centroids = x[idx]
    else:  # explicit initial centroids, in the same standardised frame
        centroids = (init_centroids.astype(x.dtype) - shift) / scale
    # scikit-learn's convention: tolerance relative to the mean per-feature variance.
    threshold = jnp.asarray(tol, x.dtype) * jnp.mean(jnp.var(x, axis=0))

    def cond(state):
        _, i, done = state
        return (i < num_iters) & ~done

    def body(state):
        c, i, _ = state
        a = _assign(x, c, block_size=block_size)
        c_new = _update(x, a, c)
        shift_sq = jnp.sum(_sq_norms(c_new - c))
        return c_new, i + 1, shift_sq <= threshold

    centroids, iters, converged = lax.while_loop(
        cond, body, (centroids, jnp.asarray(0, jnp.int32), jnp.asarray(False))
    )
    assignments = _assign(x, centroids, block_size=block_size)
    inertia_std = _exact_inertia(x, centroids, assignments)
    total = jnp.sum(_sq_norms(x))
    status = select(
        (~finite, Status.nonfinite_input),
        (distinct < num_clusters, Status.degenerate_input),
        (~converged, Status.not_converged),
    )
    good = (status == Status.ok) | (status == Status.not_converged)
    nan = jnp.asarray(jnp.nan, x.dtype)
    return KMeansResult(
        centroids=jnp.where(good, centroids * scale + shift, nan),
        assignments=assignments,
        inertia=jnp.where(good, inertia_std * scale * scale, nan),
        relative_inertia=jnp.where(good & (total > 0), inertia_std / total, nan),
        num_iters=iters,
        converged=converged,
        status=status,
    )


def kmeans(
    x: Samples,
    num_clusters: int,
    *,
    key: KeyArray,
    num_iters: int = 100,
    tol: float = 1e-4,
    init: str | Float[Array, "K d"] = "kmeans++",
    block_size: int | None = 4096,
    throw: bool = True,
) -> KMeansResult:
    r"""K-means clustering: k-means++ seeding followed by Lloyd iterations.

    Minimizes the inertia (within-cluster sum of squares)

    $$J(c, a) = \sum_{i=1}^{n} \lVert x_i - c_{a_i} \rVert_2^2$$

    by alternating assignment ($a_i = \arg\min_k \lVert x_i - c_k\rVert^2$, ties to the lower
    index) and update ($c_k$ = mean of its rows; an empty cluster keeps its previous centre).
    Seeding is greedy k-means++ (Arthur & Vassilvitskii 2007) with $2 + \lfloor\ln K\rfloor$
    candidate draws per centre, as in scikit-learn. Iteration stops when the total squared
    centroid shift is at most ``tol * mean(var(x, axis=0))`` (scikit-learn's relative
    tolerance) or after ``num_iters`` Lloyd steps. Single-set; one run (vmap over keys for
    restarts and keep the lowest inertia).

    The work is done on the cloud centred and divided by its largest entry, and the centroids
    are mapped back, so the clustering is translation- and scale-equivariant in float32 (data
    offset by 1e6 or scaled by 1e-30 or 1e30 give the same assignments).

    Memory is O(block_size * K) for the assignment step (the (n, K) distance matrix is never
    built when ``block_size`` is an integer) plus O(n * (2 + ln K)) during seeding.

    Args:
        x: (n, d) floating samples.
        num_clusters: K, the number of clusters (static); ``1 <= K <= n``.
        key: PRNG key for the seeding (required; no default).
        num_iters: maximum number of Lloyd iterations (static).
        tol: relative tolerance on the squared centroid shift.
        init: ``"kmeans++"`` (default), ``"random"`` (K distinct rows), or a (K, d) array of
            initial centroids.
        block_size: rows per assignment tile; ``None`` materializes the (n, K) matrix.
        throw: if True, a status other than ``ok`` raises :class:`geomtax.StatusError` (one
            line); if False the result is returned with its status, under ``jit`` too.

    Returns:
        A :class:`KMeansResult` with centroids (K, d), assignments (n,), inertia (squared
        units of ``x``), relative_inertia, num_iters, converged and a ``status`` (``ok``,
        ``not_converged``, ``nonfinite_input`` or ``degenerate_input``; see
        :class:`KMeansResult`).

    Raises:
        ValueError: if ``x`` is not (n, d), ``K`` is not in ``[1, n]`` or the options are
            invalid (before any compilation).
        TypeError: on complex input or options of the wrong type.
        geomtax.StatusError: with ``throw=True``, a status other than ``ok``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.array([[0.0], [0.1], [10.0], [10.2]])
        >>> res = kmeans(x, 2, key=jax.random.key(0))
        >>> sorted(round(c, 3) for c in res.centroids[:, 0].tolist())
        [0.05, 10.1]
        >>> round(float(res.inertia), 4)
        0.025
    """
    check_rank("x", x)
    check_real_array("x", x)
    n, d = np.shape(x)
    num_clusters = check_int("num_clusters", num_clusters)
    if not 1 <= num_clusters <= n:
        raise ValueError(
            f"num_clusters must satisfy 1 <= K <= n; got K={num_clusters} for x of shape {(n, d)}"
        )
    num_iters = check_int("num_iters", num_iters, minimum=1)
    tol = check_float("tol", tol, nonnegative=True)
    if block_size is not None:
        block_size = check_int("block_size", block_size, minimum=1)
    throw = check_bool("throw", throw)
    init_centroids = None
    if isinstance(init, str):
        check_choice("init", init, KMEANS_INITS)
    else:
        init_centroids = jnp.asarray(init)
        if init_centroids.shape != (num_clusters, d):
            raise ValueError(
                f"init centroids must have shape (K, d) = {(num_clusters, d)}, got "
                f"{init_centroids.shape}"
            )
        init = "given"
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    result = _kmeans_core(x, init_centroids, key, num_clusters, num_iters, tol, init, block_size)
    return finish(
        result,
        throw=throw,
        function="kmeans",
        details={
            "degenerate_input": "fewer distinct rows in x than num_clusters; reduce it",
            "not_converged": "raise num_iters or tol",
        },
    )
