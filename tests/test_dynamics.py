"""geomtax.dynamics against independent oracles: scipy solve_ivp, closed forms, numpy, sklearn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import geomtax.dynamics as gd
from geomtax.dynamics import _dataset

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0


def lorenz_rhs(t, s):
    x, y, z = s
    return [SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z]


def ring_rhs(eps, m):
    def f(t, s):
        s = s.reshape(m, 3)
        x, y, z = s[:, 0], s[:, 1], s[:, 2]
        lap = np.roll(x, -1) - 2 * x + np.roll(x, 1)
        return np.stack(
            [SIGMA * (y - x) + eps * lap, x * (RHO - z) - y, x * y - BETA * z], axis=-1
        ).ravel()

    return f


# Shared shapes/options so that the diffrax programs compile once per test module.
LORENZ64 = dict(num_sequences=2, seq_len=21, t1=2.0, rtol=1e-10, atol=1e-10, dtype=jnp.float64)
COUPLED64 = dict(LORENZ64, seq_len=60, num_oscillators=3, eps=0.1)
LORENZ32 = dict(num_sequences=8, seq_len=64, t1=2.0)


@pytest.fixture(scope="module")
def small_lorenz():
    """8 float32 Lorenz trajectories on t in [0, 2] (shared to pay the compile once)."""
    return gd.lorenz(key=jax.random.key(7), **LORENZ32)


# ---------------------------------------------------------------------------- generators


def test_lorenz_matches_solve_ivp_float64(x64):
    tr = gd.lorenz(key=jax.random.key(0), **LORENZ64)
    assert tr.states.dtype == jnp.float64 and bool(tr.valid.all())
    ts = np.asarray(tr.ts)
    np.testing.assert_allclose(ts, np.linspace(0, 2, 21), atol=1e-12)
    for i in range(2):
        y0 = [float(tr.params[k][i]) for k in ("x0", "y0", "z0")]
        ref = solve_ivp(lorenz_rhs, (0, 2), y0, t_eval=ts, rtol=1e-12, atol=1e-12, method="DOP853")
        got = np.asarray(tr.states[i])
        scale = np.abs(ref.y.T).max(axis=0)  # per-coordinate scale
        assert np.max(np.abs(got - ref.y.T) / scale) < 1e-4
        np.testing.assert_array_equal(tr.observed[i], tr.states[i, :, 0])


def test_lorenz_float32_defaults_track_solve_ivp(small_lorenz):
    # Default tolerances (1e-6) in float32: chaos amplifies rounding, so a looser bound on [0, 2].
    tr = small_lorenz
    ts = np.asarray(tr.ts, np.float64)
    for i in range(3):
        y0 = [float(tr.params[k][i]) for k in ("x0", "y0", "z0")]
        ref = solve_ivp(lorenz_rhs, (0, 2), y0, t_eval=ts, rtol=1e-12, atol=1e-12, method="DOP853")
        err = np.abs(np.asarray(tr.observed[i], np.float64) - ref.y[0]) / np.abs(ref.y[0]).max()
        assert err.max() < 1e-3


def test_lorenz_initial_conditions_follow_reference_ranges(small_lorenz):
    p = small_lorenz.params
    assert np.all(np.abs(np.asarray(p["x0"])) <= 15) and np.all(np.abs(np.asarray(p["y0"])) <= 15)
    assert np.all((np.asarray(p["z0"]) >= 10) & (np.asarray(p["z0"]) <= 40))
    np.testing.assert_array_equal(small_lorenz.observed[:, 0], p["x0"])
    assert not bool(small_lorenz.failed.any()) and int(small_lorenz.num_redraws.sum()) == 0


def test_lorenz_integral_identity(small_lorenz):
    # Exact consequence of dz/dt = xy - beta z:  z(T) - z(0) = int_0^T (xy - beta z) dt.
    from scipy.integrate import simpson

    s = np.asarray(small_lorenz.states, np.float64)
    ts = np.asarray(small_lorenz.ts, np.float64)
    x, y, z = s[..., 0], s[..., 1], s[..., 2]
    lhs = z[:, -1] - z[:, 0]
    rhs = simpson(x * y - BETA * z, x=ts, axis=-1)
    np.testing.assert_allclose(rhs, lhs, atol=0.05 * np.abs(lhs).max() + 0.5)


def test_lorenz_symmetry_x_y_to_minus_x_minus_y():
    # (x, y, z) -> (-x, -y, z) maps Lorenz solutions to solutions; fixed ICs via point ranges.
    a = gd.lorenz(
        key=jax.random.key(0),
        num_sequences=1,
        seq_len=64,
        t1=2.0,
        xy_range=(5, 5),
        z_range=(20, 20),
    )
    b = gd.lorenz(
        key=jax.random.key(1),
        num_sequences=1,
        seq_len=64,
        t1=2.0,
        xy_range=(-5, -5),
        z_range=(20, 20),
    )
    np.testing.assert_allclose(a.observed, -b.observed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.states[..., 2], b.states[..., 2], rtol=1e-5, atol=1e-5)


def test_coupled_lorenz_matches_solve_ivp_and_concatenates(x64):
    m, eps = 3, 0.1
    tr = gd.coupled_lorenz(key=jax.random.key(3), **COUPLED64)
    seg = 60 // m + 1
    assert tr.states.shape == (2, seg, 3 * m) and tr.observed.shape == (2, 60)
    ts = np.linspace(0, 2, seg)
    for i in range(2):
        y0 = np.stack([tr.params[k][i] for k in ("x0", "y0", "z0")], axis=-1).ravel()
        ref = solve_ivp(ring_rhs(eps, m), (0, 2), y0, t_eval=ts, rtol=1e-12, atol=1e-12)
        ref = ref.y.T  # (seg, 3m)
        scale = np.abs(ref).max(axis=0)
        assert np.max(np.abs(np.asarray(tr.states[i]) - ref) / scale) < 1e-4
        want = np.concatenate([ref[:, 3 * j] for j in range(m)])[:60]
        np.testing.assert_allclose(tr.observed[i], want, rtol=1e-4, atol=1e-4 * scale.max())
    np.testing.assert_array_equal(tr.segment_ids, np.repeat(np.arange(m), seg)[:60])
    np.testing.assert_allclose(tr.ts, np.tile(ts, m)[:60], atol=1e-12)


def test_coupled_synchronised_manifold_is_invariant(x64):
    # Identical oscillators stay identical (the coupling term vanishes) and equal plain Lorenz.
    kw = dict(key=jax.random.key(0), xy_range=(3, 3), z_range=(20, 20))
    c = gd.coupled_lorenz(**kw, **COUPLED64)
    single = gd.lorenz(**kw, **LORENZ64)
    s = np.asarray(c.states[0]).reshape(21, 3, 3)
    np.testing.assert_allclose(s[:, 1], s[:, 0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s[:, 2], s[:, 0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(c.observed[0, :21], single.observed[0], rtol=1e-6, atol=1e-6)


def test_damped_oscillator_closed_form_solves_its_ode(x64):
    d = gd.damped_oscillator(key=jax.random.key(1), num_sequences=4, seq_len=128, dtype=jnp.float64)
    ts = np.asarray(d.ts)
    np.testing.assert_allclose(ts, np.linspace(0, 4, 128, endpoint=False), atol=1e-12)
    for i in range(4):
        g, w = float(d.params["gamma"][i]), float(d.params["omega"][i])
        a, ph = float(d.params["amplitude"][i]), float(d.params["phase"][i])
        assert 0.5 <= a <= 2 and 0.2 <= g <= 2 and 2 <= w <= 20 and 0 <= ph <= 2 * np.pi
        y0 = np.asarray(d.states[i, 0])
        np.testing.assert_allclose(y0, [a * np.cos(ph), -a * (g * np.cos(ph) + w * np.sin(ph))])
        ref = solve_ivp(
            lambda t, s: [s[1], -2 * g * s[1] - (g * g + w * w) * s[0]],
            (0, ts[-1]),
            y0,
            t_eval=ts,
            rtol=1e-11,
            atol=1e-12,
        )
        np.testing.assert_allclose(d.states[i], ref.y.T, atol=1e-7)


def test_damped_oscillator_ode_method_matches_closed_form():
    kw = dict(key=jax.random.key(2), num_sequences=4, seq_len=64)
    closed = gd.damped_oscillator(**kw)
    ode = gd.damped_oscillator(method="ode", rtol=1e-7, atol=1e-7, **kw)
    np.testing.assert_allclose(ode.observed, closed.observed, atol=1e-4)
    assert bool(ode.valid.all())


def test_damped_oscillator_energy_is_non_increasing():
    d = gd.damped_oscillator(key=jax.random.key(3), num_sequences=16, seq_len=256)
    x, v = np.asarray(d.states[..., 0], np.float64), np.asarray(d.states[..., 1], np.float64)
    k2 = np.asarray(d.params["gamma"]) ** 2 + np.asarray(d.params["omega"]) ** 2
    energy = 0.5 * v**2 + 0.5 * k2[:, None] * x**2
    assert np.all(np.diff(energy, axis=1) <= 1e-5 * energy[:, :-1])
    # and the decay rate is bounded by 2 gamma: E(t) >= E(0) exp(-4 gamma t) (since dE/dt >= -4gE).
    g = np.asarray(d.params["gamma"])[:, None]
    assert np.all(energy >= energy[:, :1] * np.exp(-4 * g * np.asarray(d.ts)[None]) * (1 - 1e-4))


def test_waveform_matches_formula_and_ranges():
    w = gd.waveform(key=jax.random.key(4), num_sequences=32, seq_len=128)
    ts = np.linspace(0, 1, 128, endpoint=False)
    j = np.asarray(w.params["num_components"])
    assert set(j.tolist()) <= {3, 4, 5} and len(set(j.tolist())) > 1
    f, a, p = (np.asarray(w.params[k], np.float64) for k in ("frequency", "amplitude", "phase"))
    want = np.einsum("nj,njt->nt", a, np.sin(2 * np.pi * f[..., None] * ts + p[..., None]))
    np.testing.assert_allclose(w.observed, want, atol=2e-4)
    on = np.arange(5)[None] < j[:, None]
    assert np.all((f[on] >= 0.5) & (f[on] <= 50) & (a[on] >= 0.1) & (a[on] <= 1))
    assert np.all(f[~on] == 0) and w.states is None


@pytest.mark.parametrize("name", ["waveform", "damped_oscillator"])
def test_same_key_same_data_different_key_differs(name):
    a = gd.generate(name, key=jax.random.key(0), num_sequences=4, seq_len=32)
    b = gd.generate(name, key=jax.random.key(0), num_sequences=4, seq_len=32)
    c = gd.generate(name, key=jax.random.key(1), num_sequences=4, seq_len=32)
    np.testing.assert_array_equal(a.observed, b.observed)
    assert not np.allclose(a.observed, c.observed)
    # batching does not change the data (per-sequence keys)
    d = gd.generate(name, key=jax.random.key(0), num_sequences=4, seq_len=32, chunk_size=3)
    np.testing.assert_allclose(a.observed, d.observed, rtol=1e-6, atol=1e-6)


def test_batch_size_is_a_deprecated_alias_of_chunk_size():
    """0.2 renamed the generators' batch_size (rows integrated at once) to chunk_size."""
    key = jax.random.key(3)
    kw = dict(key=key, num_sequences=5, seq_len=16, t1=1.0)
    new = gd.lorenz(**kw, chunk_size=2)
    with pytest.warns(DeprecationWarning, match=r"lorenz\(batch_size=...\) is deprecated"):
        old = gd.lorenz(**kw, batch_size=2)
    np.testing.assert_array_equal(new.observed, old.observed)
    np.testing.assert_array_equal(new.states, old.states)
    with pytest.warns(DeprecationWarning, match="use chunk_size="):
        old = gd.generate("lorenz", **kw, batch_size=2)
    np.testing.assert_array_equal(new.observed, old.observed)
    y0, ts = jnp.ones((3, 1)), jnp.linspace(0.0, 1.0, 4)
    with pytest.warns(DeprecationWarning, match=r"integrate\(batch_size"):
        old = gd.integrate(lambda t, y, args: -y, y0, ts, batch_size=2)
    np.testing.assert_array_equal(gd.integrate(lambda t, y, a: -y, y0, ts, chunk_size=2).ys, old.ys)
    ds = dict(seed=1, num_train=4, num_eval=3, seq_len=16, cache_dir=False)
    with pytest.warns(DeprecationWarning, match=r"build_dataset\(batch_size"):
        old = gd.build_dataset("waveform", **ds, batch_size=2)
    new = gd.build_dataset("waveform", **ds, chunk_size=2)
    np.testing.assert_array_equal(new.train_values, old.train_values)
    np.testing.assert_array_equal(new.eval_tokens, old.eval_tokens)
    with pytest.raises(TypeError, match="both batch_size= .deprecated. and chunk_size="):
        gd.simulate(gd.get_system("waveform"), key=key, num_sequences=2, batch_size=1, chunk_size=1)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        gd.waveform(key=key, num_sequences=2, chunk_size=0)


