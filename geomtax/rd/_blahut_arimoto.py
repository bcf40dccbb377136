"""Blahut–Arimoto rate–distortion solver in the log domain, and whole R(D) curves."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import logsumexp
from jax.sharding import Mesh
from jax.tree_util import Partial

from .._custom_types import Array, Bool, Float, Int, ScalarLike
from .._errors import check_bool, check_float, check_int, check_rank, check_real_array, is_traced
from .._sharding import shard_sweep
from .._status import AbstractResult, Status, finish, nan_unless_ok, select, worst

#: |sum(p_x) - 1| allowed before ``p_x`` is rejected (it is then renormalized exactly).
PMF_ATOL = 1e-4


class RDSolution(AbstractResult):
    r"""One point of a rate–distortion curve from :func:`blahut_arimoto` (nats; arrays only).

    ``status`` is ``ok``, ``not_converged`` (the step limit came before ``gap <= tol``: the
    values are kept and stay certified, $R_L \le R(D_\beta) \le R_U$, only less tight than
    asked), ``nonfinite_input`` (NaN or inf in ``p_x``, the distortions or ``beta``),
    ``degenerate_input`` (a traced ``p_x`` that is not a probability vector, negative
    distortions or ``beta <= 0``) or ``diverged`` (non-finite values in the iteration). In the
    last three cases the rates, distortion and gap are NaN.

    Attributes:
        beta: the Lagrange multiplier $\beta$ (the curve's slope is $-\beta$ at this point).
        rate: $I(X;\hat X)$ of the returned conditional, in nats; $(D_\beta, \text{rate})$ is
            achievable, so $R(D_\beta) \le$ rate.
        distortion: $D_\beta = \sum_{x,m} p(x) q(m\mid x) d(x,m)$.
        rate_upper: $R_U = -\beta D_\beta - \sum_x p(x)\log Z(x) \ge R(D_\beta)$.
        rate_lower: Blahut's dual bound $R_L = R_U - \max_m \log c(m) \le R(D_\beta)$.
        gap: $R_U - R_L \ge 0$, a certificate of the distance to the optimum.
        q_y_given_x: (n, m) conditional $q(m\mid x)$, rows sum to 1.
        q_y: (m,) output marginal $\sum_x p(x) q(m \mid x)$.
        num_steps: Blahut–Arimoto iterations performed.
        converged: whether ``gap <= tol`` was reached within ``max_steps`` with finite values.
        status: a :class:`geomtax.Status` (see above).
    """

    beta: Float[Array, ""]
    rate: Float[Array, ""]
    distortion: Float[Array, ""]
    rate_upper: Float[Array, ""]
    rate_lower: Float[Array, ""]
    gap: Float[Array, ""]
    q_y_given_x: Float[Array, "n m"]
    q_y: Float[Array, " m"]
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    status: object


class RDCurve(AbstractResult):
    r"""A whole R(D) curve from :func:`rd_curve` (arrays of shape (num_betas,), nats).

    Attributes:
        beta: the slopes' magnitudes, in the order given.
        rate: (b,) $I(X;\hat X)$ per point, nats.
        distortion: (b,) $D_\beta$ per point.
        rate_upper: (b,) $R_U$ per point.
        rate_lower: (b,) $R_L$ per point.
        gap: (b,) $R_U - R_L$ per point.
        num_steps: (b,) iterations per point.
        converged: (b,) per-point convergence flags.
        monotone: scalar flag, rate is non-increasing in distortion (up to the certified gaps).
        convex: scalar flag, rate is convex in distortion (chord slopes non-decreasing, up to
            the certified gaps).
        status: (b,) a :class:`geomtax.Status` per point, as :class:`RDSolution`'s
            (``not_converged`` points keep their certified values).
    """

    beta: Float[Array, " b"]
    rate: Float[Array, " b"]
    distortion: Float[Array, " b"]
    rate_upper: Float[Array, " b"]
    rate_lower: Float[Array, " b"]
    gap: Float[Array, " b"]
    num_steps: Int[Array, " b"]
    converged: Bool[Array, " b"]
    monotone: Bool[Array, ""]
    convex: Bool[Array, ""]
    status: object


def _default_tol(dtype) -> float:
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def _compute_dtype(*arrays):
    """float32 at least: float16 / bfloat16 (and integer) inputs are computed in float32."""
    dt = jnp.float32
    for a in arrays:
        dt = jnp.promote_types(dt, jnp.result_type(a))
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.float32


def _check_problem(p_x, distortion_matrix):
    """Static checks and host checks of concrete values; returns arrays in the compute dtype.

    Concrete ``p_x`` that is not a probability vector and concrete negative distortions raise
    ``ValueError``; NaN or inf (concrete or traced) and traced invalid values are left to the
    status (:func:`_problem_status`).
    """
    check_rank("p_x", p_x, 1)
    check_rank("distortion_matrix", distortion_matrix, 2)
    check_real_array("p_x", p_x)
    check_real_array("distortion_matrix", distortion_matrix)
    n = np.shape(p_x)[0]
    if np.shape(distortion_matrix)[0] != n:
        raise ValueError(
            f"distortion_matrix must have shape (n, m) with n = len(p_x) = {n}; got "
            f"{tuple(np.shape(distortion_matrix))}"
        )
    if n < 1 or np.shape(distortion_matrix)[1] < 1:
        raise ValueError(
            f"need at least one source and one reproduction symbol; got "
            f"{tuple(np.shape(distortion_matrix))}"
        )
    if not is_traced(p_x):
        p = np.asarray(p_x, dtype=np.float64)
        if np.all(np.isfinite(p)):
            if np.any(p < 0):
                raise ValueError(
                    f"p_x must be non-negative; first negative entry at index {np.argmax(p < 0)}"
                )
            if abs(float(p.sum()) - 1.0) > PMF_ATOL:
                raise ValueError(
                    f"p_x must sum to 1 (within {PMF_ATOL}); sums to {float(p.sum())!r}"
                )
    if not is_traced(distortion_matrix):
        dm = np.asarray(distortion_matrix, dtype=np.float64)
        neg = np.isfinite(dm) & (dm < 0)
        if neg.any():
            idx = tuple(int(i) for i in np.argwhere(neg)[0])
            raise ValueError(f"distortion_matrix must be non-negative; first negative at {idx}")
    dtype = _compute_dtype(p_x, distortion_matrix)
    return jnp.asarray(p_x).astype(dtype), jnp.asarray(distortion_matrix).astype(dtype)


def _problem_status(p_x, d, beta):
    """(finite, valid): traceable checks of the problem's values."""
    finite = jnp.all(jnp.isfinite(p_x)) & jnp.all(jnp.isfinite(d)) & jnp.isfinite(beta)
    valid = (
        jnp.all(p_x >= 0) & (jnp.abs(jnp.sum(p_x) - 1) <= PMF_ATOL) & jnp.all(d >= 0) & (beta > 0)
    )
    return finite, valid


def _check_beta(beta, name="beta"):
    if np.ndim(beta) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(beta)}")
    if not is_traced(beta):
        if isinstance(beta, jax.Array | np.ndarray):
            b = float(np.asarray(beta))
            if not np.isfinite(b) or b <= 0:
                raise ValueError(f"{name} must be a finite positive number, got {name}={b!r}")
        else:
            check_float(name, beta, positive=True)
    return beta


