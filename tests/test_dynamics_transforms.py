"""Transform table for geomtax.dynamics: jit vs eager, vmap, grad (where smooth), no recompiles.

Every callable in ``geomtax.dynamics.__all__`` has a row here or is listed in ``HOST_ONLY`` with
the reason it is not an array transform target.
"""

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import monitoring
from jax._src.dispatch import BACKEND_COMPILE_EVENT

import geomtax.dynamics as gd

# Not array functions: registry bookkeeping, disk I/O, result containers.
HOST_ONLY = {
    "register_system": "registry bookkeeping (Python callables in, System out)",
    "registered_systems": "returns a tuple of names",
    "get_system": "registry lookup (a name in, a System out)",
    "build_dataset": "disk cache and host-side sizes; its arrays come from the generators below",
    "Dataset": "result container",
    "Trajectories": "result container",
    "IntegrationResult": "result container",
    "System": "configuration container",
    "UniformBins": "fitted tokenizer; methods covered by the uniform_bins rows",
    "KMeansCodebook": "fitted codebook; methods covered by the kmeans_codebook rows",
}

KEY = jax.random.key(0)


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


def _decay(t, y, args):
    return -args[0] * y


def _decay_init(k):
    return 1.0 + jax.random.uniform(k, (1,))


DECAY = gd.register_system(
    "transform_decay",
    _decay,
    state_dim=1,
    t1=1.0,
    args=(1.5,),
    sample_initial=_decay_init,
    overwrite=True,
)

# name -> f(key) -> array, for the keyed generators (small shapes)
GENERATOR_ROWS = {
    "waveform": lambda k: gd.waveform(key=k, num_sequences=3, seq_len=16).observed,
    "damped_oscillator": lambda k: (
        gd.damped_oscillator(key=k, num_sequences=3, seq_len=16).observed
    ),
    "lorenz": lambda k: gd.lorenz(key=k, num_sequences=2, seq_len=8, t1=0.5).observed,
    "coupled_lorenz": lambda k: (
        gd.coupled_lorenz(key=k, num_sequences=2, seq_len=8, num_oscillators=2, t1=0.5).observed
    ),
    "generate": lambda k: (
        gd.generate("transform_decay", key=k, num_sequences=2, seq_len=4).observed
    ),
    "simulate": lambda k: gd.simulate(DECAY, key=k, num_sequences=2, seq_len=4).observed,
}


def _values(k, shape=(4, 32)):
    return jax.random.normal(k, shape)


OTHER_ROWS = {
    "integrate",
    "uniform_bins",
    "tokenize_uniform",
    "tokenize_uniform_ref",
    "kmeans_codebook",
    "value_noise",
    "time_reversal",
    "codebook_noise",
    "interpolate_tokens",
}


def test_every_public_callable_has_a_row():
    names = set(gd.__all__)
    covered = set(GENERATOR_ROWS) | OTHER_ROWS | set(HOST_ONLY)
    assert names <= covered, f"no transform row for {sorted(names - covered)}"


