r"""Synthetic dynamical systems: closed-form signals and diffrax-integrated ODEs.

Every generator is a function of an explicit PRNG key and the number of sequences, and returns a
:class:`Trajectories` holding the observed signal, the full state where one exists, the time grid,
the sampled parameters and failure flags (docs/reference/systems.md#generators).

Randomness: the key is split once into one key per sequence (``jax.random.split(key, n)``), and
everything about sequence ``i`` (parameters, initial condition, re-draws) is derived from its own
key. Results therefore do not depend on ``batch_size``.

Failure rule (ODE systems): a trajectory whose integration does not succeed (diffrax result code
not ``successful`` or any non-finite saved value) is **re-drawn**: a fresh initial condition is
sampled from ``jax.random.fold_in(sequence_key, attempt)`` and integrated again, up to
``max_retries`` times, inside the jitted computation. ``failed[i]`` is True when the first draw of
row ``i`` failed to integrate (the row then holds a re-drawn trajectory, or NaN if every attempt
failed), ``num_redraws[i]`` counts the re-draws and ``valid[i]`` is False only if every attempt
failed; such rows are filled with NaN and are flagged, never silent.
"""

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import KeyArray

#: Built-in system names accepted by :func:`generate` (registered systems are added at run time).
BUILTIN_SYSTEMS = ("waveform", "damped_oscillator", "lorenz", "coupled_lorenz")


class Trajectories(eqx.Module):
    """A batch of generated sequences (arrays only, so a vmapped generator returns one batch).

    Attributes:
        observed: (n, seq_len) the observed signal (Lorenz: the x coordinate; coupled Lorenz: the
            oscillators' x series concatenated and truncated to ``seq_len``).
        states: (n, T, s) full state on ``state_ts`` where the system has one, else ``None``
            (``waveform``). ``T == seq_len`` except for ``coupled_lorenz``.
        ts: (seq_len,) time of each observed sample.
        params: sampled parameters and initial conditions, each with leading axis n.
        failed: (n,) bool, True where the first draw failed to integrate (then re-drawn).
        valid: (n,) bool, False only where every attempt failed (row filled with NaN).
        num_redraws: (n,) int32 number of re-drawn initial conditions.
        state_ts: (T,) time grid of ``states`` (or of the integration), ``None`` if no state.
        segment_ids: (seq_len,) int32 oscillator index of each observed sample (all 0 except for
            ``coupled_lorenz``); tokenizers can fit one range per segment.
    """

    observed: Float[Array, "n seq_len"]
    states: Float[Array, "n T s"] | None
    ts: Float[Array, " seq_len"]
    params: dict[str, Array]
    failed: Bool[Array, " n"]
    valid: Bool[Array, " n"]
    num_redraws: Int[Array, " n"]
    state_ts: Float[Array, " T"] | None
    segment_ids: Int[Array, " seq_len"]


# ----------------------------------------------------------------------------------------------
# validation helpers


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_range(name: str, value) -> tuple[float, float]:
    lo, hi = value
    if not float(lo) <= float(hi):
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    return float(lo), float(hi)


def _check_tolerances(rtol, atol) -> None:
    if not (float(rtol) > 0 and float(atol) > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")


def _check_key(key) -> None:
    if key is None:
        raise TypeError("a PRNG key is required: pass key=jax.random.key(seed)")


def _time_grid(t0: float, t1: float, num: int, endpoint: bool, dtype):
    return jnp.linspace(t0, t1, num, endpoint=endpoint, dtype=dtype)


def _uniform(key, lo_hi, dtype, shape=()):
    return jax.random.uniform(key, shape, dtype, minval=lo_hi[0], maxval=lo_hi[1])


def _map_sequences(fn, keys, batch_size):
    """``vmap`` ``fn`` over the per-sequence keys, optionally in ``lax.map`` batches."""
    if batch_size is None or batch_size >= keys.shape[0]:
        return jax.vmap(fn)(keys)
    return jax.lax.map(fn, keys, batch_size=batch_size)


# ----------------------------------------------------------------------------------------------
# ODE integration core


class IntegrationResult(eqx.Module):
    """Output of :func:`integrate` (arrays only).

    Attributes:
        ys: (n, T, s) states at the requested times (NaN where integration failed).
        success: (n,) bool, diffrax result ``successful`` and every saved value finite.
    """

    ys: Float[Array, "n T s"]
    success: Bool[Array, " n"]


def _solve_one(vector_field, y0, ts, args, rtol, atol, max_steps):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(sol.ys))
    ys = jnp.where(ok, sol.ys, jnp.nan)
    return ys, ok


