r"""Correlation kernels of two RDMs that never hold them: streamed and sampled-pair forms.

* :func:`streamed_pearson`: Pearson of the two RDMs in two tiled passes (means, then centred
  sums); differentiable (each tile rematerialised);
* :func:`streamed_binned_spearman`: binned Spearman in three tiled passes (key range, bucket
  histogram, rank products) with its proven error bound; O(tile + 2^16) memory at any n;
* :func:`sampled_core`: the correlation of ``m`` uniformly sampled pairs, with its standard
  error (O(m) memory).

Inputs are already in their metric's invariant form (see ``_rdm.py``); the public functions are
in ``_rdm_similarity.py``.
"""

import jax
import jax.numpy as jnp

from .._numerics import safe_sqrt
from ._ranks import (
    MAX_BINNED_BUCKETS,
    binned_bound,
    binned_error,
    bucket_index,
    correlation_from_sums,
    num_buckets_for,
    pearson,
    pearson_influence_se,
    soft_spearman,
    sortable_keys,
    spearman,
)
from ._rdm import _pair_frame, _prep_metric
from ._tiles import rescale, stream

#: number of independent groups used for the standard error of a sampled Spearman estimate.
SE_GROUPS = 32


def _sampled_pairs(key, n, m):
    """M unordered pairs (i < j) drawn uniformly with replacement from the n(n-1)/2 pairs."""
    ki, kj = jax.random.split(key)
    i = jax.random.randint(ki, (m,), 0, n)
    j = jax.random.randint(kj, (m,), 0, n - 1)
    j = j + (j >= i)
    return jnp.minimum(i, j), jnp.maximum(i, j)


def _pointwise(xa, xb, metric):
    """Distances between matched rows of xa and xb (same primitive as the dense kernels)."""
    if metric == "cosine":
        na = jnp.linalg.norm(xa, axis=1)
        nb = jnp.linalg.norm(xb, axis=1)
        ok = (na > 0) & (nb > 0)
        cos = jnp.sum(xa * xb, axis=1) / jnp.where(ok, na * nb, 1.0)
        return jnp.where(ok, 1.0 - jnp.clip(cos, -1.0, 1.0), 1.0)
    diff = xa - xb
    sq = jnp.sum(diff * diff, axis=1)
    return sq if metric == "sqeuclidean" else safe_sqrt(sq)


#: sampled pairs are turned into distances this many at a time (bounds the row gathers)
PAIR_CHUNK = 1 << 14


def _paired_distances(x, y, i, j, metric):
    """Distances of the sampled pairs in both spaces, chunk by chunk (O(chunk * d) memory)."""
    m = i.shape[0]
    if m <= PAIR_CHUNK:
        return _pointwise(x[i], x[j], metric), _pointwise(y[i], y[j], metric)
    pad = (-m) % PAIR_CHUNK
    ic = jnp.pad(i, (0, pad)).reshape(-1, PAIR_CHUNK)
    jc = jnp.pad(j, (0, pad)).reshape(-1, PAIR_CHUNK)

    def chunk(args):
        a, b = args
        return _pointwise(x[a], x[b], metric), _pointwise(y[a], y[b], metric)

    u, v = jax.lax.map(jax.checkpoint(chunk), (ic, jc))
    return u.reshape(-1)[:m], v.reshape(-1)[:m]


def streamed_pearson(x, y, metric, block_size):
    """Pearson of two RDMs summed over all ordered pairs i != j (same value as condensed).

    Returns ``(r, constant)``; ``constant`` is exact (the running min equals the running max).
    """
    n = x.shape[0]
    dtype = x.dtype
    count = float(n * (n - 1))  # a Python int beyond n = 46,341 overflows int32

    def pass1(carry, t):
        sx, sy, lox, hix, loy, hiy = carry
        inf = jnp.asarray(jnp.inf, dtype)
        return (
            sx + jnp.sum(jnp.where(t.mask, t.dx, 0.0)),
            sy + jnp.sum(jnp.where(t.mask, t.dy, 0.0)),
            jnp.minimum(lox, jnp.min(jnp.where(t.mask, t.dx, inf))),
            jnp.maximum(hix, jnp.max(jnp.where(t.mask, t.dx, -inf))),
            jnp.minimum(loy, jnp.min(jnp.where(t.mask, t.dy, inf))),
            jnp.maximum(hiy, jnp.max(jnp.where(t.mask, t.dy, -inf))),
        )

    zero = jnp.zeros((), dtype)
    big = jnp.full((), jnp.inf, dtype)
    init = (zero, zero, big, -big, big, -big)
    opts = dict(metric=metric, block_size=block_size, remat=True)  # differentiable: remat
    sx, sy, lox, hix, loy, hiy = stream(pass1, init, x, y, **opts)
    mx, my = sx / count, sy / count

    def pass2(carry, t):
        a = jnp.where(t.mask, t.dx - mx, 0.0)
        b = jnp.where(t.mask, t.dy - my, 0.0)
        saa, sbb, sab = carry
        return saa + jnp.sum(a * a), sbb + jnp.sum(b * b), sab + jnp.sum(a * b)

    saa, sbb, sab = stream(pass2, (zero, zero, zero), x, y, **opts)
    constant = (lox == hix) | (loy == hiy) | (saa <= 0) | (sbb <= 0)
    r = sab / jnp.sqrt(jnp.where(constant, 1.0, saa * sbb))
    return jnp.where(constant, 0.0, jnp.clip(r, -1.0, 1.0)), constant


