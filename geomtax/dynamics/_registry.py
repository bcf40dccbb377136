r"""The one registry of system names, shared by the API, the experiments and the command line.

The built-in systems are listed once, in ``_BUILTINS`` below (each is defined in its own module:
``_waveform``, ``_oscillator``, ``_lorenz``); :func:`register_system` adds yours. Names use
underscores (``"coupled_lorenz"``) everywhere; the old command-line spellings ``"oscillator"``
and ``"coupled-lorenz"`` resolve through :func:`get_system` with a ``DeprecationWarning``.
"""

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import KeyArray
from ._integrate import _check_nonneg_int, _check_positive_int, _chunk_size_renamed
from ._lorenz import COUPLED_LORENZ, LORENZ
from ._oscillator import DAMPED_OSCILLATOR
from ._system import System, Trajectories, simulate
from ._waveform import WAVEFORM

#: The built-in systems, in the order :func:`registered_systems` lists them.
_BUILTINS = (WAVEFORM, DAMPED_OSCILLATOR, LORENZ, COUPLED_LORENZ)
_REGISTRY: dict[str, System] = {s.name: s for s in _BUILTINS}
_BUILTIN = frozenset(_REGISTRY)
#: Deprecated spellings (the 0.1 command line) -> registry name; to be removed in 0.3.
_ALIASES = {"oscillator": "damped_oscillator", "coupled-lorenz": "coupled_lorenz"}


class _UserSample(eqx.Module):
    """``sample_initial(key) -> y0`` as a :class:`System` sampler; the draw is ``{"y0": y0}``."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, key, params):
        y0 = jnp.asarray(self.fn(key))
        if not jnp.issubdtype(y0.dtype, jnp.floating):
            y0 = y0.astype(jnp.result_type(float))
        return y0, {"y0": y0}


class _UserField(eqx.Module):
    """``f(t, y, args)`` with the registered ``args`` tuple (traced) as its third argument."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, t, y, params):
        args = params["args"]
        if isinstance(args, jax.Array) and args.ndim == 1:
            args = tuple(args)  # the registered tuple, one traced scalar per entry
        return self.fn(t, y, args)


class _ObserveIndex(eqx.Module):
    index: int = eqx.field(static=True)

    def __call__(self, states, ts, seq_len, params):
        return states[..., self.index], ts, jnp.zeros((seq_len,), jnp.int32)


class _ObserveEach(eqx.Module):
    """A per-trajectory ``observe(states (T, s)) -> (T,)``, mapped over the batch."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, states, ts, seq_len, params):
        return jax.vmap(self.fn)(states), ts, jnp.zeros((seq_len,), jnp.int32)


def register_system(
    name: str | System,
    vector_field: Callable | None = None,
    *,
    state_dim: int | None = None,
    observe: Callable | int = 0,
    sample_initial: Callable | None = None,
    t1: float | None = None,
    t0: float = 0.0,
    endpoint: bool = True,
    args: tuple | None = None,
    overwrite: bool = False,
) -> System:
    r"""Add a system to the registry, so that :func:`generate` and ``build_dataset`` know it.

    Either pass a ready :class:`System` (``register_system(system)``), or a vector field with the
    few things it needs (the common case): ``generate(name, key=..., num_sequences=n,
    seq_len=L)`` then samples n initial conditions with ``sample_initial``, integrates
    :math:`\dot y = f(t, y, \mathrm{args})` through :func:`simulate` exactly as the built-in
    Lorenz system is (Tsit5 + PID, ``SaveAt(ts)``, ``throw=False``, failed rows re-drawn up to
    ``max_retries`` times) on ``linspace(t0, t1, L, endpoint=endpoint)``, and applies
    ``observe`` to each trajectory. ``args`` is the system's one parameter: it is traced, so
    ``generate(name, ..., args=(...))`` with new values does not recompile.

    Args:
        name: new system name (must not shadow a built-in), or a :class:`System`.
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
        TypeError: if ``vector_field`` or ``sample_initial`` is not callable, or options are
            passed together with a :class:`System`.

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
    if isinstance(name, System):
        if vector_field is not None or sample_initial is not None or t1 is not None:
            raise TypeError("pass either a System or (name, vector_field, ...), not both")
        system = name
    else:
        system = _ode_system(
            name, vector_field, state_dim, observe, sample_initial, t0, t1, endpoint, args
        )
    if system.name in _BUILTIN or system.name in _ALIASES:
        raise ValueError(f"{system.name!r} is a built-in system and cannot be re-registered")
    if system.name in _REGISTRY and not overwrite:
        raise ValueError(f"system {system.name!r} is already registered; pass overwrite=True")
    _REGISTRY[system.name] = system
    return system


