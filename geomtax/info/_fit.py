r"""Fitting critics: one optax step, and a whole fit compiled as one ``lax.scan``.

The fit is a pure function of ``(x, y, key)``: critic initialization, minibatch sampling,
optimization and evaluation all happen inside one compiled program, so ``jax.vmap`` over keys
and/or stacked datasets runs many fits side by side (e.g. 5 seeds x 8 layers in one call).
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import KeyArray, ScalarLike
from .._errors import check_choice, check_finite, check_floating, check_paired
from ._bounds import (
    BOUNDS,
    NEGATIVES,
    MineState,
    evaluate_bound,
    init_mine_state,
    mine_bound,
)
from ._critics import AbstractCritic, ConcatCritic, SeparableCritic

ESTIMATORS = (*BOUNDS, "ksg")
EVALUATIONS = ("train_tail", "heldout")


class MIResult(eqx.Module):
    """Outcome of one mutual-information estimate; arrays only, all in nats.

    Attributes:
        value: The point estimate (nats). NaN if the fit diverged (see ``diverged``).
        curve: The training objective's bound estimate at every step, shape (num_steps,)
            (for KSG, shape (1,) holding the estimate).
        tail_mean: Mean of ``curve`` over the last ``tail_fraction`` of steps (the reference
            estimate; equals ``value`` when ``evaluation="train_tail"``).
        tail_std: Standard deviation of ``curve`` over the same tail (the estimate's spread).
        heldout: The bound evaluated on the held-out split after training (NaN unless
            ``evaluation="heldout"``).
        diverged: True if any training step produced a non-finite objective.
        diverged_step: Index of the first non-finite step, or -1.
    """

    value: Float[Array, ""]
    curve: Float[Array, " s"]
    tail_mean: Float[Array, ""]
    tail_std: Float[Array, ""]
    heldout: Float[Array, ""]
    diverged: Bool[Array, ""]
    diverged_step: Int[Array, ""]


def _loss(critic, xs, ys, mine_state, key, *, bound, ema_rate, tau, negatives):
    """Return ``(loss, (estimate, new_mine_state))`` for any bound."""
    if bound == "mine":
        surrogate, (estimate, new_state) = mine_bound(
            critic, xs, ys, mine_state, ema_rate=ema_rate, key=key, negatives=negatives
        )
        return -surrogate, (estimate, new_state)
    value = evaluate_bound(bound, critic, xs, ys, key=key, negatives=negatives, tau=tau)
    return -value, (value, mine_state)


def mine_step(
    critic: AbstractCritic,
    opt_state: optax.OptState,
    mine_state: MineState,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    optimizer: optax.GradientTransformation,
    key: KeyArray | None = None,
    bound: str = "mine",
    ema_rate: ScalarLike = 0.01,
    tau: ScalarLike = 5.0,
    negatives: str = "shift",
) -> tuple[AbstractCritic, optax.OptState, MineState, Float[Array, ""]]:
    r"""One optax step that maximizes a mutual-information bound on a minibatch.

    Pure and jittable: call it inside your own ``jax.jit``/``eqx.filter_jit`` loop (the
    ``optimizer`` is a static Python object, so build it once outside the loop). For
    ``bound="mine"`` the gradient is MINE's moving-average-corrected one and ``mine_state`` carries
    the average; for the other bounds ``mine_state`` passes through unchanged.

    Args:
        critic: The critic (an Equinox module).
        opt_state: ``optimizer.init(eqx.filter(critic, eqx.is_array))``.
        mine_state: `MineState` from `init_mine_state`.
        xs: Minibatch of ``x``, shape (b, d_x), paired with ``ys``.
        ys: Minibatch of ``y``, shape (b, d_y).
        optimizer: An optax gradient transformation.
        key: Dropout key (``None``: deterministic critic).
        bound: One of ``"mine"``, ``"dv"``, ``"nwj"``, ``"infonce"``, ``"smile"``.
        ema_rate: MINE's moving-average rate.
        tau: SMILE's clip level.
        negatives: ``"shift"`` or ``"all"`` (see `dv_bound`).

    Returns:
        ``(critic, opt_state, mine_state, estimate)``, the estimate being the bound's value on this
        minibatch before the update, in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax
        >>> critic = ConcatCritic(1, 1, hidden=(16,), key=jax.random.key(0))
        >>> optimizer = optax.adam(1e-2)
        >>> opt_state = optimizer.init(eqx.filter(critic, eqx.is_array))
        >>> x = jax.random.normal(jax.random.key(1), (64, 1))
        >>> y = x + 0.5 * jax.random.normal(jax.random.key(2), (64, 1))
        >>> step = eqx.filter_jit(mine_step)
        >>> state = init_mine_state()
        >>> for _ in range(3):
        ...     critic, opt_state, state, estimate = step(
        ...         critic, opt_state, state, x, y, optimizer=optimizer)
        >>> estimate.shape
        ()
    """
    check_choice("bound", bound, BOUNDS)
    check_choice("negatives", negatives, NEGATIVES)
    check_paired(xs, ys, names=("xs", "ys"))
    loss_fn = eqx.filter_value_and_grad(
        lambda c: _loss(
            c,
            xs,
            ys,
            mine_state,
            key,
            bound=bound,
            ema_rate=ema_rate,
            tau=tau,
            negatives=negatives,
        ),
        has_aux=True,
    )
    (_, (estimate, new_mine_state)), grads = loss_fn(critic)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(critic, eqx.is_array))
    critic = eqx.apply_updates(critic, updates)
    return critic, opt_state, new_mine_state, estimate


def _select(ok, new, old):
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )


@eqx.filter_jit
def _fit_neural(
    x,
    y,
    key,
    learning_rate,
    ema_rate,
    tau,
    grad_clip,
    critic,
    *,
    bound: str,
    num_steps: int,
    batch_size: int,
    hidden: tuple[int, ...],
    dropout: float,
    negatives: str,
    tail_fraction: float,
    evaluation: str,
    heldout_fraction: float,
) -> MIResult:
    n = x.shape[0]
    k_split, k_init, k_train = jax.random.split(key, 3)
    if evaluation == "heldout":
        m = int(round(heldout_fraction * n))
        perm = jax.random.permutation(k_split, n)
        x_test, y_test = x[perm[:m]], y[perm[:m]]
        x, y = x[perm[m:]], y[perm[m:]]
    n_train = x.shape[0]
    if critic is None:
        if bound == "infonce":
            critic = SeparableCritic(
                x.shape[1], y.shape[1], hidden=hidden, dropout=dropout, dtype=x.dtype, key=k_init
            )
        else:
            critic = ConcatCritic(
                x.shape[1], y.shape[1], hidden=hidden, dropout=dropout, dtype=x.dtype, key=k_init
            )
    optimizer = optax.chain(
        optax.clip_by_global_norm(grad_clip), optax.adam(learning_rate=learning_rate)
    )
    params, static = eqx.partition(critic, eqx.is_array)
    opt_state = optimizer.init(params)
    use_dropout = dropout > 0.0

    # Epoch-wise shuffling (as the reference): one permutation per pass over the data, and step t
    # takes rows [(t mod s) b, (t mod s) b + b) of epoch t // s's permutation (s = n // b steps
    # per epoch; the last n mod b rows of each permutation are skipped). Memory ~ num_steps * b.
    steps_per_epoch = n_train // batch_size
    num_epochs = -(-num_steps // steps_per_epoch)
    k_perm, k_steps = jax.random.split(k_train)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n_train))(
        jax.random.split(k_perm, num_epochs)
    )

    def step(carry, inputs):
        params, opt_state, mine_state = carry
        t, k_drop = inputs
        row = lax.dynamic_slice_in_dim(
            perms[t // steps_per_epoch], (t % steps_per_epoch) * batch_size, batch_size
        )
        xs, ys = x[row], y[row]
        c = eqx.combine(params, static)
        new_c, new_opt, new_mine, estimate = mine_step(
            c,
            opt_state,
            mine_state,
            xs,
            ys,
            optimizer=optimizer,
            key=k_drop if use_dropout else None,
            bound=bound,
            ema_rate=ema_rate,
            tau=tau,
            negatives=negatives,
        )
        new_params = eqx.filter(new_c, eqx.is_array)
        ok = jnp.isfinite(estimate) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree_util.tree_leaves(new_params)])
        )
        # A non-finite step is recorded in the curve but never applied, so the critic stays usable.
        carry = (
            _select(ok, new_params, params),
            _select(ok, new_opt, opt_state),
            _select(ok, new_mine, mine_state),
        )
        return carry, estimate

    init_carry = (params, opt_state, init_mine_state(x.dtype))
    (params, _, _), curve = lax.scan(
        step, init_carry, (jnp.arange(num_steps), jax.random.split(k_steps, num_steps))
    )
    tail = max(1, int(math.ceil(tail_fraction * num_steps)))
    tail_curve = curve[-tail:]
    tail_mean = jnp.mean(tail_curve)
    tail_std = jnp.std(tail_curve)
    bad = ~jnp.isfinite(curve)
    diverged = jnp.any(bad)
    diverged_step = jnp.where(diverged, jnp.argmax(bad), -1).astype(jnp.int32)
    if evaluation == "heldout":
        trained = eqx.combine(params, static)
        nb = x_test.shape[0] // batch_size
        xb = x_test[: nb * batch_size].reshape(nb, batch_size, -1)
        yb = y_test[: nb * batch_size].reshape(nb, batch_size, -1)
        held = jnp.mean(
            jax.vmap(
                lambda u, v: evaluate_bound(bound, trained, u, v, negatives=negatives, tau=tau)
            )(xb, yb)
        )
        value = held
    else:
        held = jnp.full((), jnp.nan, curve.dtype)
        value = tail_mean
    value = jnp.where(diverged, jnp.nan, value)
    return MIResult(
        value=value,
        curve=curve,
        tail_mean=tail_mean,
        tail_std=tail_std,
        heldout=held,
        diverged=diverged,
        diverged_step=diverged_step,
    )


def _as_samples(name, a):
    a = jnp.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    return a


def mutual_information(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    key: KeyArray,
    estimator: str = "mine",
    num_steps: int = 3000,
    batch_size: int = 64,
    learning_rate: ScalarLike = 1e-4,
    grad_clip: ScalarLike = 5.0,
    hidden: tuple[int, ...] = (256, 128),
    dropout: float = 0.0,
    critic: AbstractCritic | None = None,
    ema_rate: ScalarLike = 0.01,
    tau: ScalarLike = 5.0,
    negatives: str = "shift",
    evaluation: str = "train_tail",
    tail_fraction: float = 0.1,
    heldout_fraction: float = 0.2,
    k: int = 3,
    block_size: int | None = 1024,
) -> MIResult:
    r"""Estimate the mutual information \(I(X; Y)\) in nats from paired samples.

    Neural estimators (``"mine"``, ``"dv"``, ``"nwj"``, ``"infonce"``, ``"smile"``) train a
    critic \(T_\theta\) by Adam (with global-norm gradient clipping) to maximize the chosen
    lower bound (see `dv_bound` and friends) on minibatches of ``batch_size`` rows for
    ``num_steps`` steps, shuffling the rows once per epoch as the reference does; the whole fit
    is one ``lax.scan`` inside one compiled program. ``"ksg"`` calls `ksg_mi`.

    Two documented ways to turn a fit into a number (REFERENCE section 6.1):

    * ``evaluation="train_tail"`` (**default**, reference parity, the estimator of
      `mine_train_tail`): the mean of the per-step training-batch estimates over the last
      ``tail_fraction`` (10 %) of steps. It shares the reference's bias: on small n it overfits
      upward, which is why the paper reports excess MI over a random-embedding baseline
      (`calibrated_mi`).
    * ``evaluation="heldout"`` (`mine_heldout`): ``heldout_fraction`` of the rows are held
      out, the critic is trained on the rest, and the bound is averaged over held-out
      minibatches of ``batch_size`` rows.

    Works under ``jax.vmap`` over ``key`` and/or stacked ``x``, ``y`` (each vmapped call is an
    independent fit). Static options (``estimator``, ``num_steps``, ``batch_size``, ``hidden``,
    ...) are checked before compiling; continuous ones (``learning_rate``, ``ema_rate``, ``tau``,
    ``grad_clip``) are array leaves, so changing them does not recompile.

    Args:
        x: Samples of X, shape (n, d_x) (a 1-D array is read as (n, 1)), paired row by row with
            ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key (critic initialization, minibatches, dropout, held-out split).
        estimator: ``"mine"`` (DV with the EMA gradient correction), ``"dv"``, ``"nwj"``,
            ``"infonce"`` (capped at log ``batch_size``), ``"smile"`` or ``"ksg"``.
        num_steps: Optimization steps (static). The reference's 500 epochs at n = 2,000 and batch
            64 are about 15,600 steps.
        batch_size: Minibatch rows (static); must not exceed the number of training rows.
        learning_rate: Adam learning rate (reference: 1e-4).
        grad_clip: Global-norm gradient clip (reference: 5.0).
        hidden: Hidden widths of the default critic (static; reference ``(256, 128)``).
        dropout: Dropout of the default critic (reference 0.1; default 0.0).
        critic: A ready critic to train instead of the default (`ConcatCritic`, or
            `SeparableCritic` for InfoNCE).
        ema_rate: MINE's moving-average rate.
        tau: SMILE's clip level.
        negatives: ``"shift"`` or ``"all"`` (see `dv_bound`).
        evaluation: ``"train_tail"`` or ``"heldout"``.
        tail_fraction: Fraction of final steps averaged for the tail estimate, in (0, 1].
        heldout_fraction: Fraction of rows held out when ``evaluation="heldout"``.
        k: Neighbours for ``"ksg"``.
        block_size: Row-block size for ``"ksg"`` (``None``: dense).

    Returns:
        An `MIResult`; ``.value`` in nats, NaN with ``.diverged`` set (and
        ``.diverged_step``) if any step produced a non-finite objective.

    Raises:
        ValueError: Unknown estimator/evaluation/negatives; mismatched row counts;
            ``batch_size`` larger than the training rows or smaller than 2; non-finite data.
        TypeError: Non-floating data.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> kx, kn, kfit = jax.random.split(jax.random.key(0), 3)
        >>> x = jax.random.normal(kx, (500, 1))
        >>> y = 0.8 * x + 0.6 * jax.random.normal(kn, (500, 1))  # rho = 0.8: 0.511 nats
        >>> res = mutual_information(x, y, key=kfit, num_steps=300, hidden=(32,),
        ...                          learning_rate=3e-3)
        >>> res.curve.shape
        (300,)
        >>> bool(0.2 < res.value < 0.9)
        True
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("evaluation", evaluation, EVALUATIONS)
    check_choice("negatives", negatives, NEGATIVES)
    x = _as_samples("x", x)
    y = _as_samples("y", y)
    check_paired(x, y)
    check_floating("x", x)
    check_floating("y", y)
    if estimator == "ksg":
        from ._ksg import ksg_mi

        value = ksg_mi(x, y, k=k, block_size=block_size)
        bad = ~jnp.isfinite(value)
        return MIResult(
            value=value,
            curve=value[None],
            tail_mean=value,
            tail_std=jnp.zeros_like(value),
            heldout=jnp.full_like(value, jnp.nan),
            diverged=bad,
            diverged_step=jnp.where(bad, 0, -1).astype(jnp.int32),
        )
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < tail_fraction <= 1.0:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    n = x.shape[0]
    n_train = n
    if evaluation == "heldout":
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        m = int(round(heldout_fraction * n))
        n_train = n - m
        if m < batch_size:
            raise ValueError(
                f"evaluation='heldout' holds out {m} of {n} rows (heldout_fraction="
                f"{heldout_fraction}), fewer than batch_size={batch_size}; x has shape {x.shape}"
            )
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    if batch_size > n_train:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {n_train} training rows "
            f"(x has shape {x.shape}, y has shape {y.shape})"
        )
    if critic is not None and (critic.x_dim, critic.y_dim) != (x.shape[1], y.shape[1]):
        raise ValueError(
            f"critic expects x_dim={critic.x_dim}, y_dim={critic.y_dim}; data have "
            f"x {x.shape} and y {y.shape}"
        )
    x = check_finite("x", x)
    y = check_finite("y", y).astype(x.dtype)
    dt = x.dtype
    return _fit_neural(
        x,
        y,
        key,
        jnp.asarray(learning_rate, dt),
        jnp.asarray(ema_rate, dt),
        jnp.asarray(tau, dt),
        jnp.asarray(grad_clip, dt),
        critic,
        bound=estimator,
        num_steps=int(num_steps),
        batch_size=int(batch_size),
        hidden=tuple(int(h) for h in hidden),
        dropout=float(dropout),
        negatives=negatives,
        tail_fraction=float(tail_fraction),
        evaluation=evaluation,
        heldout_fraction=float(heldout_fraction),
    )


