"""Levina–Bickel intrinsic dimension and the capacity scaling fit against independent oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.neighbors import NearestNeighbors

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


def test_duplicates_are_dropped_and_counted():
    x = _swiss_roll(400, 3)
    x = np.concatenate([x, x[:5]])  # 10 points now have a zero-distance neighbor
    res = intrinsic_dimension(x, k_max=10)
    assert int(res.num_dropped) == 10
    assert np.isfinite(float(res.dimension))


def test_intrinsic_dimension_errors():
    with pytest.raises(ValueError, match="more than k_max"):
        intrinsic_dimension(jnp.ones((10, 2)), k_max=30)
    with pytest.raises(ValueError, match="k_min"):
        intrinsic_dimension(jnp.ones((50, 2)), k_min=1)
    with pytest.raises(ValueError, match="rank 2"):
        intrinsic_dimension(jnp.ones(50))


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
    jax.block_until_ready(capacity_scaling_fit(s, s))