def test_lorenz_same_key_same_data(small_lorenz):
    again = gd.lorenz(key=jax.random.key(7), **LORENZ32)
    other = gd.lorenz(key=jax.random.key(8), **LORENZ32)
    np.testing.assert_array_equal(small_lorenz.observed, again.observed)
    assert not np.allclose(small_lorenz.observed, other.observed)


# ---------------------------------------------------------------------------- failures


def _blowup(t, y, args):
    return y**2  # x(t) = x0 / (1 - x0 t): blows up at t = 1/x0 for x0 > 0


gd.register_system(
    "test_blowup",
    _blowup,
    state_dim=1,
    t1=1.5,
    sample_initial=lambda k: jax.random.uniform(k, (1,), minval=-1.0, maxval=1.0),
    overwrite=True,
)


def test_failed_rows_are_redrawn_and_flagged():
    # x0 > 1/1.5 blows up before t1; a fresh draw succeeds with probability 5/6.
    tr = gd.generate("test_blowup", key=jax.random.key(0), num_sequences=64, seq_len=16)
    x0 = np.asarray(tr.params["y0"][:, 0])
    assert bool(tr.valid.all()) and np.all(np.isfinite(np.asarray(tr.observed)))
    assert 0 < int(tr.failed.sum()) < 64
    np.testing.assert_array_equal(tr.failed, np.asarray(tr.num_redraws) > 0)
    assert np.all(x0 < 1 / 1.5 + 1e-3)  # every kept initial condition is a solvable one
    ts = np.linspace(0, 1.5, 16)
    np.testing.assert_allclose(
        tr.observed, x0[:, None] / (1 - x0[:, None] * ts[None]), rtol=1e-3, atol=1e-4
    )