def mine_train_tail(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    key: KeyArray,
    bound: str = "dv",
    **options: Any,
) -> MIResult:
    r"""The reference MINE estimate: the tail average of the training objective, in nats.

    Trains a critic on all rows with ``bound`` (default ``"dv"``: the reference uses plain DV
    with no moving-average correction) and reports the mean of the per-step training-batch
    estimates over the last 10 % of steps (REFERENCE section 6.1). This is
    ``mutual_information(x, y, key=key, estimator=bound, evaluation="train_tail", **options)``,
    the default evaluation. Training-set estimates overfit at small n (report excess MI over a
    random baseline, `calibrated_mi`); `mine_heldout` avoids that bias.

    Args:
        x: Samples of X, shape (n, d_x), paired with ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key.
        bound: Any neural estimator name accepted by `mutual_information`.
        **options: Further keyword options of `mutual_information`.

    Returns:
        An `MIResult` (``.value`` in nats).

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (256, 1))
        >>> res = mine_train_tail(x, x, key=jax.random.key(1), num_steps=20, hidden=(8,))
        >>> res.curve.shape
        (20,)
    """
    if bound == "ksg":
        raise ValueError("mine_train_tail trains a critic; use ksg_mi for KSG")
    return mutual_information(x, y, key=key, estimator=bound, evaluation="train_tail", **options)


