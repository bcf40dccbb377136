"""pca / zscore against scikit-learn and scipy; the calibrated-MI protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import zscore as scipy_zscore
from sklearn.decomposition import PCA

import geomtax.info as gi
from geomtax import Status, StatusError


def test_pca_matches_scikit_learn(x64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 12)) @ rng.standard_normal((12, 12)) + 3.0
    want = PCA(n_components=5, svd_solver="full").fit_transform(x)
    res = gi.pca(x, num_components=5)
    got = np.asarray(res.scores)
    pca_ref = PCA(n_components=5, svd_solver="full").fit(x)
    np.testing.assert_allclose(res.explained_variance, pca_ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(
        res.explained_variance_ratio, pca_ref.explained_variance_ratio_, rtol=1e-9
    )
    np.testing.assert_allclose(np.abs(res.components), np.abs(pca_ref.components_.T), atol=1e-9)
    assert res.ok
    # Both orient each component so its largest-magnitude loading is positive (svd_flip).
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_pca_errors():
    with pytest.raises(ValueError, match="num_components must be <= 3"):
        gi.pca(jnp.ones((5, 3)), num_components=4)
    with pytest.raises(ValueError, match="rank 2"):
        gi.pca(jnp.ones(5), num_components=1)
    with pytest.raises(TypeError, match="num_components must be an int"):
        gi.pca(jnp.ones((5, 3)), num_components=2.0)
    with pytest.raises(TypeError):
        gi.pca(jnp.ones((5, 3)), 2)  # keyword-only (the audit calls pca(x, num_components=m))
    x = jnp.arange(15.0).reshape(5, 3) ** 2
    assert gi.pca(x, num_components=np.int64(2)).scores.shape == (5, 2)


def test_pca_status_and_extreme_scales():
    # Constant rows: no axis is defined.
    r = gi.pca(jnp.ones((6, 3)), num_components=2, throw=False)
    assert r.status == Status.degenerate_input and bool(jnp.all(jnp.isnan(r.scores)))
    with pytest.raises(StatusError, match="pca: degenerate_input"):
        gi.pca(jnp.ones((6, 3)), num_components=2)
    r = gi.pca(jnp.ones((6, 3)).at[0, 0].set(jnp.nan), num_components=2, throw=False)
    assert r.status == Status.nonfinite_input
    # float32 data around 1e30 and 1e-30 (the squares over/underflow): same scores, scaled.
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((60, 5)) * [5.0, 3.0, 1.0, 0.5, 0.1]).astype(np.float32)
    ref = np.asarray(gi.pca(x, num_components=3).scores)
    for s in (1e30, 1e-30):
        got = gi.pca(jnp.asarray(x * s, jnp.float32), num_components=3)
        assert got.ok
        np.testing.assert_allclose(np.asarray(got.scores) / s, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            got.explained_variance_ratio,
            gi.pca(x, num_components=3).explained_variance_ratio,
            rtol=1e-4,
        )


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
    with pytest.raises(StatusError, match="zscore: nonfinite_input"):
        gi.zscore(jnp.ones((4, 2)).at[1, 1].set(jnp.nan))
    r = gi.zscore(jnp.ones((4, 2)).at[1, 1].set(jnp.nan), throw=False)
    assert r.status == Status.nonfinite_input and bool(jnp.all(jnp.isnan(r.values)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        gi.zscore(jnp.ones((1, 2)))
    r = gi.zscore(jnp.full((4, 2), 0.1), throw=False)
    assert r.status == Status.degenerate_input


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-30])
def test_zscore_extreme_scales_float32(scale):
    # Issue 13: zscore of data around 1e20 returned zeros (the float32 variance overflowed).
    rng = np.random.default_rng(8)
    x = rng.standard_normal((200, 3)) * [1.0, 2.0, 0.5] + [0.0, 3.0, -1.0]
    want = scipy_zscore(x, axis=0)
    r = gi.zscore(jnp.asarray(x * scale, jnp.float32))
    assert r.ok and int(r.num_constant) == 0
    np.testing.assert_allclose(r.values, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(r.std) / scale, np.std(x, axis=0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(r.mean) / scale, np.mean(x, axis=0), rtol=1e-3, atol=1e-4)


def test_zscore_constant_test_is_exact():
    # A column of 0.1 (not representable) is constant; a tiny but real spread is not.
    x = np.ones((10, 2), np.float32) * 0.1
    x[:, 1] = 1e-20 * np.arange(10)
    r = gi.zscore(x)
    np.testing.assert_array_equal(r.constant, [True, False])
    np.testing.assert_allclose(r.values[:, 1], scipy_zscore(np.arange(10.0)), rtol=1e-5)


def test_copula_is_rank_gaussian_with_tied_ranks():
    from scipy.special import ndtri
    from scipy.stats import rankdata

    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 3))
    x[:10, 1] = 0.5  # ties share their average rank
    x[:, 2] = np.sinh(3 * x[:, 2]) * 1e30
    want = ndtri(rankdata(x, axis=0) / 51.0)
    got = gi.copula(jnp.asarray(x, jnp.float32)).value
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert gi.copula(jnp.ones((5, 2)), throw=False).status == Status.degenerate_input


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
    opts = dict(key=key, num_seeds=3, estimator="ksg", preprocess="none")
    good = gi.calibrated_mi(truth, informative, **opts)
    bad = gi.calibrated_mi(truth, noise_emb, **opts)
    for r in (good, bad):
        assert r.mi.shape == r.ceiling.shape == r.random.shape == (3,)
        np.testing.assert_allclose(r.mi_mean, np.mean(r.mi), rtol=1e-6)
        np.testing.assert_allclose(r.random_std, np.std(r.random), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            r.noise_floor, np.mean(r.random) + 2 * np.std(r.random), rtol=1e-5
        )
        np.testing.assert_allclose(r.normalized, np.mean(r.mi) / np.mean(r.ceiling), rtol=1e-5)
        np.testing.assert_allclose(r.excess, np.mean(r.mi) - np.mean(r.random), atol=1e-6)
        # A biased-low KSG fit (k-sensitivity) stays in, flagged per seed and by biased_low.
        low = bool(r.biased_low)
        assert r.ok and bool(jnp.all(r.mi_status == (Status.implausible if low else Status.ok)))
    # Same key: the same ceiling and random baseline for both embeddings.
    np.testing.assert_allclose(good.ceiling, bad.ceiling)
    # KSG in 50-D underestimates, but the informative embedding clears the floor
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
    # Issue 13: a negative noise level ran. Every option is checked before any fit.
    for bad, match in (
        (dict(noise_scale=-0.1), "noise_scale must be > 0"),
        (dict(noise_scale=float("nan")), "noise_scale must be finite"),
        (dict(random_dim=0), "random_dim"),
        (dict(pca_dim=0), "pca_dim"),
        (dict(estimator="mine-f"), "unknown estimator"),
        (dict(learning_rate=-1.0), "learning_rate must be > 0"),
    ):
        with pytest.raises(ValueError, match=match):
            gi.calibrated_mi(truth, truth, key=jax.random.key(0), **bad)
    r = gi.calibrated_mi(
        truth,
        truth + 0.5,
        key=jax.random.key(0),
        num_seeds=2,
        num_steps=10,
        hidden=(8,),
        random_dim=2,  # same shapes as the other two fits: one compilation
        throw=False,
    )
    assert r.mi.shape == (2,) and r.mi_status._value.shape == (2,)
    # The estimator may be an object: the name is its default object (the identical fits), and a
    # bound with its own hyperparameter, or KSG with its own options, is passed the same way.
    same = gi.calibrated_mi(
        truth,
        truth + 0.5,
        key=jax.random.key(0),
        estimator=gi.DV(),
        num_seeds=2,
        num_steps=10,
        hidden=(8,),
        random_dim=2,
        throw=False,
    )
    np.testing.assert_array_equal(same.mi, r.mi)
    np.testing.assert_array_equal(same.random, r.random)
    ksg = dict(key=jax.random.key(1), num_seeds=1, random_dim=2, throw=False)
    k5 = gi.calibrated_mi(truth, truth + 0.5, estimator=gi.KSG(k=5), **ksg)
    k3 = gi.calibrated_mi(truth, truth + 0.5, estimator="ksg", **ksg)
    assert float(k5.random[0]) != float(k3.random[0])
    with pytest.raises(TypeError, match="estimator must be"):
        gi.calibrated_mi(truth, truth, key=jax.random.key(0), estimator=5)
    # Each fit reports its own status; the raw per-seed estimates are kept whatever it is, and
    # the summary is ok only if every MI fit is.
    ok = np.asarray(r.mi_status == Status.ok)
    assert np.all(np.isfinite(np.asarray(r.mi))) and np.all(np.isfinite(np.asarray(r.random)))
    assert bool(r.ok) == bool(ok.all())
    assert np.isnan(float(r.mi_mean)) != bool(r.ok)


@pytest.mark.slow
def test_calibrated_mi_reference_protocol_neural():
    # Reference settings scaled down: DV, 5 seeds, 2,000 steps, n = 1,000.
    rng = np.random.default_rng(5)
    n = 1000
    truth = rng.standard_normal((n, 3)).astype(np.float32)
    emb = np.concatenate(
        [truth @ rng.standard_normal((3, 80)), rng.standard_normal((n, 20))], axis=1
    ).astype(np.float32)
    # The reference protocol: training-tail estimates. The 3-D truth is linearly encoded in the
    # embedding (tens of nats), so the MI fits may still be rising after 2,000 steps and report
    # not_converged (the summary is then NaN); the raw per-seed estimates are kept and clear the
    # random baseline's floor by far. (Held-out DV at this MI is wild, and flagged.)
    r = gi.calibrated_mi(truth, emb, key=jax.random.key(6), evaluation="train_tail", throw=False)
    assert r.status_name in ("ok", "not_converged"), r.status_name
    mi, ceiling, random = (np.asarray(a) for a in (r.mi, r.ceiling, r.random))
    assert np.all(np.isfinite(mi)) and np.all(np.isfinite(random))
    assert mi.mean() > random.mean() + 2 * random.std() + 0.5
    assert 0.3 < mi.mean() / ceiling.mean() <= 1.2


def test_zscore_and_pca_translation_invariant_float32():
    # An offset of 1e6 on data of spread 1e3 (float32 resolves it to 0.06): the result equals
    # the float64 z-score / PCA of the same shifted float32 array.
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((300, 4)) * 1e3 + 1e6).astype(np.float32)
    ref = scipy_zscore(x.astype(np.float64), axis=0)
    np.testing.assert_allclose(gi.zscore(x).values, ref, atol=1e-4)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    want = PCA(n_components=2, svd_solver="full").fit_transform(xc)
    got = np.asarray(gi.pca(x, num_components=2).scores)
    np.testing.assert_allclose(np.abs(got), np.abs(want), rtol=1e-3, atol=1e-1)
