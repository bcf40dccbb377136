"""Levina–Bickel intrinsic dimension and the capacity scaling fit against independent oracles."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.neighbors import NearestNeighbors

from geomtax import Status, StatusError
from geomtax.rd import capacity_scaling_fit, intrinsic_dimension


def _swiss_roll(n, seed):
    rng = np.random.default_rng(seed)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    h = 21 * rng.uniform(size=n)
    return np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)


def _torus(n, d, seed):
    """Flat d-torus in R^(2d): (cos t_i, sin t_i) for each angle, then a random rotation."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, size=(n, d))
    x = np.concatenate([np.cos(t), np.sin(t)], axis=1)
    q, _ = np.linalg.qr(rng.normal(size=(2 * d, 2 * d)))
    return x @ q


def _levina_bickel_numpy(x, k_min, k_max):
    """Independent oracle: scikit-learn neighbors + NumPy, median over points then over k."""
    dist, _ = NearestNeighbors(n_neighbors=k_max + 1).fit(x).kneighbors(x)
    t = dist[:, 1:]
    per_k = []
    for k in range(k_min, k_max + 1):
        s = np.sum(np.log(t[:, k - 1 : k] / t[:, : k - 1]), axis=1)
        per_k.append(np.median((k - 1) / s))
    return np.median(per_k), np.array(per_k)


def test_swiss_roll_is_two_dimensional():
    x = _swiss_roll(1500, 0)
    res = intrinsic_dimension(x, block_size=256)
    assert float(res.dimension) == pytest.approx(2.0, rel=0.1)
    oracle, per_k = _levina_bickel_numpy(x, 3, 30)
    np.testing.assert_allclose(np.asarray(res.per_k), per_k, rtol=1e-4)
    assert float(res.dimension) == pytest.approx(oracle, rel=1e-4)
    assert int(res.num_dropped) == 0


def test_three_torus_in_six_dimensions():
    x = _torus(2000, 3, 1)
    res = intrinsic_dimension(x, k_min=5, k_max=20, block_size=None)
    assert float(res.dimension) == pytest.approx(3.0, rel=0.1)


@pytest.mark.slow
def test_five_torus_larger_sample():
    x = _torus(8000, 5, 2)
    res = intrinsic_dimension(x, block_size=1024)
    assert float(res.dimension) == pytest.approx(5.0, rel=0.1)


def test_duplicates_are_dropped_and_counted(x64):
    x = _swiss_roll(400, 3)
    xd = np.concatenate([x, x[:5]])  # 5 exact copies: removed, one copy of each row kept
    res = intrinsic_dimension(xd, k_max=10)
    assert int(res.num_dropped) == 5
    assert float(res.dimension) == pytest.approx(_levina_bickel_numpy(x, 3, 10)[0], rel=1e-8)


def test_intrinsic_dimension_errors():
    with pytest.raises(ValueError, match="more than k_max"):
        intrinsic_dimension(jnp.ones((10, 2)), k_max=30)
    with pytest.raises(ValueError, match="k_min"):
        intrinsic_dimension(jnp.ones((50, 2)), k_min=1)
    with pytest.raises(ValueError, match="rank 2"):
        intrinsic_dimension(jnp.ones(50))
    for bad in (2.5, True, "10"):
        with pytest.raises(TypeError, match="k_max"):
            intrinsic_dimension(jnp.ones((50, 2)), k_max=bad)
    with pytest.raises(TypeError, match="real numbers"):
        intrinsic_dimension(jnp.ones((50, 2), jnp.complex64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_duplicated_data_gives_the_deduplicated_estimate(dtype):
    # Every row twice: the rounding residue of the Gram-form distance (6e-8 in float64, 1e-3
    # in float32) kept duplicates in, pulling the estimate down. Oracle: scikit-learn
    # neighbours on the unique rows.
    x = np.random.default_rng(0).standard_normal((300, 3))
    want = _levina_bickel_numpy(x.astype(dtype).astype(np.float64), 3, 10)[0]
    with jax.enable_x64(dtype == np.float64):
        res = intrinsic_dimension(np.concatenate([x, x[::-1]]).astype(dtype), k_max=10)
    assert res.status_name == "ok" and int(res.num_dropped) == 300
    assert float(res.dimension) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 1e4), (1e3, 1e6), (1e-30, 0.0), (1e30, 0.0)])
def test_translation_and_scale_invariant_float32(scale, offset):
    # At offset 1e4 the old code returned NaN with every row dropped. Oracle: scikit-learn on
    # the same float32 array, centred in float64.
    x = _swiss_roll(800, 5)
    moved = (x * scale + offset).astype(np.float32)
    ref = moved.astype(np.float64)
    want = _levina_bickel_numpy((ref - ref.mean(0)) / np.abs(ref - ref.mean(0)).max(), 3, 30)[0]
    res = intrinsic_dimension(moved)
    assert res.status_name == "ok" and int(res.num_dropped) == 0
    assert float(res.dimension) == pytest.approx(want, rel=1e-3)
    base = float(intrinsic_dimension(x.astype(np.float32)).dimension)
    assert float(res.dimension) == pytest.approx(base, rel=2e-3 if offset < 1e6 else 2e-2)