def _log_pmf(p_x):
    p_x = p_x / jnp.sum(p_x)
    return jnp.where(p_x > 0, jnp.log(jnp.where(p_x > 0, p_x, 1.0)), -jnp.inf)


def _ba_step(log_p, beta_d, log_q):
    """One log-domain BA update. Returns (new log q, log Z (n,), log conditional (n, m))."""
    a = log_q[None, :] - beta_d
    log_z = logsumexp(a, axis=1)
    log_cond = a - log_z[:, None]
    log_q_new = logsumexp(log_p[:, None] + log_cond, axis=0)
    return log_q_new, log_z, log_cond


def _solve(log_p, d, beta, log_q0, *, max_steps, min_steps, check_every, tol):
    """Iterate BA from ``log_q0``; return the final log q and the step count."""
    beta = jnp.asarray(beta, d.dtype)
    if min_steps == max_steps:  # fixed number of steps: lax.scan, reverse-differentiable
        beta_d = beta * d

        def scan_body(lq, _):
            return _ba_step(log_p, beta_d, lq)[0], None

        log_q, _ = lax.scan(scan_body, log_q0, None, length=max_steps)
        return log_q, jnp.asarray(max_steps, jnp.int32)

    # The loop itself is not differentiated: gradients flow through the final evaluation at
    # the fixed point (envelope theorem for R + beta * D; see ``blahut_arimoto``).
    log_p, log_q0, beta_d = lax.stop_gradient((log_p, log_q0, beta * d))

    p = jnp.exp(log_p)
    # Largest exponent kept for the stabilized kernel; only codes whose mass has underflowed
    # (q(m) < e^-clamp, i.e. dead) could exceed it.
    clamp = 0.75 * float(np.log(jnp.finfo(d.dtype).max))

    def linear_step(_, q):
        q, g = q
        s = g @ q  # Z(x) / Z_abs(x), close to 1 within a block
        c = g.T @ jnp.where(s > 0, p / jnp.where(s > 0, s, 1.0), 0.0)
        return q * c, g

    def cond(state):
        _, steps, gap = state
        return (steps < max_steps) & ((gap > tol) | (steps < min_steps))

    def body(state):
        log_q, steps, _ = state
        # One exact log-domain step: certificate of the current iterate, and the row shifts
        # log Z_abs(x) that stabilize the kernel for the cheap steps that follow.
        log_q_new, log_z, _ = _ba_step(log_p, beta_d, log_q)
        gap = jnp.max(jnp.where(jnp.isfinite(log_q), log_q_new - log_q, -jnp.inf))
        # check_every - 1 linear-domain steps (two mat-vecs each) with the row-rescaled
        # kernel G(x, m) = exp(-beta d(x, m) - log Z_abs(x)); rescaling rows of the kernel
        # leaves the BA update unchanged, and keeps Z(x) from under- or overflowing.
        g = jnp.exp(jnp.minimum(-beta_d - log_z[:, None], clamp))
        # (The block is cut short so that the step count never passes max_steps.)
        n_linear = jnp.clip(max_steps - steps - 1, 0, check_every - 1)
        q, _ = lax.fori_loop(0, n_linear, linear_step, (jnp.exp(log_q_new), g))
        return jnp.log(q), steps + 1 + n_linear, gap

    init = (log_q0, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, d.dtype))
    log_q, steps, _ = lax.while_loop(cond, body, init)
    return log_q, steps


