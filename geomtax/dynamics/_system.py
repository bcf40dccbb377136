r"""One model of a synthetic system: the :class:`System` description and :func:`simulate`.

Every system, built-in (``waveform``, ``damped_oscillator``, ``lorenz``, ``coupled_lorenz``) or
registered by a user, is a :class:`System`: a sampler of one sequence's random draw, a vector
field (integrated with diffrax) and/or a closed-form solution, an observation map and default
parameter values. :func:`simulate` runs any of them through one jitted pipeline
(docs/reference/systems.md#generators).

Randomness: the key is split once into one key per sequence (``jax.random.split(key, n)``), and
everything about sequence ``i`` (parameters, initial condition, re-draws) is derived from its own
key. Results therefore do not depend on ``chunk_size``.

Parameters: numeric parameters (``sigma``, ``rho``, ranges such as ``xy_range``, a user system's
``args``) are converted to arrays and **traced**, so a new value does not recompile; only the
parameters a system lists in ``static_params`` (they fix array shapes, e.g. ``num_oscillators``)
are compile-time constants.

Failure rule (ODE systems with ``redraw=True``): a trajectory whose integration does not succeed
(diffrax result code not ``successful`` or any non-finite saved value) is **re-drawn**: a fresh
draw is sampled from ``jax.random.fold_in(sequence_key, attempt)`` and integrated again, up to
``max_retries`` times, inside the jitted computation. ``failed[i]`` is True when the first draw
of row ``i`` failed (the row then holds a re-drawn trajectory, or NaN if every attempt failed),
``num_redraws[i]`` counts the re-draws and ``valid[i]`` is False only if every attempt failed;
such rows are filled with NaN and are flagged, never silent. Systems with ``redraw=False`` pass
the sequence key to ``sample`` unchanged and flag a failing row without re-drawing it.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import KeyArray
from .._errors import check_choice, is_traced
from ._integrate import (
    _check_chunk_size,
    _check_key,
    _check_nonneg_int,
    _check_positive_int,
    _check_tolerances,
    _chunk_size_renamed,
    _map_rows,
    _solve_one,
    _time_grid,
)

#: Default solver options of :func:`simulate` (diffrax Tsit5 + PID, re-draws of failing rows).
SOLVER_DEFAULTS = {"rtol": 1e-6, "atol": 1e-6, "max_steps": 16_384, "max_retries": 8}


class Trajectories(eqx.Module):
    """A batch of generated sequences (arrays only, so a vmapped generator returns one batch).

    Attributes:
        observed: (n, seq_len) the observed signal (Lorenz: the x coordinate; coupled Lorenz: the
            oscillators' x series concatenated and truncated to ``seq_len``).
        states: (n, T, s) full state on ``state_ts`` where the system has one, else ``None``
            (``waveform``). ``T == seq_len`` except for ``coupled_lorenz``.
        ts: (seq_len,) time of each observed sample.
        params: the per-sequence draw (sampled parameters and initial conditions), each with
            leading axis n.
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


def _freeze(value):
    """A hashable copy of a default (System fields are static): arrays become Python values."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray | np.generic | jax.Array) and not is_traced(value):
        return _freeze(np.asarray(value).tolist())
    return value


def _freeze_params(params) -> tuple[tuple[str, Any], ...]:
    return tuple((str(k), _freeze(v)) for k, v in dict(params or {}).items())


class System(eqx.Module):
    r"""One synthetic system (configuration only; every field is static).

    Hooks (all pure JAX functions of one sequence unless stated):

    * ``sample(key, params) -> (y0, draw)``: one sequence's initial state ``y0`` (``None`` for a
      closed-form system without state) and its ``draw``, a dict of arrays reported as
      :attr:`Trajectories.params` (floating leaves are cast to the output dtype).
    * ``vector_field(t, y, args) -> dy/dt``: the ODE, integrated by diffrax; ``args`` is a dict
      of the traced parameters merged with the sequence's ``draw``.
    * ``solution(ts, y0, draw, params) -> states``: a closed form, (T, s) on the grid ``ts``.
    * ``observe(states, ts, seq_len, params) -> (observed, obs_ts, segment_ids)``: on the whole
      batch, states (n, T, s) to observed (n, seq_len), with each sample's time and segment
      (``None``: the first state coordinate, segment 0).
    * ``num_points(seq_len, params) -> T``: length of the state grid (``None``: ``seq_len``).
    * ``check(params) -> params``: host-side validation and normalisation of the parameters
      before anything is traced (``None``: no checks); raises ``ValueError``.

    A system needs a ``vector_field``, a ``solution`` or both (then :func:`simulate` takes
    ``method="closed_form"`` (the default) or ``"ode"``).

    Attributes:
        name: registry name (one spelling, shared by the API and the command line).
        sample: the sampler described above.
        vector_field: the ODE right-hand side, or ``None``.
        solution: the closed form, or ``None``.
        observe: the observation map, or ``None``.
        num_points: the state-grid length, or ``None``.
        check: the parameter check, or ``None``.
        params: default parameter values, as ``(name, value)`` pairs (a dict is accepted and
            frozen); numbers and ranges are traced, names in ``static_params`` are not.
        static_params: parameters that fix shapes (compile-time constants).
        t0: start of the default time grid.
        t1: end of the default time grid (``simulate(t1=...)`` overrides it).
        endpoint: whether ``t1`` is the last sample.
        redraw: re-draw failing ODE rows (see the module docstring).
        has_state: report ``states`` / ``state_ts`` (``False``: only the observed signal).
        state_dim: s when fixed (``sample`` is checked against it), else ``None``.
        reference_seq_len: number of samples for which ``[t0, t1]`` is the reference span.
        description: one line for listings and the command-line help.
    """

    name: str = eqx.field(static=True)
    sample: Callable = eqx.field(static=True)
    vector_field: Callable | None = eqx.field(static=True, default=None)
    solution: Callable | None = eqx.field(static=True, default=None)
    observe: Callable | None = eqx.field(static=True, default=None)
    num_points: Callable | None = eqx.field(static=True, default=None)
    check: Callable | None = eqx.field(static=True, default=None)
    params: tuple[tuple[str, Any], ...] = eqx.field(
        static=True, default=(), converter=_freeze_params
    )
    static_params: tuple[str, ...] = eqx.field(static=True, default=(), converter=tuple)
    t0: float = eqx.field(static=True, default=0.0, converter=float)
    t1: float = eqx.field(static=True, default=1.0, converter=float)
    endpoint: bool = eqx.field(static=True, default=True, converter=bool)
    redraw: bool = eqx.field(static=True, default=True, converter=bool)
    has_state: bool = eqx.field(static=True, default=True, converter=bool)
    state_dim: int | None = eqx.field(static=True, default=None)
    reference_seq_len: int = eqx.field(static=True, default=512)
    description: str = eqx.field(static=True, default="")

    def __check_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not callable(self.sample):
            raise TypeError(f"sample of {self.name!r} must be callable")
        if self.vector_field is None and self.solution is None:
            raise ValueError(f"system {self.name!r} needs a vector_field or a solution")
        unknown = set(self.static_params) - set(self.defaults)
        if unknown:
            raise ValueError(f"static_params {sorted(unknown)} are not parameters of {self.name!r}")

    @property
    def defaults(self) -> dict[str, Any]:
        """Default parameter values as a dict."""
        return dict(self.params)

    @property
    def methods(self) -> tuple[str, ...]:
        """Ways to compute a trajectory: ``"closed_form"`` and/or ``"ode"``."""
        return (("closed_form",) if self.solution is not None else ()) + (
            ("ode",) if self.vector_field is not None else ()
        )

    def reference_t1(self, seq_len: int) -> float:
        """End time that keeps the reference sampling step with ``seq_len`` samples.

        The reference grid has ``reference_seq_len`` samples on ``[t0, t1]`` (``t1`` included
        when ``endpoint``); a shorter sequence at the same step ends at
        ``t0 + (t1 - t0) (seq_len - 1) / (reference_seq_len - 1)`` (``seq_len / reference_seq_len``
        without the endpoint). Pass it as ``simulate(..., t1=...)``.

        Examples:
            >>> from geomtax.dynamics import get_system
            >>> get_system("lorenz").reference_t1(512), get_system("waveform").reference_t1(256)
            (25.0, 0.5)
        """
        seq_len = _check_positive_int("seq_len", seq_len)
        ref = self.reference_seq_len
        frac = (seq_len - 1) / (ref - 1) if self.endpoint else seq_len / ref
        return self.t0 + (self.t1 - self.t0) * frac


def _first_coordinate(states, ts, seq_len, params):
    return states[..., 0], ts, jnp.zeros((seq_len,), jnp.int32)


def _as_traced(value, dtype):
    """A number or a flat (low, high) pair -> one array; any other pytree -> arrays per leaf."""
    if value is None:
        return None
    try:
        return jnp.asarray(value, dtype)
    except (TypeError, ValueError):
        return jax.tree.map(lambda a: jnp.asarray(a, dtype), value)


def _cast_floating(tree, dtype):
    def cast(a):
        a = jnp.asarray(a)
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree.map(cast, tree)


def _resolve_solver(system: System, options: dict) -> dict:
    """Defaults for the solver options; reject those the system cannot use."""
    given = {k: v for k, v in options.items() if v is not None}
    if system.vector_field is None and given:
        name = next(iter(given))
        raise TypeError(f"{system.name!r} is not integrated; it takes no option {name!r}")
    elif not system.redraw and "max_retries" in given:
        raise TypeError(f"{system.name!r} does not re-draw failing rows; it takes no max_retries")
    out = {**SOLVER_DEFAULTS, **given}
    _check_tolerances(out["rtol"], out["atol"])
    out["max_steps"] = _check_positive_int("max_steps", out["max_steps"])
    out["max_retries"] = _check_nonneg_int("max_retries", out["max_retries"])
    return out


@_chunk_size_renamed
def simulate(
    system: System,
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    t1: float | None = None,
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
    max_retries: int | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
    **params: Any,
) -> Trajectories:
    """Generate ``num_sequences`` trajectories of any :class:`System` (the one pipeline).

    For each sequence: ``sample`` its draw from its own key, compute the states on
    ``linspace(t0, t1, T, endpoint=endpoint)`` (diffrax ``Tsit5`` + ``PIDController(rtol, atol)``
    exactly as :func:`integrate`, or the closed form), re-draw failing rows (module docstring),
    then ``observe`` the batch. Everything after the host-side checks is one jitted computation;
    parameters are traced, so sweeping ``rho`` or ``xy_range`` does not recompile.

    Args:
        system: a :class:`System` (built-in: :func:`get_system`; your own:
            :func:`register_system`).
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: observed samples per sequence (> 0; ODE systems need a grid of >= 2 points).
        t1: end of the time grid (default: the system's).
        method: ``"closed_form"`` or ``"ode"`` (default: the closed form where there is one).
        rtol: relative tolerance of the step controller (default 1e-6; ODE systems only).
        atol: absolute tolerance of the step controller (default 1e-6; ODE systems only).
        max_steps: step cap per trajectory (default 16,384; ODE systems only).
        max_retries: re-draws allowed per failing row (default 8; systems that re-draw only).
        chunk_size: simulate at most this many sequences at once (memory only, the data do
            not change; ``None``: all). ``batch_size=`` is its deprecated name.
        dtype: floating dtype of the output.
        **params: the system's parameters (``system.defaults`` lists them; e.g. ``rho=20.0``,
            ``num_oscillators=3``, or ``args=(...)`` for a registered vector field).

    Returns:
        :class:`Trajectories`.

    Raises:
        ValueError: on non-positive counts or lengths, invalid parameter values, an unknown
            method, or ``sample`` / ``observe`` returning the wrong shape.
        TypeError: on a missing key, a parameter the system does not have, or a solver option
            it cannot use.

    Examples:
        >>> import jax
        >>> from geomtax.dynamics import get_system
        >>> tr = simulate(get_system("lorenz"), key=jax.random.key(0), num_sequences=2,
        ...               seq_len=16, t1=1.0, rho=20.0)
        >>> tr.observed.shape, tr.states.shape, bool(tr.valid.all())
        ((2, 16), (2, 16, 3), True)
    """
    if not isinstance(system, System):
        raise TypeError(f"system must be a System, got {type(system).__name__}")
    _check_key(key)
    n = _check_positive_int("num_sequences", num_sequences)
    seq_len = _check_positive_int("seq_len", seq_len)
    method = system.methods[0] if method is None else method
    check_choice("method", method, ("closed_form", "ode"))
    check_choice("method", method, system.methods)
    solver = _resolve_solver(
        system,
        {"rtol": rtol, "atol": atol, "max_steps": max_steps, "max_retries": max_retries},
    )
    chunk_size = _check_chunk_size(chunk_size)
    unknown = sorted(set(params) - set(system.defaults))
    if unknown:
        raise TypeError(
            f"{system.name!r} has no parameter {unknown[0]!r}; its parameters are "
            f"{tuple(system.defaults)}"
        )
    merged = {**system.defaults, **params}
    if system.check is not None:
        merged = dict(system.check(merged))
    dtype = jnp.dtype(dtype)
    static = tuple((k, _freeze(merged[k])) for k in system.static_params)
    traced = {k: _as_traced(v, dtype) for k, v in merged.items() if k not in system.static_params}
    num_points = seq_len if system.num_points is None else system.num_points(seq_len, merged)
    if method == "ode" and num_points < 2:
        raise ValueError(
            f"seq_len={seq_len} too short for {system.name!r}: its ODE grid has {num_points} "
            "point(s), need >= 2"
        )
    ts = _time_grid(system.t0, system.t1 if t1 is None else t1, num_points, system.endpoint, dtype)
    if system.state_dim is not None:
        y0 = jax.eval_shape(lambda k: system.sample(k, {**dict(static), **traced})[0], key)
        if y0.shape != (system.state_dim,):
            raise ValueError(
                f"sample_initial of {system.name!r} returns shape {y0.shape}, "
                f"expected ({system.state_dim},)"
            )
    ode = None
    if method == "ode":  # (rtol, atol, max_steps, max_retries or None when not re-drawing)
        tol = (jnp.asarray(solver["rtol"], dtype), jnp.asarray(solver["atol"], dtype))
        ode = (*tol, solver["max_steps"], solver["max_retries"] if system.redraw else None)
    out = _simulate_jit(system, key, ts, traced, static, n, seq_len, ode, chunk_size, dtype)
    if out.observed.shape != (n, seq_len):
        raise ValueError(
            f"observe must map (T, s) to (T,); got observed shape {out.observed.shape}"
        )
    return out


@eqx.filter_jit
def _simulate_jit(system, key, ts, traced, static, n, seq_len, ode, chunk_size, dtype):
    rtol, atol, max_steps, max_retries = (None,) * 4 if ode is None else ode
    params = {**dict(static), **traced}

    def draw(k):
        y0, info = system.sample(k, params)
        return _cast_floating(y0, dtype), _cast_floating(info, dtype)

    def solve(y0, info):
        if ode is not None:
            args = {**traced, **info}
            return _solve_one(system.vector_field, y0, ts, args, rtol, atol, max_steps)
        states = jnp.asarray(system.solution(ts, y0, info, params), dtype)
        return states, jnp.all(jnp.isfinite(states))

    def one(seq_key):
        if max_retries is None:  # closed form, or an ODE system that does not re-draw
            y0, info = draw(seq_key)
            states, ok = solve(y0, info)
            return states, info, ok, jnp.asarray(0, jnp.int32)

        def attempt_draw(attempt):
            return draw(jax.random.fold_in(seq_key, attempt))

        y0_shape, info_shape = jax.eval_shape(attempt_draw, 0)

        def cond(carry):
            attempt, _, _, ok = carry
            return (~ok) & (attempt <= max_retries)

        def body(carry):
            attempt = carry[0]
            y0, info = attempt_draw(attempt)
            ys, ok = solve(y0, info)
            return attempt + 1, info, ys, ok

        init = (
            jnp.asarray(0, jnp.int32),
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), info_shape),
            jnp.zeros((ts.shape[0], *y0_shape.shape), dtype),
            jnp.asarray(False),
        )
        attempts, info, ys, ok = jax.lax.while_loop(cond, body, init)
        return ys, info, ok, attempts - 1

    states, info, ok, redraws = _map_rows(one, jax.random.split(key, n), chunk_size)
    observe = _first_coordinate if system.observe is None else system.observe
    observed, obs_ts, segment_ids = observe(states, ts, seq_len, params)
    return Trajectories(
        observed=observed,
        states=states if system.has_state else None,
        ts=obs_ts,
        params=dict(info),
        failed=(redraws > 0) | ~ok,
        valid=ok,
        num_redraws=redraws,
        state_ts=ts if system.has_state else None,
        segment_ids=segment_ids,
    )