# coupled_lorenz / generate / simulate share lorenz's pipeline (one simulate for all): slow-only.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow)
        if n in ("coupled_lorenz", "generate", "simulate")
        else n
        for n in sorted(GENERATOR_ROWS)
    ],
)
def test_generator_jit_vmap(name):
    fn = GENERATOR_ROWS[name]
    eager = fn(KEY)
    jitted = jax.jit(fn)(KEY)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
    keys = jax.random.split(jax.random.key(1), 2)
    batched = jax.vmap(fn)(keys)
    for i in range(2):
        np.testing.assert_allclose(batched[i], fn(keys[i]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["waveform", "lorenz", "generate"])
def test_generator_second_call_does_not_recompile(name):
    fn = GENERATOR_ROWS[name]
    jax.block_until_ready(fn(jax.random.key(10)))  # warm
    with count_compiles() as c:
        jax.block_until_ready(fn(jax.random.key(11)))
    assert c["n"] == 0


def test_lorenz_parameters_are_traced_not_static():
    # sweeping rho or the tolerances must not recompile the integrator
    kw = dict(key=KEY, num_sequences=2, seq_len=8, t1=0.5)
    gd.lorenz(rho=28.0, **kw)
    with count_compiles() as c:
        out = gd.lorenz(rho=20.0, rtol=1e-5, atol=1e-5, **kw)
    assert c["n"] <= 2  # small eager ops (jnp.asarray of the new scalars); not the solver
    assert out.observed.shape == (2, 8)
    rhos = jnp.array([20.0, 28.0])
    sweep = jax.vmap(lambda r: gd.lorenz(rho=r, **kw).observed)(rhos)
    np.testing.assert_allclose(sweep[1], gd.lorenz(rho=28.0, **kw).observed, rtol=1e-5)


def test_integrate_vmap_and_no_recompile():
    ts = jnp.linspace(0.0, 1.0, 5)
    y0 = jnp.array([[1.0], [2.0]])

    def final(a):
        return gd.integrate(_decay, y0, ts, args=(a,), rtol=1e-8, atol=1e-8).ys[:, -1, 0]

    np.testing.assert_allclose(final(1.5), np.array([1.0, 2.0]) * np.exp(-1.5), rtol=1e-5)
    sweep = jax.vmap(final)(jnp.array([0.5, 1.5]))
    np.testing.assert_allclose(sweep[1], final(1.5), rtol=1e-6)
    with count_compiles() as c:
        final(1.5)
        final(0.7)
    assert c["n"] <= 2  # no recompilation of the solver for a new args value


@pytest.mark.slow
def test_integrate_jit_and_grad_slow():
    ts = jnp.linspace(0.0, 1.0, 5)
    y0 = jnp.array([[1.0], [2.0]])

    def final(a):
        return gd.integrate(_decay, y0, ts, args=(a,), rtol=1e-8, atol=1e-8).ys[:, -1, 0]

    np.testing.assert_allclose(jax.jit(final)(1.5), final(1.5), rtol=1e-6)
    # d/da [y0 exp(-a)] = -y0 exp(-a)
    g = jax.grad(lambda a: final(a).sum())(1.5)
    np.testing.assert_allclose(g, -3.0 * np.exp(-1.5), rtol=1e-4)


def test_uniform_bins_rows():
    v = _values(KEY)
    tok = gd.uniform_bins(v, num_bins=16)
    fit = eqx.filter_jit(lambda x: gd.uniform_bins(x, num_bins=16))
    tj = fit(v)
    np.testing.assert_allclose(tj.low, tok.low)
    encode = eqx.filter_jit(lambda t, x: t.encode(x))
    decode = eqx.filter_jit(lambda t, x: t.decode(x))
    np.testing.assert_array_equal(encode(tok, v), tok.encode(v))
    np.testing.assert_allclose(decode(tok, tok.encode(v)), tok.decode(tok.encode(v)))
    # vmap over a batch of problems: each row fitted on its own range
    lows = jax.vmap(lambda x: gd.uniform_bins(x, num_bins=16).low)(v)
    np.testing.assert_allclose(lows[:, 0], v.min(axis=1))
    # grad of the continuous target: d normalize / dv = 1 / (high - low) inside the range
    g = jax.grad(lambda x: tok.normalize(x).sum())(v)
    inside = (v > tok.low[0]) & (v < tok.high[0])
    np.testing.assert_allclose(g[inside], 1.0 / (tok.high[0] - tok.low[0]), rtol=1e-5)
    counter = {"n": 0}

    @jax.jit
    def enc(x):
        counter["n"] += 1
        return tok.encode(x)

    enc(v)
    enc(v + 1.0)
    assert counter["n"] == 1
    # traced NaN check fires through eqx.error_if
    with pytest.raises(Exception, match="NaN or inf"):
        fit(v.at[0, 0].set(jnp.nan))


@pytest.mark.parametrize("fn", [gd.tokenize_uniform, gd.tokenize_uniform_ref])
def test_tokenize_functions_rows(fn):
    v = _values(KEY)
    eager = fn(v, low=-2.0, high=2.0, num_bins=8)
    np.testing.assert_array_equal(
        jax.jit(lambda x: fn(x, low=-2.0, high=2.0, num_bins=8))(v), eager
    )
    his = jnp.array([2.0, 3.0])
    sweep = jax.vmap(lambda h: fn(v, low=-2.0, high=h, num_bins=8))(his)
    np.testing.assert_array_equal(sweep[0], eager)


def test_kmeans_codebook_rows():
    v = _values(KEY, (400,))
    cb = gd.kmeans_codebook(v, num_codes=4, key=KEY, num_inits=1)
    jitted = eqx.filter_jit(lambda x, k: gd.kmeans_codebook(x, num_codes=4, key=k, num_inits=1))
    np.testing.assert_allclose(jitted(v, KEY).centroids, cb.centroids, rtol=1e-5, atol=1e-6)
    encode = eqx.filter_jit(lambda c, x: c.encode(x))
    np.testing.assert_array_equal(encode(cb, v), cb.encode(v))
    batch = jax.vmap(cb.decode)(jnp.stack([cb.encode(v), cb.encode(-v)]))
    np.testing.assert_allclose(batch[0], cb.decode(cb.encode(v)))


@pytest.mark.slow
def test_kmeans_codebook_vmap_over_keys():
    v = _values(KEY, (400,))
    keys = jax.random.split(KEY, 2)
    cents = jax.vmap(lambda k: gd.kmeans_codebook(v, num_codes=4, key=k, num_inits=1).centroids)(
        keys
    )
    for i in range(2):
        np.testing.assert_allclose(
            cents[i],
            gd.kmeans_codebook(v, num_codes=4, key=keys[i], num_inits=1).centroids,
            rtol=1e-5,
            atol=1e-6,
        )


def test_perturbation_rows():
    tokens = jax.random.randint(KEY, (4, 64), 0, 256)
    eager = gd.value_noise(tokens, key=KEY, rate=0.1)
    jitted = jax.jit(lambda t, k, r: gd.value_noise(t, key=k, rate=r))
    np.testing.assert_array_equal(jitted(tokens, KEY, 0.1), eager)
    # vmap over keys and over a rate sweep (the reference's 1, 2, 5, 10 %)
    rates = jnp.array([0.01, 0.02, 0.05, 0.1])
    sweep = jax.vmap(lambda r: gd.value_noise(tokens, key=KEY, rate=r))(rates)
    np.testing.assert_array_equal(sweep[3], eager)
    keys = jax.random.split(KEY, 3)
    assert jax.vmap(lambda k: gd.value_noise(tokens, key=k, rate=0.1))(keys).shape == (3, 4, 64)
    counter = {"n": 0}

    @jax.jit
    def noisy(k, r):
        counter["n"] += 1
        return gd.value_noise(tokens, key=k, rate=r)

    noisy(KEY, 0.1)
    noisy(jax.random.key(3), 0.05)
    assert counter["n"] == 1
    np.testing.assert_array_equal(jax.jit(gd.time_reversal)(tokens), gd.time_reversal(tokens))
    np.testing.assert_array_equal(jax.vmap(gd.time_reversal)(tokens), gd.time_reversal(tokens))
    a, b = tokens[0], tokens[1]
    alphas = jnp.linspace(0, 1, 101)
    path = jax.vmap(lambda al: gd.interpolate_tokens(a, b, al))(alphas)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_array_equal(jax.jit(gd.interpolate_tokens)(a, b, alphas[30]), path[30])


def test_codebook_noise_rows():
    v = _values(KEY, (400,))
    cb = gd.kmeans_codebook(v, num_codes=4, key=KEY, num_inits=1)
    eager = gd.codebook_noise(v, cb, key=KEY, rate=0.2)
    jitted = eqx.filter_jit(lambda x, c, k, r: gd.codebook_noise(x, c, key=k, rate=r))
    np.testing.assert_array_equal(jitted(v, cb, KEY, 0.2), eager)
    sweep = jax.vmap(lambda r: gd.codebook_noise(v, cb, key=KEY, rate=r))(jnp.array([0.0, 0.2]))
    np.testing.assert_array_equal(sweep[0], cb.encode(v))
    np.testing.assert_array_equal(sweep[1], eager)
