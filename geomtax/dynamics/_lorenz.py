r"""The Lorenz system and a ring of diffusively coupled Lorenz oscillators, as :class:`System`\ s.

Definitions: docs/reference/systems.md#generators and docs/systems/lorenz.md,
docs/systems/coupled_lorenz.md. Both run through :func:`geomtax.dynamics.simulate`; ``lorenz``
and ``coupled_lorenz`` below are that call with the parameters spelled out.
"""

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from .._custom_types import KeyArray
from ._integrate import _check_positive_int, _check_range, _chunk_size_renamed
from ._system import System, Trajectories, simulate

_LORENZ_PARAMS = {
    "sigma": 10.0,
    "rho": 28.0,
    "beta": 8.0 / 3.0,
    "xy_range": (-15.0, 15.0),
    "z_range": (10.0, 40.0),
}


def _lorenz_vf(t, y, args):
    sigma, rho, beta = args["sigma"], args["rho"], args["beta"]
    x, yy, z = y[0], y[1], y[2]
    return jnp.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z])


def _coupled_lorenz_vf(t, y, args):
    sigma, rho, beta, eps = args["sigma"], args["rho"], args["beta"], args["eps"]
    s = y.reshape(-1, 3)
    x, yy, z = s[:, 0], s[:, 1], s[:, 2]
    lap = jnp.roll(x, -1) - 2.0 * x + jnp.roll(x, 1)
    dx = sigma * (yy - x) + eps * lap
    dy = x * (rho - z) - yy
    dz = x * yy - beta * z
    return jnp.stack([dx, dy, dz], axis=-1).reshape(-1)


def _initial_states(key, params, m):
    """(m, 3): x0, y0 ~ U(xy_range), z0 ~ U(z_range) for each of m oscillators."""
    xy_range, z_range = params["xy_range"], params["z_range"]
    kxy, kz = jax.random.split(key)
    dtype = xy_range.dtype
    xy = jax.random.uniform(kxy, (m, 2), dtype, minval=xy_range[0], maxval=xy_range[1])
    z = jax.random.uniform(kz, (m, 1), dtype, minval=z_range[0], maxval=z_range[1])
    return jnp.concatenate([xy, z], axis=-1)


def _sample_lorenz(key, params):
    s = _initial_states(key, params, 1)
    return s.reshape(-1), {"x0": s[0, 0], "y0": s[0, 1], "z0": s[0, 2]}


def _sample_coupled(key, params):
    s = _initial_states(key, params, params["num_oscillators"])
    return s.reshape(-1), {"x0": s[:, 0], "y0": s[:, 1], "z0": s[:, 2]}


def _check_lorenz(params):
    _check_range("xy_range", params["xy_range"])
    _check_range("z_range", params["z_range"])
    return params


def _check_coupled(params):
    m = _check_positive_int("num_oscillators", params["num_oscillators"])
    if m > 3:
        raise ValueError(f"num_oscillators must be in 1..3, got {m}")
    return {**_check_lorenz(params), "num_oscillators": m}


def _coupled_points(seq_len, params):
    m = params["num_oscillators"]
    if seq_len // m + 1 < 2:
        raise ValueError(f"seq_len={seq_len} too short for {m} oscillators (need >= 2 samples)")
    return seq_len // m + 1


def _observe_concatenated(states, ts, seq_len, params):
    """The oscillators' x series concatenated (not interleaved) and cut to ``seq_len``."""
    m = params["num_oscillators"]
    n, seg = states.shape[0], states.shape[1]
    xs = states[..., 0::3]  # (n, seg, m): x of each oscillator
    observed = jnp.swapaxes(xs, 1, 2).reshape(n, m * seg)[:, :seq_len]
    obs_ts = jnp.tile(ts, m)[:seq_len]
    segment_ids = jnp.repeat(jnp.arange(m, dtype=jnp.int32), seg)[:seq_len]
    return observed, obs_ts, segment_ids


LORENZ = System(
    name="lorenz",
    sample=_sample_lorenz,
    vector_field=_lorenz_vf,
    check=_check_lorenz,
    params=_LORENZ_PARAMS,
    t1=25.0,
    endpoint=True,
    state_dim=3,
    description="Lorenz system, x observed (sigma 10, rho 28, beta 8/3)",
)
COUPLED_LORENZ = System(
    name="coupled_lorenz",
    sample=_sample_coupled,
    vector_field=_coupled_lorenz_vf,
    observe=_observe_concatenated,
    num_points=_coupled_points,
    check=_check_coupled,
    params={"num_oscillators": 2, "eps": 0.1, **_LORENZ_PARAMS},
    static_params=("num_oscillators",),
    t1=25.0,
    endpoint=True,
    description="ring of N diffusively coupled Lorenz oscillators, x series concatenated",
)


@_chunk_size_renamed
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
    chunk_size: int | None = None,
    dtype: DTypeLike = jnp.float32,
) -> Trajectories:
    r"""Lorenz system, x coordinate observed (docs/reference/systems.md#generators, ``lorenz_x``).

    .. math::
        \dot x = \sigma (y - x), \quad \dot y = x(\rho - z) - y, \quad \dot z = x y - \beta z,

    with :math:`\sigma = 10, \rho = 28, \beta = 8/3`, :math:`x_0, y_0 \sim U(-15, 15)`,
    :math:`z_0 \sim U(10, 40)`, no burn-in, saved on ``linspace(0, t1, seq_len)`` (endpoint
    included; :math:`\Delta t = 25/511` by default). This is :func:`simulate` of the ``lorenz``
    :class:`System` (diffrax Tsit5 + PID controller; failed rows are re-drawn). The flow is
    chaotic (largest Lyapunov exponent about 0.906 per unit time), so trajectories agree pointwise
    with other solvers only over short horizons.

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
        chunk_size: integrate at most this many sequences at once (memory only; ``None``:
            all). ``batch_size=`` is its deprecated name.
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
    return simulate(LORENZ, **locals())  # every argument, unchanged


@_chunk_size_renamed
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
    chunk_size: int | None = None,
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
        chunk_size: integrate at most this many sequences at once (memory only; ``None``:
            all). ``batch_size=`` is its deprecated name.
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
    return simulate(COUPLED_LORENZ, **locals())  # every argument, unchanged