def _evaluate(log_p, d, beta, log_q, steps, tol):
    """Rate, distortion, bounds and conditional at the prior ``log_q``."""
    beta = jnp.asarray(beta, d.dtype)
    log_q_new, log_z, log_cond = _ba_step(log_p, beta * d, log_q)
    p = jnp.exp(log_p)
    cond = jnp.exp(log_cond)
    pos = p > 0
    distortion = jnp.sum(jnp.where(pos[:, None], p[:, None] * cond * d, 0.0))
    rate_upper = -beta * distortion - jnp.sum(jnp.where(pos, p * log_z, 0.0))
    gap = jnp.max(jnp.where(jnp.isfinite(log_q), log_q_new - log_q, -jnp.inf))
    gap = jnp.maximum(gap, 0.0)
    rate_lower = rate_upper - gap
    # Mutual information of the returned conditional with its own output marginal.
    terms = jnp.where(
        pos[:, None] & (cond > 0), p[:, None] * cond * (log_cond - log_q_new[None, :]), 0.0
    )
    rate = jnp.maximum(jnp.sum(terms), 0.0)
    q_y = jnp.exp(log_q_new)
    values = (rate, distortion, rate_upper, rate_lower, gap)
    finite_out = jnp.all(jnp.stack([jnp.isfinite(v) for v in values]))
    finite_out = finite_out & jnp.all(jnp.isfinite(cond)) & jnp.all(jnp.isfinite(q_y))
    converged = (gap <= tol) & finite_out
    status = select((~finite_out, Status.diverged), (~converged, Status.not_converged))
    return RDSolution(
        beta=beta,
        rate=rate,
        distortion=distortion,
        rate_upper=rate_upper,
        rate_lower=rate_lower,
        gap=gap,
        q_y_given_x=cond,
        q_y=q_y,
        num_steps=steps,
        converged=converged,
        status=status,
    )


