r"""Variational lower bounds on mutual information, as Equinox modules over critic scores.

A bound is a small `AbstractBound` module that holds its own hyperparameters (``SMILE(tau=5.0)``,
``MINE(ema_rate=0.01)``) and computes, from the `CriticScores` of one minibatch, its value in
nats (`AbstractBound.value`) and its training objective (`AbstractBound.objective`). Every bound
is differentiable in the critic's parameters, so its negated objective is a training loss.

The scores of a minibatch ``xs`` (b, d_x), ``ys`` (b, d_y), paired row by row, are made by
``bound.scores(critic, xs, ys)`` (`critic_scores`). Samples from the product of marginals come
from the same batch:

* ``negatives="shift"`` (default for DV, MINE, NWJ, SMILE): the pairs
  \((x_i, y_{(i-1) \bmod b})\), b scores, i.e. the batch's ``y`` rolled by one row. Because
  minibatches are drawn at random, this is a deterministic derangement and equivalent in law to
  the reference's in-batch permutation (which may leave fixed points); it costs b critic calls.
* ``negatives="all"``: every off-diagonal pair \((x_i, y_j), i \ne j\), b(b - 1) scores
  (lower variance, b times the cost).

A bound with ``all_pairs = True`` (InfoNCE) always reads the full (b, b) score matrix. Dropout in
the critic is active only when a ``key`` is passed. Poole et al. (2019), "On variational bounds
of mutual information", https://arxiv.org/abs/1905.06922, give the bounds and their
bias/variance trade-offs.

Adding a bound is one final subclass of `AbstractBound` (a ``value``, optionally an
``objective`` with an ``init_state``, and a ``ceiling``) plus its entry in `BOUNDS` if it should
have a string name; the fit (`geomtax.info.mutual_information`) takes the object as
``estimator=``. See docs/api/info.md, "Adding an MI bound".
"""

import abc
import math
from typing import Any, ClassVar

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
#: InfoNCE cannot resolve MI near its ceiling: its fits are flagged when
#: ``value > log(b) - INFONCE_MARGIN`` (measured: at b = 64 it is 10-18 % low from about
#: 1.5 nats on; docs/api/info.md).
INFONCE_MARGIN = 2.5


def check_tau(tau):
    """SMILE's clip level: a finite number > 0 (traced values pass); returns it."""
    return check_float("tau", tau, positive=True)


def check_ema_rate(ema_rate):
    """MINE's moving-average rate: a finite number in (0, 1] (traced values pass); returns it."""
    return check_float("ema_rate", ema_rate, positive=True, maximum=1.0)


class CriticScores(eqx.Module):
    r"""The critic's scores on one minibatch: everything a bound is computed from.

    Attributes:
        joint: Scores of the b joint pairs \(T(x_i, y_i)\), shape (b,).
        negative: Scores of the product-of-marginals pairs: shape (b,) for
            ``negatives="shift"``, or the full (b, b) matrix \(S_{ij} = T(x_i, y_j)\) (whose
            diagonal is ``joint`` and whose off-diagonal entries are the negatives) when
            ``matrix`` is true.
        matrix: Whether ``negative`` is the full (b, b) matrix (static).
    """

    joint: Float[Array, " b"]
    negative: Array
    matrix: bool = eqx.field(static=True)

    def logmeanexp_negative(self, values: Array | None = None) -> Float[Array, ""]:
        """Log-mean-exp over the negative pairs of ``values`` (default: ``negative``)."""
        values = self.negative if values is None else values
        return logmeanexp_offdiagonal(values) if self.matrix else logmeanexp(values)

    def mean_negative(self, values: Array) -> Float[Array, ""]:
        """Mean over the negative pairs of ``values``, an array shaped like ``negative``."""
        if self.matrix:
            b = values.shape[0]
            off = ~jnp.eye(b, dtype=bool)
            return jnp.sum(jnp.where(off, values, 0.0)) / (b * (b - 1))
        return jnp.mean(values)