def mine_heldout(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    key: KeyArray,
    bound: str = "dv",
    heldout_fraction: float = 0.2,
    **options: Any,
) -> MIResult:
    r"""MINE evaluated on a held-out split, in nats.

    A random ``heldout_fraction`` of the rows is set aside, the critic is trained on the rest with
    ``bound``, and the bound is averaged over held-out minibatches (no dropout). This removes the
    training-set overfit of `mine_train_tail` at the cost of fewer training rows. Equal to
    ``mutual_information(..., estimator=bound, evaluation="heldout")``.

    Args:
        x: Samples of X, shape (n, d_x), paired with ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key.
        bound: Any neural estimator name accepted by `mutual_information`.
        heldout_fraction: Fraction of rows held out, in (0, 1); must leave ``batch_size`` rows.
        **options: Further keyword options of `mutual_information`.

    Returns:
        An `MIResult`; ``.value`` (= ``.heldout``) in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (400, 1))
        >>> res = mine_heldout(x, x, key=jax.random.key(1), num_steps=20, hidden=(8,))
        >>> bool(res.value == res.heldout)
        True
    """
    if bound == "ksg":
        raise ValueError("mine_heldout trains a critic; use ksg_mi for KSG")
    return mutual_information(
        x,
        y,
        key=key,
        estimator=bound,
        evaluation="heldout",
        heldout_fraction=heldout_fraction,
        **options,
    )
