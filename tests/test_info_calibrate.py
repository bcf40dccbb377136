"""pca / zscore against scikit-learn and scipy; the calibrated-MI protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import zscore as scipy_zscore
from sklearn.decomposition import PCA

import geomtax.info as gi


def test_pca_matches_scikit_learn(x64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 12)) @ rng.standard_normal((12, 12)) + 3.0
    want = PCA(n_components=5, svd_solver="full").fit_transform(x)
    got = np.asarray(gi.pca(x, 5))
    # Both orient each component so its largest-magnitude loading is positive (svd_flip).
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_pca_errors():
    with pytest.raises(ValueError, match="min"):
        gi.pca(jnp.ones((5, 3)), 4)
    with pytest.raises(ValueError, match="rank 2"):
        gi.pca(jnp.ones(5), 1)


def test_zscore_matches_scipy_and_flags_constant(x64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4)) * [1.0, 10.0, 0.1, 1.0] + 5.0
    x[:, 3] = 7.25
    r = gi.zscore(x)
    np.testing.assert_allclose(r.values[:, :3], scipy_zscore(x[:, :3], axis=0), atol=1e-12)
    np.testing.assert_array_equal(r.values[:, 3], 0.0)
    np.testing.assert_array_equal(r.constant, [False, False, False, True])
    assert int(r.num_constant) == 1
    assert np.all(np.isfinite(np.asarray(r.values)))


def test_zscore_errors():
    with pytest.raises(ValueError, match="non-finite"):
        gi.zscore(jnp.ones((4, 2)).at[1, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="at least 2 rows"):
        gi.zscore(jnp.ones((1, 2)))


def test_calibrated_mi_protocol_with_ksg():
    # KSG keeps this fast; the protocol is estimator-agnostic.
    rng = np.random.default_rng(2)
    n = 600
    truth = rng.standard_normal((n, 2))
    informative = np.concatenate(
        [truth @ rng.standard_normal((2, 60)), 0.3 * rng.standard_normal((n, 60))], axis=1
    )
    noise_emb = rng.standard_normal((n, 60))
    truth, informative, noise_emb = (a.astype(np.float32) for a in (truth, informative, noise_emb))
    key = jax.random.key(3)
    good = gi.calibrated_mi(truth, informative, key=key, num_seeds=3, estimator="ksg")
    bad = gi.calibrated_mi(truth, noise_emb, key=key, num_seeds=3, estimator="ksg")
    for r in (good, bad):
        assert r.mi.shape == r.ceiling.shape == r.random.shape == (3,)
        np.testing.assert_allclose(r.mi_mean, np.mean(r.mi), rtol=1e-6)
        np.testing.assert_allclose(r.random_std, np.std(r.random), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            r.noise_floor, np.mean(r.random) + 2 * np.std(r.random), rtol=1e-5
        )
        np.testing.assert_allclose(r.normalized, np.mean(r.mi) / np.mean(r.ceiling), rtol=1e-5)
        np.testing.assert_allclose(r.excess, np.mean(r.mi) - np.mean(r.random), atol=1e-6)
        assert not bool(r.diverged)
    # Same key: the same ceiling and random baseline for both embeddings.
    np.testing.assert_allclose(good.ceiling, bad.ceiling)
    # KSG in 50-D underestimates (REFERENCE 6.2), but the informative embedding clears the floor
    # and the random one does not (values: excess 0.155 vs -0.015 at this seed).
    assert bool(good.above_floor) and float(good.excess) > 0.1
    assert not bool(bad.above_floor) and abs(float(bad.excess)) < 0.05
    # The ceiling (near-copy) is far above the informative 50-PCA embedding's MI under KSG.
    assert float(good.ceiling_mean) > float(good.mi_mean)


def test_calibrated_mi_neural_runs_and_errors():
    rng = np.random.default_rng(4)
    truth = rng.standard_normal((200, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="row counts differ"):
        gi.calibrated_mi(truth, truth[:-1], key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_seeds"):
        gi.calibrated_mi(truth, truth, key=jax.random.key(0), num_seeds=0)
    r = gi.calibrated_mi(
        truth,
        truth + 0.5,
        key=jax.random.key(0),
        num_seeds=2,
        num_steps=10,
        hidden=(8,),
        random_dim=2,  # same shapes as the other two fits: one compilation
    )
    assert r.mi.shape == (2,) and np.all(np.isfinite(np.asarray(r.mi)))


@pytest.mark.slow
def test_calibrated_mi_reference_protocol_neural():
    # Reference settings scaled down: DV, train tail, 5 seeds, 2,000 steps, n = 1,000.
    rng = np.random.default_rng(5)
    n = 1000
    truth = rng.standard_normal((n, 3)).astype(np.float32)
    emb = np.concatenate(
        [truth @ rng.standard_normal((3, 80)), rng.standard_normal((n, 20))], axis=1
    ).astype(np.float32)
    r = gi.calibrated_mi(
        truth, emb, key=jax.random.key(6), num_steps=2000, hidden=(128, 64), learning_rate=1e-3
    )
    assert bool(r.above_floor)
    assert 0.3 < float(r.normalized) <= 1.2