def test_rows_failing_every_retry_are_nan_and_flagged():
    tr = gd.generate(
        "test_blowup", key=jax.random.key(0), num_sequences=64, seq_len=16, max_retries=0
    )
    x0 = np.asarray(tr.params["y0"][:, 0])
    bad = ~np.asarray(tr.valid)
    assert bad.any() and np.array_equal(bad, np.asarray(tr.failed))
    assert np.all(x0[bad] > 0.6) and np.all(x0[~bad] < 0.7)
    assert np.all(np.isnan(np.asarray(tr.observed)[bad]))
    assert np.all(np.isfinite(np.asarray(tr.observed)[~bad]))


def test_register_system_rejects_bad_definitions():
    with pytest.raises(ValueError, match="built-in"):
        gd.register_system("lorenz", _blowup, state_dim=1, t1=1.0, sample_initial=jnp.zeros)
    with pytest.raises(ValueError, match="already registered"):
        gd.register_system("test_blowup", _blowup, state_dim=1, t1=1.0, sample_initial=jnp.zeros)
    with pytest.raises(ValueError, match="observe index 3"):
        gd.register_system(
            "x_bad", _blowup, state_dim=2, t1=1.0, observe=3, sample_initial=jnp.zeros
        )
    with pytest.raises(ValueError, match="t1 > t0"):
        gd.register_system("x_bad", _blowup, state_dim=1, t1=0.0, sample_initial=jnp.zeros)
    sys_ = gd.register_system(
        "x_badshape", _blowup, state_dim=2, t1=1.0, sample_initial=lambda k: jnp.zeros(3)
    )
    with pytest.raises(ValueError, match=r"returns shape \(3,\), expected \(2,\)"):
        gd.simulate(sys_, key=jax.random.key(0), num_sequences=2, seq_len=4)