@eqx.filter_jit
def _blahut_arimoto_jit(p_x, d, beta, tol, max_steps, min_steps, check_every):
    finite, valid = _problem_status(p_x, d, beta)
    usable = finite & valid
    # An unusable problem is solved as a harmless one (uniform source, zero distortions, beta 1)
    # so that nothing loops or overflows; its result is flagged and NaN.
    n, m = d.shape
    p_x = jnp.where(usable, p_x, jnp.full_like(p_x, 1.0 / n))
    d = jnp.where(usable, d, jnp.zeros_like(d))
    beta = jnp.where(usable, jnp.asarray(beta, d.dtype), jnp.ones((), d.dtype))
    sol = _blahut_arimoto_core(p_x, d, beta, tol, max_steps, min_steps, check_every)
    status = worst(
        select((~finite, Status.nonfinite_input), (~valid, Status.degenerate_input)), sol.status
    )
    keep = ("not_converged",)
    return eqx.tree_at(
        lambda s: (s.rate, s.distortion, s.rate_upper, s.rate_lower, s.gap, s.converged, s.status),
        sol,
        (
            nan_unless_ok(sol.rate, status, keep),
            nan_unless_ok(sol.distortion, status, keep),
            nan_unless_ok(sol.rate_upper, status, keep),
            nan_unless_ok(sol.rate_lower, status, keep),
            nan_unless_ok(sol.gap, status, keep),
            sol.converged & usable,
            status,
        ),
    )


def _blahut_arimoto_core(p_x, d, beta, tol, max_steps, min_steps, check_every):
    log_p = _log_pmf(p_x)
    m = d.shape[1]
    log_q0 = jnp.full((m,), -jnp.log(jnp.asarray(m, d.dtype)), d.dtype)
    tol = jnp.asarray(tol, d.dtype)
    log_q, steps = _solve(
        log_p,
        d,
        beta,
        log_q0,
        max_steps=max_steps,
        min_steps=min_steps,
        check_every=check_every,
        tol=tol,
    )
    return _evaluate(log_p, d, beta, log_q, steps, tol)


def _check_steps(max_steps, min_steps, check_every):
    """Validated (max_steps, min_steps, check_every) as Python ints."""
    max_steps = check_int("max_steps", max_steps, minimum=1)
    min_steps = check_int("min_steps", min_steps, minimum=0)
    if min_steps > max_steps:
        raise ValueError(f"min_steps must be in [0, max_steps]; got {min_steps}, {max_steps}")
    check_every = check_int("check_every", check_every, minimum=1)
    return max_steps, min_steps, check_every


def _check_tol(tol, dtype):
    if tol is None:
        return _default_tol(dtype)
    return check_float("tol", tol, positive=True)


_DETAILS = {
    "not_converged": "raise max_steps or tol; the certified bounds rate_lower <= R(D) <= "
    "rate_upper still hold",
    "degenerate_input": "p_x is not a probability vector, distortion_matrix has negative "
    "entries or beta <= 0",
    "diverged": "non-finite values in the iteration",
}


