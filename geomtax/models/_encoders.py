"""Four small causal sequence encoders (docs/reference/models.md#encoders), written in Flax NNX.

Every encoder maps integer tokens ``(..., L)`` to hidden states ``(..., L, d_model)`` after a
final LayerNorm, and is causal: position ``t`` only sees tokens ``<= t``. Each exposes two
halves, ``embed_tokens`` (token [+ position] embedding) and ``encode`` (everything after it), so
the Jacobian penalty of section 4.4 can differentiate with respect to the input embedding.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from flax import nnx

from .._errors import check_choice
from ._layers import (
    CausalDepthwiseConv,
    CausalSelfAttention,
    causal_fft_conv,
    dropout,
    lift,
    selective_scan,
    split_key,
)

ARCHITECTURES = ("bert", "mamba", "striped_hyena", "lstm")
"""Encoder names accepted by :class:`EncoderConfig` and :func:`make_encoder`."""


class EncoderConfig(eqx.Module):
    r"""Hyper-parameters of one encoder (every field is static: it fixes shapes).

    "Identical encoder" in the head ablation means the same ``EncoderConfig``; only the head
    differs. Defaults are the reference sizes (docs/reference/models.md#encoders).

    Attributes:
        architecture: one of ``"bert"``, ``"mamba"``, ``"striped_hyena"``, ``"lstm"``.
        vocab_size: number of input tokens (256 bins + PAD + MASK = 258).
        d_model: width of the residual stream.
        num_layers: number of blocks (LSTM layers for ``"lstm"``).
        num_heads: attention heads (SmallBERT and the attention layers of SmallStripedHyena).
        d_ff: hidden width of SmallBERT's feed-forward block.
        max_len: longest sequence (size of SmallBERT/SmallMamba's learned position table).
        dropout: dropout rate, applied only when a ``key`` is passed to the forward pass.
        d_state: SSM state size ``N`` (SmallMamba).
        d_conv: short causal convolution width (SmallMamba).
        expand: inner width factor ``E`` (SmallMamba, ``d_inner = E d_model``).
        hyena_order: Hyena recurrence order ``N`` (SmallStripedHyena).
        attention_layers: 0-based layer indices that use causal MHA with RoPE in
            SmallStripedHyena; ``None`` means ``range(3, num_layers, 4)`` (the reference).
        filter_features: sinusoidal position features fed to the implicit filter FFN.
        filter_hidden: hidden width of the implicit filter FFN.
        decay_min: slowest per-channel filter decay rate (time normalised to [0, 1)).
        decay_max: fastest per-channel filter decay rate.

    Examples:
        >>> from geomtax.models import EncoderConfig
        >>> EncoderConfig("bert", d_model=32, num_layers=1).num_heads
        4
    """

    architecture: str = eqx.field(static=True, default="bert")
    vocab_size: int = eqx.field(static=True, default=258)
    d_model: int = eqx.field(static=True, default=256)
    num_layers: int = eqx.field(static=True, default=4)
    num_heads: int = eqx.field(static=True, default=4)
    d_ff: int = eqx.field(static=True, default=1024)
    max_len: int = eqx.field(static=True, default=512)
    dropout: float = eqx.field(static=True, default=0.1)
    d_state: int = eqx.field(static=True, default=16)
    d_conv: int = eqx.field(static=True, default=4)
    expand: int = eqx.field(static=True, default=2)
    hyena_order: int = eqx.field(static=True, default=2)
    attention_layers: tuple[int, ...] | None = eqx.field(static=True, default=None)
    filter_features: int = eqx.field(static=True, default=16)
    filter_hidden: int = eqx.field(static=True, default=64)
    decay_min: float = eqx.field(static=True, default=0.5)
    decay_max: float = eqx.field(static=True, default=20.0)

    def __check_init__(self):
        check_choice("architecture", self.architecture, ARCHITECTURES)
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "max_len", "d_state"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hyena_order < 1:
            raise ValueError(f"hyena_order must be >= 1, got {self.hyena_order}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention_layers is not None:
            bad = [i for i in self.attention_layers if not 0 <= i < self.num_layers]
            if bad:
                raise ValueError(
                    f"attention_layers {self.attention_layers} out of range for "
                    f"num_layers={self.num_layers}"
                )

    @property
    def resolved_attention_layers(self) -> tuple[int, ...]:
        """Attention layer indices with the reference default filled in."""
        if self.attention_layers is None:
            return tuple(range(3, self.num_layers, 4))
        return tuple(sorted(set(self.attention_layers)))


def _check_tokens(tokens, config: EncoderConfig) -> None:
    if jnp.ndim(tokens) < 1:
        raise ValueError(f"tokens must have shape (..., L); got shape {jnp.shape(tokens)}")
    if not jnp.issubdtype(jnp.result_type(tokens), jnp.integer):
        raise TypeError(f"tokens must be integers, got dtype {jnp.result_type(tokens)}")
    length = jnp.shape(tokens)[-1]
    if config.architecture in ("bert", "mamba") and length > config.max_len:
        raise ValueError(f"sequence length {length} exceeds max_len={config.max_len}")


class _Encoder(nnx.Module):
    """Shared interface: ``__call__ = encode(embed_tokens(tokens))``."""

    config: EncoderConfig

    def embed_tokens(self, tokens: jax.Array) -> jax.Array:
        """Input embedding ``(..., L, d_model)`` (token, plus position where the model has one)."""
        raise NotImplementedError

    def encode(self, h: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """Run the blocks and the final LayerNorm on an input embedding."""
        raise NotImplementedError

    def __call__(self, tokens: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """Hidden states ``(..., L, d_model)`` after the final LayerNorm.

        Args:
            tokens: integer tokens, shape ``(..., L)``.
            key: PRNG key for dropout; ``None`` (default) = deterministic evaluation.
        """
        _check_tokens(tokens, self.config)
        return self.encode(self.embed_tokens(tokens), key=key)


def _layer_norms(d: int, num: int, *, rngs: nnx.Rngs) -> nnx.List:
    """``num`` LayerNorms of width ``d`` (one per block)."""
    return nnx.List([nnx.LayerNorm(d, rngs=rngs) for _ in range(num)])


def _pre_norm_blocks(h, mix_norms, mixers, ff_norms, ffs, rate, keys):
    """Pre-norm residual blocks: per layer ``h += drop(mixer(LN(h)))``, ``h += drop(ff(LN(h)))``.

    ``keys`` holds four dropout keys per layer (mixer, its residual, feed-forward, its residual),
    layer after layer (``None`` entries: deterministic).
    """
    for i in range(len(mixers)):
        k = keys[4 * i : 4 * i + 4]
        h = h + dropout(mixers[i](mix_norms[i](h), rate=rate, key=k[0]), rate, k[1])
        h = h + dropout(ffs[i](ff_norms[i](h), rate=rate, key=k[2]), rate, k[3])
    return h


class _FeedForward(nnx.Module):
    def __init__(self, d_model: int, d_ff: int, *, gated: bool, rngs: nnx.Rngs):
        init = nnx.initializers.xavier_uniform()
        self.up = nnx.Linear(d_model, d_ff, kernel_init=init, rngs=rngs)
        self.gate = nnx.Linear(d_model, d_ff, kernel_init=init, rngs=rngs) if gated else None
        self.down = nnx.Linear(d_ff, d_model, kernel_init=init, rngs=rngs)

    def __call__(self, x, *, rate=0.0, key=None):
        if self.gate is not None:  # SwiGLU
            hidden = jax.nn.silu(self.gate(x)) * self.up(x)
        else:
            hidden = jax.nn.gelu(self.up(x))
        return self.down(dropout(hidden, rate, key))


class SmallBERT(_Encoder):
    r"""Causal pre-norm transformer with learned positions ("SmallBERT", GPT-style).

    .. math:: h_0 = E_{tok}[x] + E_{pos}[t],\quad
       h \leftarrow h + \mathrm{MHA}_{causal}(\mathrm{LN}(h)),\quad
       h \leftarrow h + \mathrm{FFN}(\mathrm{LN}(h)),\quad \text{out} = \mathrm{LN}(h).

    Args:
        config: an :class:`EncoderConfig`; ``architecture`` is ignored.
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SmallBERT
        >>> enc = SmallBERT(EncoderConfig(d_model=16, num_layers=1, max_len=8), rngs=nnx.Rngs(0))
        >>> enc(jnp.zeros((2, 8), jnp.int32)).shape
        (2, 8, 16)
    """

    def __init__(self, config: EncoderConfig = EncoderConfig(), *, rngs: nnx.Rngs):
        self.config = config
        d = config.d_model
        self.token_embed = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.pos_embed = nnx.Embed(config.max_len, d, rngs=rngs)
        self.attn_norms = _layer_norms(d, config.num_layers, rngs=rngs)
        self.attns = nnx.List(
            [CausalSelfAttention(d, config.num_heads, rngs=rngs) for _ in range(config.num_layers)]
        )
        self.ff_norms = _layer_norms(d, config.num_layers, rngs=rngs)
        self.ffs = nnx.List(
            [_FeedForward(d, config.d_ff, gated=False, rngs=rngs) for _ in range(config.num_layers)]
        )
        self.final_norm = nnx.LayerNorm(d, rngs=rngs)

    def embed_tokens(self, tokens):
        """Token plus learned positional embedding."""
        length = tokens.shape[-1]
        tok = self.token_embed(tokens)
        return tok + lift(self.pos_embed(jnp.arange(length)), tok.ndim)

    def encode(self, h, *, key=None):
        """Pre-norm causal transformer blocks and final LayerNorm."""
        rate = self.config.dropout
        keys = split_key(key, 4 * self.config.num_layers + 1)
        h = dropout(h, rate, keys[-1])
        h = _pre_norm_blocks(h, self.attn_norms, self.attns, self.ff_norms, self.ffs, rate, keys)
        return self.final_norm(h)


class _MambaMixer(nnx.Module):
    """Selective SSM (Gu & Dao 2023) with a parallel associative scan over time."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        d, n = config.d_model, config.d_state
        inner = config.expand * d
        self.dt_rank = math.ceil(d / 16)
        self.in_proj = nnx.Linear(d, 2 * inner, use_bias=False, rngs=rngs)
        self.conv = CausalDepthwiseConv(inner, config.d_conv, rngs=rngs)
        self.x_proj = nnx.Linear(inner, self.dt_rank + 2 * n, use_bias=False, rngs=rngs)
        # dt initialised so softplus(bias) lies in [1e-3, 1e-1] (log-uniform), as in Mamba.
        dt = jnp.exp(
            jax.random.uniform(rngs.params(), (inner,)) * (math.log(0.1) - math.log(1e-3))
            + math.log(1e-3)
        )
        self.dt_proj = nnx.Linear(self.dt_rank, inner, rngs=rngs)
        self.dt_proj.bias.value = dt + jnp.log(-jnp.expm1(-dt))  # inverse softplus
        self.a_log = nnx.Param(
            jnp.log(jnp.tile(jnp.arange(1, n + 1, dtype=jnp.float32), (inner, 1)))
        )
        self.d_skip = nnx.Param(jnp.ones((inner,)))
        self.out_proj = nnx.Linear(inner, d, use_bias=False, rngs=rngs)
        self.d_state = n

    def __call__(self, x):
        xz = self.in_proj(x)
        u, z = jnp.split(xz, 2, axis=-1)
        u = jax.nn.silu(self.conv(u))
        proj = self.x_proj(u)
        dt_low = proj[..., : self.dt_rank]
        b = proj[..., self.dt_rank : self.dt_rank + self.d_state]
        c = proj[..., self.dt_rank + self.d_state :]
        delta = jax.nn.softplus(self.dt_proj(dt_low))  # (..., L, D)
        a = -jnp.exp(self.a_log[...])  # (D, N)
        y = selective_scan(delta, u, b, c, a) + lift(self.d_skip[...], u.ndim) * u
        return self.out_proj(y * jax.nn.silu(z))


class SmallMamba(_Encoder):
    r"""Selective state-space encoder ("SmallMamba") with learned positions.

    Each block is ``h <- h + Mamba(LN(h))``; the mixer is in-projection to ``(u, z)``, a causal
    depthwise convolution (width ``d_conv``), SiLU, input-dependent ``(Delta, B, C)``, the
    discretised recurrence

    .. math:: s_t = e^{\Delta_t A} \odot s_{t-1} + \Delta_t B_t u_t,\qquad
       y_t = C_t s_t + D u_t,

    solved by :func:`selective_scan` (a parallel ``jax.lax.associative_scan`` within chunks of 64
    steps, the state carried across chunks, rematerialised in the backward pass so memory stays
    O(chunk) rather than O(L) in the ``(D, N)`` state), gated by ``SiLU(z)``.

    Args:
        config: an :class:`EncoderConfig` (uses ``d_state``, ``d_conv``, ``expand``).
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SmallMamba
        >>> cfg = EncoderConfig("mamba", d_model=16, num_layers=1, max_len=8)
        >>> SmallMamba(cfg, rngs=nnx.Rngs(0))(jnp.zeros((2, 8), jnp.int32)).shape
        (2, 8, 16)
    """

    def __init__(self, config: EncoderConfig = EncoderConfig("mamba"), *, rngs: nnx.Rngs):
        self.config = config
        d = config.d_model
        self.token_embed = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.pos_embed = nnx.Embed(config.max_len, d, rngs=rngs)
        self.norms = _layer_norms(d, config.num_layers, rngs=rngs)
        self.mixers = nnx.List([_MambaMixer(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = nnx.LayerNorm(d, rngs=rngs)

    def embed_tokens(self, tokens):
        """Token plus learned positional embedding."""
        tok = self.token_embed(tokens)
        return tok + lift(self.pos_embed(jnp.arange(tokens.shape[-1])), tok.ndim)

    def encode(self, h, *, key=None):
        """Residual Mamba blocks and final LayerNorm."""
        keys = split_key(key, self.config.num_layers)
        for i in range(self.config.num_layers):
            h = h + dropout(self.mixers[i](self.norms[i](h)), self.config.dropout, keys[i])
        return self.final_norm(h)


class _ImplicitFilter(nnx.Module):
    """h_n(t) = exp(-alpha_c t) * FFN(PE(t)) for n = 1..N (Hyena implicit long filters)."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        d, order = config.d_model, config.hyena_order
        self.num_features = config.filter_features
        f, hdim = config.filter_features, config.filter_hidden
        self.fc1 = nnx.Linear(f, hdim, rngs=rngs)
        self.fc2 = nnx.Linear(hdim, hdim, rngs=rngs)
        self.fc3 = nnx.Linear(hdim, order * d, rngs=rngs)
        self.freq = nnx.Param(jnp.ones((hdim,)))  # learnable frequency of the Sin activation
        self.decay_range = (config.decay_min, config.decay_max)
        self.order, self.d_model = order, d

    def __call__(self, length: int) -> jax.Array:  # -> (order, L, d)
        t = jnp.arange(length, dtype=jnp.float32) / length
        bands = jnp.arange(1, self.num_features // 2 + 1, dtype=jnp.float32)
        pe = jnp.concatenate(
            [
                jnp.sin(2 * jnp.pi * t[:, None] * bands[None, :]),
                jnp.cos(2 * jnp.pi * t[:, None] * bands[None, :]),
            ],
            axis=-1,
        )
        pe = jnp.pad(pe, ((0, 0), (0, self.num_features - pe.shape[-1])))
        freq = self.freq[...][None, :]
        hidden = jnp.sin(freq * self.fc1(pe))
        hidden = jnp.sin(freq * self.fc2(hidden))
        filt = self.fc3(hidden).reshape(length, self.order, self.d_model)
        decay = jnp.geomspace(*self.decay_range, self.d_model)  # constant, per channel
        window = jnp.exp(-t[:, None] * decay[None, :])  # (L, d)
        return jnp.moveaxis(filt * window[:, None, :], 1, 0)


class _HyenaOperator(nnx.Module):
    """Order-N Hyena operator: z <- v; z <- x_n * (h_n conv z), n = 1..N (Poli et al. 2023)."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        d, order = config.d_model, config.hyena_order
        self.in_proj = nnx.Linear(d, (order + 1) * d, rngs=rngs)
        self.short_conv = CausalDepthwiseConv((order + 1) * d, 3, rngs=rngs)
        self.filter = _ImplicitFilter(config, rngs=rngs)
        self.filter_bias = nnx.Param(jax.random.normal(rngs.params(), (order, d)))
        self.out_proj = nnx.Linear(d, d, rngs=rngs)
        self.order = order

    def __call__(self, x, *, rate=0.0, key=None):
        del rate, key
        parts = jnp.split(self.short_conv(self.in_proj(x)), self.order + 1, axis=-1)
        z, gates = parts[0], parts[1:]
        filters = self.filter(x.shape[-2])
        for n in range(self.order):
            conv = causal_fft_conv(z, filters[n]) + lift(self.filter_bias[n], z.ndim) * z
            z = gates[n] * conv
        return self.out_proj(z)


class SmallStripedHyena(_Encoder):
    r"""Hyena-operator encoder with causal RoPE attention at chosen layers ("SmallStripedHyena").

    Token embedding only (no positional table: the long filters and RoPE carry position). Each
    block is ``h <- h + mixer(LN(h)); h <- h + SwiGLU(LN(h))`` with MLP ratio 4. The mixer is the
    order-``N`` Hyena operator

    .. math:: (v, x_1, \ldots, x_N) = \mathrm{ShortConv}(W_{in} u),\quad z_0 = v,\quad
       z_n = x_n \odot (h_n * z_{n-1}),\quad y = W_{out} z_N,

    with implicit filters :math:`h_n(t) = e^{-\alpha_c t}\,\mathrm{FFN}(\mathrm{PE}(t))` and the
    causal convolution :math:`*` computed by FFT with zero padding to ``2L``, or causal
    multi-head attention with RoPE at ``attention_layers``.

    Args:
        config: an :class:`EncoderConfig` (uses ``hyena_order``, ``attention_layers``, filter
            options).
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SmallStripedHyena
        >>> cfg = EncoderConfig("striped_hyena", d_model=16, num_layers=2, attention_layers=(1,))
        >>> SmallStripedHyena(cfg, rngs=nnx.Rngs(0))(jnp.zeros((2, 8), jnp.int32)).shape
        (2, 8, 16)
    """

    def __init__(self, config: EncoderConfig = EncoderConfig("striped_hyena"), *, rngs: nnx.Rngs):
        self.config = config
        d = config.d_model
        attn = config.resolved_attention_layers
        self.token_embed = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.mix_norms = _layer_norms(d, config.num_layers, rngs=rngs)
        self.mixers = nnx.List(
            [
                CausalSelfAttention(d, config.num_heads, use_rope=True, rngs=rngs)
                if i in attn
                else _HyenaOperator(config, rngs=rngs)
                for i in range(config.num_layers)
            ]
        )
        self.mlp_norms = _layer_norms(d, config.num_layers, rngs=rngs)
        self.mlps = nnx.List(
            [_FeedForward(d, 4 * d, gated=True, rngs=rngs) for _ in range(config.num_layers)]
        )
        self.final_norm = nnx.LayerNorm(d, rngs=rngs)

    def embed_tokens(self, tokens):
        """Token embedding (no positional embedding)."""
        return self.token_embed(tokens)

    def encode(self, h, *, key=None):
        """Hyena / attention blocks with SwiGLU MLPs and final LayerNorm."""
        rate = self.config.dropout
        keys = split_key(key, 4 * self.config.num_layers)
        h = _pre_norm_blocks(h, self.mix_norms, self.mixers, self.mlp_norms, self.mlps, rate, keys)
        return self.final_norm(h)


class _LSTMLayer(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs):
        self.input_proj = nnx.Linear(d_in, 4 * hidden, rngs=rngs)
        self.recurrent = nnx.Linear(
            hidden, 4 * hidden, use_bias=False, kernel_init=nnx.initializers.orthogonal(), rngs=rngs
        )
        self.hidden = hidden

    def __call__(self, x):  # (..., L, d_in) -> (..., L, hidden)
        gates_in = jnp.moveaxis(self.input_proj(x), -2, 0)  # (L, ..., 4h)
        kernel = self.recurrent.kernel[...]
        zeros = jnp.zeros(gates_in.shape[1:-1] + (self.hidden,), jnp.result_type(gates_in, kernel))

        def step(carry, g_in):
            h, c = carry
            i, f, g, o = jnp.split(g_in + h @ kernel, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        _, hs = jax.lax.scan(step, (zeros, zeros), gates_in)
        return jnp.moveaxis(hs, 0, -2)


class SmallLSTM(_Encoder):
    r"""Stacked LSTM encoder ("SmallLSTM", Variant D): token embedding, no positions.

    .. math:: c_t = \sigma(f_t) c_{t-1} + \sigma(i_t)\tanh(g_t),\quad h_t = \sigma(o_t)\tanh(c_t),

    ``num_layers`` layers of width ``d_model`` (dropout between layers), then LayerNorm. One bias
    set per gate, so there are slightly fewer parameters than PyTorch's ``nn.LSTM``.

    Args:
        config: an :class:`EncoderConfig`.
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SmallLSTM
        >>> cfg = EncoderConfig("lstm", d_model=16, num_layers=1)
        >>> SmallLSTM(cfg, rngs=nnx.Rngs(0))(jnp.zeros((2, 8), jnp.int32)).shape
        (2, 8, 16)
    """

    def __init__(self, config: EncoderConfig = EncoderConfig("lstm"), *, rngs: nnx.Rngs):
        self.config = config
        d = config.d_model
        self.token_embed = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.layers = nnx.List([_LSTMLayer(d, d, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = nnx.LayerNorm(d, rngs=rngs)

    def embed_tokens(self, tokens):
        """Token embedding (no positional embedding)."""
        return self.token_embed(tokens)

    def encode(self, h, *, key=None):
        """Stacked LSTM layers and final LayerNorm."""
        keys = split_key(key, self.config.num_layers)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < self.config.num_layers - 1:
                h = dropout(h, self.config.dropout, keys[i])
        return self.final_norm(h)


_CLASSES = {
    "bert": SmallBERT,
    "mamba": SmallMamba,
    "striped_hyena": SmallStripedHyena,
    "lstm": SmallLSTM,
}


def make_encoder(config: EncoderConfig, *, rngs: nnx.Rngs) -> _Encoder:
    """Build the encoder named by ``config.architecture``.

    Args:
        config: the encoder hyper-parameters.
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Returns:
        A :class:`SmallBERT`, :class:`SmallMamba`, :class:`SmallStripedHyena` or
        :class:`SmallLSTM`.

    Examples:
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, make_encoder
        >>> type(make_encoder(EncoderConfig("lstm", d_model=8, num_layers=1), rngs=nnx.Rngs(0)))
        <class 'geomtax.models._encoders.SmallLSTM'>
    """
    return _CLASSES[config.architecture](config, rngs=rngs)