def streamed_binned_spearman(x, y, metric, block_size):
    """Binned Spearman of the two condensed RDMs in three tiled passes: O(tile + buckets).

    The ranks are those of :func:`~geomtax.geometry._ranks.twice_ranks_binned` on the
    condensed pairs (``i < j``): pass 1 finds each RDM's key range, pass 2 its bucket
    histogram (so every pair's bucket-average rank is known), pass 3 sums the products of the
    two centred ranks. The rank vectors never exist, so memory does not grow with n(n-1)/2.
    """
    n = x.shape[0]
    count = n * (n - 1) // 2
    nb = min(num_buckets_for(count), MAX_BINNED_BUCKETS)
    dtype = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    (xf, sx), (yf, sy) = (_pair_frame(v, metric) for v in (x, y))
    cols = jnp.arange(n)
    opts = dict(metric=metric, block_size=block_size, sx=sx, sy=sy)

    def keys(t):
        upper = (t.rows[:, None] < cols[None, :]) & t.valid[:, None]
        kx = sortable_keys(rescale(t.dx, t.sx, metric))
        ky = sortable_keys(rescale(t.dy, t.sy, metric))
        return upper, kx, ky

    def pass1(c, t):
        upper, kx, ky = keys(t)
        hi_key, lo_key = jnp.iinfo(kx.dtype).max, jnp.iinfo(kx.dtype).min
        return (
            jnp.minimum(c[0], jnp.min(jnp.where(upper, kx, hi_key))),
            jnp.maximum(c[1], jnp.max(jnp.where(upper, kx, lo_key))),
            jnp.minimum(c[2], jnp.min(jnp.where(upper, ky, hi_key))),
            jnp.maximum(c[3], jnp.max(jnp.where(upper, ky, lo_key))),
        )

    ktype = sortable_keys(jnp.zeros((1,), dtype)).dtype
    big, small = jnp.iinfo(ktype).max, jnp.iinfo(ktype).min
    init = tuple(jnp.asarray(v, ktype) for v in (big, small, big, small))
    lox, hix, loy, hiy = stream(pass1, init, xf, yf, **opts)

    def pass2(c, t):
        upper, kx, ky = keys(t)
        w = upper.astype(jnp.int32).reshape(-1)
        bx = bucket_index(kx, lox, hix, nb).reshape(-1)
        by = bucket_index(ky, loy, hiy, nb).reshape(-1)
        return c[0].at[bx].add(w), c[1].at[by].add(w)

    zeros = jnp.zeros((nb,), jnp.int32)
    cx, cy = stream(pass2, (zeros, zeros), xf, yf, **opts)

    def centred(counts):  # the centred, scaled rank of each bucket (as rank_correlation)
        twice = 2 * (jnp.cumsum(counts) - counts) + counts + 1
        return (twice - (count + 1)).astype(dtype) / count

    ax, ay = centred(cx), centred(cy)

    def pass3(c, t):
        upper, kx, ky = keys(t)
        a = ax[bucket_index(kx, lox, hix, nb)]
        b = ay[bucket_index(ky, loy, hiy, nb)]
        return c + jnp.sum(jnp.where(upper, a * b, 0.0))

    sab = stream(pass3, jnp.zeros((), dtype), xf, yf, **opts)
    saa = jnp.sum(cx.astype(dtype) * ax * ax)
    sbb = jnp.sum(cy.astype(dtype) * ay * ay)
    rho, constant, norm_x, norm_y = correlation_from_sums(saa, sbb, sab, count)
    bound = binned_bound(binned_error(cx), binned_error(cy), norm_x, norm_y, dtype)
    return rho, constant, jnp.where(constant, 0.0, bound)


def sampled_core(x, y, key, temperature, *, metric, method, m, rank_method):
    """``(value, constant, stderr, bound)`` on ``m`` sampled pairs of prepared inputs."""
    x, mt = _prep_metric(x, metric)
    y, _ = _prep_metric(y, metric)
    n = x.shape[0]
    i, j = _sampled_pairs(key, n, m)
    u, v = _paired_distances(x, y, i, j, mt)
    zero = jnp.zeros((), x.dtype)
    if method == "pearson":
        r, constant = pearson(u, v)
        se = pearson_influence_se(jax.lax.stop_gradient(u), jax.lax.stop_gradient(v))
        return r, constant, se, zero
    if rank_method == "soft":
        rho, constant = soft_spearman(u, v, temperature)
        bound = zero
    else:
        rho, constant, bound = spearman(u, v, rank_method=rank_method)
    g = SE_GROUPS
    mg = m // g
    us, vs = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    ug = us[: mg * g].reshape(g, mg)
    vg = vs[: mg * g].reshape(g, mg)
    nb = num_buckets_for(mg)
    rho_g, _, _ = jax.vmap(lambda a, b: spearman(a, b, rank_method="exact", num_buckets=nb))(ug, vg)
    se = jnp.std(rho_g, ddof=1) / jnp.sqrt(g)
    return rho, constant, se, bound