def blahut_arimoto(
    p_x: Float[Array, " n"],
    distortion_matrix: Float[Array, "n m"],
    beta: ScalarLike,
    *,
    max_steps: int = 10_000,
    min_steps: int = 0,
    check_every: int = 50,
    tol: ScalarLike | None = None,
    throw: bool = True,
) -> RDSolution:
    r"""Rate–distortion point at slope $-\beta$ by Blahut–Arimoto, in the log domain.

    For a discrete source $p(x)$, $x = 1..n$, reproduction alphabet $m = 1..M$ and distortion
    $d(x, m) \ge 0$, iterate from the uniform $q(m) = 1/M$ (Blahut 1972, Thm. 6; Cover &
    Thomas, Elements of Information Theory, sec. 10.8):

    $$\log Z(x) = \operatorname{logsumexp}_m[\log q(m) - \beta d(x,m)],\quad
    \log q(m\mid x) = \log q(m) - \beta d(x,m) - \log Z(x),$$
    $$q(m) \leftarrow \textstyle\sum_x p(x)\, q(m\mid x).$$

    At the final prior $q$ it reports $D_\beta = \sum p(x) q(m|x) d(x,m)$, the upper bound
    $R_U = -\beta D_\beta - \sum_x p(x) \log Z(x)$, Blahut's lower bound
    $R_L = R_U - \max_m \log c(m)$ with
    $\log c(m) = \operatorname{logsumexp}_x[\log p(x) - \beta d(x,m) - \log Z(x)]$, so
    $R_L \le R(D_\beta) \le R_U$, and ``rate`` $= I(X;\hat X)$ of the returned conditional.
    Every exponent stays inside ``logsumexp``, so large $\beta$ neither underflows nor
    overflows. The iteration stops when the gap $\max_m \log c(m) \le$ ``tol`` (tested every
    ``check_every`` steps); BA converges from any full-support start, but only linearly, and
    slowly where the curve is nearly straight (small $\beta$ near $D_{max}$).

    Gradients: with ``min_steps == max_steps`` the loop is a ``lax.scan`` and reverse-mode AD
    unrolls it. Otherwise the loop is not differentiated; gradients flow through the final
    evaluation with $q$ held at its fixed point, which is exact for the Lagrangian
    ``rate_upper + beta * distortion`` $= -\sum_x p(x)\log Z(x)$ (envelope theorem) but only
    first order for ``rate`` and ``distortion`` individually.

    Args:
        p_x: (n,) source probabilities, non-negative, summing to 1 (within ``PMF_ATOL`` = 1e-4;
            renormalized exactly). A one-symbol source has rate 0.
        distortion_matrix: (n, m) finite, non-negative distortions $d(x, m)$.
        beta: slope magnitude $\beta > 0$ (a leaf, so it can be vmapped).
        max_steps: iteration cap (static).
        min_steps: minimum number of steps (static); ``min_steps == max_steps`` runs exactly
            ``max_steps`` steps under ``lax.scan`` (reverse-differentiable).
        check_every: steps between convergence tests (static).
        tol: stopping tolerance on the certified gap $R_U - R_L$, in nats, ``> 0``; default
            1e-5 for float32 and 1e-9 for float64.
        throw: if True, a status other than ``ok`` raises :class:`geomtax.StatusError` (one
            line; under ``jit`` an equinox runtime error with the same line); if False the
            result is returned with its ``status`` (and ``converged``), under ``jit`` too, so
            vmapped sweeps keep going.

    Returns:
        An :class:`RDSolution` (all rates in nats, distortion in the units of ``d``) with a
        ``status``: ``ok``; ``not_converged`` (values kept, still certified bounds);
        ``nonfinite_input``, ``degenerate_input`` or ``diverged`` (values NaN). float16 and
        bfloat16 inputs are computed (and returned) in float32.

    Raises:
        ValueError: on wrong shapes, a concrete ``p_x`` that is not a probability vector, a
            concrete negative distortion, ``beta <= 0`` or invalid options (all before any
            compilation).
        TypeError: on complex or non-numeric inputs, or options of the wrong type.
        geomtax.StatusError: with ``throw=True``, a status other than ``ok``.

    Examples:
        Fair coin, Hamming distortion; $R(D) = \ln 2 - H(D)$:

        >>> import jax.numpy as jnp
        >>> p = jnp.array([0.5, 0.5])
        >>> d = jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> sol = blahut_arimoto(p, d, 2.0)
        >>> round(float(sol.distortion), 4)  # D = 1 / (1 + e^beta)
        0.1192
        >>> round(float(sol.rate), 4)
        0.3278
    """
    p_x, distortion_matrix = _check_problem(p_x, distortion_matrix)
    _check_beta(beta)
    max_steps, min_steps, check_every = _check_steps(max_steps, min_steps, check_every)
    throw = check_bool("throw", throw)
    dtype = distortion_matrix.dtype
    tol = _check_tol(tol, dtype)
    sol = _blahut_arimoto_jit(
        p_x,
        distortion_matrix,
        jnp.asarray(beta, dtype),
        jnp.asarray(tol, dtype),
        max_steps,
        min_steps,
        check_every,
    )
    return finish(sol, throw=throw, function="blahut_arimoto", details=_DETAILS)


