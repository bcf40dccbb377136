r"""Superposed sines, a closed-form :class:`System` without state (``waveform``).

Definition: docs/reference/systems.md#generators and docs/systems/waveform.md.
"""

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from .._custom_types import KeyArray
from ._integrate import _check_range, _chunk_size_renamed, _uniform
from ._system import System, Trajectories, simulate


def _sample(key, params):
    jlo, jhi = params["num_components_range"]
    f_rng, a_rng = params["frequency_range"], params["amplitude_range"]
    dtype = f_rng.dtype
    kj, kf, ka, kp = jax.random.split(key, 4)
    num = jax.random.randint(kj, (), jlo, jhi + 1)
    on = jnp.arange(jhi) < num
    f = jnp.where(on, _uniform(kf, f_rng, dtype, (jhi,)), 0.0)
    a = jnp.where(on, _uniform(ka, a_rng, dtype, (jhi,)), 0.0)
    p = jnp.where(on, _uniform(kp, (0.0, 2 * math.pi), dtype, (jhi,)), 0.0)
    return None, {"num_components": num, "frequency": f, "amplitude": a, "phase": p}


def _solution(ts, y0, draw, params):
    f, a, p = draw["frequency"], draw["amplitude"], draw["phase"]
    arg = 2 * jnp.pi * f[:, None] * ts[None, :] + p[:, None]
    return jnp.sum(a[:, None] * jnp.sin(arg), axis=0)[:, None]


def _check(params):
    jlo, jhi = params["num_components_range"]
    if not (1 <= int(jlo) <= int(jhi)):
        raise ValueError(
            f"num_components_range must be 1 <= low <= high, got {params['num_components_range']}"
        )
    _check_range("frequency_range", params["frequency_range"])
    _check_range("amplitude_range", params["amplitude_range"])
    return {**params, "num_components_range": (int(jlo), int(jhi))}


WAVEFORM = System(
    name="waveform",
    sample=_sample,
    solution=_solution,
    check=_check,
    params={
        "num_components_range": (3, 5),
        "frequency_range": (0.5, 50.0),
        "amplitude_range": (0.1, 1.0),
    },
    static_params=("num_components_range",),
    t1=1.0,
    endpoint=False,
    has_state=False,
    description="sum of 3-5 sines with random frequencies, amplitudes and phases",
)


@_chunk_size_renamed
def waveform(
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    t1: float = 1.0,
    num_components_range: tuple[int, int] = (3, 5),
    frequency_range: tuple[float, float] = (0.5, 50.0),
    amplitude_range: tuple[float, float] = (0.1, 1.0),
    chunk_size: int | None = None,
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
        chunk_size: generate at most this many sequences at once (memory only; ``None``:
            all). ``batch_size=`` is its deprecated name.
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
    return simulate(WAVEFORM, **locals())  # every argument, unchanged