def test_intrinsic_dimension_statuses():
    x = np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32)
    few = np.concatenate([x] * 10)  # 80 rows, 8 distinct, k_max = 10
    res = eqx.filter_jit(lambda a: intrinsic_dimension(a, k_max=10, throw=False))(few)
    assert res.status == Status.degenerate_input and np.isnan(float(res.dimension))
    with pytest.raises(StatusError, match="intrinsic_dimension: degenerate_input"):
        intrinsic_dimension(few, k_max=10)
    bad = np.random.default_rng(2).standard_normal((60, 3)).astype(np.float32)
    bad[4, 1] = np.inf
    out = jax.jit(lambda a: intrinsic_dimension(a, k_max=10, throw=False))(bad)
    assert out.status_name == "nonfinite_input" and np.isnan(float(out.dimension))
    ok = intrinsic_dimension(bad[5:], k_min=np.int64(3), k_max=np.int64(10))
    assert ok.status_name == "ok"


def test_scaling_fit_matches_linregress(x64):
    s = np.array([0.13e6, 0.5e6, 1.1e6, 2.0e6, 4.5e6, 8.0e6])
    rng = np.random.default_rng(0)
    d = 0.8 * s ** (-0.9) * np.exp(rng.normal(scale=0.2, size=s.shape))
    fit = capacity_scaling_fit(jnp.asarray(s), jnp.asarray(d), intrinsic_dim=2.06)
    ref = scipy.stats.linregress(np.log(s), np.log(1 / d))
    assert float(fit.slope) == pytest.approx(ref.slope, rel=1e-10)
    assert float(fit.intercept) == pytest.approx(ref.intercept, rel=1e-10)
    assert float(fit.r_squared) == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert float(fit.stderr) == pytest.approx(ref.stderr, rel=1e-10)
    assert float(fit.intercept_stderr) == pytest.approx(ref.intercept_stderr, rel=1e-10)
    assert float(fit.predicted_slope) == pytest.approx(2 / 2.06, rel=1e-12)
    assert float(fit.slope_gap) == pytest.approx(ref.slope - 2 / 2.06, rel=1e-10)


def test_scaling_fit_exact_power_law_and_no_dim():
    s = jnp.array([1.0, 10.0, 100.0, 1000.0])
    fit = capacity_scaling_fit(s, 2.0 * s ** (-2 / 3))
    assert float(fit.slope) == pytest.approx(2 / 3, rel=1e-5)
    assert float(fit.r_squared) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(float(fit.predicted_slope)) and np.isnan(float(fit.slope_gap))


def test_scaling_fit_errors():
    s = jnp.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="paired"):
        capacity_scaling_fit(s, jnp.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="at least 3"):
        capacity_scaling_fit(s[:2], s[:2])
    with pytest.raises(ValueError, match="positive"):
        capacity_scaling_fit(s, jnp.array([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="all equal"):
        capacity_scaling_fit(jnp.ones(3), s)
    with pytest.raises(ValueError, match="intrinsic_dim"):
        capacity_scaling_fit(s, s, intrinsic_dim=0.0)
    with pytest.raises(TypeError, match="real numbers"):
        capacity_scaling_fit(s.astype(jnp.complex64), s)
    jax.block_until_ready(capacity_scaling_fit(s, s))


def test_scaling_fit_statuses():
    s = jnp.array([1.0, 10.0, 100.0, 1000.0])
    d = 2.0 * s ** (-0.5)
    fit = jax.jit(lambda a: capacity_scaling_fit(s, a, throw=False))(d.at[1].set(jnp.nan))
    assert fit.status_name == "nonfinite_input" and np.isnan(float(fit.slope))
    fit = jax.jit(lambda a: capacity_scaling_fit(a, d, throw=False))(jnp.ones(4))
    assert fit.status_name == "degenerate_input" and np.isnan(float(fit.slope))
    with pytest.raises(StatusError, match="capacity_scaling_fit: degenerate_input"):
        capacity_scaling_fit(s, -d)
    # Equal distortions: the slope is 0 and R^2 is 0/0 (NaN), never a conventional 1.0.
    flat = capacity_scaling_fit(s, jnp.full(4, 0.3))
    assert flat.status_name == "ok" and float(flat.slope) == 0.0
    assert np.isnan(float(flat.r_squared))
    # Units do not matter (logs): capacities in 1e30 units give the same slope in float32.
    big = capacity_scaling_fit(s * 1e30, d * 1e-30)
    assert float(big.slope) == pytest.approx(0.5, rel=1e-5)