def test_generators_reject_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown system 'henon'"):
        gd.generate("henon", key=key, num_sequences=2)
    with pytest.raises(ValueError, match="num_sequences must be a positive integer, got 0"):
        gd.generate("lorenz", key=key, num_sequences=0)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got -5"):
        gd.waveform(key=key, num_sequences=2, seq_len=-5)
    with pytest.raises(ValueError, match="num_oscillators must be in 1..3, got 4"):
        gd.coupled_lorenz(key=key, num_sequences=2, num_oscillators=4)
    with pytest.raises(ValueError, match="rtol and atol must be > 0"):
        gd.lorenz(key=key, num_sequences=2, rtol=0.0)
    with pytest.raises(ValueError, match="unknown method 'euler'"):
        gd.damped_oscillator(key=key, num_sequences=2, method="euler")
    with pytest.raises(TypeError, match="key is required"):
        gd.lorenz(key=None, num_sequences=2)
    with pytest.raises(TypeError):
        gd.generate("waveform", key=key, num_sequences=2, bogus=1)


# ---------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("rule", ["floor", "reference"])
def test_uniform_bins_match_numpy_and_round_trip(rule):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 40)).astype(np.float32) * 7 + 3
    tok = gd.uniform_bins(jnp.asarray(train), num_bins=256, rule=rule)
    lo, hi = train.min(), train.max()
    np.testing.assert_allclose([tok.low[0], tok.high[0]], [lo, hi])
    v = rng.uniform(lo - 1, hi + 1, size=5000).astype(np.float32)
    u = np.clip((v - lo) / (hi - lo), 0, 1)
    want = (
        np.minimum(np.floor(u * 256), 255)
        if rule == "floor"
        else np.clip((u * 255).astype(int), 0, 255)
    )
    got = np.asarray(tok.encode(jnp.asarray(v)))
    assert got.dtype == np.int32
    # float32 vs float64 rounding can move a value sitting on a bin edge by one bin
    assert np.mean(got == want) > 0.999 and np.all(np.abs(got - want) <= 1)
    inside = (v >= lo) & (v <= hi)
    width = (hi - lo) / (256 if rule == "floor" else 255)
    err = np.abs(np.asarray(tok.decode(tok.encode(jnp.asarray(v)))) - v)[inside]
    assert err.max() <= width / 2 * (1 + 1e-3)
    np.testing.assert_allclose(tok.bin_width[0], width, rtol=1e-5)
    np.testing.assert_allclose(tok.normalize(jnp.asarray(v)), u, atol=1e-6)
    assert int(tok.encode(jnp.asarray(hi))) == 255 and int(tok.encode(jnp.asarray(lo))) == 0