def integrate(
    vector_field: Callable,
    y0: Float[Array, "n s"],
    ts: Float[Array, " T"],
    *,
    args: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    batch_size: int | None = None,
) -> IntegrationResult:
    r"""Integrate :math:`\dot y = f(t, y, \mathrm{args})` from many initial conditions.

    diffrax ``Tsit5`` (5th-order explicit Runge–Kutta) with a ``PIDController(rtol, atol)``
    adaptive step, the initial step chosen automatically, values saved at ``ts``
    (``SaveAt(ts=ts)``), ``throw=False``, vmapped over the rows of ``y0``. Deterministic: no key.

    Args:
        vector_field: ``f(t, y, args) -> dy/dt`` for one state ``y`` of shape (s,).
        y0: (n, s) initial conditions at ``ts[0]``.
        ts: (T,) increasing save times; integration runs from ``ts[0]`` to ``ts[-1]``.
        args: pytree passed to ``vector_field`` (shared by every row).
        rtol: relative tolerance of the step controller.
        atol: absolute tolerance of the step controller.
        max_steps: step cap per trajectory; hitting it marks the row as failed.
        batch_size: integrate at most this many rows at once (``lax.map``); ``None``: all.

    Returns:
        :class:`IntegrationResult` with ``ys`` (n, T, s) (NaN rows where ``success`` is False).

    Raises:
        ValueError: if ``y0`` is not rank 2, ``ts`` not rank 1 with >= 2 points, or the
            tolerances / ``max_steps`` are not positive.

    Examples:
        >>> import jax.numpy as jnp
        >>> decay = lambda t, y, args: -y
        >>> res = integrate(decay, jnp.ones((2, 1)), jnp.linspace(0.0, 1.0, 3))
        >>> res.ys[0, :, 0]
        Array([1.       , 0.6065..., 0.3678...], dtype=float32)
        >>> bool(res.success.all())
        True
    """
    if np.ndim(y0) != 2:
        raise ValueError(f"y0 must have shape (n, s), got shape {tuple(np.shape(y0))}")
    if np.ndim(ts) != 1 or np.shape(ts)[0] < 2:
        raise ValueError(f"ts must have shape (T,) with T >= 2, got shape {tuple(np.shape(ts))}")
    _check_tolerances(rtol, atol)
    _check_positive_int("max_steps", max_steps)
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    y0 = jnp.asarray(y0)
    dt = y0.dtype if jnp.issubdtype(y0.dtype, jnp.floating) else jnp.result_type(float)
    tol = (jnp.asarray(rtol, dt), jnp.asarray(atol, dt))
    return _integrate_jit(vector_field, y0, jnp.asarray(ts), args, *tol, max_steps, batch_size)


@eqx.filter_jit
def _integrate_jit(vector_field, y0, ts, args, rtol, atol, max_steps, batch_size):
    def one(y):
        return _solve_one(vector_field, y, ts, args, rtol, atol, max_steps)

    if batch_size is None or batch_size >= y0.shape[0]:
        ys, ok = jax.vmap(one)(y0)
    else:
        ys, ok = jax.lax.map(one, y0, batch_size=batch_size)
    return IntegrationResult(ys=ys, success=ok)


@eqx.filter_jit
def _simulate_jit(
    vector_field,
    sample_initial,
    key,
    ts,
    args,
    num_sequences,
    rtol,
    atol,
    max_steps,
    max_retries,
    batch_size,
    dtype,
):
    """Per-sequence: draw y0 from fold_in(seq_key, attempt), integrate, re-draw while failing."""
    seq_keys = jax.random.split(key, num_sequences)

    def one(seq_key):
        def draw(attempt):
            y0 = jnp.asarray(sample_initial(jax.random.fold_in(seq_key, attempt)), dtype)
            return y0

        y0_shape = jax.eval_shape(draw, 0)

        def cond(carry):
            attempt, _, _, ok = carry
            return (~ok) & (attempt <= max_retries)

        def body(carry):
            attempt, _, _, _ = carry
            y0 = draw(attempt)
            ys, ok = _solve_one(vector_field, y0, ts, args, rtol, atol, max_steps)
            return attempt + 1, y0, ys, ok

        init = (
            jnp.asarray(0, jnp.int32),
            jnp.zeros(y0_shape.shape, dtype),
            jnp.zeros((ts.shape[0], *y0_shape.shape), dtype),
            jnp.asarray(False),
        )
        attempts, y0, ys, ok = jax.lax.while_loop(cond, body, init)
        return y0, ys, ok, attempts - 1

    y0, ys, ok, redraws = _map_sequences(one, seq_keys, batch_size)
    return y0, ys, ok, redraws


def _simulate(
    vector_field,
    sample_initial,
    *,
    key,
    num_sequences,
    ts,
    args,
    rtol,
    atol,
    max_steps,
    max_retries,
    batch_size,
    dtype,
):
    _check_key(key)
    _check_tolerances(rtol, atol)
    _check_positive_int("max_steps", max_steps)
    _check_nonneg_int("max_retries", max_retries)
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    return _simulate_jit(
        vector_field,
        sample_initial,
        key,
        ts,
        args,
        num_sequences,
        jnp.asarray(rtol, dtype),
        jnp.asarray(atol, dtype),
        int(max_steps),
        int(max_retries),
        batch_size,
        jnp.dtype(dtype),
    )


