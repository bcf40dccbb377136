r"""Average ranks and rank / Pearson correlations of long vectors (the RDM kernels).

Two ranking paths, both returning *twice* the 1-based average rank as integers (so that average
ranks of ties, which are half-integers, stay exact in integer arithmetic):

* **exact** (``_twice_ranks_exact``): one single-operand sort of *packed integer keys* (the float
  bits reinterpreted as an order-preserving int32/int64 key; XLA's integer sort is about 7x faster
  than its float sort and 17x faster than an argsort that carries an index payload on CPU), then
  every element finds its own position by a binary search restricted to its histogram bucket
  (uniform buckets over the key range; the search takes ``ceil(log2(max bucket count + 1))``
  gather steps, typically 3-6). Ties get exact average ranks: the tie group's end is read from a
  reverse cumulative minimum over the sorted keys.
* **binned** (``_twice_ranks_binned``): no sort at all. Each value gets the average rank of its
  histogram bucket (at most 2^16 buckets, so the counters stay in cache), which is exact for
  buckets holding one value or only ties. With bucket counts :math:`c_b`, the rank error
  vector :math:`e` obeys
  :math:`\lVert e\rVert_2^2 \le E^2 = \sum_b c_b (c_b^2 - 1)/12`, and the Spearman coefficient
  obeys :math:`|\tilde\rho - \rho| \le \theta_x + \theta_y`,
  :math:`\theta = \arcsin\big(\min(1, E / (\lVert \tilde a\rVert - E))\big)`, where
  :math:`\tilde a` is the centred approximate rank vector (angles between vectors obey the
  triangle inequality and cosine is 1-Lipschitz in the angle). This bound is computed and
  returned with every binned result; it is about 1e-4 at 8M values with 2^16 buckets and
  shrinks with fewer values per bucket.

Both paths are piecewise constant in the values (``stop_gradient`` inside), so the public
metrics wrap their inputs in :func:`no_derivative`, which raises under differentiation. The
differentiable alternative is :func:`soft_ranks` (pairwise sigmoids of the standardised values,
O(p^2) time in tiles, at most :data:`SOFT_MAX_VALUES` values), which tends to the average rank
as its temperature goes to zero.
"""

import jax
import jax.numpy as jnp
from jax import lax

from .._errors import no_derivative

#: rank methods shared by the Spearman-based metrics (exact or bounded)
RANK_METHODS = ("auto", "exact", "binned")
#: ``rank_method="auto"`` ranks exactly up to this many values, binned (with a bound) above it.
AUTO_EXACT_MAX = 1 << 20


def resolve_rank_method(rank_method: str, count: int) -> str:
    """The concrete rank method for ``count`` values (``"auto"``: exact to 2^20, binned above)."""
    if rank_method == "auto":
        return "exact" if count <= AUTO_EXACT_MAX else "binned"
    return rank_method


#: at most this many histogram buckets for the exact path (2M int32 counters = 8 MB)
MAX_BUCKETS = 1 << 21
#: at most this many buckets for the binned path: a 256 KB counter array stays in cache, which
#: makes the scatter-add ~5x faster than with 2M buckets; the Spearman bound is then ~1e-4 at
#: 8M pairs (measured 1.1e-4 at n = 4,000; ~3e-5 with 2^18 buckets).
MAX_BINNED_BUCKETS = 1 << 16


def num_buckets_for(n: int) -> int:
    """Power of two >= n / 2, clipped to [16, MAX_BUCKETS] (static)."""
    b = 16
    while 2 * b < n and b < MAX_BUCKETS:
        b *= 2
    return b


def sortable_keys(v):
    """Order-preserving integer keys of a float vector (-0.0 folded onto +0.0; no NaN allowed)."""
    if v.dtype == jnp.float64:
        itype, mask = jnp.int64, 0x7FFFFFFFFFFFFFFF
        shift = 63
    else:
        v = v.astype(jnp.float32)
        itype, mask = jnp.int32, 0x7FFFFFFF
        shift = 31
    v = jnp.where(v == 0, jnp.zeros_like(v), v)
    i = lax.bitcast_convert_type(v, itype)
    return i ^ ((i >> shift) & jnp.asarray(mask, itype))


def bucket_index(keys, lo, hi, num_buckets: int):
    """Monotone bucket index in [0, num_buckets) of every key given the key range [lo, hi]."""
    utype = jnp.uint64 if keys.dtype == jnp.int64 else jnp.uint32
    ftype = jnp.float64 if keys.dtype == jnp.int64 else jnp.float32
    span = lax.bitcast_convert_type(hi - lo, utype).astype(ftype)
    off = lax.bitcast_convert_type(keys - lo, utype).astype(ftype)
    scale = num_buckets / jnp.maximum(span, 1.0)
    b = jnp.floor(off * scale).astype(jnp.int32)
    return jnp.clip(b, 0, num_buckets - 1)


def _histogram(b, num_buckets: int):
    counts = jnp.zeros((num_buckets,), jnp.int32).at[b].add(1)
    start = jnp.cumsum(counts) - counts
    return counts, start


