r"""Variational lower bounds on mutual information, as pure functions of ``(critic, xs, ys)``.

Every bound is in nats and is differentiable in the critic's parameters, so its negative is a
training loss. ``xs`` (b, d_x) and ``ys`` (b, d_y) are a minibatch of joint samples, paired row
by row. Samples from the product of marginals are made from the same batch:

* ``negatives="shift"`` (default for DV, MINE, NWJ, SMILE): the pairs
  \((x_i, y_{(i-1) \bmod b})\), b scores, i.e. the batch's ``y`` rolled by one row. Because
  minibatches are drawn at random, this is a deterministic derangement and equivalent in law to
  the reference's in-batch permutation (which may leave fixed points); it costs b critic calls.
* ``negatives="all"``: every off-diagonal pair \((x_i, y_j), i \ne j\), b(b - 1) scores
  (lower variance, b times the cost).

InfoNCE always uses the full (b, b) score matrix. Dropout in the critic is active only when a
``key`` is passed. Poole et al. (2019), "On variational bounds of mutual information",
https://arxiv.org/abs/1905.06922, give the bounds and their bias/variance trade-offs.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray, ScalarLike
from .._errors import check_choice, check_float, check_min_rows, check_paired
from .._units import logmeanexp, logmeanexp_offdiagonal
from ._critics import AbstractCritic

NEGATIVES = ("shift", "all")


def check_tau(tau):
    """SMILE's clip level: a finite number > 0 (traced values pass); returns it."""
    return check_float("tau", tau, positive=True)


def check_ema_rate(ema_rate):
    """MINE's moving-average rate: a finite number in (0, 1] (traced values pass); returns it."""
    return check_float("ema_rate", ema_rate, positive=True, maximum=1.0)


def _check(xs, ys, negatives: str | None = None) -> None:
    check_paired(xs, ys, names=("xs", "ys"))
    check_min_rows("xs", xs, 2, what="a mutual-information bound")
    if negatives is not None:
        check_choice("negatives", negatives, NEGATIVES)


def _joint_and_marginal(critic, xs, ys, key, negatives):
    """Joint scores (b,) and the log-mean-exp of the product-of-marginals scores."""
    if negatives == "all":
        scores = critic.all_pairs(xs, ys, key=key)
        return jnp.diagonal(scores), scores, True
    kj, km = (None, None) if key is None else tuple(jax.random.split(key))
    joint = critic.pairs(xs, ys, key=kj)
    marginal = critic.pairs(xs, jnp.roll(ys, 1, axis=0), key=km)
    return joint, marginal, False


def _lme(marginal, is_matrix):
    return logmeanexp_offdiagonal(marginal) if is_matrix else logmeanexp(marginal)


def dv_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    r"""Donsker–Varadhan lower bound (the reference MINE objective), in nats.

    $$\hat I_{DV} = \frac{1}{b}\sum_i T(x_i, y_i)
    - \log \frac{1}{m}\sum_{(i,j) \in \mathcal{N}} e^{T(x_i, y_j)}$$

    (Belghazi et al. 2018, eq. 10; Poole et al. 2019, eq. 9). The minibatch log-mean-exp is biased
    upward as an *estimate* (Jensen) and its gradient is biased; see `mine_bound`. The
    variance grows roughly exponentially with the true MI.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x), paired row by row with ``ys``.
        ys: Minibatch of ``y``, shape (b, d_y).
        key: Dropout key (``None``: deterministic critic).
        negatives: ``"shift"`` (b negatives) or ``"all"`` (b(b-1) off-diagonal negatives).

    Returns:
        The bound, a scalar in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> dv_bound(critic, xs, xs).shape
        ()
    """
    _check(xs, ys, negatives)
    joint, marginal, is_matrix = _joint_and_marginal(critic, xs, ys, key, negatives)
    return jnp.mean(joint) - _lme(marginal, is_matrix)


