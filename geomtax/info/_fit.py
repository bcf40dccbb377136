r"""Fitting critics: the whole fit (preprocessing, training, evaluation, checks) as one program.

The fit is a pure function of ``(x, y, key)``: preprocessing, critic initialization, minibatch
sampling, optimization, evaluation and the plausibility checks all happen inside one compiled
program, so ``jax.vmap`` over keys and/or stacked datasets runs many fits side by side (e.g. 5
seeds x 8 layers in one call), each with its own `geomtax.Status`. The bound is an
`AbstractBound` object (``_bounds.py``), the training loop lives in ``_train.py`` and the status
rules in ``_rules.py``.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .._custom_types import KeyArray, ScalarLike
from .._errors import check_bool, check_choice, check_float, check_int, finite_mask
from .._numerics import is_constant
from .._status import Status, finish, nan_unless_ok, select, worst
from ..geometry._checks import prepare_paired_flagged
from ._bounds import BOUNDS, NEGATIVES, AbstractBound
from ._critics import AbstractCritic, ConcatCritic, SeparableCritic, check_hidden
from ._ksg import is_k_sensitive, ksg_mi
from ._preprocess import copula_columns, standardize_columns
from ._rules import CHECKPOINTS, FLAG_BIASED_LOW, FLAG_UPPER, NEGATIVE_TOL, MIResult, fit_result
from ._train import GRAD_CLIP, LEARNING_RATE, default_optimizer, evaluate_batches, train_critic

EVALUATIONS = ("heldout", "train_tail")
PREPROCESS = ("copula", "zscore", "none")


class KSG(eqx.Module):
    """The KSG estimator as an ``estimator=`` of `mutual_information` and `calibrated_mi`.

    A fit with ``estimator=KSG(...)`` preprocesses the data as any fit does (``preprocess``) and
    calls `ksg_mi` on it with these options (see `ksg_mi` for the algorithm and its caveats);
    no critic is trained. The string ``"ksg"`` means ``KSG()``.

    Attributes:
        k: Neighbours (static), >= 1.
        block_size: Row-block size of the tiled search (static; ``None``: dense).
        k_check: Recompute at ``3k + 1`` and flag a k-sensitive (high-dimensional, biased)
            estimate as ``implausible`` (static; see `ksg_mi`).

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (200, 1))
        >>> res = mutual_information(x, x + 0.5 * x**2, key=jax.random.key(1),
        ...                          estimator=KSG(k=5), throw=False)
        >>> res.curve.shape
        (1,)
    """

    k: int = eqx.field(static=True, default=3, converter=lambda k: check_int("k", k, minimum=1))
    block_size: int | None = eqx.field(static=True, default=1024)
    k_check: bool = eqx.field(static=True, default=True)


#: Every name ``estimator=`` accepts: the bounds of `BOUNDS` and ``"ksg"``.
ESTIMATORS = (*BOUNDS, "ksg")


def as_estimator(estimator, *, name: str = "estimator") -> AbstractBound | KSG:
    """An `AbstractBound` or `KSG` from an estimator object or one of `ESTIMATORS`."""
    if isinstance(estimator, (AbstractBound, KSG)):
        return estimator
    if isinstance(estimator, str):
        check_choice(name, estimator, ESTIMATORS)
        return KSG() if estimator == "ksg" else BOUNDS[estimator]()
    raise TypeError(
        f"{name} must be an AbstractBound (e.g. SMILE(tau=5.0)), a KSG, or one of "
        f"{ESTIMATORS}, got {estimator!r}"
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


def _as_leaves(bound: AbstractBound, dtype) -> AbstractBound:
    """The bound with its floating hyperparameters as arrays of ``dtype`` (no recompiles)."""

    def leaf(v):
        if isinstance(v, float) or (eqx.is_array(v) and jnp.issubdtype(v.dtype, jnp.floating)):
            return jnp.asarray(v, dtype)
        return v

    return jax.tree_util.tree_map(leaf, bound)


@eqx.filter_jit
def _fit_neural(
    x,
    y,
    key,
    bound,
    learning_rate,
    grad_clip,
    upper_bound,
    critic,
    *,
    optimizer,
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
    if critic is None:
        make = SeparableCritic if bound.all_pairs else ConcatCritic
        critic = make(
            x.shape[1], y.shape[1], hidden=hidden, dropout=dropout, dtype=x.dtype, key=k_init
        )
    if optimizer is None:
        optimizer = default_optimizer(learning_rate, grad_clip)

    def heldout_eval(trained, negatives_eval):
        """The bound on the held-out split: mean and standard error over its batches."""
        return evaluate_batches(
            bound, trained, x_test, y_test, batch_size=batch_size, negatives=negatives_eval
        )

    # The steps run in CHECKPOINTS segments; with a held-out split the (cheap, "shift") held-out
    # bound is recorded after each, so the not-converged rule can ask whether it still rises.
    with_checkpoints = evaluation == "heldout" and num_steps >= 4 * CHECKPOINTS
    critic, curve, checkpoints = train_critic(
        critic,
        x,
        y,
        k_train,
        bound=bound,
        optimizer=optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        negatives=negatives,
        use_dropout=dropout > 0.0,
        checkpoint=(lambda c: heldout_eval(c, "shift")[0]) if with_checkpoints else None,
        num_checkpoints=CHECKPOINTS if with_checkpoints else 0,
    )
    if evaluation == "heldout":
        # The final held-out bound uses every off-diagonal negative (lower variance).
        held, held_se = heldout_eval(critic, "all")
    else:
        held = held_se = None
    return fit_result(
        curve,
        tail_fraction=tail_fraction,
        held=held,
        held_se=held_se,
        checkpoints=checkpoints,
        ceiling=bound.ceiling(batch_size),
        upper_bound=upper_bound,
        input_status=input_status,
    )


def _as_samples(a):
    if not isinstance(a, jax.core.Tracer):
        a = jnp.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    return a


def _ksg(x, y, *, ksg: KSG, preprocess, upper_bound):
    px, py, input_status = _prepare_impl(x, y, preprocess=preprocess)
    res = ksg_mi(px, py, k=ksg.k, block_size=ksg.block_size, k_check=ksg.k_check, throw=False)
    raw = res.raw  # the estimate whatever the status (NaN only where there is no number)
    if upper_bound is None:
        above = jnp.zeros((), bool)
    else:
        above = raw > upper_bound + NEGATIVE_TOL
    low = is_k_sensitive(raw, res.k_gap, res.k_gap_se)
    flags = (FLAG_UPPER * above).astype(jnp.int32) + (FLAG_BIASED_LOW * low).astype(jnp.int32)
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
    estimator: AbstractBound | KSG | str = "smile",
    optimizer: optax.GradientTransformation | None = None,
    preprocess: str = "copula",
    num_steps: int = 2000,
    batch_size: int = 64,
    learning_rate: ScalarLike | None = None,
    grad_clip: ScalarLike | None = None,
    hidden: tuple[int, ...] = (128, 64),
    dropout: float = 0.0,
    critic: AbstractCritic | None = None,
    negatives: str = "shift",
    evaluation: str = "heldout",
    tail_fraction: float = 0.1,
    heldout_fraction: float = 0.2,
    upper_bound: ScalarLike | None = None,
    throw: bool = True,
) -> MIResult:
    r"""Estimate the mutual information \(I(X; Y)\) in nats from paired samples, with checks.

    ``estimator`` is a bound object (`SMILE`, `MINE`, `DV`, `NWJ`, `InfoNCE`, or your own
    `AbstractBound`) or its name (``"smile"`` is ``SMILE()``, ...). The fit trains a critic
    \(T_\theta\) with ``optimizer`` (default: Adam at ``learning_rate`` 5e-4 after global-norm
    gradient clipping at ``grad_clip`` 5) to maximize the bound's training objective
    (`AbstractBound.objective`, whose state, such as MINE's moving average, is threaded through
    the steps) on minibatches of ``batch_size`` rows for ``num_steps`` steps, shuffling the rows
    once per epoch; the whole fit is one ``lax.scan`` inside one compiled program.
    ``estimator=KSG(k=...)`` (or ``"ksg"``) trains nothing: it calls `ksg_mi` on the
    preprocessed data, and only ``preprocess`` and ``upper_bound`` apply.

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
      4. *ceiling*: the value or tail mean above the bound's `AbstractBound.ceiling` at
         ``batch_size`` (InfoNCE: \(\log b - 2.5\), 1.66 nats at b = 64: InfoNCE never
         exceeds \(\log b\) and is measurably biased low well before it; raise
         ``batch_size`` for larger MI);
      5. *above an a-priori bound*: ``value > upper_bound + 0.1 + 3 se`` when ``upper_bound``
         is given (e.g. the entropy of a discrete variable).

      The rules and the defaults were chosen from the measured table in docs/api/info.md: at
      its defaults every estimator there is within tolerance or flagged. A fit can still be
      biased low without being flagged (a lower bound that is loose is still a lower bound),
      most of all InfoNCE and under-trained fits at large MI.

    Works under ``jax.vmap`` over ``key`` and/or stacked ``x``, ``y`` (each vmapped call is an
    independent fit). Every option is checked before compiling; continuous ones
    (``learning_rate``, ``grad_clip``, ``upper_bound`` and the bound's hyperparameters such as
    ``SMILE.tau`` or ``MINE.ema_rate``) are array leaves, so changing them does not recompile.
    A passed ``optimizer`` is static: reuse one object (a new one compiles anew).

    Args:
        x: Samples of X, shape (n, d_x) (a 1-D array is read as (n, 1)), paired row by row with
            ``y``.
        y: Samples of Y, shape (n, d_y).
        key: PRNG key (critic initialization, minibatches, dropout, held-out split).
        estimator: An `AbstractBound` or `KSG` object, or a name: ``"smile"`` (default,
            ``SMILE(tau=5.0)``; the most reliable bound in the measured table), ``"mine"``
            (``MINE(ema_rate=0.01)``, DV with the EMA gradient correction), ``"dv"``,
            ``"nwj"``, ``"infonce"`` (capped at log ``batch_size``) or ``"ksg"`` (``KSG()``).
        optimizer: An ``optax.GradientTransformation`` (``None``: the default Adam with
            clipping, configured by ``learning_rate`` and ``grad_clip``).
        preprocess: ``"copula"`` (default), ``"zscore"`` or ``"none"``.
        num_steps: Optimization steps (static), >= 1.
        batch_size: Minibatch rows (static), >= 2; must not exceed the training rows.
        learning_rate: The default optimizer's Adam learning rate, > 0 (``None``: 5e-4; see
            docs/api/info.md before raising it: at 1e-3 MINE and DV blow up on the 5 + 5
            Gaussian task). Not with ``optimizer``.
        grad_clip: The default optimizer's global-norm gradient clip, > 0 (``None``: 5). Not
            with ``optimizer``.
        hidden: Hidden widths of the default critic (static; each >= 1).
        dropout: Dropout of the default critic, in [0, 1).
        critic: A ready critic to train instead of the default (`ConcatCritic`, or
            `SeparableCritic` for a bound with ``all_pairs`` such as InfoNCE).
        negatives: ``"shift"`` or ``"all"`` (training negatives; see `AbstractBound.scores`).
        evaluation: ``"heldout"`` or ``"train_tail"``.
        tail_fraction: Fraction of final steps averaged for the tail, in (0, 1].
        heldout_fraction: Fraction of rows held out when ``evaluation="heldout"``, in (0, 1).
        upper_bound: An a-priori upper bound on the MI in nats (``None``: none known), >= 0.
        throw: Raise `geomtax.StatusError` when the status is not ``ok`` (``False``: return the
            result; nothing aborts, under ``jit`` as well).

    Returns:
        An `MIResult`; ``.value`` in nats.

    Raises:
        ValueError: An unknown or out-of-range option (the message names it and its value);
            mismatched row counts; too few rows for ``batch_size`` or the held-out split.
        TypeError: Non-numeric or complex data; an option of the wrong type; ``optimizer``
            together with ``learning_rate`` or ``grad_clip``.
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
    estimator = as_estimator(estimator)
    check_choice("evaluation", evaluation, EVALUATIONS)
    check_choice("negatives", negatives, NEGATIVES)
    check_choice("preprocess", preprocess, PREPROCESS)
    throw = check_bool("throw", throw)
    x, y, _ = prepare_paired_flagged(_as_samples(x), _as_samples(y), min_rows=2, what="MI")
    if upper_bound is not None:
        upper_bound = check_float("upper_bound", upper_bound, nonnegative=True)
    if isinstance(estimator, KSG):
        res = _ksg(x, y, ksg=estimator, preprocess=preprocess, upper_bound=upper_bound)
        return finish(res, throw=throw, function="mutual_information")
    num_steps = check_int("num_steps", num_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=2)
    hidden = check_hidden(hidden)
    if optimizer is not None:
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
        if learning_rate is not None or grad_clip is not None:
            raise TypeError(
                "learning_rate and grad_clip configure the default optimizer; with "
                "optimizer= build them into it (e.g. optax.chain(optax.clip_by_global_norm("
                "5.0), optax.adam(1e-3)))"
            )
    learning_rate = LEARNING_RATE if learning_rate is None else learning_rate
    grad_clip = GRAD_CLIP if grad_clip is None else grad_clip
    learning_rate = check_float("learning_rate", learning_rate, positive=True)
    grad_clip = check_float("grad_clip", grad_clip, positive=True)
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
        _as_leaves(estimator, dt),
        jnp.asarray(learning_rate, dt),
        jnp.asarray(grad_clip, dt),
        None if upper_bound is None else jnp.asarray(upper_bound, dt),
        critic,
        optimizer=optimizer,
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
    bound: AbstractBound | str = "dv",
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
        bound: A bound object or name, as ``estimator`` of `mutual_information` (not KSG).
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
    if isinstance(as_estimator(bound, name="bound"), KSG):
        raise ValueError("mine_train_tail trains a critic; use ksg_mi for KSG")
    return mutual_information(x, y, key=key, estimator=bound, evaluation="train_tail", **options)


def mine_heldout(
    x: Float[Array, "n dx"],
    y: Float[Array, "n dy"],
    *,
    key: KeyArray,
    bound: AbstractBound | str = "dv",
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
        bound: A bound object or name, as ``estimator`` of `mutual_information` (not KSG).
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
    if isinstance(as_estimator(bound, name="bound"), KSG):
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