def test_uniform_bins_segments_use_their_own_range(tmp_path):
    rng = np.random.default_rng(1)
    seg = np.repeat(np.arange(3), 4)  # 12 positions, 3 segments
    train = rng.normal(size=(20, 12)) * (1 + 10 * seg)[None]
    tok = gd.uniform_bins(jnp.asarray(train, jnp.float32), num_bins=16, segment_ids=seg)
    for s in range(3):
        np.testing.assert_allclose(tok.low[s], train[:, seg == s].min(), rtol=1e-6)
        np.testing.assert_allclose(tok.high[s], train[:, seg == s].max(), rtol=1e-6)
    toks = np.asarray(tok.encode(jnp.asarray(train, jnp.float32)))
    assert toks.min() == 0 and toks.max() == 15
    for s in range(3):  # every segment spans the full vocabulary
        assert toks[:, seg == s].min() == 0 and toks[:, seg == s].max() == 15
    back = gd.UniformBins.load(tok.save(tmp_path / "tok.npz"))
    np.testing.assert_array_equal(back.encode(jnp.asarray(train, jnp.float32)), toks)
    with pytest.raises(ValueError, match="last axis of length 12"):
        tok.encode(jnp.zeros((2, 5)))


def test_tokenizers_save_load_without_pickle(tmp_path, getkey):
    v = jax.random.normal(getkey(), (2000,))
    tok = gd.uniform_bins(v, num_bins=32, rule="reference")
    p = tok.save(tmp_path / "u.npz")
    with np.load(p, allow_pickle=False) as f:
        assert "low" in f.files
    back = gd.UniformBins.load(p)
    assert back.num_bins == 32 and back.rule == "reference"
    np.testing.assert_array_equal(back.encode(v), tok.encode(v))
    cb = gd.kmeans_codebook(v, num_codes=8, key=getkey())
    back_cb = gd.KMeansCodebook.load(cb.save(tmp_path / "cb.npz"))
    np.testing.assert_array_equal(back_cb.centroids, cb.centroids)
    np.testing.assert_array_equal(back_cb.encode(v), cb.encode(v))
    with pytest.raises(ValueError, match="not a 'uniform_bins'"):
        gd.UniformBins.load(tmp_path / "cb.npz")