# ----------------------------------------------------------------------------------------------
# closed-form systems


def waveform(
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    t1: float = 1.0,
    num_components_range: tuple[int, int] = (3, 5),
    frequency_range: tuple[float, float] = (0.5, 50.0),
    amplitude_range: tuple[float, float] = (0.1, 1.0),
    batch_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    r"""Superposed sines (docs/reference/systems.md#generators, ``waveform``).

    .. math:: v(t) = \sum_{j=1}^{J} a_j \sin(2\pi f_j t + \varphi_j),

    with :math:`J \sim U\{3,4,5\}`, :math:`f_j \sim U(0.5, 50)`, :math:`a_j \sim U(0.1, 1)`,
    :math:`\varphi_j \sim U(0, 2\pi)`, on ``t = linspace(0, t1, seq_len, endpoint=False)``.
    No state (``states is None``); nothing can fail.

    Args:
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (> 0).
        t1: end of the time grid (exclusive).
        num_components_range: inclusive integer range of J.
        frequency_range: range of f (Hz, cycles per unit time).
        amplitude_range: range of a.
        batch_size: generate at most this many sequences at once (``None``: all).
        dtype: floating dtype of the output.

    Returns:
        :class:`Trajectories`; ``params`` holds ``num_components`` (n,) and ``frequency``,
        ``amplitude``, ``phase`` (n, J_max), zero beyond each row's J.

    Raises:
        ValueError: on non-positive counts or lengths, or empty ranges.

    Examples:
        >>> import jax
        >>> w = waveform(key=jax.random.key(0), num_sequences=3, seq_len=64)
        >>> w.observed.shape, w.states is None, w.params["frequency"].shape
        ((3, 64), True, (3, 5))
    """
    _check_key(key)
    n = _check_positive_int("num_sequences", num_sequences)
    seq_len = _check_positive_int("seq_len", seq_len)
    jlo, jhi = num_components_range
    if not (1 <= int(jlo) <= int(jhi)):
        raise ValueError(
            f"num_components_range must be 1 <= low <= high, got {num_components_range}"
        )
    f_rng = _check_range("frequency_range", frequency_range)
    a_rng = _check_range("amplitude_range", amplitude_range)
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    return _waveform_jit(
        key, n, seq_len, float(t1), (int(jlo), int(jhi)), f_rng, a_rng, batch_size, jnp.dtype(dtype)
    )


@eqx.filter_jit
def _waveform_jit(key, n, seq_len, t1, j_rng, f_rng, a_rng, batch_size, dtype):
    ts = _time_grid(0.0, t1, seq_len, False, dtype)
    jmax = j_rng[1]

    def one(k):
        kj, kf, ka, kp = jax.random.split(k, 4)
        num = jax.random.randint(kj, (), j_rng[0], j_rng[1] + 1)
        on = jnp.arange(jmax) < num
        f = jnp.where(on, _uniform(kf, f_rng, dtype, (jmax,)), 0.0)
        a = jnp.where(on, _uniform(ka, a_rng, dtype, (jmax,)), 0.0)
        p = jnp.where(on, _uniform(kp, (0.0, 2 * math.pi), dtype, (jmax,)), 0.0)
        arg = 2 * jnp.pi * f[:, None] * ts[None, :] + p[:, None]
        v = jnp.sum(a[:, None] * jnp.sin(arg), axis=0)
        return v, {"num_components": num, "frequency": f, "amplitude": a, "phase": p}

    obs, params = _map_sequences(one, jax.random.split(key, n), batch_size)
    return Trajectories(
        observed=obs,
        states=None,
        ts=ts,
        params=params,
        failed=jnp.zeros((n,), bool),
        valid=jnp.ones((n,), bool),
        num_redraws=jnp.zeros((n,), jnp.int32),
        state_ts=None,
        segment_ids=jnp.zeros((seq_len,), jnp.int32),
    )


def _damped_vf(t, y, args):
    gamma, omega = args
    x, v = y[0], y[1]
    return jnp.stack([v, -2.0 * gamma * v - (gamma**2 + omega**2) * x])


def damped_oscillator(
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    t1: float = 4.0,
    amplitude_range: tuple[float, float] = (0.5, 2.0),
    gamma_range: tuple[float, float] = (0.2, 2.0),
    omega_range: tuple[float, float] = (2.0, 20.0),
    method: str = "closed_form",
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    batch_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    r"""Damped oscillator (docs/reference/systems.md#generators, ``damped_oscillator``).

    .. math:: x(t) = A e^{-\gamma t} \cos(\omega t + \varphi),

    the solution of :math:`\ddot x + 2\gamma \dot x + (\gamma^2 + \omega^2) x = 0`, with
    :math:`A \sim U(0.5, 2)`, :math:`\gamma \sim U(0.2, 2)`, :math:`\omega \sim U(2, 20)`,
    :math:`\varphi \sim U(0, 2\pi)` on ``t = linspace(0, t1, seq_len, endpoint=False)``. The
    state is :math:`(x, \dot x)`; its energy
    :math:`E = \tfrac12 \dot x^2 + \tfrac12(\gamma^2+\omega^2)x^2` obeys
    :math:`\dot E = -2\gamma \dot x^2 \le 0`. ``method="closed_form"`` (default, the reference)
    evaluates the formula; ``method="ode"`` integrates the ODE with diffrax from the same initial
    state (a row that fails to integrate is flagged ``failed``/``valid=False`` and NaN-filled, not
    re-drawn; with the default ranges and tolerances this does not happen).

    Args:
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (> 0).
        t1: end of the time grid (exclusive).
        amplitude_range: range of A.
        gamma_range: range of the damping rate gamma (1 / time).
        omega_range: range of the angular frequency omega (rad / time).
        method: ``"closed_form"`` or ``"ode"``.
        rtol: relative tolerance (``"ode"`` only).
        atol: absolute tolerance (``"ode"`` only).
        max_steps: step cap per trajectory (``"ode"`` only).
        batch_size: generate at most this many sequences at once (``None``: all).
        dtype: floating dtype of the output.

    Returns:
        :class:`Trajectories` with ``states`` (n, seq_len, 2) = (x, dx/dt) and ``params``
        ``amplitude``, ``gamma``, ``omega``, ``phase`` (each (n,)).

    Raises:
        ValueError: on non-positive counts or lengths, empty ranges or an unknown method.

    Examples:
        >>> import jax
        >>> d = damped_oscillator(key=jax.random.key(0), num_sequences=2, seq_len=8)
        >>> d.observed.shape, d.states.shape
        ((2, 8), (2, 8, 2))
        >>> bool(abs(d.observed[0, 0] - d.params["amplitude"][0]
        ...          * jax.numpy.cos(d.params["phase"][0])) < 1e-5)
        True
    """
    _check_key(key)
    n = _check_positive_int("num_sequences", num_sequences)
    seq_len = _check_positive_int("seq_len", seq_len)
    if method not in ("closed_form", "ode"):
        raise ValueError(f"unknown method {method!r}; expected one of ('closed_form', 'ode')")
    rngs = (
        _check_range("amplitude_range", amplitude_range),
        _check_range("gamma_range", gamma_range),
        _check_range("omega_range", omega_range),
    )
    _check_tolerances(rtol, atol)
    _check_positive_int("max_steps", max_steps)
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    return _damped_jit(
        key,
        n,
        seq_len,
        float(t1),
        rngs,
        method,
        jnp.asarray(rtol, dtype),
        jnp.asarray(atol, dtype),
        int(max_steps),
        batch_size,
        jnp.dtype(dtype),
    )


@eqx.filter_jit
def _damped_jit(key, n, seq_len, t1, rngs, method, rtol, atol, max_steps, batch_size, dtype):
    ts = _time_grid(0.0, t1, seq_len, False, dtype)
    a_rng, g_rng, w_rng = rngs

    def one(k):
        ka, kg, kw, kp = jax.random.split(k, 4)
        amp = _uniform(ka, a_rng, dtype)
        gamma = _uniform(kg, g_rng, dtype)
        omega = _uniform(kw, w_rng, dtype)
        phase = _uniform(kp, (0.0, 2 * math.pi), dtype)
        params = {"amplitude": amp, "gamma": gamma, "omega": omega, "phase": phase}
        if method == "closed_form":
            env = amp * jnp.exp(-gamma * ts)
            c, s = jnp.cos(omega * ts + phase), jnp.sin(omega * ts + phase)
            states = jnp.stack([env * c, -env * (gamma * c + omega * s)], axis=-1)
            ok = jnp.all(jnp.isfinite(states))
        else:
            y0 = jnp.stack(
                [amp * jnp.cos(phase), -amp * (gamma * jnp.cos(phase) + omega * jnp.sin(phase))]
            )
            states, ok = _solve_one(_damped_vf, y0, ts, (gamma, omega), rtol, atol, max_steps)
        return states, params, ok

    states, params, ok = _map_sequences(one, jax.random.split(key, n), batch_size)
    return Trajectories(
        observed=states[..., 0],
        states=states,
        ts=ts,
        params=params,
        failed=~ok,
        valid=ok,
        num_redraws=jnp.zeros((n,), jnp.int32),
        state_ts=ts,
        segment_ids=jnp.zeros((seq_len,), jnp.int32),
    )


# ----------------------------------------------------------------------------------------------
# Lorenz and ring-coupled Lorenz


def _lorenz_vf(t, y, args):
    sigma, rho, beta = args
    x, yy, z = y[0], y[1], y[2]
    return jnp.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z])


