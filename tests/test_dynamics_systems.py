"""One system model: every system is a ``System`` run by ``simulate``; one registry of names.

The first test is the "add a system" example of docs/api/dynamics.md#adding-a-system: it does
exactly what a contributor does (write the vector field, register it, simulate it through the
same pipeline as the built-ins, check it against an independent solver).
"""

import contextlib
import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import monitoring
from jax._src.dispatch import BACKEND_COMPILE_EVENT
from scipy.integrate import solve_ivp

import geomtax.dynamics as gd

# ------------------------------------------------------------------ adding a system (the example)


def van_der_pol(t, y, args):
    """dx/dt = v, dv/dt = mu (1 - x^2) v - x."""
    (mu,) = args
    return jnp.stack([y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]])


def van_der_pol_initial(key):
    return jax.random.uniform(key, (2,), minval=-2.0, maxval=2.0)


VAN_DER_POL = gd.register_system(
    "test_van_der_pol",
    van_der_pol,
    state_dim=2,
    t1=5.0,
    args=(1.0,),
    sample_initial=van_der_pol_initial,
    overwrite=True,  # only because test modules may be imported twice
)


def test_add_a_system_matches_solve_ivp(x64):
    tr = gd.generate(
        "test_van_der_pol",
        key=jax.random.key(0),
        num_sequences=2,
        seq_len=26,
        args=(1.5,),
        rtol=1e-10,
        atol=1e-10,
        dtype=jnp.float64,
    )
    assert tr.observed.shape == (2, 26) and tr.states.shape == (2, 26, 2)
    assert bool(tr.valid.all()) and not bool(tr.failed.any())
    ts = np.asarray(tr.ts)
    np.testing.assert_allclose(ts, np.linspace(0.0, 5.0, 26), atol=1e-12)
    for i in range(2):
        y0 = np.asarray(tr.params["y0"][i])
        ref = solve_ivp(
            lambda t, y: [y[1], 1.5 * (1 - y[0] ** 2) * y[1] - y[0]],
            (0.0, 5.0),
            y0,
            t_eval=ts,
            rtol=1e-12,
            atol=1e-12,
            method="DOP853",
        )
        np.testing.assert_allclose(tr.states[i], ref.y.T, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(tr.observed[i], tr.states[i, :, 0])  # observe=0


def test_registered_system_is_a_system_like_the_builtins():
    assert gd.get_system("test_van_der_pol") is VAN_DER_POL
    assert "test_van_der_pol" in gd.registered_systems()
    for name in gd.registered_systems():
        assert isinstance(gd.get_system(name), gd.System)
        assert gd.get_system(name).name == name


# ------------------------------------------------------------------ parameters are traced


@contextlib.contextmanager
def count_compiles():
    """Count XLA backend compilations inside the block."""
    counter = {"n": 0}

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            counter["n"] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        monitoring.unregister_event_duration_listener(listener)


TRACES = {"n": 0}


def _counted_decay(t, y, args):
    TRACES["n"] += 1  # Python runs only while tracing
    return -args[0] * y


COUNTED = gd.register_system(
    "test_counted_decay",
    _counted_decay,
    state_dim=1,
    t1=1.0,
    args=(1.0,),
    sample_initial=lambda k: 1.0 + jax.random.uniform(k, (1,)),
    overwrite=True,
)


def test_new_args_value_does_not_retrace_or_recompile():
    kw = dict(key=jax.random.key(0), num_sequences=2, seq_len=5, rtol=1e-8, atol=1e-8)
    a = gd.simulate(COUNTED, args=(1.0,), **kw)
    traced = TRACES["n"]
    assert traced > 0
    with count_compiles() as c:
        b = gd.simulate(COUNTED, args=(2.5,), **kw)
    assert TRACES["n"] == traced and c["n"] == 0
    ts = np.asarray(a.ts)
    for tr, rate in ((a, 1.0), (b, 2.5)):
        want = np.asarray(tr.params["y0"]) * np.exp(-rate * ts)[None]
        np.testing.assert_allclose(tr.observed, want, rtol=1e-5)


def test_new_builtin_parameters_do_not_recompile():
    kw = dict(key=jax.random.key(1), num_sequences=2, seq_len=8, t1=0.5)
    first = gd.lorenz(rho=28.0, **kw)
    wave = gd.waveform(key=kw["key"], num_sequences=2, seq_len=8)
    with count_compiles() as c:
        other = gd.lorenz(rho=20.0, sigma=9.0, xy_range=(-5.0, 5.0), **(kw | {"t1": 0.7}))
        again = gd.simulate(gd.get_system("lorenz"), rho=28.0, **kw)
        wave2 = gd.waveform(key=kw["key"], num_sequences=2, seq_len=8, frequency_range=(1.0, 2.0))
    assert c["n"] == 0, "a new sigma / rho / range / t1 value recompiled the simulation"
    np.testing.assert_array_equal(again.observed, first.observed)
    assert not np.allclose(other.observed, first.observed)
    assert not np.allclose(wave2.observed, wave.observed)


# ------------------------------------------------------------------ one registry, one spelling


def test_one_registry_one_spelling():
    names = gd.registered_systems()
    assert names[:4] == ("waveform", "damped_oscillator", "lorenz", "coupled_lorenz")
    assert len(set(names)) == len(names) and not any("-" in n for n in names)
    with pytest.raises(ValueError, match="unknown system 'henon'"):
        gd.get_system("henon")
    for old, new in (("coupled-lorenz", "coupled_lorenz"), ("oscillator", "damped_oscillator")):
        with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
            assert gd.get_system(old) is gd.get_system(new)
    with pytest.raises(ValueError, match="built-in"):
        gd.register_system(gd.get_system("lorenz"), overwrite=True)


def test_registry_carries_the_reference_time_span():
    # (t1, endpoint) per system, and the t1 that keeps the 512-sample step at a shorter length
    spans = {n: (gd.get_system(n).t1, gd.get_system(n).endpoint) for n in gd.registered_systems()}
    assert spans["lorenz"] == (25.0, True) and spans["coupled_lorenz"] == (25.0, True)
    assert spans["waveform"] == (1.0, False) and spans["damped_oscillator"] == (4.0, False)
    for name in ("lorenz", "waveform", "damped_oscillator", "coupled_lorenz"):
        s = gd.get_system(name)
        for seq_len in (64, 128, 512):
            frac = (seq_len - 1) / 511 if s.endpoint else seq_len / 512
            assert s.reference_t1(seq_len) == s.t1 * frac
    assert gd.get_system("coupled_lorenz").defaults["num_oscillators"] == 2


def test_a_system_object_registers_as_is():
    decay = gd.get_system("test_counted_decay")
    copy = gd.register_system(dataclasses.replace(decay, name="test_decay_copy"), overwrite=True)
    assert gd.get_system("test_decay_copy") is copy and copy.vector_field is decay.vector_field


def test_wrappers_are_simulate_of_the_registered_system():
    kw = dict(key=jax.random.key(2), num_sequences=3, seq_len=16)
    a = gd.waveform(**kw)
    b = gd.simulate(gd.get_system("waveform"), **kw)
    c = gd.generate("waveform", **kw)
    np.testing.assert_array_equal(a.observed, b.observed)
    np.testing.assert_array_equal(a.observed, c.observed)
    assert a.states is None and b.state_ts is None


def test_options_a_system_cannot_use_are_rejected():
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="'waveform' is not integrated; it takes no option 'rtol'"):
        gd.generate("waveform", key=key, num_sequences=2, rtol=1e-8)
    with pytest.raises(TypeError, match="does not re-draw"):
        gd.generate("damped_oscillator", key=key, num_sequences=2, max_retries=2)
    with pytest.raises(TypeError, match="'lorenz' has no parameter 'eps'"):
        gd.generate("lorenz", key=key, num_sequences=2, eps=0.1)
    with pytest.raises(ValueError, match="unknown method 'closed_form'"):
        gd.generate("lorenz", key=key, num_sequences=2, method="closed_form")
    with pytest.raises(ValueError, match="xy_range must be"):
        gd.generate("lorenz", key=key, num_sequences=2, xy_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="needs a vector_field or a solution"):
        gd.System(name="empty", sample=lambda k, p: (None, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gd.get_system("lorenz")  # the canonical names never warn
