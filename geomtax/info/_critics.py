r"""Equinox critics for variational mutual-information bounds.

A critic \(T_\theta(x, y)\) scores one pair ``(x, y)`` (STYLE rule 2). Bounds need two
derived forms, which every critic provides:

* ``critic(x, y, *, key=None)``: the pointwise score of one pair, ``x`` (d_x,), ``y`` (d_y,);
* ``critic.pairs(xs, ys, *, key=None)``: the scores of the rows of ``xs`` and ``ys`` paired row by
  row, shape (b,);
* ``critic.all_pairs(xs, ys, *, key=None)``: the score matrix ``S[i, j] = T(x_i, y_j)``, shape
  (b, b); the diagonal holds the joint pairs and the off-diagonal entries the product of marginals.

Dropout is active only when a ``key`` is given (training); ``key=None`` is deterministic
evaluation. No critic keeps mutable state.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import KeyArray
from .._errors import check_float, check_int


def check_hidden(hidden) -> tuple[int, ...]:
    """Hidden widths: a tuple (or list) of ints, each >= 1; returns a tuple of Python ints."""
    if isinstance(hidden, (int, str)) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"hidden must be a tuple of ints, got hidden={hidden!r}")
    return tuple(check_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden))


def _check_dropout(dropout) -> float:
    dropout = check_float("dropout", dropout, minimum=0.0, allow_traced=False)
    if not dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
    return float(dropout)


class AbstractCritic(eqx.Module):
    """Base class of critics ``T(x, y) -> scalar``; see the module docstring for the contract."""

    @abc.abstractmethod
    def __call__(self, x, y, *, key=None):
        """Score one pair; implemented by subclasses."""

    def pairs(
        self, xs: Float[Array, "b dx"], ys: Float[Array, "b dy"], *, key: KeyArray | None = None
    ) -> Float[Array, " b"]:
        """Scores of row-paired samples, ``T(x_i, y_i)``, shape (b,)."""
        b = xs.shape[0]
        if key is None:
            return jax.vmap(lambda u, v: self(u, v))(xs, ys)
        keys = jax.random.split(key, b)
        return jax.vmap(lambda u, v, k: self(u, v, key=k))(xs, ys, keys)

    def all_pairs(
        self, xs: Float[Array, "b dx"], ys: Float[Array, "b dy"], *, key: KeyArray | None = None
    ) -> Float[Array, "b b"]:
        """Score matrix ``S[i, j] = T(x_i, y_j)``, shape (b, b), by a nested ``vmap``."""
        b = xs.shape[0]
        if key is None:
            return jax.vmap(lambda u: jax.vmap(lambda v: self(u, v))(ys))(xs)
        keys = jax.random.split(key, (b, b))
        return jax.vmap(lambda u, kr: jax.vmap(lambda v, k: self(u, v, key=k))(ys, kr))(xs, keys)


def _dropout(h, rate: float, key):
    if key is None or rate == 0.0:
        return h
    keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
    return jnp.where(keep, h / (1.0 - rate), jnp.zeros_like(h))


class _MLP(eqx.Module):
    layers: tuple[eqx.nn.Linear, ...]
    dropout: float = eqx.field(static=True)

    def __init__(
        self, d_in: int, hidden: tuple[int, ...], d_out: int, dropout: float, *, dtype, key
    ):
        sizes = (d_in, *hidden, d_out)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, dtype=dtype, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.dropout = dropout

    def __call__(self, h, *, key=None):
        keys = (
            [None] * (len(self.layers) - 1)
            if key is None
            else list(jax.random.split(key, len(self.layers) - 1))
        )
        for layer, k in zip(self.layers[:-1], keys, strict=True):
            h = _dropout(jax.nn.relu(layer(h)), self.dropout, k)
        return self.layers[-1](h)


class ConcatCritic(AbstractCritic):
    r"""MLP critic on the concatenation ``[x, y]`` (the reference MINE critic).

    $$T_\theta(x, y) = \mathrm{MLP}_\theta([x; y]),$$

    with ``Linear -> ReLU -> Dropout`` for each hidden width, then ``Linear -> 1`` (the
    reference MINE critic has hidden ``(256, 128)`` and dropout 0.1; geomtax defaults to 0.0 so
    that the default fit is deterministic given its key).

    Args:
        x_dim: Dimension d_x of ``x``.
        y_dim: Dimension d_y of ``y``.
        hidden: Hidden widths (static), each >= 1.
        dropout: Dropout rate in [0, 1) applied after each hidden ReLU when a key is passed.
        dtype: Parameter dtype (``None``: JAX's default float).
        key: PRNG key for the initial weights.

    Examples:
        >>> from geomtax.info import ConcatCritic, SeparableCritic
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(2, 3, hidden=(8,), key=jax.random.key(0))
        >>> critic(jnp.ones(2), jnp.ones(3)).shape
        ()
        >>> critic.all_pairs(jnp.ones((4, 2)), jnp.ones((4, 3))).shape
        (4, 4)
    """

    mlp: _MLP
    x_dim: int = eqx.field(static=True)
    y_dim: int = eqx.field(static=True)

    def __init__(
        self,
        x_dim: int,
        y_dim: int,
        *,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.0,
        dtype: "jnp.dtype | None" = None,
        key: KeyArray,
    ):
        dropout = _check_dropout(dropout)
        hidden = check_hidden(hidden)
        self.x_dim = check_int("x_dim", x_dim, minimum=1)
        self.y_dim = check_int("y_dim", y_dim, minimum=1)
        self.mlp = _MLP(self.x_dim + self.y_dim, hidden, 1, dropout, dtype=dtype, key=key)

    def __call__(
        self, x: Float[Array, " dx"], y: Float[Array, " dy"], *, key: KeyArray | None = None
    ) -> Float[Array, ""]:
        """Score one pair ``(x, y)``; dropout is active only when ``key`` is given."""
        return self.mlp(jnp.concatenate([x, y]), key=key)[0]


class SeparableCritic(AbstractCritic):
    r"""Separable critic: the inner product of two MLP encoders.

    $$T_\theta(x, y) = g_\theta(x)^\top h_\phi(y),$$

    so the (b, b) score matrix costs two encoder passes and one matrix product, which makes it
    the natural critic for InfoNCE with large batches.

    Args:
        x_dim: Dimension d_x of ``x``.
        y_dim: Dimension d_y of ``y``.
        hidden: Hidden widths of each encoder (static), each >= 1.
        embed_dim: Output dimension of both encoders (static), >= 1.
        dropout: Dropout rate after each hidden ReLU, active only when a key is passed.
        dtype: Parameter dtype (``None``: JAX's default float).
        key: PRNG key for the initial weights.

    Examples:
        >>> from geomtax.info import ConcatCritic, SeparableCritic
        >>> import jax, jax.numpy as jnp
        >>> critic = SeparableCritic(2, 3, hidden=(8,), embed_dim=4, key=jax.random.key(0))
        >>> critic.all_pairs(jnp.ones((5, 2)), jnp.ones((5, 3))).shape
        (5, 5)
    """

    g: _MLP
    h: _MLP
    x_dim: int = eqx.field(static=True)
    y_dim: int = eqx.field(static=True)

    def __init__(
        self,
        x_dim: int,
        y_dim: int,
        *,
        hidden: tuple[int, ...] = (256, 128),
        embed_dim: int = 32,
        dropout: float = 0.0,
        dtype: "jnp.dtype | None" = None,
        key: KeyArray,
    ):
        dropout = _check_dropout(dropout)
        hidden = check_hidden(hidden)
        embed_dim = check_int("embed_dim", embed_dim, minimum=1)
        kg, kh = jax.random.split(key)
        self.x_dim = check_int("x_dim", x_dim, minimum=1)
        self.y_dim = check_int("y_dim", y_dim, minimum=1)
        self.g = _MLP(self.x_dim, hidden, embed_dim, dropout, dtype=dtype, key=kg)
        self.h = _MLP(self.y_dim, hidden, embed_dim, dropout, dtype=dtype, key=kh)

    def __call__(
        self, x: Float[Array, " dx"], y: Float[Array, " dy"], *, key: KeyArray | None = None
    ) -> Float[Array, ""]:
        """Score one pair ``(x, y)``; dropout is active only when ``key`` is given."""
        kg, kh = (None, None) if key is None else tuple(jax.random.split(key))
        return jnp.dot(self.g(x, key=kg), self.h(y, key=kh))

    def all_pairs(
        self, xs: Float[Array, "b dx"], ys: Float[Array, "b dy"], *, key: KeyArray | None = None
    ) -> Float[Array, "b b"]:
        """Score matrix ``g(X) h(Y)^T`` (encoders applied once per row)."""
        b = xs.shape[0]
        if key is None:
            gx = jax.vmap(lambda u: self.g(u))(xs)
            hy = jax.vmap(lambda v: self.h(v))(ys)
        else:
            kg, kh = jax.random.split(key)
            gx = jax.vmap(lambda u, k: self.g(u, key=k))(xs, jax.random.split(kg, b))
            hy = jax.vmap(lambda v, k: self.h(v, key=k))(ys, jax.random.split(kh, b))
        return gx @ hy.T