def twice_ranks_exact(v, *, num_buckets: int | None = None):
    """Twice the 1-based average (mid) rank of every entry of ``v`` (int32), exact with ties."""
    v = lax.stop_gradient(v)
    n = v.shape[0]
    nb = num_buckets or num_buckets_for(n)
    keys = sortable_keys(v)
    s = jnp.sort(keys)
    b = bucket_index(keys, s[0], s[-1], nb)
    counts, start = _histogram(b, nb)
    lo = start[b]
    hi = lo + counts[b]
    iters = jnp.ceil(jnp.log2(jnp.max(counts).astype(jnp.float32) + 1.0)).astype(jnp.int32) + 1

    def body(state):
        it, l, h = state
        mid = (l + h) // 2
        go = (s[jnp.minimum(mid, n - 1)] < keys) & (l < h)
        return it + 1, jnp.where(go, mid + 1, l), jnp.where(go | (l >= h), h, mid)

    _, lower, _ = lax.while_loop(lambda st: st[0] < iters, body, (jnp.asarray(0), lo, hi))
    pos = jnp.arange(n, dtype=jnp.int32)
    is_last = jnp.concatenate([s[1:] != s[:-1], jnp.ones((1,), bool)])
    group_end = lax.cummin(jnp.where(is_last, pos, n), reverse=True)
    upper = group_end[jnp.minimum(lower, n - 1)] + 1
    return lower + upper + 1


def twice_ranks_binned(v, *, num_buckets: int | None = None):
    """Twice the bucket-average rank of every entry (int32) and the bound E on ||rank error||_2.

    Returns:
        ``(twice_ranks, err)`` where ``err`` (float) bounds the Euclidean norm of the rank error
        (in rank units, not doubled).
    """
    v = lax.stop_gradient(v)
    n = v.shape[0]
    nb = num_buckets or min(num_buckets_for(n), MAX_BINNED_BUCKETS)
    keys = sortable_keys(v)
    b = bucket_index(keys, jnp.min(keys), jnp.max(keys), nb)
    counts, start = _histogram(b, nb)
    return 2 * start[b] + counts[b] + 1, binned_error(counts)


def binned_error(counts):
    """The bound E on the Euclidean norm of the binned rank error, from the bucket counts."""
    c = counts.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(c * (c * c - 1.0)) / 12.0)


def binned_bound(err_u, err_v, norm_u, norm_v, dtype):
    """The proven bound on ``|binned Spearman - exact|`` (see the module docstring).

    ``err_*``: :func:`binned_error` of each vector; ``norm_*``: norms of the centred
    approximate rank vectors, in rank units.
    """

    def angle(err, norm):
        ratio = err.astype(dtype) / jnp.maximum(norm - err.astype(dtype), 1e-30)
        return jnp.arcsin(jnp.clip(ratio, 0.0, 1.0))

    return jnp.minimum(angle(err_u, norm_u) + angle(err_v, norm_v), 2.0)


def tree_sum(x):
    """Sum of a vector in two levels (blocks of 4096), so float32 rounding stays ~1e-7 relative."""
    n = x.shape[0]
    block = 4096
    if n <= block:
        return jnp.sum(x)
    pad = (-n) % block
    x = jnp.pad(x, (0, pad))
    return jnp.sum(jnp.sum(x.reshape(-1, block), axis=1))


def _acc_dtype(*xs):
    return jnp.float64 if any(x.dtype == jnp.float64 for x in xs) else jnp.float32


def rank_correlation(tx, ty, n: int, dtype=jnp.float32):
    """Pearson correlation of two twice-rank vectors (their common mean is n + 1)."""
    a = (tx - (n + 1)).astype(dtype) / n  # centred, scaled to [-1, 1] (no float32 overflow)
    b = (ty - (n + 1)).astype(dtype) / n
    return correlation_from_sums(tree_sum(a * a), tree_sum(b * b), tree_sum(a * b), n)


def correlation_from_sums(saa, sbb, sab, n: int):
    """``(rho, constant, |a|, |b|)`` from the sums of centred, /n-scaled twice-ranks.

    The norms of the centred rank vectors are returned in rank units (for the binned bound).
    """
    constant = (saa <= 0) | (sbb <= 0)
    rho = jnp.where(constant, 0.0, sab / jnp.sqrt(jnp.where(constant, 1.0, saa) * sbb))
    return jnp.clip(rho, -1.0, 1.0), constant, jnp.sqrt(saa) * n / 2, jnp.sqrt(sbb) * n / 2


def spearman(u, v, *, rank_method: str = "exact", num_buckets: int | None = None):
    """Spearman correlation of two equal-length vectors with average ranks for ties.

    Returns:
        ``(rho, constant, bound)``: ``rho`` is 0.0 where either vector is constant (``constant``
        True); ``bound`` is 0 for the exact path and the proven bound on ``|rho - exact|`` for
        the binned path.
    """
    n = u.shape[0]
    dtype = _acc_dtype(u, v)
    if rank_method == "exact":
        tx = twice_ranks_exact(u, num_buckets=num_buckets)
        ty = twice_ranks_exact(v, num_buckets=num_buckets)
        rho, constant, _, _ = rank_correlation(tx, ty, n, dtype)
        return rho, constant, jnp.zeros((), dtype)
    tx, ex = twice_ranks_binned(u, num_buckets=num_buckets)
    ty, ey = twice_ranks_binned(v, num_buckets=num_buckets)
    rho, constant, nx, ny = rank_correlation(tx, ty, n, dtype)
    bound = binned_bound(ex, ey, nx, ny, dtype)
    return rho, constant, jnp.where(constant, 0.0, bound)


