r"""Fitting critics: one optax step, and a whole fit compiled as one ``lax.scan``, with checks.

The fit is a pure function of ``(x, y, key)``: preprocessing, critic initialization, minibatch
sampling, optimization, evaluation and the plausibility checks all happen inside one compiled
program, so ``jax.vmap`` over keys and/or stacked datasets runs many fits side by side (e.g. 5
seeds x 8 layers in one call), each with its own `geomtax.Status`.
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray, ScalarLike
from .._errors import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_paired,
    finite_mask,
)
from .._numerics import is_constant
from .._status import AbstractResult, Status, finish, nan_unless_ok, select, worst
from ..geometry._checks import prepare_paired_flagged
from ._bounds import (
    BOUNDS,
    NEGATIVES,
    MineState,
    check_ema_rate,
    check_tau,
    evaluate_bound,
    init_mine_state,
    mine_bound,
)
from ._critics import AbstractCritic, ConcatCritic, SeparableCritic, check_hidden
from ._preprocess import copula_columns, standardize_columns

ESTIMATORS = (*BOUNDS, "ksg")
EVALUATIONS = ("heldout", "train_tail")
PREPROCESS = ("copula", "zscore", "none")

# --- plausibility rules (docs/api/info.md, "When a fit is flagged") -----------------------------
#: A bound estimate below ``-(NEGATIVE_TOL + 3 * stderr)`` nats is impossible (MI >= 0).
NEGATIVE_TOL = 0.1
#: The training tail is unstable when ``tail_std > SPREAD_ABS + SPREAD_REL * |tail_mean|``.
SPREAD_ABS = 1.0
SPREAD_REL = 0.5
#: Held-out and training-tail estimates disagree when
#: ``|heldout - tail_mean| > AGREE_ABS + AGREE_REL * max(|heldout|, |tail_mean|) + 3 * stderr``.
AGREE_ABS = 0.15
AGREE_REL = 0.25
#: InfoNCE cannot resolve MI near its ceiling: flagged when ``value > log(b) - INFONCE_MARGIN``
#: (measured: at b = 64 it is 10-18 % low from about 1.5 nats on; docs/api/info.md).
INFONCE_MARGIN = 2.5
#: Still rising: a least-squares line through the last half of the curve rises by more than
#: ``RISE_ABS + RISE_REL * |tail_mean|`` over that half, with a slope t-statistic above 3.
RISE_ABS = 0.05
RISE_REL = 0.05
#: Held-out checkpoints recorded during a fit with a held-out split (for the not-converged rule).
CHECKPOINTS = 10
#: Bits of ``MIResult.flags``, one per rule.
FLAG_NEGATIVE, FLAG_SPREAD, FLAG_DISAGREE, FLAG_CEILING, FLAG_UPPER = 1, 2, 4, 8, 16
FLAG_RISING = 32


class MIResult(AbstractResult):
    """Outcome of one mutual-information estimate; arrays only, all in nats.

    Attributes:
        value: The estimate (nats): the held-out bound (``evaluation="heldout"``, the default)
            or the training-tail mean. NaN unless ``status`` is ``ok``; the raw numbers stay in
            ``heldout`` and ``tail_mean``.
        status: A `geomtax.Status`: ``ok``, ``nonfinite_input``, ``degenerate_input`` (x or y
            constant), ``diverged`` (a step produced a non-finite objective), ``not_converged``
            (the objective is still rising) or ``implausible`` (a plausibility rule fired; see
            ``flags`` and `mutual_information`).
        curve: The training objective's bound estimate at every step, shape (num_steps,)
            (for KSG, shape (1,) holding the estimate).
        tail_mean: Mean of ``curve`` over the last ``tail_fraction`` of steps.
        tail_std: Standard deviation of ``curve`` over the same tail (the per-batch spread).
        heldout: The bound evaluated on the held-out split after training (NaN unless
            ``evaluation="heldout"``).
        heldout_stderr: Standard error of ``heldout`` over its evaluation batches (NaN without a
            held-out split).
        flags: Bit mask of the rules that fired: 1 negative value, 2 unstable tail,
            4 held-out/tail disagreement, 8 InfoNCE at its log-batch ceiling, 16 above
            ``upper_bound`` (these make ``implausible``), 32 still rising (``not_converged``).
        diverged_step: Index of the first non-finite step, or -1.
    """

    value: Float[Array, ""]
    status: object
    curve: Float[Array, " s"]
    tail_mean: Float[Array, ""]
    tail_std: Float[Array, ""]
    heldout: Float[Array, ""]
    heldout_stderr: Float[Array, ""]
    flags: Int[Array, ""]
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


def _step(
    critic, opt_state, mine_state, xs, ys, *, optimizer, key, bound, ema_rate, tau, negatives
):
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
    the average; for the other bounds ``mine_state`` passes through unchanged. No plausibility
    checks are applied here: the loop is yours (see `mutual_information` for the checks).

    Args:
        critic: The critic (an Equinox module).
        opt_state: ``optimizer.init(eqx.filter(critic, eqx.is_array))``.
        mine_state: `MineState` from `init_mine_state`.
        xs: Minibatch of ``x``, shape (b, d_x), paired with ``ys``.
        ys: Minibatch of ``y``, shape (b, d_y).
        optimizer: An optax gradient transformation.
        key: Dropout key (``None``: deterministic critic).
        bound: One of ``"mine"``, ``"dv"``, ``"nwj"``, ``"infonce"``, ``"smile"``.
        ema_rate: MINE's moving-average rate, in (0, 1].
        tau: SMILE's clip level, > 0.
        negatives: ``"shift"`` or ``"all"`` (see `dv_bound`).

    Returns:
        ``(critic, opt_state, mine_state, estimate)``, the estimate being the bound's value on this
        minibatch before the update, in nats.

    Raises:
        ValueError: Unknown ``bound``/``negatives``, mismatched rows, ``ema_rate`` outside
            (0, 1] or ``tau <= 0`` (concrete values).

    Examples:
        >>> from geomtax.info import *
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax
        >>> critic = ConcatCritic(1, 1, hidden=(16,), key=jax.random.key(0))
        >>> optimizer = optax.adam(1e-3)
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
    ema_rate = check_ema_rate(ema_rate)
    tau = check_tau(tau)
    return _step(
        critic,
        opt_state,
        mine_state,
        xs,
        ys,
        optimizer=optimizer,
        key=key,
        bound=bound,
        ema_rate=ema_rate,
        tau=tau,
        negatives=negatives,
    )


def _select(ok, new, old):
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )


def _preprocess(x, kind: str):
    if kind == "copula":
        return copula_columns(x)
    if kind == "zscore":
        return standardize_columns(x)[0]
    return x


@eqx.filter_jit
def _prepare_impl(x, y, *, preprocess: str):
    """Preprocess both variables; ``(x, y, status)`` with non-finite inputs zeroed."""
    finite = finite_mask(x) & finite_mask(y)
    degenerate = is_constant(x) | is_constant(y)
    x = jnp.where(finite, x, jnp.zeros_like(x))
    y = jnp.where(finite, y, jnp.zeros_like(y))
    x, y = _preprocess(x, preprocess), _preprocess(y, preprocess)
    status = select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))
    return x, y, status


def _still_rising(curve, tail_mean):
    """True when the training objective still rises over the last half of the steps."""
    half = curve.shape[0] // 2
    if half < 4:
        return jnp.zeros((), bool)
    seg = curve[-half:]
    t = jnp.arange(half, dtype=curve.dtype) - (half - 1) / 2.0
    stt = jnp.sum(t * t)
    resid = seg - jnp.mean(seg)
    slope = jnp.sum(t * resid) / stt
    sd = jnp.sqrt(jnp.sum((resid - slope * t) ** 2) / (half - 2))
    rise = slope * half
    return (rise > RISE_ABS + RISE_REL * jnp.abs(tail_mean)) & (slope > 3.0 * sd / jnp.sqrt(stt))


def _checkpoints_rising(h, value):
    """True when the held-out checkpoints still rise over the last half of the fit."""
    half = h.shape[0] // 2
    seg = h[-half - 1 :]
    t = jnp.arange(seg.shape[0], dtype=h.dtype) - (seg.shape[0] - 1) / 2.0
    slope = jnp.sum(t * (seg - jnp.mean(seg))) / jnp.sum(t * t)
    return slope * half > RISE_ABS + RISE_REL * jnp.abs(value)


def _plausibility(
    bound, tail_mean, tail_std, tail_len, held, held_se, value, upper_bound, batch_size
):
    """The implausibility bit mask (see the module constants and `mutual_information`)."""
    se_tail = tail_std / math.sqrt(tail_len)
    se = jnp.where(jnp.isfinite(held_se), held_se, se_tail)
    has_held = jnp.isfinite(held)
    negative = (tail_mean < -(NEGATIVE_TOL + 3 * se_tail)) | (
        has_held & (held < -(NEGATIVE_TOL + 3 * se))
    )
    spread = tail_std > SPREAD_ABS + SPREAD_REL * jnp.abs(tail_mean)
    gap = jnp.abs(held - tail_mean)
    scale = jnp.maximum(jnp.abs(held), jnp.abs(tail_mean))
    disagree = has_held & (gap > AGREE_ABS + AGREE_REL * scale + 3 * se)
    if bound == "infonce":
        ceiling = (value > math.log(batch_size) - INFONCE_MARGIN) | (
            tail_mean > math.log(batch_size) - INFONCE_MARGIN
        )
    else:
        ceiling = jnp.zeros((), bool)
    if upper_bound is None:
        above = jnp.zeros((), bool)
    else:
        above = value > upper_bound + NEGATIVE_TOL + 3 * se
    bits = (
        FLAG_NEGATIVE * negative.astype(jnp.int32)
        + FLAG_SPREAD * spread.astype(jnp.int32)
        + FLAG_DISAGREE * disagree.astype(jnp.int32)
        + FLAG_CEILING * ceiling.astype(jnp.int32)
        + FLAG_UPPER * above.astype(jnp.int32)
    )
    return bits


@eqx.filter_jit
def _fit_neural(
    x,
    y,
    key,
    learning_rate,
    ema_rate,
    tau,
    grad_clip,
    upper_bound,
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
    preprocess: str,
) -> MIResult:
    x, y, input_status = _prepare_impl(x, y, preprocess=preprocess)
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
        new_c, new_opt, new_mine, estimate = _step(
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

    def heldout_eval(params, negatives_eval):
        """The bound on the held-out split: mean and standard error over its batches."""
        trained = eqx.combine(params, static)
        eb = min(batch_size, m)
        nb = m // eb
        xb = x_test[: nb * eb].reshape(nb, eb, -1)
        yb = y_test[: nb * eb].reshape(nb, eb, -1)
        per_batch = jax.vmap(
            lambda u, v: evaluate_bound(bound, trained, u, v, negatives=negatives_eval, tau=tau)
        )(xb, yb)
        se = jnp.std(per_batch) / math.sqrt(nb) if nb > 1 else jnp.full((), jnp.nan, x.dtype)
        return jnp.mean(per_batch), se

    init_carry = (params, opt_state, init_mine_state(x.dtype))
    ts = jnp.arange(num_steps)
    step_keys = jax.random.split(k_steps, num_steps)
    # The steps run in CHECKPOINTS segments; with a held-out split the (cheap, "shift") held-out
    # bound is recorded after each, so the not-converged rule can ask whether it still rises.
    num_seg = CHECKPOINTS if num_steps >= 4 * CHECKPOINTS else 0
    if num_seg and evaluation == "heldout":
        seg = num_steps // num_seg
        main = seg * num_seg

        def segment(carry, inputs):
            carry, est = lax.scan(step, carry, inputs)
            return carry, (est, heldout_eval(carry[0], "shift")[0])

        carry, (curve_main, checkpoints) = lax.scan(
            segment,
            init_carry,
            (ts[:main].reshape(num_seg, seg), step_keys[:main].reshape(num_seg, seg)),
        )
        curve = curve_main.reshape(-1)
        if main < num_steps:
            carry, curve_rest = lax.scan(step, carry, (ts[main:], step_keys[main:]))
            curve = jnp.concatenate([curve, curve_rest])
        params = carry[0]
    else:
        (params, _, _), curve = lax.scan(step, init_carry, (ts, step_keys))
        checkpoints = None
    tail = max(1, int(math.ceil(tail_fraction * num_steps)))
    tail_curve = curve[-tail:]
    tail_mean = jnp.mean(tail_curve)
    tail_std = jnp.std(tail_curve)
    bad = ~jnp.isfinite(curve)
    diverged = jnp.any(bad)
    diverged_step = jnp.where(diverged, jnp.argmax(bad), -1).astype(jnp.int32)
    if evaluation == "heldout":
        # The final held-out bound uses every off-diagonal negative (lower variance).
        held, held_se = heldout_eval(params, "all")
        value = held
    else:
        held = jnp.full((), jnp.nan, curve.dtype)
        held_se = jnp.full((), jnp.nan, curve.dtype)
        value = tail_mean
    flags = _plausibility(
        bound, tail_mean, tail_std, tail, held, held_se, value, upper_bound, batch_size
    )
    rising = _still_rising(curve, tail_mean)
    if checkpoints is not None:
        # Training alone can rise by overfitting; an unconverged fit also rises held out.
        rising = rising & _checkpoints_rising(checkpoints, value)
    status = worst(
        input_status,
        select(
            (diverged | ~jnp.isfinite(value), Status.diverged),
            (rising, Status.not_converged),
            (flags > 0, Status.implausible),
        ),
    )
    flags = flags + FLAG_RISING * rising.astype(jnp.int32)
    return MIResult(
        value=nan_unless_ok(value, status),
        status=status,
        curve=curve,
        tail_mean=tail_mean,
        tail_std=tail_std,
        heldout=held,
        heldout_stderr=held_se,
        flags=flags,
        diverged_step=diverged_step,
    )


def _as_samples(a):
    if not isinstance(a, jax.core.Tracer):
        a = jnp.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    return a


def _ksg(x, y, *, k, block_size, preprocess, upper_bound):
    from ._ksg import ksg_mi

    px, py, input_status = _prepare_impl(x, y, preprocess=preprocess)
    res = ksg_mi(px, py, k=k, block_size=block_size, throw=False)
    raw = res.value
    if upper_bound is None:
        above = jnp.zeros((), bool)
    else:
        above = raw > upper_bound + NEGATIVE_TOL
    flags = (FLAG_UPPER * above).astype(jnp.int32)
    status = worst(input_status, res.status, select((above, Status.implausible)))
    nan = jnp.full_like(raw, jnp.nan)
    return MIResult(
        value=nan_unless_ok(raw, status),
        status=status,
        curve=raw[None],
        tail_mean=raw,
        tail_std=jnp.zeros_like(raw),
        heldout=nan,
        heldout_stderr=nan,
        flags=flags,
        diverged_step=jnp.full((), -1, jnp.int32),
    )


def mutual_information(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    key: KeyArray,
    estimator: str = "smile",
    preprocess: str = "copula",
    num_steps: int = 2000,
    batch_size: int = 64,
    learning_rate: ScalarLike = 5e-4,
    grad_clip: ScalarLike = 5.0,
    hidden: tuple[int, ...] = (128, 64),
    dropout: float = 0.0,
    critic: AbstractCritic | None = None,
    ema_rate: ScalarLike = 0.01,
    tau: ScalarLike = 5.0,
    negatives: str = "shift",
    evaluation: str = "heldout",
    tail_fraction: float = 0.1,
    heldout_fraction: float = 0.2,
    upper_bound: ScalarLike | None = None,
    k: int = 3,
    block_size: int | None = 1024,
    throw: bool = True,
) -> MIResult:
    r"""Estimate the mutual information \(I(X; Y)\) in nats from paired samples, with checks.

    Neural estimators (``"mine"``, ``"dv"``, ``"nwj"``, ``"infonce"``, ``"smile"``) train a
    critic \(T_\theta\) by Adam (with global-norm gradient clipping) to maximize the chosen
    lower bound (see `dv_bound` and friends) on minibatches of ``batch_size`` rows for
    ``num_steps`` steps, shuffling the rows once per epoch; the whole fit is one ``lax.scan``
    inside one compiled program. ``"ksg"`` calls `ksg_mi` on the preprocessed data.

    **Preprocessing** (MI is invariant under invertible maps of each column, so none changes the
    true value): ``"copula"`` (default) replaces every column by normal quantiles of its ranks
    (`copula`), which removes heavy tails, skew and scale; ``"zscore"`` standardises each
    column (overflow-safe, `zscore`); ``"none"`` feeds the raw data to the critic.

    **Evaluation**: ``"heldout"`` (default; `mine_heldout`) holds out ``heldout_fraction`` of the
    rows, trains on the rest and reports the bound averaged over held-out minibatches (every
    off-diagonal negative pair); ``"train_tail"`` (reference parity, `mine_train_tail`) reports
    the mean training objective over the last ``tail_fraction`` of steps, which overfits upward
    at small n (report excess MI over a random baseline, `calibrated_mi`).

    **Status** (a `geomtax.Status`; ``value`` is NaN unless ``ok``):

    * ``nonfinite_input``: NaN or inf in ``x`` or ``y``.
    * ``degenerate_input``: every row of ``x`` (or of ``y``) is identical.
    * ``diverged``: a training step produced a non-finite objective (``diverged_step`` says
      which; the step is not applied), or the evaluated value is not finite.
    * ``not_converged``: the fit is still improving at the end: a least-squares line through
      the last half of ``curve`` rises by more than ``0.05 + 0.05 |tail_mean|`` nats over that
      half, with a slope t-statistic above 3, and (with a held-out split) so does a line
      through the held-out bound recorded at 10 checkpoints during the fit (by more than
      ``0.05 + 0.05 |value|``), so that a training curve rising by overfitting alone is not
      flagged (flag bit 32). Train longer (``num_steps``).
    * ``implausible``: a rule below fired (``flags`` holds one bit per rule). ``se`` is the
      held-out standard error (the tail's \(\mathrm{sd}/\sqrt{\text{tail steps}}\) without a
      held-out split):

      1. *negative*: the tail mean or held-out value is below \(-(0.1 + 3\,se)\) nats (MI is
         never negative);
      2. *unstable tail*: ``tail_std > 1.0 + 0.5 |tail_mean|`` (absolute plus relative, so
         MI near 0 is not flagged for its noise);
      3. *held-out disagreement*: \(|\text{heldout} - \text{tail\_mean}| > 0.15 + 0.25
         \max(|\text{heldout}|, |\text{tail\_mean}|) + 3\,se\);
      4. *InfoNCE ceiling*: an InfoNCE estimate above \(\log b - 2.5\) (b = ``batch_size``;
         1.66 nats at b = 64): InfoNCE never exceeds \(\log b\) and is measurably biased
         low well before it (raise ``batch_size`` for larger MI);
      5. *above an a-priori bound*: ``value > upper_bound + 0.1 + 3 se`` when ``upper_bound``
         is given (e.g. the entropy of a discrete variable).

      The rules and the defaults were chosen from the measured table in docs/api/info.md: at
      its defaults every estimator there is within tolerance or flagged. A fit can still be
      biased low without being flagged (a lower bound that is loose is still a lower bound),
      most of all InfoNCE and under-trained fits at large MI.

    Works under ``jax.vmap`` over ``key`` and/or stacked ``x``, ``y`` (each vmapped call is an
    independent fit). Every option is checked before compiling; continuous ones
    (``learning_rate``, ``ema_rate``, ``tau``, ``grad_clip``, ``upper_bound``) are array leaves,
    so changing them does not recompile.

    Args:
        x: Samples of X, shape (n, d_x) (a 1-D array is read as (n, 1)), paired row by row with
            ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key (critic initialization, minibatches, dropout, held-out split).
        estimator: ``"smile"`` (default; the most reliable bound in the measured table),
            ``"mine"`` (DV with the EMA gradient correction), ``"dv"``, ``"nwj"``,
            ``"infonce"`` (capped at log ``batch_size``) or ``"ksg"``.
        preprocess: ``"copula"`` (default), ``"zscore"`` or ``"none"``.
        num_steps: Optimization steps (static), >= 1.
        batch_size: Minibatch rows (static), >= 2; must not exceed the training rows.
        learning_rate: Adam learning rate, > 0 (default 5e-4; see docs/api/info.md before
            raising it: at 1e-3 MINE and DV blow up on the 5 + 5 Gaussian task).
        grad_clip: Global-norm gradient clip, > 0.
        hidden: Hidden widths of the default critic (static; each >= 1).
        dropout: Dropout of the default critic, in [0, 1).
        critic: A ready critic to train instead of the default (`ConcatCritic`, or
            `SeparableCritic` for InfoNCE).
        ema_rate: MINE's moving-average rate, in (0, 1].
        tau: SMILE's clip level, > 0.
        negatives: ``"shift"`` or ``"all"`` (training negatives; see `dv_bound`).
        evaluation: ``"heldout"`` or ``"train_tail"``.
        tail_fraction: Fraction of final steps averaged for the tail, in (0, 1].
        heldout_fraction: Fraction of rows held out when ``evaluation="heldout"``, in (0, 1).
        upper_bound: An a-priori upper bound on the MI in nats (``None``: none known), >= 0.
        k: Neighbours for ``"ksg"``.
        block_size: Row-block size for ``"ksg"`` (``None``: dense).
        throw: Raise `geomtax.StatusError` when the status is not ``ok`` (``False``: return the
            result; nothing aborts, under ``jit`` as well).

    Returns:
        An `MIResult`; ``.value`` in nats.

    Raises:
        ValueError: An unknown or out-of-range option (the message names it and its value);
            mismatched row counts; too few rows for ``batch_size`` or the held-out split.
        TypeError: Non-numeric or complex data; an option of the wrong type.
        geomtax.StatusError: With ``throw=True``, when the status is not ``ok``.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> kx, kn, kfit = jax.random.split(jax.random.key(0), 3)
        >>> x = jax.random.normal(kx, (500, 1))
        >>> y = 0.8 * x + 0.6 * jax.random.normal(kn, (500, 1))  # rho = 0.8: 0.511 nats
        >>> res = mutual_information(x, y, key=kfit, num_steps=300, hidden=(32,), throw=False)
        >>> res.curve.shape
        (300,)
        >>> bool(0.2 < res.heldout < 0.9)
        True
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("evaluation", evaluation, EVALUATIONS)
    check_choice("negatives", negatives, NEGATIVES)
    check_choice("preprocess", preprocess, PREPROCESS)
    throw = check_bool("throw", throw)
    x, y, _ = prepare_paired_flagged(_as_samples(x), _as_samples(y), min_rows=2, what="MI")
    if upper_bound is not None:
        upper_bound = check_float("upper_bound", upper_bound, nonnegative=True)
    if estimator == "ksg":
        k = check_int("k", k, minimum=1)
        res = _ksg(x, y, k=k, block_size=block_size, preprocess=preprocess, upper_bound=upper_bound)
        return finish(res, throw=throw, function="mutual_information")
    num_steps = check_int("num_steps", num_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=2)
    hidden = check_hidden(hidden)
    learning_rate = check_float("learning_rate", learning_rate, positive=True)
    grad_clip = check_float("grad_clip", grad_clip, positive=True)
    ema_rate = check_ema_rate(ema_rate)
    tau = check_tau(tau)
    dropout = check_float("dropout", dropout, minimum=0.0, allow_traced=False)
    if not dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
    tail_fraction = check_float("tail_fraction", tail_fraction, positive=True, maximum=1.0)
    n = x.shape[0]
    n_train = n
    if evaluation == "heldout":
        heldout_fraction = check_float("heldout_fraction", heldout_fraction, positive=True)
        if not heldout_fraction < 1.0:
            raise ValueError(
                f"heldout_fraction must be in (0, 1), got heldout_fraction={heldout_fraction}"
            )
        m = int(round(heldout_fraction * n))
        n_train = n - m
        if m < 2:
            raise ValueError(
                f"evaluation='heldout' holds out {m} of {n} rows (heldout_fraction="
                f"{heldout_fraction}); at least 2 are needed; x has shape {x.shape}"
            )
    if batch_size > n_train:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {n_train} training rows "
            f"(x has shape {x.shape}, y has shape {y.shape}"
            + (
                f", {n - n_train} held out; pass evaluation='train_tail' to train on all rows)"
                if n_train < n
                else ")"
            )
        )
    if critic is not None and (critic.x_dim, critic.y_dim) != (x.shape[1], y.shape[1]):
        raise ValueError(
            f"critic expects x_dim={critic.x_dim}, y_dim={critic.y_dim}; data have "
            f"x {x.shape} and y {y.shape}"
        )
    dt = x.dtype
    res = _fit_neural(
        x,
        y,
        key,
        jnp.asarray(learning_rate, dt),
        jnp.asarray(ema_rate, dt),
        jnp.asarray(tau, dt),
        jnp.asarray(grad_clip, dt),
        None if upper_bound is None else jnp.asarray(upper_bound, dt),
        critic,
        bound=estimator,
        num_steps=num_steps,
        batch_size=batch_size,
        hidden=hidden,
        dropout=float(dropout),
        negatives=negatives,
        tail_fraction=float(tail_fraction),
        evaluation=evaluation,
        heldout_fraction=float(heldout_fraction),
        preprocess=preprocess,
    )
    return finish(res, throw=throw, function="mutual_information")


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
    estimates over the last 10 % of steps (docs/api/info.md). This is
    ``mutual_information(x, y, key=key, estimator=bound, evaluation="train_tail", **options)``.
    Training-set estimates overfit at small n (report excess MI over a
    random baseline, `calibrated_mi`); `mine_heldout` avoids that bias.

    Args:
        x: Samples of X, shape (n, d_x), paired with ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key.
        bound: Any neural estimator name accepted by `mutual_information`.
        **options: Further keyword options of `mutual_information`.

    Returns:
        An `MIResult` (``.value`` in nats; statuses as in `mutual_information`).

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (256, 1))
        >>> res = mine_train_tail(x, x, key=jax.random.key(1), num_steps=20, hidden=(8,),
        ...                       throw=False)
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
        An `MIResult`; ``.value`` (= ``.heldout`` when ``status`` is ok) in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (400, 1))
        >>> res = mine_heldout(x, x, key=jax.random.key(1), num_steps=20, hidden=(8,),
        ...                    throw=False)
        >>> res.heldout.shape
        ()
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
