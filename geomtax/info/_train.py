r"""Training a critic: one optax step, and the whole training loop as one ``lax.scan``.

The bound is an `AbstractBound` object and the optimizer an ``optax.GradientTransformation``;
the bound's own training state (MINE's moving average) is threaded through the loop's carry.
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jaxtyping import Array, Float

from .._custom_types import KeyArray
from .._errors import check_choice, check_paired
from ._bounds import NEGATIVES, AbstractBound, as_bound
from ._critics import AbstractCritic

#: The default optimizer's learning rate and global-norm gradient clip (see docs/api/info.md).
LEARNING_RATE = 5e-4
GRAD_CLIP = 5.0


def default_optimizer(learning_rate, grad_clip) -> optax.GradientTransformation:
    """Adam after global-norm gradient clipping: the fit's optimizer unless one is passed."""
    return optax.chain(
        optax.clip_by_global_norm(grad_clip), optax.adam(learning_rate=learning_rate)
    )


def _loss(critic, xs, ys, state, key, *, bound: AbstractBound, negatives):
    """``(-surrogate, (estimate, new_state))`` of ``bound`` on one minibatch."""
    scores = bound.scores(critic, xs, ys, key=key, negatives=negatives)
    surrogate, (estimate, new_state) = bound.objective(scores, state)
    return -surrogate, (estimate, new_state)


def _step(critic, opt_state, state, xs, ys, *, optimizer, key, bound, negatives):
    loss_fn = eqx.filter_value_and_grad(
        lambda c: _loss(c, xs, ys, state, key, bound=bound, negatives=negatives), has_aux=True
    )
    (_, (estimate, new_state)), grads = loss_fn(critic)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(critic, eqx.is_array))
    critic = eqx.apply_updates(critic, updates)
    return critic, opt_state, new_state, estimate


def mine_step(
    critic: AbstractCritic,
    opt_state: optax.OptState,
    state: Any,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    optimizer: optax.GradientTransformation,
    key: KeyArray | None = None,
    bound: AbstractBound | str = "mine",
    negatives: str = "shift",
) -> tuple[AbstractCritic, optax.OptState, Any, Float[Array, ""]]:
    r"""One optax step that maximizes a mutual-information bound on a minibatch.

    Pure and jittable: call it inside your own ``jax.jit``/``eqx.filter_jit`` loop (the
    ``optimizer`` is a static Python object, so build it once outside the loop). ``state`` is the
    bound's training state, from ``bound.init_state()``: for `MINE` a `MineState` (the moving
    average, updated here), for the other bounds ``None`` (passed through unchanged). No
    plausibility checks are applied here: the loop is yours (see `mutual_information` for the
    checks).

    Args:
        critic: The critic (an Equinox module).
        opt_state: ``optimizer.init(eqx.filter(critic, eqx.is_array))``.
        state: The bound's state (``bound.init_state()``; `init_mine_state` for MINE).
        xs: Minibatch of ``x``, shape (b, d_x), paired with ``ys``.
        ys: Minibatch of ``y``, shape (b, d_y).
        optimizer: An optax gradient transformation.
        key: Dropout key (``None``: deterministic critic).
        bound: An `AbstractBound` (``MINE(ema_rate=0.01)``, ``SMILE(tau=5.0)``, ...) or one of
            the names ``"mine"`` (default), ``"dv"``, ``"nwj"``, ``"infonce"``, ``"smile"``
            (the bound with its default hyperparameters).
        negatives: ``"shift"`` or ``"all"`` (see `AbstractBound.scores`).

    Returns:
        ``(critic, opt_state, state, estimate)``, the estimate being the bound's value on this
        minibatch before the update, in nats.

    Raises:
        ValueError: Unknown ``bound``/``negatives`` or mismatched rows.

    Examples:
        >>> from geomtax.info import *
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax
        >>> critic = ConcatCritic(1, 1, hidden=(16,), key=jax.random.key(0))
        >>> optimizer = optax.adam(1e-3)
        >>> opt_state = optimizer.init(eqx.filter(critic, eqx.is_array))
        >>> x = jax.random.normal(jax.random.key(1), (64, 1))
        >>> y = x + 0.5 * jax.random.normal(jax.random.key(2), (64, 1))
        >>> bound = MINE(ema_rate=0.05)
        >>> step = eqx.filter_jit(mine_step)
        >>> state = bound.init_state()
        >>> for _ in range(3):
        ...     critic, opt_state, state, estimate = step(
        ...         critic, opt_state, state, x, y, optimizer=optimizer, bound=bound)
        >>> estimate.shape
        ()
    """
    bound = as_bound(bound)
    check_choice("negatives", negatives, NEGATIVES)
    check_paired(xs, ys, names=("xs", "ys"))
    return _step(
        critic,
        opt_state,
        state,
        xs,
        ys,
        optimizer=optimizer,
        key=key,
        bound=bound,
        negatives=negatives,
    )


