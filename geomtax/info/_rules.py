r"""The result of an MI fit and the rules that set its status.

The rules are documented in docs/api/info.md, "When a fit is flagged".
Each rule is a pure function of the fit's training curve, held-out numbers and settings, so a new
bound inherits every check; a bound adds its own cap through `AbstractBound.ceiling`.
"""

import math

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._status import AbstractResult, Status, nan_unless_ok, select, worst

#: A bound estimate below ``-(NEGATIVE_TOL + 3 * stderr)`` nats is impossible (MI >= 0).
NEGATIVE_TOL = 0.1
#: The training tail is unstable when ``tail_std > SPREAD_ABS + SPREAD_REL * |tail_mean|``.
SPREAD_ABS = 1.0
SPREAD_REL = 0.5
#: Held-out and training-tail estimates disagree when
#: ``|heldout - tail_mean| > AGREE_ABS + AGREE_REL * max(|heldout|, |tail_mean|) + 3 * stderr``.
AGREE_ABS = 0.15
AGREE_REL = 0.25
#: Still rising: a least-squares line through the last half of the curve rises by more than
#: ``RISE_ABS + RISE_REL * |tail_mean|`` over that half, with a slope t-statistic above 3.
RISE_ABS = 0.05
RISE_REL = 0.05
#: Held-out checkpoints recorded during a fit with a held-out split (for the not-converged rule).
CHECKPOINTS = 10
#: Bits of ``MIResult.flags``, one per rule.
FLAG_NEGATIVE, FLAG_SPREAD, FLAG_DISAGREE, FLAG_CEILING, FLAG_UPPER = 1, 2, 4, 8, 16
FLAG_RISING = 32
#: A KSG estimate that moves with k (``ksg_mi``'s k-sensitivity check): biased low.
FLAG_BIASED_LOW = 64


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
            4 held-out/tail disagreement, 8 above the bound's ceiling (InfoNCE near log b),
            16 above ``upper_bound`` (these make ``implausible``), 32 still rising
            (``not_converged``).
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


def still_rising(curve, tail_mean):
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


def checkpoints_rising(h, value):
    """True when the held-out checkpoints still rise over the last half of the fit."""
    half = h.shape[0] // 2
    seg = h[-half - 1 :]
    t = jnp.arange(seg.shape[0], dtype=h.dtype) - (seg.shape[0] - 1) / 2.0
    slope = jnp.sum(t * (seg - jnp.mean(seg))) / jnp.sum(t * t)
    return slope * half > RISE_ABS + RISE_REL * jnp.abs(value)


def plausibility(ceiling, tail_mean, tail_std, tail_len, held, held_se, value, upper_bound):
    """The implausibility bit mask (see the module constants and `mutual_information`).

    ``ceiling`` is the bound's `AbstractBound.ceiling` at the fit's batch size (``None``: none).
    """
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
    if ceiling is None:
        above_ceiling = jnp.zeros((), bool)
    else:
        above_ceiling = (value > ceiling) | (tail_mean > ceiling)
    if upper_bound is None:
        above = jnp.zeros((), bool)
    else:
        above = value > upper_bound + NEGATIVE_TOL + 3 * se
    bits = (
        FLAG_NEGATIVE * negative.astype(jnp.int32)
        + FLAG_SPREAD * spread.astype(jnp.int32)
        + FLAG_DISAGREE * disagree.astype(jnp.int32)
        + FLAG_CEILING * above_ceiling.astype(jnp.int32)
        + FLAG_UPPER * above.astype(jnp.int32)
    )
    return bits


def fit_result(
    curve,
    *,
    tail_fraction: float,
    held,
    held_se,
    checkpoints,
    ceiling,
    upper_bound,
    input_status,
) -> MIResult:
    """Apply every rule to a finished fit and return its `MIResult`.

    ``held``/``held_se`` are NaN without a held-out split (the value is then the tail mean);
    ``checkpoints`` holds the held-out bound recorded during the fit, or ``None``.
    """
    num_steps = curve.shape[0]
    tail = max(1, int(math.ceil(tail_fraction * num_steps)))
    tail_curve = curve[-tail:]
    tail_mean = jnp.mean(tail_curve)
    tail_std = jnp.std(tail_curve)
    bad = ~jnp.isfinite(curve)
    diverged = jnp.any(bad)
    diverged_step = jnp.where(diverged, jnp.argmax(bad), -1).astype(jnp.int32)
    value = tail_mean if held is None else held
    if held is None:
        held = jnp.full((), jnp.nan, curve.dtype)
        held_se = jnp.full((), jnp.nan, curve.dtype)
    flags = plausibility(ceiling, tail_mean, tail_std, tail, held, held_se, value, upper_bound)
    rising = still_rising(curve, tail_mean)
    if checkpoints is not None:
        # Training alone can rise by overfitting; an unconverged fit also rises held out.
        rising = rising & checkpoints_rising(checkpoints, value)
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