def _ode_system(name, vector_field, state_dim, observe, sample_initial, t0, t1, endpoint, args):
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(vector_field) or not callable(sample_initial):
        raise TypeError("vector_field and sample_initial must be callables")
    s = _check_positive_int("state_dim", state_dim)
    if t1 is None:
        raise TypeError("t1 (the end of the time grid) is required")
    if not float(t1) > float(t0):
        raise ValueError(f"need t1 > t0, got t0={t0}, t1={t1}")
    if callable(observe):
        observe = _ObserveEach(observe)
    else:
        idx = _check_nonneg_int("observe", observe)
        if idx >= s:
            raise ValueError(f"observe index {idx} out of range for state_dim={s}")
        observe = _ObserveIndex(idx)
    return System(
        name=name,
        sample=_UserSample(sample_initial),
        vector_field=_UserField(vector_field),
        observe=observe,
        params={"args": None if args is None else tuple(args)},
        t0=t0,
        t1=t1,
        endpoint=endpoint,
        state_dim=s,
        description=f"user-registered ODE ({s} state variables)",
    )


def get_system(name: str) -> System:
    """The :class:`System` registered under ``name``.

    Raises:
        ValueError: on an unknown name.

    Examples:
        >>> s = get_system("coupled_lorenz")
        >>> s.defaults["num_oscillators"], s.t1, s.endpoint
        (2, 25.0, True)
    """
    if name in _ALIASES:
        warnings.warn(
            f"system name {name!r} is deprecated; use {_ALIASES[name]!r}",
            DeprecationWarning,
            stacklevel=2,
        )
        name = _ALIASES[name]
    if name not in _REGISTRY:
        raise ValueError(f"unknown system {name!r}; expected one of {registered_systems()}")
    return _REGISTRY[name]


def registered_systems() -> tuple[str, ...]:
    """Names accepted by :func:`generate`: the built-ins, then user registrations in order.

    Examples:
        >>> registered_systems()[:4]
        ('waveform', 'damped_oscillator', 'lorenz', 'coupled_lorenz')
    """
    return tuple(_REGISTRY)


@_chunk_size_renamed
def generate(
    system: str | System,
    *,
    key: KeyArray,
    num_sequences: int,
    seq_len: int = 512,
    **options: Any,
) -> Trajectories:
    """Generate ``num_sequences`` sequences of a named system (built-in or registered).

    ``simulate(get_system(system), ...)``: ``options`` are :func:`simulate`'s solver options
    (``rtol``, ``t1``, ``chunk_size``, ...) and the system's parameters (e.g.
    ``num_oscillators=3``, ``rho=20.0``).

    Args:
        system: system name (see :func:`registered_systems`) or a :class:`System`.
        key: PRNG key (required).
        num_sequences: number of sequences n (> 0).
        seq_len: samples per sequence (> 0).
        **options: keyword options of :func:`simulate` and parameters of the system.

    Returns:
        :class:`Trajectories`.

    Raises:
        ValueError: on an unknown system name, non-positive counts or lengths.
        TypeError: on an option the system does not take.

    Examples:
        >>> import jax
        >>> generate("waveform", key=jax.random.key(0), num_sequences=4, seq_len=32).observed.shape
        (4, 32)
    """
    if not isinstance(system, System):
        system = get_system(system)
    return simulate(system, key=key, num_sequences=num_sequences, seq_len=seq_len, **options)