def _check(xs, ys, negatives: str | None = None) -> None:
    check_paired(xs, ys, names=("xs", "ys"))
    check_min_rows("xs", xs, 2, what="a mutual-information bound")
    if negatives is not None:
        check_choice("negatives", negatives, NEGATIVES)


def critic_scores(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> CriticScores:
    """Score one minibatch: the joint pairs and the negatives chosen by ``negatives``.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x), paired row by row with ``ys``.
        ys: Minibatch of ``y``, shape (b, d_y).
        key: Dropout key (``None``: deterministic critic). With ``"shift"`` it is split into
            one key for the joint and one for the negative scores.
        negatives: ``"shift"`` (b negatives) or ``"all"`` (the full (b, b) matrix).

    Returns:
        The `CriticScores`.

    Examples:
        >>> from geomtax.info import *
        >>> from geomtax.info._bounds import critic_scores
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> critic_scores(critic, xs, xs, negatives="all").negative.shape
        (8, 8)
    """
    _check(xs, ys, negatives)
    if negatives == "all":
        scores = critic.all_pairs(xs, ys, key=key)
        return CriticScores(joint=jnp.diagonal(scores), negative=scores, matrix=True)
    kj, km = (None, None) if key is None else tuple(jax.random.split(key))
    joint = critic.pairs(xs, ys, key=kj)
    negative = critic.pairs(xs, jnp.roll(ys, 1, axis=0), key=km)
    return CriticScores(joint=joint, negative=negative, matrix=False)


class AbstractBound(eqx.Module):
    """Base class of MI lower bounds; each concrete bound is final and holds its hyperparameters.

    A subclass implements `value`. A bound whose training gradient differs from the gradient
    of its value, or that needs state carried across steps (MINE's moving average), overrides
    `objective` (and `init_state`). Continuous hyperparameters are array leaves (a fit converts
    them to arrays, so a new value does not recompile and they can be swept under ``vmap``);
    anything that changes shapes or control flow is ``eqx.field(static=True)``.

    Attributes:
        all_pairs: Class attribute: the bound always reads the full (b, b) score matrix (the
            fit's default critic is then the `SeparableCritic`, one matrix product).
    """

    all_pairs: ClassVar[bool] = False

    @abc.abstractmethod
    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The bound on one minibatch, in nats (the number a fit records and reports)."""

    def init_state(self, dtype=jnp.float32) -> Any:
        """Initial training state threaded through the fit (``None``: stateless)."""
        del dtype
        return None

    def objective(self, scores: CriticScores, state: Any) -> tuple[Array, tuple[Array, Any]]:
        """Training objective: ``(surrogate, (estimate, new_state))``.

        The fit maximizes ``surrogate`` and records ``estimate`` (nats); the default is the
        value itself, with ``state`` passed through.
        """
        v = self.value(scores)
        return v, (v, state)

    def ceiling(self, batch_size: int) -> float | None:
        """Largest value a fit with batches of ``batch_size`` rows can trust (``None``: none).

        A fit whose value or training tail is above it is flagged ``implausible`` (flag 8).
        """
        del batch_size
        return None

    def scores(
        self,
        critic: AbstractCritic,
        xs: Float[Array, "b dx"],
        ys: Float[Array, "b dy"],
        *,
        key: KeyArray | None = None,
        negatives: str = "shift",
    ) -> CriticScores:
        """`critic_scores` with the negatives this bound reads (all pairs if ``all_pairs``)."""
        return critic_scores(
            critic, xs, ys, key=key, negatives="all" if self.all_pairs else negatives
        )

    def evaluate(
        self,
        critic: AbstractCritic,
        xs: Float[Array, "b dx"],
        ys: Float[Array, "b dy"],
        *,
        key: KeyArray | None = None,
        negatives: str = "shift",
    ) -> Float[Array, ""]:
        """The bound's `value` for ``critic`` on one minibatch, in nats."""
        return self.value(self.scores(critic, xs, ys, key=key, negatives=negatives))


class DV(AbstractBound):
    r"""Donsker–Varadhan lower bound (the reference MINE objective).

    $$\hat I_{DV} = \frac{1}{b}\sum_i T(x_i, y_i)
    - \log \frac{1}{m}\sum_{(i,j) \in \mathcal{N}} e^{T(x_i, y_j)}$$

    (Belghazi et al. 2018, eq. 10; Poole et al. 2019, eq. 9). The minibatch log-mean-exp is biased
    upward as an *estimate* (Jensen) and its gradient is biased; see `MINE`. The variance grows
    roughly exponentially with the true MI.

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> DV().evaluate(critic, xs, xs).shape
        ()
    """

    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The DV bound, in nats."""
        return jnp.mean(scores.joint) - scores.logmeanexp_negative()


class NWJ(AbstractBound):
    r"""Nguyen–Wainwright–Jordan (f-divergence, "MINE-f") lower bound.

    $$\hat I_{NWJ} = \frac{1}{b}\sum_i T(x_i, y_i)
    - e^{-1} \frac{1}{m}\sum_{(i,j) \in \mathcal{N}} e^{T(x_i, y_j)}$$

    (Poole et al. 2019, eq. 11). Unbiased in the minibatch, with high variance that grows
    exponentially with the true MI; it may be negative at small sample sizes.

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(NWJ().evaluate(critic, xs, xs) <= DV().evaluate(critic, xs, xs))
        True
    """

    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The NWJ bound, in nats."""
        return jnp.mean(scores.joint) - jnp.exp(scores.logmeanexp_negative() - 1.0)


class InfoNCE(AbstractBound):
    r"""InfoNCE (contrastive predictive coding) lower bound.

    $$\hat I_{NCE} = \frac{1}{b}\sum_{i=1}^{b}
    \log \frac{e^{f(x_i, y_i)}}{\frac{1}{b}\sum_{j=1}^{b} e^{f(x_i, y_j)}} \le \log b$$

    (van den Oord et al. 2018; Poole et al. 2019, eq. 12). Low variance, but **capped at
    log b by construction**: with batch 64 it can never exceed 4.159 nats, so it underestimates
    large MI; a fit is flagged above ``log b - 2.5`` (`ceiling`). Always uses the full (b, b)
    score matrix (``all_pairs``); pair it with `SeparableCritic` for large b.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = SeparableCritic(1, 1, hidden=(4,), embed_dim=2, key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(InfoNCE().evaluate(critic, xs, xs) <= jnp.log(8.0) + 1e-6)
        True
    """

    all_pairs: ClassVar[bool] = True

    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The InfoNCE bound, in nats (at most ``log b``)."""
        s = scores.negative
        log_b = math.log(s.shape[0])
        return jnp.mean(scores.joint) - jnp.mean(jax.nn.logsumexp(s, axis=1)) + log_b

    def ceiling(self, batch_size: int) -> float:
        """``log(batch_size) - INFONCE_MARGIN``: where InfoNCE is measurably biased low."""
        return math.log(batch_size) - INFONCE_MARGIN


class SMILE(AbstractBound):
    r"""SMILE: the Donsker–Varadhan bound with a clipped partition term.

    $$\hat I_{SMILE} = \frac{1}{b}\sum_i T(x_i, y_i)
    - \log \frac{1}{m}\sum_{(i,j) \in \mathcal{N}}
    \mathrm{clip}\big(e^{T(x_i, y_j)}, e^{-\tau}, e^{\tau}\big)$$

    (Song & Ermon 2020, eq. 17). Clipping bounds the variance of the partition estimate at the
    price of bias; ``tau`` trades one against the other (``tau -> inf`` recovers DV).

    The clipped DV value is unbounded above as a *training objective* (the critic can raise the
    joint scores while the clipped partition term stays at most ``tau``), so, as in Song &
    Ermon's implementation, `value` has the clipped-DV **value** but the **gradient** of the
    Jensen–Shannon (f-GAN) bound
    \(-\overline{\mathrm{softplus}(-T_{joint})} - \overline{\mathrm{softplus}(T_{neg})}\),
    whose optimal critic is the log density ratio.

    Attributes:
        tau: Clip level, > 0 (a leaf, so it can be swept under ``vmap``; default 5).

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> SMILE(tau=1.0).evaluate(critic, xs, xs).shape
        ()
    """

    tau: ScalarLike = eqx.field(default=5.0, converter=check_tau)

    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The clipped-DV value (nats) carrying the Jensen–Shannon gradient."""
        joint, marginal = scores.joint, scores.negative
        clipped = jnp.clip(marginal, -self.tau, self.tau)
        dv_clipped = jnp.mean(joint) - scores.logmeanexp_negative(clipped)
        neg = scores.mean_negative(jax.nn.softplus(marginal))
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


class MINE(AbstractBound):
    r"""MINE: the DV bound with the moving-average correction of its gradient bias.

    The minibatch gradient of \(\log \bar Z\), with \(\bar Z = \frac1m\sum e^{T}\), is
    \(\nabla \bar Z / \bar Z\), biased because \(\bar Z\) is a noisy denominator.
    MINE (Belghazi et al. 2018, section 3.2) divides by a moving average instead:

    $$\mathrm{EMA}_t = (1-\alpha)\,\mathrm{EMA}_{t-1} + \alpha \bar Z_t,\qquad
    \mathcal{L}_{\text{surrogate}} = \frac1b\sum_i T(x_i, y_i)
    - \frac{\bar Z_t}{\mathrm{sg}(\mathrm{EMA}_t)}$$

    whose gradient is the corrected one (``sg``: stop-gradient). The value (and every reported
    estimate) is the plain DV bound. The average is kept in the log domain in a `MineState`,
    the bound's own training state (`init_state`), which the fit threads through its steps.

    Attributes:
        ema_rate: The moving-average rate \(\alpha\) in (0, 1] (default 0.01).

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bound = MINE(ema_rate=0.1)
        >>> surrogate, (estimate, state) = bound.objective(
        ...     bound.scores(critic, xs, xs), bound.init_state())
        >>> int(state.count)
        1
    """

    ema_rate: ScalarLike = eqx.field(default=0.01, converter=check_ema_rate)

    def value(self, scores: CriticScores) -> Float[Array, ""]:
        """The DV bound, in nats."""
        return jnp.mean(scores.joint) - scores.logmeanexp_negative()

    def init_state(self, dtype=jnp.float32) -> MineState:
        """An empty moving average."""
        return MineState(log_ema=jnp.zeros((), dtype), count=jnp.zeros((), jnp.int32))

    def objective(
        self, scores: CriticScores, state: MineState
    ) -> tuple[Array, tuple[Array, MineState]]:
        """``(surrogate, (DV estimate, updated MineState))``."""
        lme = scores.logmeanexp_negative()
        lme_sg = lax.stop_gradient(lme)
        alpha = jnp.asarray(self.ema_rate, lme.dtype)
        updated = jnp.logaddexp(jnp.log1p(-alpha) + state.log_ema, jnp.log(alpha) + lme_sg)
        log_ema = jnp.where(state.count == 0, lme_sg, updated)
        surrogate = jnp.mean(scores.joint) - jnp.exp(lme - log_ema)
        estimate = jnp.mean(scores.joint) - lme
        new_state = MineState(log_ema=log_ema.astype(state.log_ema.dtype), count=state.count + 1)
        return surrogate, (estimate, new_state)


#: The string names accepted by ``estimator=`` / ``bound=``, each mapped to its default object.
BOUNDS: dict[str, type[AbstractBound]] = {
    "mine": MINE,
    "dv": DV,
    "nwj": NWJ,
    "infonce": InfoNCE,
    "smile": SMILE,
}


def as_bound(bound, *, name: str = "bound") -> AbstractBound:
    """An `AbstractBound` from a bound object or one of the names in `BOUNDS`."""
    if isinstance(bound, AbstractBound):
        return bound
    if isinstance(bound, str):
        check_choice(name, bound, tuple(BOUNDS))
        return BOUNDS[bound]()
    raise TypeError(
        f"{name} must be an AbstractBound (e.g. SMILE(tau=5.0)) or one of {tuple(BOUNDS)}, "
        f"got {bound!r}"
    )


# --- the bounds as functions of (critic, xs, ys): one call of the module each ------------------


def dv_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    """`DV` on one minibatch, in nats: ``DV().evaluate(critic, xs, ys, ...)``.

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
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> dv_bound(critic, xs, xs).shape
        ()
    """
    return DV().evaluate(critic, xs, ys, key=key, negatives=negatives)


def nwj_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    """`NWJ` on one minibatch, in nats: ``NWJ().evaluate(critic, xs, ys, ...)``.

    The arguments and the return value are those of `dv_bound`.

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(nwj_bound(critic, xs, xs) <= dv_bound(critic, xs, xs))
        True
    """
    return NWJ().evaluate(critic, xs, ys, key=key, negatives=negatives)


def infonce_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    key: KeyArray | None = None,
) -> Float[Array, ""]:
    """`InfoNCE` on one minibatch, in nats (at most ``log b``).

    The arguments are those of `dv_bound` (always all b x b pairs: no ``negatives``). Returns the
    bound, a scalar in nats, at most ``log b``.

    Examples:
        >>> from geomtax.info import *
        >>> import jax, jax.numpy as jnp
        >>> critic = SeparableCritic(1, 1, hidden=(4,), embed_dim=2, key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> bool(infonce_bound(critic, xs, xs) <= jnp.log(8.0) + 1e-6)
        True
    """
    return InfoNCE().evaluate(critic, xs, ys, key=key)