def _coupled_lorenz_vf(t, y, args):
    sigma, rho, beta, eps = args
    s = y.reshape(-1, 3)
    x, yy, z = s[:, 0], s[:, 1], s[:, 2]
    lap = jnp.roll(x, -1) - 2.0 * x + jnp.roll(x, 1)
    dx = sigma * (yy - x) + eps * lap
    dy = x * (rho - z) - yy
    dz = x * yy - beta * z
    return jnp.stack([dx, dy, dz], axis=-1).reshape(-1)


class _LorenzInitial(eqx.Module):
    """x0, y0 ~ U(xy_range), z0 ~ U(z_range) for each of ``num_oscillators`` oscillators."""

    num_oscillators: int = eqx.field(static=True)
    xy_range: Float[Array, " 2"]
    z_range: Float[Array, " 2"]

    def __call__(self, key):
        kxy, kz = jax.random.split(key)
        m = self.num_oscillators
        dtype = self.xy_range.dtype
        xy = jax.random.uniform(
            kxy, (m, 2), dtype, minval=self.xy_range[0], maxval=self.xy_range[1]
        )
        z = jax.random.uniform(kz, (m, 1), dtype, minval=self.z_range[0], maxval=self.z_range[1])
        return jnp.concatenate([xy, z], axis=-1).reshape(-1)