def nwj_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    r"""Nguyen–Wainwright–Jordan (f-divergence, "MINE-f") lower bound, in nats.

    $$\hat I_{NWJ} = \frac{1}{b}\sum_i T(x_i, y_i)
    - e^{-1} \frac{1}{m}\sum_{(i,j) \in \mathcal{N}} e^{T(x_i, y_j)}$$

    (Poole et al. 2019, eq. 11). Unbiased in the minibatch, with high variance that grows
    exponentially with the true MI; it may be negative at small sample sizes.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        key: Dropout key (``None``: deterministic critic).
        negatives: ``"shift"`` or ``"all"``.

    Returns:
        The bound, a scalar in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(nwj_bound(critic, xs, xs) <= dv_bound(critic, xs, xs))
        True
    """
    _check(xs, ys, negatives)
    joint, marginal, is_matrix = _joint_and_marginal(critic, xs, ys, key, negatives)
    return jnp.mean(joint) - jnp.exp(_lme(marginal, is_matrix) - 1.0)


def infonce_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
) -> Float[Array, ""]:
    r"""InfoNCE (contrastive predictive coding) lower bound, in nats.

    $$\hat I_{NCE} = \frac{1}{b}\sum_{i=1}^{b}
    \log \frac{e^{f(x_i, y_i)}}{\frac{1}{b}\sum_{j=1}^{b} e^{f(x_i, y_j)}} \le \log b$$

    (van den Oord et al. 2018; Poole et al. 2019, eq. 12). Low variance, but **capped at
    log b by construction**: with batch 64 it can never exceed 4.159 nats, so it underestimates
    large MI. Uses the full (b, b) score matrix; pair it with `SeparableCritic` for large b.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        key: Dropout key (``None``: deterministic critic).

    Returns:
        The bound, a scalar in nats, at most ``log b``.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = SeparableCritic(1, 1, hidden=(4,), embed_dim=2, key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(infonce_bound(critic, xs, xs) <= jnp.log(8.0) + 1e-6)
        True
    """
    _check(xs, ys)
    scores = critic.all_pairs(xs, ys, key=key)
    b = scores.shape[0]
    log_b = math.log(b)
    return jnp.mean(jnp.diagonal(scores)) - jnp.mean(jax.nn.logsumexp(scores, axis=1)) + log_b


def smile_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    tau: ScalarLike = 5.0,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    r"""SMILE: the Donsker–Varadhan bound with a clipped partition term, in nats.

    $$\hat I_{SMILE} = \frac{1}{b}\sum_i T(x_i, y_i)
    - \log \frac{1}{m}\sum_{(i,j) \in \mathcal{N}}
    \mathrm{clip}\big(e^{T(x_i, y_j)}, e^{-\tau}, e^{\tau}\big)$$

    (Song & Ermon 2020, eq. 17). Clipping bounds the variance of the partition estimate at the
    price of bias; ``tau`` trades one against the other (``tau -> inf`` recovers DV).

    The clipped DV value is unbounded above as a *training objective* (the critic can raise the
    joint scores while the clipped partition term stays at most ``tau``), so, as in Song &
    Ermon's implementation, the returned scalar has the clipped-DV **value** but the **gradient**
    of the Jensen–Shannon (f-GAN) bound
    \(-\overline{\mathrm{softplus}(-T_{joint})} - \overline{\mathrm{softplus}(T_{neg})}\),
    whose optimal critic is the log density ratio.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        tau: Clip level, > 0 (a leaf, so it can be swept under ``vmap``).
        key: Dropout key (``None``: deterministic critic).
        negatives: ``"shift"`` or ``"all"``.

    Returns:
        The bound, a scalar in nats.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> smile_bound(critic, xs, xs, tau=1.0).shape
        ()
    """
    _check(xs, ys, negatives)
    tau = check_tau(tau)
    joint, marginal, is_matrix = _joint_and_marginal(critic, xs, ys, key, negatives)
    clipped = jnp.clip(marginal, -tau, tau)
    dv_clipped = jnp.mean(joint) - _lme(clipped, is_matrix)
    if is_matrix:
        b = marginal.shape[0]
        off = ~jnp.eye(b, dtype=bool)
        neg = jnp.sum(jnp.where(off, jax.nn.softplus(marginal), 0.0)) / (b * (b - 1))
    else:
        neg = jnp.mean(jax.nn.softplus(marginal))
    js = -jnp.mean(jax.nn.softplus(-joint)) - neg
    return js + lax.stop_gradient(dv_clipped - js)