def _curve_checks(rate, distortion, gap):
    """Monotone (non-increasing) and convex flags of R(D), tolerant to the certified gaps."""
    order = jnp.argsort(distortion)
    r = rate[order]
    dd = distortion[order]
    slack = 2 * jnp.max(gap) + 1e-6 + 1e-4 * jnp.max(jnp.abs(r))
    monotone = jnp.all(jnp.diff(r) <= slack)  # False where a point is NaN
    if rate.shape[0] < 3:
        return monotone, jnp.asarray(True)
    # Convexity: every interior point lies on or below the chord of its neighbors.
    d0, d1, d2 = dd[:-2], dd[1:-1], dd[2:]
    r0, r1, r2 = r[:-2], r[1:-1], r[2:]
    span = d2 - d0
    w = jnp.where(span > 0, (d1 - d0) / jnp.where(span > 0, span, 1.0), 0.0)
    chord = (1 - w) * r0 + w * r2
    convex = jnp.all(r1 <= chord + slack)
    return monotone, convex


@eqx.filter_jit
def _rd_curve_jit(p_x, d, betas, tol, max_steps, min_steps, check_every, beta_batch_size):
    def one(b):
        return _curve_fields(_blahut_arimoto_jit(p_x, d, b, tol, max_steps, min_steps, check_every))

    if beta_batch_size is None:
        out = jax.vmap(one)(betas)
    else:
        out = lax.map(one, betas, batch_size=beta_batch_size)
    return _assemble_curve(betas, out)


def _rd_point(b, p_x, d, tol, *, max_steps, min_steps, check_every):
    """One beta of :func:`rd_curve` under ``mesh=`` (the sweep axis sharded over devices)."""
    return _curve_fields(_blahut_arimoto_jit(p_x, d, b, tol, max_steps, min_steps, check_every))


def _curve_fields(sol):
    """The per-beta fields an :class:`RDCurve` keeps (q(y|x) is dropped to save memory)."""
    return (
        sol.rate,
        sol.distortion,
        sol.rate_upper,
        sol.rate_lower,
        sol.gap,
        sol.num_steps,
        sol.converged,
        sol.status,
    )


def _assemble_curve(betas, fields) -> "RDCurve":
    rate, dist, ru, rl, gap, steps, conv, status = fields
    monotone, convex = _curve_checks(rate, dist, gap)
    return RDCurve(betas, rate, dist, ru, rl, gap, steps, conv, monotone, convex, status)


