"""Building blocks shared by the encoders: dropout, causal convolutions, attention, scans.

Everything here is causal: the output at position ``t`` depends only on inputs at positions
``<= t``. Dropout takes an explicit ``key`` (``None`` = deterministic), so modules hold no
random state and a model splits into parameters only.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx


def lift(v: jax.Array, ndim: int) -> jax.Array:
    """Prepend singleton axes so ``v`` has ``ndim`` dimensions (explicit rank promotion)."""
    return jnp.reshape(v, (1,) * (ndim - jnp.ndim(v)) + jnp.shape(v))


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is ``None`` or ``rate == 0``."""
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def split_key(key: jax.Array | None, num: int) -> list:
    """Split ``key`` into ``num`` keys, or return ``num`` Nones."""
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


class CausalDepthwiseConv(nnx.Module):
    """Depthwise causal 1-D convolution: ``y[t, c] = b[c] + sum_j w[j, c] x[t - j, c]``."""

    def __init__(self, channels: int, kernel_size: int, *, rngs: nnx.Rngs):
        scale = 1.0 / math.sqrt(kernel_size)
        self.kernel = nnx.Param(
            jax.random.uniform(rngs.params(), (kernel_size, channels), minval=-scale, maxval=scale)
        )
        self.bias = nnx.Param(jnp.zeros((channels,)))
        self.kernel_size = kernel_size

    def __call__(self, x: jax.Array) -> jax.Array:  # x: (..., L, C)
        length = x.shape[-2]
        pad = [(0, 0)] * (x.ndim - 2) + [(self.kernel_size - 1, 0), (0, 0)]
        xp = jnp.pad(x, pad)
        out = lift(self.bias[...], x.ndim)
        for j in range(self.kernel_size):
            # tap j multiplies x[t - j]
            start = self.kernel_size - 1 - j
            tap = jax.lax.slice_in_dim(xp, start, start + length, axis=-2)
            out = out + lift(self.kernel[j], x.ndim) * tap
        return out


def rope(x: jax.Array, *, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding over the last axis of ``x`` with shape ``(..., L, H, Dh)``."""
    length, head_dim = x.shape[-3], x.shape[-1]
    half = head_dim // 2
    freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * freqs[None, :]  # (L, half)
    cos = lift(jnp.cos(angles)[:, None, :].astype(x.dtype), x.ndim)
    sin = lift(jnp.sin(angles)[:, None, :].astype(x.dtype), x.ndim)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    if head_dim % 2:
        rotated = jnp.concatenate([rotated, x[..., 2 * half :]], axis=-1)
    return rotated


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention, optionally with rotary position embeddings."""

    def __init__(self, d_model: int, num_heads: int, *, use_rope: bool = False, rngs: nnx.Rngs):
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        init = nnx.initializers.xavier_uniform()
        self.qkv = nnx.Linear(d_model, 3 * d_model, kernel_init=init, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, kernel_init=init, rngs=rngs)
        self.num_heads = num_heads
        self.use_rope = use_rope

    def __call__(self, x: jax.Array, *, rate: float = 0.0, key=None) -> jax.Array:
        *batch, length, d = x.shape
        h = self.num_heads
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        q, k, v = (t.reshape(*batch, length, h, d // h) for t in (q, k, v))
        if self.use_rope:
            q, k = rope(q), rope(k)
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(d // h)
        mask = lift(jnp.tril(jnp.ones((length, length), dtype=bool)), scores.ndim)
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores, axis=-1)
        weights = dropout(weights, rate, key)
        out = jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(*batch, length, d)
        return self.out(out)


def causal_fft_conv(z: jax.Array, h: jax.Array) -> jax.Array:
    """Causal long convolution ``y[t] = sum_{s<=t} h[s] z[t-s]`` via FFT (zero-padded to 2L).

    Args:
        z: signal, shape ``(..., L, C)``.
        h: filter, shape ``(L, C)``.
    """
    length = z.shape[-2]
    n = 2 * length
    zf = jnp.fft.rfft(z.astype(jnp.float32), n=n, axis=-2)
    hf = jnp.fft.rfft(h.astype(jnp.float32), n=n, axis=-2)
    y = jnp.fft.irfft(zf * lift(hf, zf.ndim), n=n, axis=-2)[..., :length, :]
    return y.astype(z.dtype)


def linear_recurrence(a: jax.Array, b: jax.Array, *, axis: int) -> jax.Array:
    """Solve ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) with a parallel associative scan."""

    def combine(left, right):
        a_l, b_l = left
        a_r, b_r = right
        return a_l * a_r, a_r * b_l + b_r

    _, h = jax.lax.associative_scan(combine, (a, b), axis=axis)
    return h


def selective_scan(
    delta: jax.Array,
    u: jax.Array,
    b: jax.Array,
    c: jax.Array,
    a: jax.Array,
    *,
    chunk_size: int = 64,
) -> jax.Array:
    r"""Mamba's selective scan in bounded memory (time chunks, rematerialised).

    Computes ``y_t = C_t s_t`` with ``s_t = exp(Delta_t A) * s_{t-1} + Delta_t B_t u_t``
    (``s_{-1} = 0``). The time axis is cut into chunks of ``chunk_size`` steps: a ``lax.scan``
    carries the state ``s`` (shape ``(..., D, N)``) from chunk to chunk, each chunk is solved by
    a parallel associative scan, and the chunk body is rematerialised (``jax.checkpoint``), so
    neither the forward nor the backward pass holds the ``(..., L, D, N)`` state tensor, only
    one chunk's ``(..., chunk_size, D, N)``. (Unchunked, the paper-size SmallMamba, batch 64 x
    512 steps x 512 channels x 16 states, asked XLA for a 52 GB buffer.)

    Args:
        delta: step sizes, shape ``(..., L, D)`` (positive).
        u: inputs, shape ``(..., L, D)``.
        b: input matrices, shape ``(..., L, N)``.
        c: output matrices, shape ``(..., L, N)``.
        a: state matrix (diagonal per channel), shape ``(D, N)``.
        chunk_size: time steps per chunk (static).

    Returns:
        ``y`` of shape ``(..., L, D)`` (without the skip term ``D u``).
    """
    length = delta.shape[-2]
    size = max(1, min(int(chunk_size), length))
    num = -(-length // size)
    pad = num * size - length

    def chunked(v):  # (..., L, F) -> (num, ..., size, F); zero padding is inert (decay 1, drive 0)
        v = jnp.pad(v, [(0, 0)] * (v.ndim - 2) + [(0, pad), (0, 0)])
        v = v.reshape(v.shape[:-2] + (num, size, v.shape[-1]))
        return jnp.moveaxis(v, -3, 0)

    @jax.checkpoint
    def body(state, xs):
        dl, uu, bb, cc = xs
        decay = jnp.exp(dl[..., None] * lift(a, dl.ndim + 1))  # (..., size, D, N)
        drive = (dl * uu)[..., None] * bb[..., None, :]
        drive = drive.at[..., 0, :, :].add(decay[..., 0, :, :] * state)
        states = linear_recurrence(decay, drive, axis=decay.ndim - 3)
        y = jnp.einsum("...ldn,...ln->...ld", states, cc)
        return states[..., -1, :, :], y

    init = jnp.zeros(delta.shape[:-2] + a.shape, jnp.result_type(delta, u, b, a))
    _, ys = jax.lax.scan(body, init, tuple(chunked(v) for v in (delta, u, b, c)))
    ys = jnp.moveaxis(ys, 0, -3)  # (..., num, size, D)
    ys = ys.reshape(ys.shape[:-3] + (num * size, ys.shape[-1]))
    return ys[..., :length, :]
