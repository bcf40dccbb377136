"""pairwise_distances / knn_search against scipy, dense vs tiled, and the chunking helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist, squareform

import geomtax as gt
from geomtax._chunking import map_row_blocks, scan_row_blocks


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("block_size", [None, 7])
def test_pairwise_matches_scipy(metric, block_size, x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 5))
    y = rng.normal(size=(11, 5))
    got = gt.pairwise_distances(jnp.asarray(x), metric=metric, block_size=block_size)
    np.testing.assert_allclose(got, squareform(pdist(x, metric)), atol=1e-10)
    got_xy = gt.pairwise_distances(jnp.asarray(x), jnp.asarray(y), metric=metric)
    np.testing.assert_allclose(got_xy, cdist(x, y, metric), atol=1e-10)


@pytest.mark.parametrize("block_size", [None, 4, 64])
def test_knn_matches_bruteforce_with_index_ties(block_size):
    # Integer grid: many exact ties, which must go to the lower index.
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(30, 2)).astype(np.float32)
    d, idx = gt.knn_search(jnp.asarray(x), 5, block_size=block_size)
    full = squareform(pdist(x))
    np.fill_diagonal(full, np.inf)
    want = np.argsort(full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(d, np.take_along_axis(full, want, 1), atol=1e-6)


def test_knn_and_distances_reject_bad_input():
    with pytest.raises(ValueError, match="1 <= k < n"):
        gt.knn_search(jnp.zeros((4, 2)), 4)
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        gt.pairwise_distances(jnp.zeros((4, 2)), metric="manhattan")
    with pytest.raises(ValueError, match=r"rank 2, got shape \(4,\)"):
        gt.pairwise_distances(jnp.zeros((4,)))


def test_euclidean_gradient_is_finite_at_coincident_points():
    g = jax.grad(lambda x: gt.pairwise_distances(x).sum())(jnp.ones((3, 2)))
    assert np.all(np.isfinite(g))


def test_chunking_map_and_scan_match_dense():
    x = jnp.arange(50.0).reshape(25, 2)
    dense = map_row_blocks(lambda b, s, v: b * 2.0, x, block_size=None)
    tiled = map_row_blocks(lambda b, s, v: b * 2.0, x, block_size=8)
    np.testing.assert_array_equal(dense, tiled)
    total = scan_row_blocks(
        lambda c, b, s, v: c + jnp.sum(jnp.where(v[:, None], b, 0.0)),
        jnp.zeros(()),
        x,
        block_size=8,
    )
    assert float(total) == float(x.sum())