def pearson(u, v):
    """Pearson correlation (two-pass, centred); differentiable. Returns ``(r, constant)``.

    ``constant`` is exact (``max == min`` of a vector), never a threshold on the centred sum of
    squares: the mean of a constant float vector is not exactly its value, so that sum reads
    as a tiny positive number. ``r`` is 0.0 where ``constant`` (callers turn it into a status).
    """
    constant = (jnp.max(u) == jnp.min(u)) | (jnp.max(v) == jnp.min(v))
    u = u - tree_sum(u) / u.shape[0]
    v = v - tree_sum(v) / v.shape[0]
    suu, svv, suv = tree_sum(u * u), tree_sum(v * v), tree_sum(u * v)
    constant = constant | (suu <= 0) | (svv <= 0)
    r = suv / jnp.sqrt(jnp.where(constant, 1.0, suu * svv))
    return jnp.where(constant, 0.0, jnp.clip(r, -1.0, 1.0)), constant


#: the soft-rank path evaluates p x p sigmoids (in tiles); it refuses more values than this
SOFT_MAX_VALUES = 1 << 16
#: entries per sigmoid tile of the soft-rank path (16 MB in float32)
SOFT_TILE_ELEMENTS = 1 << 22


def soft_ranks(v, temperature):
    r"""Differentiable 1-based ranks :math:`r_i = \tfrac12 + \sum_j \sigma((z_i - z_j)/t)`.

    ``z`` is ``v`` standardised (mean 0, standard deviation 1), so the temperature ``t`` is in
    units of the spread of ``v`` and the ranks are invariant to affine maps of ``v``. As
    ``t -> 0`` every :math:`\sigma` tends to the step function with :math:`\sigma(0) = 1/2`,
    so :math:`r` tends to the average (mid) rank, ties included. Cost O(p^2) time in tiles of
    :data:`SOFT_TILE_ELEMENTS` (O(p) memory, rematerialised under ``grad``).

    Returns:
        ``(ranks, constant)``; a constant ``v`` (exact test) gives ranks all equal.
    """
    p = v.shape[0]
    constant = jnp.max(v) == jnp.min(v)
    c = v - tree_sum(v) / p
    sd = jnp.sqrt(tree_sum(c * c) / p)
    good = ~constant & (sd > 0)
    z = jnp.where(good, c / jnp.where(good, sd, jnp.ones_like(sd)), jnp.zeros_like(c))
    b = max(1, min(p, SOFT_TILE_ELEMENTS // max(p, 1)))
    pad = (-p) % b
    zb = jnp.pad(z, (0, pad)).reshape(-1, b)

    def tile(block):
        return jnp.sum(jax.nn.sigmoid((block[:, None] - z[None, :]) / temperature), axis=1)

    r = lax.map(jax.checkpoint(tile), zb).reshape(-1)[:p]
    return 0.5 + r, constant


def soft_spearman(u, v, temperature):
    """Pearson correlation of the soft ranks of ``u`` and ``v``; differentiable.

    Returns:
        ``(rho, constant)`` (``rho`` 0.0 where ``constant``, as :func:`pearson`).
    """
    ru, cu = soft_ranks(u, temperature)
    rv, cv = soft_ranks(v, temperature)
    rho, constant = pearson(ru, rv)
    return rho, constant | cu | cv


def pearson_influence_se(u, v):
    """Asymptotic standard error of the sample Pearson correlation from its influence function.

    IF_i = z_ui z_vi - r (z_ui^2 + z_vi^2) / 2 with z the standardised values (iid sampling).
    """
    m = u.shape[0]
    u = u - jnp.mean(u)
    v = v - jnp.mean(v)
    su = jnp.sqrt(jnp.mean(u * u))
    sv = jnp.sqrt(jnp.mean(v * v))
    ok = (su > 0) & (sv > 0)
    zu = u / jnp.where(ok, su, 1.0)
    zv = v / jnp.where(ok, sv, 1.0)
    r = jnp.mean(zu * zv)
    inf = zu * zv - 0.5 * r * (zu * zu + zv * zv)
    return jnp.where(ok, jnp.std(inf) / jnp.sqrt(m), 0.0)


__all__ = [
    "MAX_BUCKETS",
    "RANK_METHODS",
    "no_derivative",
    "num_buckets_for",
    "pearson",
    "pearson_influence_se",
    "rank_correlation",
    "soft_ranks",
    "soft_spearman",
    "sortable_keys",
    "spearman",
    "tree_sum",
    "twice_ranks_binned",
    "twice_ranks_exact",
    "binned_bound",
    "correlation_from_sums",
    "binned_error",
    "bucket_index",
]
