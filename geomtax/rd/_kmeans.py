"""General k-means in JAX: k-means++ seeding and Lloyd iterations under ``lax.while_loop``."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._chunking import map_row_blocks
from .._custom_types import Array, Bool, Float, Int, KeyArray, Samples
from .._errors import check_choice, check_finite, check_floating, check_rank, is_traced

KMEANS_INITS = ("kmeans++", "random")


class KMeansResult(eqx.Module):
    """Output of :func:`kmeans` (arrays only, so a vmapped call returns a batched result).

    Attributes:
        centroids: (K, d) cluster centres.
        assignments: (n,) index of the nearest centroid of each row (ties -> lower index).
        inertia: sum over rows of the squared Euclidean distance to the assigned centroid.
        num_iters: number of Lloyd iterations performed.
        converged: whether the centroid shift fell below the tolerance before ``num_iters``.
    """

    centroids: Float[Array, "K d"]
    assignments: Int[Array, " n"]
    inertia: Float[Array, ""]
    num_iters: Int[Array, ""]
    converged: Bool[Array, ""]


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


@eqx.filter_jit
def _kmeans_core(x, init_centroids, key, num_clusters, num_iters, tol, init, block_size):
    if init == "kmeans++":
        centroids, degenerate = _kmeans_plus_plus(x, num_clusters, key)
    elif init == "random":
        idx = jax.random.choice(key, x.shape[0], (num_clusters,), replace=False)
        centroids, degenerate = x[idx], jnp.asarray(False)
    else:  # explicit initial centroids
        centroids, degenerate = init_centroids.astype(x.dtype), jnp.asarray(False)
    # scikit-learn's convention: tolerance relative to the mean per-feature variance.
    threshold = jnp.asarray(tol, x.dtype) * jnp.mean(jnp.var(x, axis=0))

    def cond(state):
        _, i, done = state
        return (i < num_iters) & ~done

    def body(state):
        c, i, _ = state
        a = _assign(x, c, block_size=block_size)
        c_new = _update(x, a, c)
        shift = jnp.sum(_sq_norms(c_new - c))
        return c_new, i + 1, shift <= threshold

    centroids, iters, converged = lax.while_loop(
        cond, body, (centroids, jnp.asarray(0, jnp.int32), jnp.asarray(False))
    )
    assignments = _assign(x, centroids, block_size=block_size)
    inertia = _exact_inertia(x, centroids, assignments)
    return KMeansResult(centroids, assignments, inertia, iters, converged), degenerate


def kmeans(
    x: Samples,
    num_clusters: int,
    *,
    key: KeyArray,
    num_iters: int = 100,
    tol: float = 1e-4,
    init: str | Float[Array, "K d"] = "kmeans++",
    block_size: int | None = 4096,
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

    Returns:
        A :class:`KMeansResult` with centroids (K, d), assignments (n,), inertia (squared
        units of ``x``), num_iters and converged.

    Raises:
        ValueError: if ``x`` is not (n, d), ``K`` is not in ``[1, n]``, the options are invalid,
            ``x`` has non-finite entries, or ``x`` has fewer distinct rows than ``K`` (checked
            on the host for concrete input; through ``eqx.error_if`` when traced).
        TypeError: if ``x`` is not floating.

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
    check_floating("x", x)
    n, d = np.shape(x)
    if not isinstance(num_clusters, int | np.integer) or isinstance(num_clusters, bool):
        raise TypeError(f"num_clusters must be an int, got {type(num_clusters).__name__}")
    num_clusters = int(num_clusters)
    if not 1 <= num_clusters <= n:
        raise ValueError(
            f"num_clusters must satisfy 1 <= K <= n; got K={num_clusters} for x of shape {(n, d)}"
        )
    if int(num_iters) < 1:
        raise ValueError(f"num_iters must be >= 1, got {num_iters}")
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size must be a positive integer or None, got {block_size}")
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
    x = check_finite("x", x)
    if not is_traced(x) and init == "kmeans++":
        distinct = np.unique(np.asarray(x), axis=0).shape[0]
        if distinct < num_clusters:
            raise ValueError(
                f"num_clusters K={num_clusters} exceeds the number of distinct rows of x "
                f"({distinct} distinct among {n}); reduce K"
            )
    x = jnp.asarray(x)
    result, degenerate = _kmeans_core(
        x,
        init_centroids,
        key,
        num_clusters,
        int(num_iters),
        float(tol) if not is_traced(tol) else tol,
        init,
        None if block_size is None else int(block_size),
    )
    if init == "kmeans++":
        result = eqx.error_if(
            result,
            degenerate,
            "kmeans: fewer distinct rows in x than num_clusters (k-means++ ran out of points)",
        )
    return result
