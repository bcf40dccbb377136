"""Encoder + head models and their next-step losses (docs/reference/models.md#heads)."""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from .._errors import check_choice
from ..dynamics._integrate import _chunk_size_renamed
from ._encoders import EncoderConfig, make_encoder

HEADS = ("ce", "mse", "code")
"""Head names: next-token cross-entropy, continuous next-value regression, fixed-code regression."""


class FixedCode(nnx.Variable):
    """A non-trainable code table (excluded from ``nnx.Param`` filters, so never optimised)."""


def random_code_table(vocab_size: int, d_code: int, *, key: jax.Array) -> jax.Array:
    r"""Random unit-norm codes, one per token, for the fixed-code regression head.

    Rows are i.i.d. :math:`\mathcal N(0, I_{d})` vectors scaled to unit norm; with
    ``d_code >= vocab_size`` they are made exactly orthonormal (QR), the "random orthonormal"
    control of docs/reference/models.md#heads.

    Args:
        vocab_size: number of tokens (rows).
        d_code: code dimension (columns).
        key: PRNG key.

    Returns:
        float32 array ``(vocab_size, d_code)``.

    Examples:
        >>> import jax
        >>> from geomtax.models import random_code_table
        >>> random_code_table(4, 8, key=jax.random.key(0)).shape
        (4, 8)
    """
    g = jax.random.normal(key, (max(vocab_size, d_code), d_code))
    if d_code >= vocab_size:
        q, _ = jnp.linalg.qr(g)
        return q[:vocab_size]
    g = g[:vocab_size]
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