class MineState(eqx.Module):
    """MINE's moving average of the partition term, threaded explicitly through training.

    Attributes:
        log_ema: Log of the exponential moving average of the minibatch mean of ``exp(T)`` on
            negative pairs (log domain, so it cannot overflow).
        count: Number of updates so far; at 0 the average is seeded with the first batch.
    """

    log_ema: Float[Array, ""]
    count: Int[Array, ""]


def init_mine_state(dtype=jnp.float32) -> MineState:
    """Initial `MineState` (empty moving average).

    Examples:
        >>> from geomtax.info import *
        >>> int(init_mine_state().count)
        0
    """
    return MineState(log_ema=jnp.zeros((), dtype), count=jnp.zeros((), jnp.int32))


def mine_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    state: MineState,
    *,
    ema_rate: ScalarLike = 0.01,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> tuple[Float[Array, ""], tuple[Float[Array, ""], MineState]]:
    r"""MINE: the DV bound with the moving-average correction of its gradient bias.

    The minibatch gradient of \(\log \bar Z\), with \(\bar Z = \frac1m\sum e^{T}\), is
    \(\nabla \bar Z / \bar Z\), biased because \(\bar Z\) is a noisy denominator.
    MINE (Belghazi et al. 2018, section 3.2) divides by a moving average instead:

    $$\mathrm{EMA}_t = (1-\alpha)\,\mathrm{EMA}_{t-1} + \alpha \bar Z_t,\qquad
    \mathcal{L}_{\text{surrogate}} = \frac1b\sum_i T(x_i, y_i)
    - \frac{\bar Z_t}{\mathrm{sg}(\mathrm{EMA}_t)}$$

    whose gradient is the corrected one (``sg``: stop-gradient). The reported estimate is the
    plain DV value. The average is kept in the log domain and lives in ``state``, which the
    caller threads through its loop (never hidden on an object).

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        state: Current `MineState` (start from `init_mine_state`).
        ema_rate: The moving-average rate \(\alpha\) in (0, 1].
        key: Dropout key (``None``: deterministic critic).
        negatives: ``"shift"`` or ``"all"``.

    Returns:
        ``(surrogate, (estimate, new_state))``: maximize ``surrogate`` (its value is not an MI);
        ``estimate`` is the DV bound in nats. The shape suits
        ``jax.value_and_grad(..., has_aux=True)`` on the negated surrogate.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> surrogate, (estimate, state) = mine_bound(critic, xs, xs, init_mine_state())
        >>> bool(jnp.isclose(estimate, dv_bound(critic, xs, xs)))
        True
        >>> int(state.count)
        1
    """
    _check(xs, ys, negatives)
    ema_rate = check_ema_rate(ema_rate)
    joint, marginal, is_matrix = _joint_and_marginal(critic, xs, ys, key, negatives)
    lme = _lme(marginal, is_matrix)
    lme_sg = lax.stop_gradient(lme)
    alpha = jnp.asarray(ema_rate, lme.dtype)
    updated = jnp.logaddexp(jnp.log1p(-alpha) + state.log_ema, jnp.log(alpha) + lme_sg)
    log_ema = jnp.where(state.count == 0, lme_sg, updated)
    surrogate = jnp.mean(joint) - jnp.exp(lme - log_ema)
    estimate = jnp.mean(joint) - lme
    new_state = MineState(log_ema=log_ema.astype(state.log_ema.dtype), count=state.count + 1)
    return surrogate, (estimate, new_state)


BOUNDS = ("mine", "dv", "nwj", "infonce", "smile")


def evaluate_bound(
    name: str,
    critic: AbstractCritic,
    xs,
    ys,
    *,
    key=None,
    negatives: str = "shift",
    tau=5.0,
):
    """Value of the named bound (MINE evaluates as DV); internal dispatcher."""
    if name in ("dv", "mine"):
        return dv_bound(critic, xs, ys, key=key, negatives=negatives)
    if name == "nwj":
        return nwj_bound(critic, xs, ys, key=key, negatives=negatives)
    if name == "infonce":
        return infonce_bound(critic, xs, ys, key=key)
    if name == "smile":
        return smile_bound(critic, xs, ys, tau=tau, key=key, negatives=negatives)
    raise ValueError(f"unknown bound {name!r}; expected one of {BOUNDS}")