def rd_curve(
    p_x: Float[Array, " n"],
    distortion_matrix: Float[Array, "n m"],
    *,
    betas: Float[Array, " b"],
    max_steps: int = 10_000,
    min_steps: int = 0,
    check_every: int = 50,
    tol: ScalarLike | None = None,
    throw: bool = True,
    beta_batch_size: int | None = 8,
    mesh: Mesh | None = None,
) -> RDCurve:
    r"""The whole R(D) curve: :func:`blahut_arimoto` vmapped over ``betas`` in one compiled call.

    Each point solves the problem at slope $-\beta$ from the uniform start. The result also
    carries two structural checks over the points sorted by distortion, each tolerant to twice
    the largest certified gap: ``monotone`` (rate non-increasing in D) and ``convex`` (every
    interior point on or below the chord of its neighbors). A False flag means the solver did
    not converge well enough, never that R(D) itself is non-convex.

    Args:
        p_x: (n,) source probabilities.
        distortion_matrix: (n, m) non-negative distortions.
        betas: (b,) positive slope magnitudes; a geometric grid such as
            ``jnp.geomspace(0.1, 100, 64)`` covers the curve.
        max_steps: iteration cap per point (static).
        min_steps: minimum steps per point (static); see :func:`blahut_arimoto`.
        check_every: steps between convergence tests (static).
        tol: gap tolerance in nats, ``> 0`` (default 1e-5 float32, 1e-9 float64).
        throw: if True, any point whose status is not ``ok`` raises
            :class:`geomtax.StatusError` (one line, counting the points); if False the curve
            is returned with a ``status`` per point, under ``jit`` too.
        beta_batch_size: betas solved together (static). ``None`` vmaps all of them at once
            (best on accelerators; every point then runs until the slowest converges); an
            integer solves them ``lax.map``-style in groups of that size, each group stopping
            on its own (the default 8 was fastest on a 2-core CPU for n = m = 256).
        mesh: optional 1-D ``jax.sharding.Mesh``; the betas are then split across its devices
            (:func:`geomtax.parallel.shard_sweep`), with results identical to the
            single-device path. ``beta_batch_size`` is ignored in that case.

    Returns:
        An :class:`RDCurve` (rates in nats) with a ``status`` per point (as
        :func:`blahut_arimoto`: ``not_converged`` points keep their certified values).

    Raises:
        ValueError: as :func:`blahut_arimoto`, plus ``betas`` not 1-D or, when concrete, not
            all finite and positive.
        geomtax.StatusError: with ``throw=True``, a point whose status is not ``ok``.

    Examples:
        >>> import jax.numpy as jnp
        >>> p = jnp.array([0.5, 0.5]); d = jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> curve = rd_curve(p, d, betas=jnp.array([1.0, 2.0, 4.0]))
        >>> [round(float(r), 3) for r in curve.rate]
        [0.111, 0.328, 0.603]
        >>> bool(curve.monotone), bool(curve.convex)
        (True, True)
    """
    p_x, distortion_matrix = _check_problem(p_x, distortion_matrix)
    check_rank("betas", betas, 1)
    if np.shape(betas)[0] < 1:
        raise ValueError("betas must contain at least one value")
    if not is_traced(betas):
        b = np.asarray(betas, dtype=np.float64)
        if not np.all(np.isfinite(b)) or np.any(b <= 0):
            bad = b[~(np.isfinite(b) & (b > 0))]
            raise ValueError(f"betas must be finite and positive; got {bad[0]!r} among them")
    max_steps, min_steps, check_every = _check_steps(max_steps, min_steps, check_every)
    if beta_batch_size is not None:
        beta_batch_size = check_int("beta_batch_size", beta_batch_size, minimum=1)
    throw = check_bool("throw", throw)
    dtype = distortion_matrix.dtype
    tol = _check_tol(tol, dtype)
    betas = jnp.asarray(betas).astype(dtype)
    if mesh is not None:
        point = Partial(
            _rd_point, max_steps=max_steps, min_steps=min_steps, check_every=check_every
        )
        fields = shard_sweep(
            point, betas, mesh=mesh, shared=(p_x, distortion_matrix, jnp.asarray(tol, dtype))
        )
        curve = _assemble_curve(betas, fields)
    else:
        curve = _rd_curve_jit(
            p_x,
            distortion_matrix,
            betas,
            jnp.asarray(tol, dtype),
            max_steps,
            min_steps,
            check_every,
            beta_batch_size,
        )
    return finish(curve, throw=throw, function="rd_curve", details=_DETAILS)