def test_kmeans_codebook_nearest_centroid_and_mse_decreases_with_k():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(2)
    v = np.concatenate([rng.normal(-5, 1, 1000), rng.normal(4, 2, 1000)]).astype(np.float32)
    mses = []
    for i, k in enumerate((2, 8, 32)):
        cb = gd.kmeans_codebook(jnp.asarray(v), num_codes=k, key=jax.random.key(i))
        c = np.asarray(cb.centroids)
        assert np.all(np.diff(c) > 0)
        nearest = np.argmin(np.abs(v[:, None] - c[None]), axis=1)
        np.testing.assert_array_equal(cb.encode(jnp.asarray(v)), nearest)
        mse = float(cb.reconstruction_mse(jnp.asarray(v)))
        np.testing.assert_allclose(mse, np.mean((v - c[nearest]) ** 2), rtol=1e-5)
        np.testing.assert_allclose(float(cb.train_mse), mse, rtol=1e-6)
        sk = KMeans(n_clusters=k, n_init=3, random_state=0).fit(v[:, None].astype(np.float64))
        assert mse <= 1.1 * sk.inertia_ / v.size + 1e-6  # as good as sklearn up to 10%
        mses.append(mse)
    assert all(b < a for a, b in zip(mses, mses[1:], strict=False))


def test_kmeans_codebook_subsamples(getkey):
    v = jax.random.normal(getkey(), (4000,))
    cb = gd.kmeans_codebook(v, num_codes=8, key=getkey(), max_samples=2000)  # fits on 2000
    np.testing.assert_allclose(float(cb.low), float(v.min()))
    np.testing.assert_allclose(float(cb.train_mse), float(cb.reconstruction_mse(v)), rtol=1e-6)
    assert float(cb.train_mse) < 0.05  # optimal 8-level Gaussian quantizer (Max 1960): 0.03454