class SequenceModel(nnx.Module):
    r"""An encoder with one of three heads: cross-entropy, continuous (MSE) or fixed code.

    * ``"ce"``: ``Linear(d, vocab)``, next-token cross-entropy.
    * ``"mse"``: ``Linear(d, 1)``, regression of the next value normalised to [0, 1]; the
      *input* is the same discrete tokens as for ``"ce"``.
    * ``"code"``: ``Linear(d, d_code)``, regression onto ``code_table[next token]``.

    The encoder is built from ``encoder_config`` alone, so two models with the same config and
    different heads have identical encoders ("identical encoder" = same architecture and
    hyper-parameters, each trained from scratch).

    Args:
        encoder_config: encoder hyper-parameters.
        head: ``"ce"``, ``"mse"`` or ``"code"``.
        code_table: ``(vocab_size, d_code)`` fixed codes, required for ``head="code"``.
        rngs: Flax NNX random streams for initialisation (keyword-only).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SequenceModel
        >>> cfg = EncoderConfig("bert", d_model=16, num_layers=1, vocab_size=10, max_len=8)
        >>> SequenceModel(cfg, head="mse", rngs=nnx.Rngs(0))(jnp.zeros((3, 8), jnp.int32)).shape
        (3, 8, 1)
    """

    def __init__(
        self,
        encoder_config: EncoderConfig,
        *,
        head: str = "ce",
        code_table: jax.Array | None = None,
        rngs: nnx.Rngs,
    ):
        check_choice("head", head, HEADS)
        self.encoder_config = encoder_config
        self.head_kind = head
        self.encoder = make_encoder(encoder_config, rngs=rngs)
        d = encoder_config.d_model
        if head == "ce":
            out = encoder_config.vocab_size
            self.code_table = None
        elif head == "mse":
            out = 1
            self.code_table = None
        else:
            if code_table is None:
                raise ValueError("head='code' needs a code_table of shape (vocab_size, d_code)")
            if jnp.ndim(code_table) != 2 or jnp.shape(code_table)[0] != encoder_config.vocab_size:
                raise ValueError(
                    f"code_table must have shape ({encoder_config.vocab_size}, d_code); got "
                    f"{jnp.shape(code_table)}"
                )
            out = jnp.shape(code_table)[1]
            self.code_table = FixedCode(jnp.asarray(code_table, jnp.float32))
        self.head = nnx.Linear(
            d, out, kernel_init=nnx.initializers.normal(1.0 / math.sqrt(d)), rngs=rngs
        )

    def __call__(self, tokens: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """Head outputs ``(..., L, out)`` (logits, scalar predictions or codes)."""
        return self.head(self.encoder(tokens, key=key))


def init_model(
    encoder_config: EncoderConfig,
    *,
    head: str = "ce",
    code_table: jax.Array | None = None,
    seed: int | jax.Array,
) -> SequenceModel:
    """Build a :class:`SequenceModel` with one compiled initialisation.

    Equivalent to ``SequenceModel(encoder_config, head=head, rngs=nnx.Rngs(seed))`` but all
    parameter initialisers run inside a single ``jax.jit`` call, which is much faster than
    the eager construction (one small compilation per initialiser) on CPU.

    Args:
        encoder_config: encoder hyper-parameters.
        head: ``"ce"``, ``"mse"`` or ``"code"``.
        code_table: fixed codes for ``head="code"``.
        seed: seed of the ``nnx.Rngs`` used for initialisation (int or uint32 array;
            required: there is no default seed).

    Returns:
        The initialised model.

    Examples:
        >>> from geomtax.models import EncoderConfig, init_model
        >>> m = init_model(EncoderConfig("lstm", d_model=8, num_layers=1), head="mse", seed=1)
        >>> m.head_kind
        'mse'
    """

    def build(s, table):
        rngs = nnx.Rngs(jax.random.key(s))
        return SequenceModel(encoder_config, head=head, code_table=table, rngs=rngs)

    abstract = nnx.eval_shape(lambda: build(0, code_table))
    graphdef, _ = nnx.split(abstract)
    state = jax.jit(lambda s, table: nnx.split(build(s, table))[1])(
        jnp.asarray(seed, jnp.uint32), code_table
    )
    return nnx.merge(graphdef, state)


def sequence_loss(
    model: SequenceModel,
    tokens: jax.Array,
    values: jax.Array | None = None,
    *,
    key: jax.Array | None = None,
) -> jax.Array:
    r"""Mean next-step loss of ``model`` on a batch (causal LM: input ``x[:, :-1]``).

    .. math::
        \mathcal L_{CE} = -\frac{1}{B(L-1)}\sum_{b,t} \log p_\theta(x_{b,t+1}\mid x_{b,\le t}),\quad
        \mathcal L_{MSE} = \frac{1}{B(L-1)}\sum_{b,t} (\hat v_{b,t} - v_{b,t+1})^2,

    and for the code head the squared error to ``code_table[x_{t+1}]``, averaged over code
    dimensions too. Units: nats per token (CE) or squared normalised value units (MSE).

    Args:
        model: a :class:`SequenceModel`.
        tokens: int tokens ``(B, L)``.
        values: float targets ``(B, L)`` normalised to [0, 1] (required for ``head="mse"``).
        key: dropout key (``None`` = deterministic).

    Returns:
        Scalar loss.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SequenceModel, sequence_loss
        >>> cfg = EncoderConfig("lstm", d_model=8, num_layers=1, vocab_size=4)
        >>> m = SequenceModel(cfg, head="ce", rngs=nnx.Rngs(0))
        >>> float(sequence_loss(m, jnp.zeros((2, 5), jnp.int32))) > 0
        True
    """
    if jnp.ndim(tokens) != 2 or tokens.shape[-1] < 2:
        raise ValueError(f"tokens must have shape (B, L) with L >= 2; got {jnp.shape(tokens)}")
    if model.head_kind == "mse" and (values is None or jnp.shape(values) != jnp.shape(tokens)):
        raise ValueError(
            f"head='mse' needs values with the tokens' shape {jnp.shape(tokens)}; got "
            f"{None if values is None else jnp.shape(values)}"
        )
    out = model(tokens[:, :-1], key=key)
    if model.head_kind == "ce":
        return optax.softmax_cross_entropy_with_integer_labels(out, tokens[:, 1:]).mean()
    if model.head_kind == "mse":
        return jnp.mean((out[..., 0] - values[:, 1:]) ** 2)
    target = model.code_table[...][tokens[:, 1:]]
    return jnp.mean((out - target) ** 2)


@_chunk_size_renamed
def embed(model: nnx.Module, tokens: jax.Array, *, chunk_size: int | None = None) -> jax.Array:
    r"""Mean-pooled last-layer representation (after the final LayerNorm).

    .. math:: e = \frac{1}{L}\sum_{t=0}^{L-1} h^{(\text{final})}_t \in \mathbb R^{d_{model}}

    Deterministic (no dropout). This is the embedding every distortion metric is computed on
    (docs/reference/geometry.md#inputs-and-pairing).

    Args:
        model: a :class:`SequenceModel` or a bare encoder.
        tokens: int tokens ``(n, L)``.
        chunk_size: if given, process ``chunk_size`` rows at a time (``lax.map``) to bound memory
            (the result does not change). ``batch_size=`` is its deprecated name.

    Returns:
        float array ``(n, d_model)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from geomtax.models import EncoderConfig, SequenceModel, embed
        >>> cfg = EncoderConfig("mamba", d_model=8, num_layers=1, vocab_size=4, max_len=6)
        >>> m = SequenceModel(cfg, head="ce", rngs=nnx.Rngs(0))
        >>> embed(m, jnp.zeros((5, 6), jnp.int32), chunk_size=2).shape
        (5, 8)
    """
    encoder = model.encoder if isinstance(model, SequenceModel) else model
    if jnp.ndim(tokens) != 2:
        raise ValueError(f"tokens must have shape (n, L); got {jnp.shape(tokens)}")

    def pooled(t):
        return encoder(t).mean(axis=-2)

    if chunk_size is None:
        return pooled(tokens)
    return jax.lax.map(pooled, tokens, batch_size=chunk_size)