def lorenz(
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    t1: float = 25.0,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    xy_range: tuple[float, float] = (-15.0, 15.0),
    z_range: tuple[float, float] = (10.0, 40.0),
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    max_retries: int = 8,
    batch_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    r"""Lorenz system, x coordinate observed (docs/reference/systems.md#generators, ``lorenz_x``).

    .. math::
        \dot x = \sigma (y - x), \quad \dot y = x(\rho - z) - y, \quad \dot z = x y - \beta z,

    with :math:`\sigma = 10, \rho = 28, \beta = 8/3`, :math:`x_0, y_0 \sim U(-15, 15)`,
    :math:`z_0 \sim U(10, 40)`, no burn-in, saved on ``linspace(0, t1, seq_len)`` (endpoint
    included; :math:`\Delta t = 25/511` by default). Integrated with diffrax Tsit5 + PID controller
    (see :func:`integrate`); failed rows are re-drawn (module docstring). The flow is chaotic
    (largest Lyapunov exponent about 0.906 per unit time), so trajectories agree pointwise with
    other solvers only over short horizons.

    Args:
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (>= 2).
        t1: end of the time grid (inclusive).
        sigma: Prandtl number.
        rho: Rayleigh number.
        beta: geometric factor.
        xy_range: range of x0 and y0.
        z_range: range of z0.
        rtol: relative tolerance of the step controller.
        atol: absolute tolerance of the step controller.
        max_steps: step cap per trajectory.
        max_retries: re-draws allowed per failing row.
        batch_size: integrate at most this many sequences at once (``None``: all).
        dtype: floating dtype of the output.

    Returns:
        :class:`Trajectories` with ``observed`` = x (n, seq_len), ``states`` (n, seq_len, 3) and
        ``params`` ``x0``, ``y0``, ``z0`` (n,) (the initial condition actually used).

    Raises:
        ValueError: on non-positive counts, lengths, tolerances or empty ranges.

    Examples:
        >>> import jax
        >>> tr = lorenz(key=jax.random.key(0), num_sequences=2, seq_len=16, t1=1.0)
        >>> tr.observed.shape, tr.states.shape, bool(tr.valid.all())
        ((2, 16), (2, 16, 3), True)
        >>> bool((tr.observed[:, 0] == tr.params["x0"]).all())
        True
    """
    return _lorenz_family(
        key=key,
        num_sequences=num_sequences,
        seq_len=seq_len,
        num_oscillators=1,
        eps=0.0,
        t1=t1,
        sigma=sigma,
        rho=rho,
        beta=beta,
        xy_range=xy_range,
        z_range=z_range,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        max_retries=max_retries,
        batch_size=batch_size,
        dtype=dtype,
        single=True,
    )


def coupled_lorenz(
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    num_oscillators: int = 2,
    eps: float = 0.1,
    t1: float = 25.0,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    xy_range: tuple[float, float] = (-15.0, 15.0),
    z_range: tuple[float, float] = (10.0, 40.0),
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    max_retries: int = 8,
    batch_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    r"""Ring of diffusively coupled Lorenz oscillators (``coupled_lorenz``).

    Definition: docs/reference/systems.md#generators.

    .. math::
        \dot x_i = \sigma (y_i - x_i) + \varepsilon (x_{i+1} - 2 x_i + x_{i-1}), \quad
        \dot y_i = x_i(\rho - z_i) - y_i, \quad \dot z_i = x_i y_i - \beta z_i,

    indices modulo N (for N = 1 the coupling vanishes; for N = 2 each neighbour counts twice).
    Each oscillator's initial condition uses the single-system ranges. Following the reference,
    the system is integrated on ``linspace(0, t1, seq_len // N + 1)`` and the N oscillators' x
    series are **concatenated** (not interleaved) and truncated to ``seq_len``; ``ts`` gives each
    observed sample's own time, ``segment_ids`` its oscillator (bin each with its own range by
    fitting :func:`uniform_bins` with ``segment_ids``). The synchronised manifold
    :math:`x_i = x_j, y_i = y_j, z_i = z_j` is invariant.

    Args:
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: observed samples per sequence (> 0).
        num_oscillators: N, in 1..3.
        eps: coupling strength epsilon.
        t1: end of the time grid (inclusive).
        sigma: Prandtl number.
        rho: Rayleigh number.
        beta: geometric factor.
        xy_range: range of each x0 and y0.
        z_range: range of each z0.
        rtol: relative tolerance of the step controller.
        atol: absolute tolerance of the step controller.
        max_steps: step cap per trajectory.
        max_retries: re-draws allowed per failing row.
        batch_size: integrate at most this many sequences at once (``None``: all).
        dtype: floating dtype of the output.

    Returns:
        :class:`Trajectories` with ``states`` (n, seq_len // N + 1, 3N) ordered
        (x_1, y_1, z_1, x_2, ...), ``state_ts`` their grid, and ``params`` ``x0``, ``y0``, ``z0``
        of shape (n, N).

    Raises:
        ValueError: on N outside 1..3, non-positive counts, lengths, tolerances or empty ranges.

    Examples:
        >>> import jax
        >>> c = coupled_lorenz(key=jax.random.key(0), num_sequences=2, seq_len=12,
        ...                    num_oscillators=3, t1=1.0)
        >>> c.observed.shape, c.states.shape, c.segment_ids.tolist()
        ((2, 12), (2, 5, 9), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    """
    return _lorenz_family(
        key=key,
        num_sequences=num_sequences,
        seq_len=seq_len,
        num_oscillators=num_oscillators,
        eps=eps,
        t1=t1,
        sigma=sigma,
        rho=rho,
        beta=beta,
        xy_range=xy_range,
        z_range=z_range,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        max_retries=max_retries,
        batch_size=batch_size,
        dtype=dtype,
        single=False,
    )


def _lorenz_family(
    *,
    key,
    num_sequences,
    seq_len,
    num_oscillators,
    eps,
    t1,
    sigma,
    rho,
    beta,
    xy_range,
    z_range,
    rtol,
    atol,
    max_steps,
    max_retries,
    batch_size,
    dtype,
    single: bool,
) -> Trajectories:
    _check_key(key)
    n = _check_positive_int("num_sequences", num_sequences)
    seq_len = _check_positive_int("seq_len", seq_len)
    m = _check_positive_int("num_oscillators", num_oscillators)
    if m > 3:
        raise ValueError(f"num_oscillators must be in 1..3, got {num_oscillators}")
    xy = _check_range("xy_range", xy_range)
    zr = _check_range("z_range", z_range)
    seg = seq_len if single else seq_len // m + 1
    if seg < 2:
        raise ValueError(f"seq_len={seq_len} too short for {m} oscillators (need >= 2 samples)")
    ts_grid = _time_grid(0.0, float(t1), seg, True, dtype)
    if not single:
        vf, args = _coupled_lorenz_vf, (sigma, rho, beta, eps)
    else:
        vf, args = _lorenz_vf, (sigma, rho, beta)
    args = tuple(jnp.asarray(a, dtype) for a in args)
    y0, ys, ok, redraws = _simulate(
        vf,
        _LorenzInitial(m, jnp.asarray(xy, dtype), jnp.asarray(zr, dtype)),
        key=key,
        num_sequences=n,
        ts=ts_grid,
        args=args,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        max_retries=max_retries,
        batch_size=batch_size,
        dtype=dtype,
    )
    y0 = y0.reshape(n, m, 3)
    if single:
        params = {"x0": y0[:, 0, 0], "y0": y0[:, 0, 1], "z0": y0[:, 0, 2]}
        observed, ts, seg_ids = ys[..., 0], ts_grid, jnp.zeros((seq_len,), jnp.int32)
    else:
        params = {"x0": y0[..., 0], "y0": y0[..., 1], "z0": y0[..., 2]}
        xs = ys[..., 0::3]  # (n, seg, m): x of each oscillator
        observed = jnp.swapaxes(xs, 1, 2).reshape(n, m * seg)[:, :seq_len]
        ts = jnp.tile(ts_grid, m)[:seq_len]
        seg_ids = jnp.repeat(jnp.arange(m, dtype=jnp.int32), seg)[:seq_len]
    return Trajectories(
        observed=observed,
        states=ys,
        ts=ts,
        params=params,
        failed=(redraws > 0) | ~ok,
        valid=ok,
        num_redraws=redraws,
        state_ts=ts_grid,
        segment_ids=seg_ids,
    )


# ----------------------------------------------------------------------------------------------
# user-defined systems


class System(eqx.Module):
    r"""A user-defined ODE system registered with :func:`register_system` (configuration only).

    Attributes:
        name: registry name.
        vector_field: ``f(t, y, args) -> dy/dt`` for one state ``y`` of shape (state_dim,).
        state_dim: s.
        observe: ``observe(states) -> observed`` mapping one trajectory (T, s) to (T,).
        sample_initial: ``sample_initial(key) -> y0`` of shape (s,).
        t0: start of the time grid.
        t1: end of the time grid.
        endpoint: whether ``t1`` is the last sample.
        args: default ``args`` passed to ``vector_field`` (a tuple of floats, or ``None``).
    """

    name: str = eqx.field(static=True)
    vector_field: Callable = eqx.field(static=True)
    state_dim: int = eqx.field(static=True)
    observe: Callable = eqx.field(static=True)
    sample_initial: Callable = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    endpoint: bool = eqx.field(static=True)
    args: Any = eqx.field(static=True)


_REGISTRY: dict[str, System] = {}


def register_system(
    name: str,
    vector_field: Callable,
    *,
    state_dim: int,
    observe: Callable | int = 0,
    sample_initial: Callable,
    t1: float,
    t0: float = 0.0,
    endpoint: bool = True,
    args: tuple | None = None,
    overwrite: bool = False,
) -> System:
    r"""Add a user-defined vector field to the generator pipeline of :func:`generate`.

    After registration, ``generate(name, key=..., num_sequences=n, seq_len=L)`` samples n initial
    conditions with ``sample_initial``, integrates :math:`\dot y = f(t, y, \mathrm{args})` with
    diffrax exactly as the built-in Lorenz generator does (Tsit5 + PID, ``SaveAt(ts)``,
    ``throw=False``, failed rows re-drawn up to ``max_retries`` times) on
    ``linspace(t0, t1, L, endpoint=endpoint)``, and applies ``observe`` to each trajectory.

    Args:
        name: new system name (must not shadow a built-in).
        vector_field: ``f(t, y, args) -> dy/dt`` with ``y`` of shape (state_dim,).
        state_dim: dimension s of the state (> 0).
        observe: state index to observe, or ``observe(states (T, s)) -> (T,)``.
        sample_initial: ``sample_initial(key) -> y0`` of shape (state_dim,).
        t1: end of the time grid.
        t0: start of the time grid.
        endpoint: include ``t1`` as the last sample.
        args: default ``args`` for ``vector_field`` (tuple of numbers; ``generate(...,
            args=...)`` overrides them per call).
        overwrite: allow replacing an existing registration of ``name``.

    Returns:
        The registered :class:`System`.

    Raises:
        ValueError: on an empty or built-in name, a duplicate without ``overwrite``, a
            non-positive ``state_dim``, ``t1 <= t0`` or an observe index out of range.
        TypeError: if ``vector_field`` or ``sample_initial`` is not callable.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> def decay(t, y, args):
        ...     return -args[0] * y
        >>> _ = register_system("decay_doc", decay, state_dim=1, t1=1.0, args=(2.0,),
        ...                     sample_initial=lambda k: jax.random.uniform(k, (1,)) + 1.0,
        ...                     overwrite=True)
        >>> tr = generate("decay_doc", key=jax.random.key(0), num_sequences=2, seq_len=5)
        >>> tr.observed.shape
        (2, 5)
        >>> bool(jnp.allclose(tr.observed[:, -1], tr.observed[:, 0] * jnp.exp(-2.0), rtol=1e-4))
        True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in BUILTIN_SYSTEMS:
        raise ValueError(f"{name!r} is a built-in system and cannot be re-registered")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"system {name!r} is already registered; pass overwrite=True")
    if not callable(vector_field) or not callable(sample_initial):
        raise TypeError("vector_field and sample_initial must be callables")
    s = _check_positive_int("state_dim", state_dim)
    if not float(t1) > float(t0):
        raise ValueError(f"need t1 > t0, got t0={t0}, t1={t1}")
    if not callable(observe):
        idx = _check_nonneg_int("observe", observe)
        if idx >= s:
            raise ValueError(f"observe index {idx} out of range for state_dim={s}")
        observe = _ObserveIndex(idx)
    system = System(
        name=name,
        vector_field=vector_field,
        state_dim=s,
        observe=observe,
        sample_initial=sample_initial,
        t0=float(t0),
        t1=float(t1),
        endpoint=bool(endpoint),
        args=None if args is None else tuple(args),
    )
    _REGISTRY[name] = system
    return system


class _ObserveIndex(eqx.Module):
    index: int = eqx.field(static=True)

    def __call__(self, states):
        return states[:, self.index]


def registered_systems() -> tuple[str, ...]:
    """Names accepted by :func:`generate`: the built-ins, then user registrations in order.

    Examples:
        >>> registered_systems()[:4]
        ('waveform', 'damped_oscillator', 'lorenz', 'coupled_lorenz')
    """
    return (*BUILTIN_SYSTEMS, *_REGISTRY)


def simulate(
    system: System,
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    args: tuple | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    max_retries: int = 8,
    batch_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    """Generate trajectories of a registered :class:`System` (the pipeline behind ``generate``).

    Args:
        system: a :class:`System` from :func:`register_system`.
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (>= 2).
        args: ``vector_field`` args for this call (default: the system's).
        rtol: relative tolerance of the step controller.
        atol: absolute tolerance of the step controller.
        max_steps: step cap per trajectory.
        max_retries: re-draws allowed per failing row.
        batch_size: integrate at most this many sequences at once (``None``: all).
        dtype: floating dtype of the output.

    Returns:
        :class:`Trajectories` with ``states`` (n, seq_len, s) and ``params["y0"]`` (n, s).

    Raises:
        ValueError: on non-positive counts or lengths, or ``sample_initial`` returning a shape
            other than (state_dim,).

    Examples:
        >>> import jax
        >>> sys_ = register_system("drift_doc", lambda t, y, a: jnp.ones_like(y), state_dim=2,
        ...                        t1=1.0, sample_initial=lambda k: jnp.zeros(2), overwrite=True)
        >>> simulate(sys_, key=jax.random.key(0), num_sequences=1, seq_len=3).observed.round(4)
        Array([[0. , 0.5, 1. ]], dtype=float32)
    """
    if not isinstance(system, System):
        raise TypeError(f"system must be a System from register_system, got {type(system)}")
    n = _check_positive_int("num_sequences", num_sequences)
    seq_len = _check_positive_int("seq_len", seq_len)
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2 for an ODE system, got {seq_len}")
    shape = jax.eval_shape(system.sample_initial, jax.random.key(0)).shape
    if shape != (system.state_dim,):
        raise ValueError(
            f"sample_initial of {system.name!r} returns shape {shape}, "
            f"expected ({system.state_dim},)"
        )
    ts = _time_grid(system.t0, system.t1, seq_len, system.endpoint, dtype)
    use_args = system.args if args is None else tuple(args)
    if use_args is not None:
        use_args = tuple(jnp.asarray(a, dtype) for a in use_args)
    y0, ys, ok, redraws = _simulate(
        system.vector_field,
        system.sample_initial,
        key=key,
        num_sequences=n,
        ts=ts,
        args=use_args,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        max_retries=max_retries,
        batch_size=batch_size,
        dtype=dtype,
    )
    observed = jax.vmap(system.observe)(ys)
    if observed.shape != (n, seq_len):
        raise ValueError(f"observe must map (T, s) to (T,); got observed shape {observed.shape}")
    return Trajectories(
        observed=observed,
        states=ys,
        ts=ts,
        params={"y0": y0},
        failed=(redraws > 0) | ~ok,
        valid=ok,
        num_redraws=redraws,
        state_ts=ts,
        segment_ids=jnp.zeros((seq_len,), jnp.int32),
    )


_GENERATORS = {
    "waveform": waveform,
    "damped_oscillator": damped_oscillator,
    "lorenz": lorenz,
    "coupled_lorenz": coupled_lorenz,
}


def generate(
    system: str,
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    **options: Any,
) -> Trajectories:
    """Generate ``num_sequences`` sequences of a named system (built-in or registered).

    Dispatches to :func:`waveform`, :func:`damped_oscillator`, :func:`lorenz`,
    :func:`coupled_lorenz`, or :func:`simulate` for a system added with :func:`register_system`;
    ``options`` are that function's keyword options (e.g. ``num_oscillators=3``, ``rtol=1e-8``).

    Args:
        system: system name (see :func:`registered_systems`).
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (> 0).
        **options: keyword options of the underlying generator.

    Returns:
        :class:`Trajectories`.

    Raises:
        ValueError: on an unknown system name, non-positive counts or lengths.
        TypeError: on an option the generator does not take.

    Examples:
        >>> import jax
        >>> generate("waveform", key=jax.random.key(0), num_sequences=4, seq_len=32).observed.shape
        (4, 32)
    """
    if system in _GENERATORS:
        fn = _GENERATORS[system]
        return fn(key=key, num_sequences=num_sequences, seq_len=seq_len, **options)
    if system in _REGISTRY:
        return simulate(
            _REGISTRY[system], key=key, num_sequences=num_sequences, seq_len=seq_len, **options
        )
    raise ValueError(f"unknown system {system!r}; expected one of {registered_systems()}")