def _select(ok, new, old):
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )


def evaluate_batches(bound: AbstractBound, critic, x, y, *, batch_size: int, negatives: str):
    """The bound on ``(x, y)`` in batches of ``min(batch_size, n)`` rows: mean and stderr."""
    m = x.shape[0]
    eb = min(batch_size, m)
    nb = m // eb
    xb = x[: nb * eb].reshape(nb, eb, -1)
    yb = y[: nb * eb].reshape(nb, eb, -1)
    per_batch = jax.vmap(lambda u, v: bound.evaluate(critic, u, v, negatives=negatives))(xb, yb)
    se = jnp.std(per_batch) / math.sqrt(nb) if nb > 1 else jnp.full((), jnp.nan, x.dtype)
    return jnp.mean(per_batch), se


def train_critic(
    critic,
    x,
    y,
    key,
    *,
    bound: AbstractBound,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    negatives: str,
    use_dropout: bool,
    checkpoint=None,
    num_checkpoints: int = 0,
):
    """Train ``critic`` on ``(x, y)`` for ``num_steps`` steps in one ``lax.scan``.

    Epoch-wise shuffling (as the reference): one permutation per pass over the data, and step t
    takes rows [(t mod s) b, (t mod s) b + b) of epoch t // s's permutation (s = n // b steps
    per epoch; the last n mod b rows of each permutation are skipped). Memory ~ num_steps * b.
    A non-finite step is recorded in the curve but never applied, so the critic stays usable.
    With ``checkpoint`` (a function of the trained critic) and ``num_checkpoints > 0``, the
    steps run in that many segments and ``checkpoint`` is recorded after each.

    Returns:
        ``(critic, curve, checkpoints)``: the trained critic, the per-step estimates (nats,
        shape (num_steps,)) and the recorded checkpoints (``None`` without them).
    """
    n_train = x.shape[0]
    params, static = eqx.partition(critic, eqx.is_array)
    opt_state = optimizer.init(params)
    steps_per_epoch = n_train // batch_size
    num_epochs = -(-num_steps // steps_per_epoch)
    k_perm, k_steps = jax.random.split(key)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n_train))(
        jax.random.split(k_perm, num_epochs)
    )

    def step(carry, inputs):
        params, opt_state, state = carry
        t, k_drop = inputs
        row = lax.dynamic_slice_in_dim(
            perms[t // steps_per_epoch], (t % steps_per_epoch) * batch_size, batch_size
        )
        xs, ys = x[row], y[row]
        c = eqx.combine(params, static)
        new_c, new_opt, new_state, estimate = _step(
            c,
            opt_state,
            state,
            xs,
            ys,
            optimizer=optimizer,
            key=k_drop if use_dropout else None,
            bound=bound,
            negatives=negatives,
        )
        new_params = eqx.filter(new_c, eqx.is_array)
        ok = jnp.isfinite(estimate) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree_util.tree_leaves(new_params)])
        )
        carry = (
            _select(ok, new_params, params),
            _select(ok, new_opt, opt_state),
            _select(ok, new_state, state),
        )
        return carry, estimate

    init_carry = (params, opt_state, bound.init_state(x.dtype))
    ts = jnp.arange(num_steps)
    step_keys = jax.random.split(k_steps, num_steps)
    if checkpoint is not None and num_checkpoints:
        seg = num_steps // num_checkpoints
        main = seg * num_checkpoints

        def segment(carry, inputs):
            carry, est = lax.scan(step, carry, inputs)
            return carry, (est, checkpoint(eqx.combine(carry[0], static)))

        carry, (curve_main, checkpoints) = lax.scan(
            segment,
            init_carry,
            (
                ts[:main].reshape(num_checkpoints, seg),
                step_keys[:main].reshape(num_checkpoints, seg),
            ),
        )
        curve = curve_main.reshape(-1)
        if main < num_steps:
            carry, curve_rest = lax.scan(step, carry, (ts[main:], step_keys[main:]))
            curve = jnp.concatenate([curve, curve_rest])
        params = carry[0]
    else:
        (params, _, _), curve = lax.scan(step, init_carry, (ts, step_keys))
        checkpoints = None
    return eqx.combine(params, static), curve, checkpoints
