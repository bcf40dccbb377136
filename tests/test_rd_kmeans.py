"""k-means against scikit-learn and closed-form cases."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans

from geomtax import Status, StatusError
from geomtax.rd import KMeansResult, kmeans


def _blobs(seed=0, per=150):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0], [5, 5], [0, 6], [7, 0], [3, -4]], float)
    return np.concatenate([rng.normal(size=(per, 2)) + c for c in centers]).astype(np.float32)


def test_inertia_matches_sklearn(getkey):
    x = _blobs()
    keys = jax.random.split(getkey(), 5)
    ours = jax.vmap(lambda k: kmeans(x, 5, key=k).inertia)(keys)
    best = float(jnp.min(ours))
    sk = KMeans(5, n_init=5, random_state=0).fit(x).inertia_
    # Same or better than scikit-learn's best of 5 restarts, within 1% (float32 sums).
    assert best <= sk * 1.01


@pytest.mark.slow
def test_more_clusters_than_blobs_vs_sklearn(getkey):
    x = _blobs(seed=1, per=80)
    keys = jax.random.split(getkey(), 4)
    ours = float(jnp.min(jax.vmap(lambda k: kmeans(x, 12, key=k).inertia)(keys)))
    sk = KMeans(12, n_init=4, random_state=0).fit(x).inertia_
    assert ours <= sk * 1.03


def test_result_consistency(getkey):
    x = _blobs()
    res = kmeans(x, 5, key=getkey())
    assert isinstance(res, KMeansResult)
    assert res.centroids.shape == (5, 2) and res.assignments.shape == (x.shape[0],)
    # Assignments are the nearest centroids; inertia is the exact sum of squares (numpy oracle).
    d2 = ((x[:, None, :] - np.asarray(res.centroids)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(res.assignments), d2.argmin(1))
    np.testing.assert_allclose(float(res.inertia), d2.min(1).sum(), rtol=1e-5)
    assert bool(res.converged) and 1 <= int(res.num_iters) < 100


def test_blocked_equals_dense(getkey):
    x = _blobs()
    key = getkey()
    a = kmeans(x, 5, key=key, block_size=64)
    b = kmeans(x, 5, key=key, block_size=None)
    np.testing.assert_array_equal(np.asarray(a.assignments), np.asarray(b.assignments))
    np.testing.assert_allclose(np.asarray(a.centroids), np.asarray(b.centroids), rtol=1e-5)


def test_one_dimensional_two_groups(getkey):
    x = jnp.array([[0.0], [0.2], [0.4], [10.0], [10.4]])
    res = kmeans(x, 2, key=getkey())
    np.testing.assert_allclose(np.sort(np.asarray(res.centroids[:, 0])), [0.2, 10.2], rtol=1e-6)
    np.testing.assert_allclose(float(res.inertia), 0.08 + 0.08, rtol=1e-5)


def test_given_init_and_random_init(getkey):
    x = _blobs()
    init = jnp.asarray(x[[0, 150, 300, 450, 600]])
    r1 = kmeans(x, 5, key=getkey(), init=init)
    sk = KMeans(5, init=np.asarray(init), n_init=1).fit(x)
    np.testing.assert_allclose(float(r1.inertia), sk.inertia_, rtol=1e-4)
    r2 = kmeans(x, 5, key=getkey(), init="random")
    assert np.isfinite(float(r2.inertia))


def test_k_equals_distinct_points_gives_zero_inertia(getkey):
    x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    res = kmeans(x, 3, key=getkey())
    assert float(res.inertia) == pytest.approx(0.0, abs=1e-6)


def test_errors(getkey):
    key = getkey()
    with pytest.raises(ValueError, match="distinct rows"):
        kmeans(jnp.zeros((6, 2)), 2, key=key)
    with pytest.raises(ValueError, match="1 <= K <= n"):
        kmeans(jnp.ones((3, 2)), 4, key=key)
    with pytest.raises(ValueError, match="rank 2"):
        kmeans(jnp.ones((3,)), 1, key=key)
    with pytest.raises(TypeError, match="real numbers"):
        kmeans(jnp.ones((3, 2), jnp.complex64), 1, key=key)
    with pytest.raises(StatusError, match="kmeans: nonfinite_input"):
        kmeans(jnp.array([[0.0], [jnp.nan]]), 1, key=key)
    with pytest.raises(ValueError, match="unknown init"):
        kmeans(jnp.ones((3, 2)), 1, key=key, init="bogus")
    with pytest.raises(ValueError, match="init centroids"):
        kmeans(jnp.ones((3, 2)), 2, key=key, init=jnp.ones((3, 2)))
    # Traced input: the distinct-point problem is caught at run time.
    with pytest.raises(Exception, match="fewer distinct rows"):
        eqx.filter_jit(lambda x: kmeans(x, 2, key=key).inertia)(jnp.zeros((6, 2)))


# --- the result contract and invariance (issue 13) ----------------------------------------------


def test_statuses_and_no_abort_with_throw_false(getkey):
    key = getkey()
    x = jnp.asarray(_blobs())
    run = eqx.filter_jit(lambda a: kmeans(a, 5, key=key, throw=False))
    res = run(x.at[3, 1].set(jnp.nan))
    assert res.status == Status.nonfinite_input and np.isnan(float(res.inertia))
    res = run(jnp.zeros_like(x).at[:3].set(1.0))  # 2 distinct rows, K = 5
    assert res.status_name == "degenerate_input" and np.isnan(float(res.inertia))
    slow = kmeans(x, 5, key=key, num_iters=1, tol=0.0, throw=False)
    assert slow.status_name == "not_converged" and np.isfinite(float(slow.inertia))
    with pytest.raises(StatusError, match="kmeans: not_converged"):
        kmeans(x, 5, key=key, num_iters=1, tol=0.0)
    ok = kmeans(x, np.int64(5), key=key, num_iters=np.int64(100))
    assert ok.status_name == "ok"
    assert float(ok.relative_inertia) == pytest.approx(
        float(ok.inertia) / float(np.sum((_blobs() - _blobs().mean(0)) ** 2)), rel=1e-4
    )


def test_options_validated(getkey):
    key = getkey()
    x = jnp.asarray(_blobs())
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="num_clusters"):
            kmeans(x, bad, key=key)
        with pytest.raises(TypeError, match="num_iters"):
            kmeans(x, 3, key=key, num_iters=bad)
    for tol in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            kmeans(x, 3, key=key, tol=tol)
    with pytest.raises(ValueError, match="block_size"):
        kmeans(x, 3, key=key, block_size=0)


@pytest.mark.parametrize(("scale", "offset"), [(1e3, 1e6), (1e-30, 0.0), (1e30, 0.0)])
def test_translation_and_scale_equivariant_float32(getkey, scale, offset):
    # The Gram-form assignment cancelled catastrophically at large offsets, and squared
    # distances over/underflowed at 1e+-30. Oracle: the unshifted run with the same key.
    key = getkey()
    x = _blobs()
    base = kmeans(x, 5, key=key)
    moved = (x.astype(np.float64) * scale + offset).astype(np.float32)
    res = kmeans(moved, 5, key=key)
    assert res.status_name == "ok"
    agree = np.mean(np.asarray(res.assignments) == np.asarray(base.assignments))
    assert agree > 0.99
    np.testing.assert_allclose(
        (np.asarray(res.centroids, np.float64) - offset) / scale,
        np.asarray(base.centroids),
        atol=0.05 if offset else 1e-4,
    )
    assert float(res.relative_inertia) == pytest.approx(float(base.relative_inertia), rel=1e-2)