def smile_bound(
    critic: AbstractCritic,
    xs: Float[Array, "b dx"],
    ys: Float[Array, "b dy"],
    *,
    tau: ScalarLike = 5.0,
    key: KeyArray | None = None,
    negatives: str = "shift",
) -> Float[Array, ""]:
    """`SMILE` on one minibatch, in nats: ``SMILE(tau=tau).evaluate(critic, xs, ys, ...)``.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        tau: Clip level, > 0 (a leaf, so it can be swept under ``vmap``).
        key: Dropout key (``None``: deterministic critic).
        negatives: ``"shift"`` or ``"all"``.

    Returns:
        The bound, a scalar in nats (with the Jensen–Shannon gradient; see `SMILE`).

    Examples:
        >>> from geomtax.info import *
        >>> import jax
        >>> critic = ConcatCritic(1, 1, hidden=(4,), key=jax.random.key(0))
        >>> xs = jax.random.normal(jax.random.key(1), (8, 1))
        >>> smile_bound(critic, xs, xs, tau=1.0).shape
        ()
    """
    return SMILE(tau=tau).evaluate(critic, xs, ys, key=key, negatives=negatives)


def init_mine_state(dtype=jnp.float32) -> MineState:
    """Initial `MineState` (empty moving average): ``MINE().init_state(dtype)``.

    Examples:
        >>> from geomtax.info import *
        >>> int(init_mine_state().count)
        0
    """
    return MINE().init_state(dtype)


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
    """`MINE`'s training objective on one minibatch: ``MINE(ema_rate).objective(...)``.

    Args:
        critic: Critic scoring one pair.
        xs: Minibatch of ``x``, shape (b, d_x).
        ys: Minibatch of ``y``, shape (b, d_y).
        state: Current `MineState` (start from `init_mine_state`).
        ema_rate: The moving-average rate in (0, 1].
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
    bound = MINE(ema_rate=ema_rate)
    return bound.objective(bound.scores(critic, xs, ys, key=key, negatives=negatives), state)