def test_tokenizers_reject_bad_input():
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2, got 1"):
        gd.uniform_bins(jnp.arange(4.0), num_bins=1)
    with pytest.raises(ValueError, match=r"non-finite value\(s\); first at index \(2,\)"):
        gd.uniform_bins(jnp.array([0.0, 1.0, jnp.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        gd.kmeans_codebook(jnp.array([0.0, jnp.inf]), num_codes=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="exceeds the number of distinct values"):
        gd.kmeans_codebook(jnp.array([0.0, 0.0, 1.0, 1.0]), num_codes=3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="constant data"):
        gd.uniform_bins(jnp.ones(5))
    with pytest.raises(ValueError, match="unknown rule"):
        gd.uniform_bins(jnp.arange(4.0), rule="quantile")
    with pytest.raises(TypeError, match="floating"):
        gd.uniform_bins(jnp.arange(4))


# ---------------------------------------------------------------------------- perturbations


def test_value_noise_statistics_match_reference_definition():
    n, rate = 200_000, 0.05
    t = jnp.full((n,), 128, jnp.int32)
    out = np.asarray(gd.value_noise(t, key=jax.random.key(0), rate=rate))
    # oracle: P(changed) = rate * P(trunc(N(0, 25.6)) != 0) = rate * (1 - P(|e| < 1))
    from scipy.stats import norm

    p_change = rate * (1 - (norm.cdf(1 / 25.6) - norm.cdf(-1 / 25.6)))
    frac = np.mean(out != 128)
    assert abs(frac - p_change) < 5 * np.sqrt(p_change / n)
    full = np.asarray(gd.value_noise(t, key=jax.random.key(1), rate=1.0)) - 128
    ref = np.trunc(np.random.default_rng(0).normal(0, 25.6, n)).clip(-128, 127)
    np.testing.assert_allclose(full.std(), ref.std(), rtol=0.02)
    assert abs(full.mean()) < 0.3
    # clipping into [0, K) and special tokens (PAD = 256, MASK = 257) untouched
    edge = jnp.array([0, 255, 256, 257] * 1000, jnp.int32)
    out = np.asarray(gd.value_noise(edge, key=jax.random.key(2), rate=1.0))
    assert out.min() >= 0 and np.all(out[2::4] == 256) and np.all(out[3::4] == 257)
    assert np.all(out[0::4] <= 255) and np.all(out[1::4] <= 255)


def test_time_reversal_and_interpolation():
    t = jnp.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(gd.time_reversal(t), np.asarray(t)[:, ::-1])
    np.testing.assert_array_equal(gd.time_reversal(gd.time_reversal(t)), t)
    a, b = jnp.array([0, 10, 255]), jnp.array([255, 20, 0])
    np.testing.assert_array_equal(gd.interpolate_tokens(a, b, 0.0), a)
    np.testing.assert_array_equal(gd.interpolate_tokens(a, b, 1.0), b)
    np.testing.assert_array_equal(
        gd.interpolate_tokens(a, b, 0.3), np.round(0.7 * np.asarray(a) + 0.3 * np.asarray(b))
    )


def test_codebook_noise_perturbs_in_value_space(getkey):
    v = jax.random.uniform(getkey(), (2000,))
    cb = gd.kmeans_codebook(v, num_codes=8, key=getkey())
    clean = cb.encode(v)
    np.testing.assert_array_equal(gd.codebook_noise(v, cb, key=getkey(), rate=0.0), clean)
    noisy = np.asarray(gd.codebook_noise(v, cb, key=getkey(), rate=0.1))
    changed = np.mean(noisy != np.asarray(clean))
    # sigma = 0.1 of the range = 0.8 code widths: about half the selected positions change code
    assert 0.03 < changed < 0.09
    assert np.abs(noisy - np.asarray(clean)).max() <= 7


def test_perturbations_reject_bad_rates():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got 1.5"):
        gd.value_noise(jnp.zeros(3, jnp.int32), key=jax.random.key(0), rate=1.5)
    with pytest.raises(ValueError, match="same shape"):
        gd.interpolate_tokens(jnp.zeros(3), jnp.zeros(4), 0.5)
    with pytest.raises(ValueError, match="time axis"):
        gd.time_reversal(jnp.zeros(()))


# ---------------------------------------------------------------------------- datasets


def test_build_dataset_splits_tokens_and_cache_hit(tmp_path, monkeypatch):
    kw = dict(preset="tiny", num_train=32, num_eval=8, seq_len=64, cache_dir=tmp_path)
    ds = gd.build_dataset("damped_oscillator", seed=320, **kw)
    assert not ds.from_cache and ds.train_tokens.shape == (32, 64)
    assert ds.eval_values.shape == (8, 64) and ds.config["eval_seed"] == 1320
    # tokenizer fitted on the train split only; eval reuses the training range
    np.testing.assert_allclose(ds.tokenizer.low[0], np.asarray(ds.train_values).min())
    np.testing.assert_array_equal(ds.eval_tokens, ds.tokenizer.encode(ds.eval_values))
    np.testing.assert_allclose(ds.train_targets, ds.tokenizer.normalize(ds.train_values))
    # train/eval come from the documented seeds
    ref = gd.damped_oscillator(key=jax.random.key(1320), num_sequences=8, seq_len=64)
    np.testing.assert_array_equal(ds.eval_values, ref.observed)

    def boom(*a, **k):
        raise AssertionError("regenerated on a cache hit")

    monkeypatch.setattr(_dataset, "generate", boom)
    again = gd.build_dataset("damped_oscillator", seed=320, **kw)
    assert again.from_cache and again.cache_path == ds.cache_path
    for name in ("train_values", "eval_values", "train_tokens", "eval_tokens", "train_targets"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ds, name))
    for k in ds.train_params:
        np.testing.assert_array_equal(again.train_params[k], ds.train_params[k])
    with pytest.raises(AssertionError, match="regenerated"):  # a new config is a cache miss
        gd.build_dataset("damped_oscillator", seed=321, **kw)


def test_build_dataset_with_key_and_bad_input(tmp_path):
    kw = dict(preset="tiny", num_train=16, num_eval=4, seq_len=32, cache_dir=False)
    a = gd.build_dataset("waveform", key=jax.random.key(5), **kw)
    b = gd.build_dataset("waveform", key=jax.random.key(5), **kw)
    assert a.cache_path is None
    np.testing.assert_array_equal(a.train_tokens, b.train_tokens)
    with pytest.raises(ValueError, match="exactly one of seed"):
        gd.build_dataset("waveform", **kw)
    with pytest.raises(ValueError, match="unknown preset"):
        gd.build_dataset("waveform", seed=1, preset="huge")
    with pytest.raises(ValueError, match="unknown system"):
        gd.build_dataset("henon", seed=1)
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        gd.build_dataset("waveform", seed=1, num_train=0)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2"):
        gd.build_dataset("waveform", seed=1, num_bins=1)


@pytest.mark.slow
def test_build_dataset_coupled_lorenz_uses_per_oscillator_ranges(tmp_path):
    ds = gd.build_dataset(
        "coupled_lorenz",
        seed=320,
        preset="tiny",
        system_options={"num_oscillators": 3},
        cache_dir=tmp_path,
    )
    seg = np.asarray(ds.segment_ids)
    assert ds.tokenizer.low.shape == (3,)
    for s in range(3):
        vals = np.asarray(ds.train_values)[:, seg == s]
        np.testing.assert_allclose(ds.tokenizer.low[s], vals.min())
        assert np.asarray(ds.train_tokens)[:, seg == s].max() == 255


@pytest.mark.slow
def test_lorenz_attractor_statistics_full_horizon():
    # Long-time averages on the attractor: <x> ~ 0 by symmetry, <xy> = beta <z> (from dz/dt),
    # <z> ~ 23.5 (literature value for the classic parameters, about 23.5-23.6).
    tr = gd.lorenz(key=jax.random.key(0), num_sequences=64)
    s = np.asarray(tr.states, np.float64)[:, 100:]  # drop the transient
    x, y, z = s[..., 0], s[..., 1], s[..., 2]
    assert abs(x.mean()) < 1.0
    np.testing.assert_allclose((x * y).mean(), BETA * z.mean(), rtol=0.05)
    assert 22.5 < z.mean() < 24.5
    assert bool(tr.valid.all())
