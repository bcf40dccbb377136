"""ODE integration core shared by every system: diffrax ``Tsit5`` + PID, and option checks.

:func:`integrate` is the public, key-free integrator (many initial conditions, one vector
field); :func:`_solve_one` is the single-trajectory solve that :func:`geomtax.dynamics.simulate`
runs for every ODE system, built-in or registered.
"""

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._errors import is_traced, renamed_options

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


def _check_range(name: str, value) -> None:
    """``value`` must be a pair (low, high) with low <= high (not checked while traced)."""
    if np.shape(value) != (2,):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    lo, hi = value[0], value[1]
    if not (is_traced(lo) or is_traced(hi)) and not float(lo) <= float(hi):
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")


def _check_tolerances(rtol, atol) -> None:
    if is_traced(rtol) or is_traced(atol):
        return
    if not (float(rtol) > 0 and float(atol) > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")


def _check_key(key) -> None:
    if key is None:
        raise TypeError("a PRNG key is required: pass key=jax.random.key(seed)")


def _time_grid(t0: float, t1: float, num: int, endpoint: bool, dtype):
    return jnp.linspace(t0, t1, num, endpoint=endpoint, dtype=dtype)


def _uniform(key, lo_hi, dtype, shape=()):
    return jax.random.uniform(key, shape, dtype, minval=lo_hi[0], maxval=lo_hi[1])


#: ``batch_size=`` (the 0.1 name of ``chunk_size``: rows integrated or embedded at once, memory
#: only) still works for one release with a ``DeprecationWarning``, so that ``batch_size``
#: means one thing, a training minibatch.
_chunk_size_renamed = renamed_options(batch_size="chunk_size")


def _check_chunk_size(chunk_size) -> int | None:
    return None if chunk_size is None else _check_positive_int("chunk_size", chunk_size)


def _map_rows(fn, xs, chunk_size):
    """``vmap`` ``fn`` over the rows of ``xs``, or ``lax.map`` in chunks of ``chunk_size`` rows."""
    if chunk_size is None or chunk_size >= xs.shape[0]:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


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


@_chunk_size_renamed
def integrate(
    vector_field: Callable,
    y0: Float[Array, "n s"],
    ts: Float[Array, " T"],
    *,
    args: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 16_384,
    chunk_size: int | None = None,
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
        chunk_size: integrate at most this many rows at once (``lax.map``; memory only, the
            result does not change); ``None``: all. ``batch_size=`` is its deprecated name.

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
    chunk_size = _check_chunk_size(chunk_size)
    y0 = jnp.asarray(y0)
    dt = y0.dtype if jnp.issubdtype(y0.dtype, jnp.floating) else jnp.result_type(float)
    tol = (jnp.asarray(rtol, dt), jnp.asarray(atol, dt))
    return _integrate_jit(vector_field, y0, jnp.asarray(ts), args, *tol, max_steps, chunk_size)


@eqx.filter_jit
def _integrate_jit(vector_field, y0, ts, args, rtol, atol, max_steps, chunk_size):
    def one(y):
        return _solve_one(vector_field, y, ts, args, rtol, atol, max_steps)

    ys, ok = _map_rows(one, y0, chunk_size)
    return IntegrationResult(ys=ys, success=ok)
