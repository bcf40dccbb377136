"""Transforms of the sharded entry points: jit vs eager, vmap, grad, and no recompilation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.test_util
import pytest
from jax.tree_util import Partial

from geomtax import knn_search, pairwise_distances
from geomtax.parallel import (
    make_mesh,
    shard_rows,
    shard_sweep,
    sharded_knn_search,
    sharded_pairwise_distances,
)
from tests.tolerances import assert_tree_close

MESH = make_mesh(1)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_jit_matches_eager(metric, getkey):
    x = jax.random.normal(getkey(), (11, 3))
    f = lambda x: sharded_pairwise_distances(x, mesh=MESH, metric=metric, block_size=4)
    assert_tree_close(jax.jit(f)(x), f(x))
    assert_tree_close(f(x), pairwise_distances(x, metric=metric))


def test_vmap_over_point_clouds(getkey):
    xs = jax.random.normal(getkey(), (3, 9, 2))
    got = jax.vmap(lambda x: sharded_pairwise_distances(x, mesh=MESH, block_size=4))(xs)
    assert_tree_close(got, jax.vmap(pairwise_distances)(xs))
    d, i = jax.vmap(lambda x: sharded_knn_search(x, 2, mesh=MESH))(xs)
    d0, i0 = jax.vmap(lambda x: knn_search(x, 2))(xs)
    assert (i == i0).all()
    assert_tree_close(d, d0)


def test_grad_matches_single_device(getkey):
    x = jax.random.normal(getkey(), (10, 3))
    y = jax.random.normal(getkey(), (4, 3))

    def loss(fn):
        return lambda x: jnp.sum(jnp.tanh(fn(x)))

    g = jax.grad(loss(lambda x: sharded_pairwise_distances(x, y, mesh=MESH, block_size=3)))(x)
    g0 = jax.grad(loss(lambda x: pairwise_distances(x, y)))(x)
    assert_tree_close(g, g0)
    jax.test_util.check_grads(
        jax.jit(loss(lambda x: sharded_pairwise_distances(x, y, mesh=MESH, metric="sqeuclidean"))),
        (x,),
        order=1,
        modes=["rev"],
        eps=1e-2,
        atol=5e-2,
        rtol=5e-2,
    )


def _tile(rows, start, valid, ref, *, scale):
    _tile.traces += 1
    return scale * rows @ ref.T


_tile.traces = 0


def test_no_recompilation(getkey):
    ref = jax.random.normal(getkey(), (5, 3))
    fn = Partial(_tile, scale=2.0)
    before = _tile.traces
    shard_rows(fn, jax.random.normal(getkey(), (7, 3)), ref, mesh=MESH)
    shard_rows(Partial(_tile, scale=2.0), jax.random.normal(getkey(), (7, 3)), ref, mesh=MESH)
    assert _tile.traces - before == 1

    @eqx.debug.assert_max_traces(max_traces=1)
    def point(b, c):
        return jnp.sin(b) * c

    shard_sweep(point, jnp.arange(4.0), mesh=MESH, shared=(jnp.float32(1.0),))
    shard_sweep(point, jnp.arange(4.0) + 3, mesh=MESH, shared=(jnp.float32(2.0),))
