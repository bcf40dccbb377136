r"""The damped harmonic oscillator: a closed form and its ODE in one :class:`System`.

Definition: docs/reference/systems.md#generators and docs/systems/damped_oscillator.md.
"""

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from .._custom_types import KeyArray
from ._integrate import _check_range, _chunk_size_renamed, _uniform
from ._system import System, Trajectories, simulate


def _sample(key, params):
    ka, kg, kw, kp = jax.random.split(key, 4)
    dtype = params["amplitude_range"].dtype
    amp = _uniform(ka, params["amplitude_range"], dtype)
    gamma = _uniform(kg, params["gamma_range"], dtype)
    omega = _uniform(kw, params["omega_range"], dtype)
    phase = _uniform(kp, (0.0, 2 * math.pi), dtype)
    c, s = jnp.cos(phase), jnp.sin(phase)
    y0 = jnp.stack([amp * c, -amp * (gamma * c + omega * s)])
    return y0, {"amplitude": amp, "gamma": gamma, "omega": omega, "phase": phase}


def _vector_field(t, y, args):
    gamma, omega = args["gamma"], args["omega"]
    x, v = y[0], y[1]
    return jnp.stack([v, -2.0 * gamma * v - (gamma**2 + omega**2) * x])


def _solution(ts, y0, draw, params):
    amp, gamma, omega, phase = (draw[k] for k in ("amplitude", "gamma", "omega", "phase"))
    env = amp * jnp.exp(-gamma * ts)
    c, s = jnp.cos(omega * ts + phase), jnp.sin(omega * ts + phase)
    return jnp.stack([env * c, -env * (gamma * c + omega * s)], axis=-1)


def _check(params):
    for name in ("amplitude_range", "gamma_range", "omega_range"):
        _check_range(name, params[name])
    return params


DAMPED_OSCILLATOR = System(
    name="damped_oscillator",
    sample=_sample,
    vector_field=_vector_field,
    solution=_solution,
    check=_check,
    params={
        "amplitude_range": (0.5, 2.0),
        "gamma_range": (0.2, 2.0),
        "omega_range": (2.0, 20.0),
    },
    t1=4.0,
    endpoint=False,
    redraw=False,
    state_dim=2,
    description="damped oscillator A exp(-gamma t) cos(omega t + phi), x observed",
)


@_chunk_size_renamed
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
    chunk_size: int | None = None,
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
        chunk_size: generate at most this many sequences at once (memory only; ``None``:
            all). ``batch_size=`` is its deprecated name.
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
    return simulate(DAMPED_OSCILLATOR, **locals())  # every argument, unchanged
