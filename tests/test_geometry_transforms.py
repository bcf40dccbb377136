"""Transform table for geomtax.geometry: jit vs eager, vmap, grad, no recompilation.

Every public callable in ``geomtax.geometry.__all__`` has a row (checked by
``test_every_public_callable_has_a_row``).
"""

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import geomtax.geometry as gg

N, D = 12, 5
K0 = jax.random.key(7)

# name -> (fn(x, y) -> pytree of arrays, smooth)
ROWS = {
    "pairwise_distances": (lambda x, y: gg.pairwise_distances(x, metric="sqeuclidean"), True),
    "distance": (lambda x, y: gg.distance(x[0], y[0], metric="sqeuclidean"), True),
    "knn_search": (lambda x, y: gg.knn_search(x, 3), False),
    "rdm": (lambda x, y: gg.rdm(x, metric="euclidean"), True),
    "rdm_similarity": (lambda x, y: gg.rdm_similarity(x, y), False),
    "rdm_drift": (lambda x, y: gg.rdm_drift(x, y, method="pearson").value, True),
    "procrustes_distortion": (lambda x, y: gg.procrustes_distortion(x, y).value, True),
    "procrustes_disparity": (lambda x, y: gg.procrustes_disparity(x, y).value, True),
    "procrustes_similarity": (lambda x, y: gg.procrustes_similarity(x, y).value, True),
    "procrustes_ratio": (lambda x, y: gg.procrustes_ratio(x, y), False),
    "cka": (lambda x, y: gg.cka(x, y).value, True),
    "trustworthiness": (lambda x, y: gg.trustworthiness(x, y, k=3), False),
    "continuity": (lambda x, y: gg.continuity(x, y, k=3, block_size=5), False),
    "knn_overlap": (lambda x, y: gg.knn_overlap(x, y, k=3), False),
    "knn_jaccard": (lambda x, y: gg.knn_jaccard(x, y, k=3), False),
    "neighbor_scores": (lambda x, y: gg.neighbor_scores(x, y, k=3), False),
    "stress": (lambda x, y: gg.stress(x, y, block_size=5).value, True),
    "bilipschitz_distortion": (lambda x, y: gg.bilipschitz_distortion(x, y), False),
    "feature_split_stability": (
        lambda x, y: gg.feature_split_stability(x, key=K0, num_splits=2),
        False,
    ),
    "sample_split_stability": (
        lambda x, y: gg.sample_split_stability(x, key=K0, num_splits=2),
        False,
    ),
    "anchor_stability": (
        lambda x, y: gg.anchor_stability(x, key=K0, num_splits=2, num_anchors=2, num_set_rows=4),
        False,
    ),
    "perturbation_coherence": (lambda x, y: gg.perturbation_coherence(x, y), False),
    "paired_perturbation_coherence": (
        lambda x, y: gg.paired_perturbation_coherence(x, y).value,
        True,
    ),
    "perturbation_effect_size": (lambda x, y: gg.perturbation_effect_size(x, y).value, True),
    "composite_stability": (
        lambda x, y: gg.composite_stability(x, y, key=K0, num_splits=2),
        False,
    ),
    "identifiable_composite_stability": (
        lambda x, y: gg.identifiable_composite_stability(x, y, key=K0, num_splits=2),
        False,
    ),
    "distortion_report": (
        lambda x, y: gg.distortion_report(x, y, key=K0, k=3, num_splits=2),
        False,
    ),
}
#: rows whose compile is heavy (several sorts under lax.map): run with ``-m slow``
SLOW_ROWS = {
    "anchor_stability",
    "composite_stability",
    "distortion_report",
    "identifiable_composite_stability",
    "sample_split_stability",
    "feature_split_stability",
}
#: the smooth quantities the issue names as loss terms get a gradient check in the default run
DEFAULT_GRAD_ROWS = {"cka", "procrustes_distortion", "rdm_drift", "stress"}
#: public names that are not functions of (x, y) arrays
NOT_ARRAY_FUNCTIONS = {"condensed_index"}


def _problems(dtype=np.float32):
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, N, D))
    ys = np.tanh(xs) + 0.3 * rng.normal(size=(2, N, D))
    return jnp.asarray(xs, dtype), jnp.asarray(ys, dtype)


def _close(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(
            np.asarray(u, np.float64), np.asarray(v, np.float64), rtol=1e-4, atol=1e-5
        )


def test_every_public_callable_has_a_row():
    missing = [
        name
        for name in gg.__all__
        if inspect.isfunction(getattr(gg, name))
        and name not in ROWS
        and name not in NOT_ARRAY_FUNCTIONS
    ]
    assert not missing, f"add transform rows for {missing}"


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ROWS else n for n in sorted(ROWS)],
)
def test_jit_vmap_and_no_recompile(name):
    """jit(vmap(f)) over two problems equals the plain (host-checked) calls; no retrace."""
    fn, _ = ROWS[name]
    xs, ys = _problems()
    plain = [fn(xs[i], ys[i]) for i in range(2)]
    batched = eqx.filter_jit(eqx.debug.assert_max_traces(jax.vmap(fn), max_traces=1))
    out = batched(xs, ys)
    for i in range(2):
        _close(jax.tree_util.tree_map(lambda o: o[i], out), plain[i])
    batched(xs * 1.1 + 0.2, ys - 0.3)  # new values, same shapes: must not retrace


@pytest.mark.slow
@pytest.mark.parametrize("name", ["procrustes_distortion", "rdm_similarity", "trustworthiness"])
def test_jit_matches_disable_jit(name):
    fn, _ = ROWS[name]
    xs, ys = _problems()
    with jax.disable_jit():
        eager = fn(xs[0], ys[0])
    _close(jax.jit(fn)(xs[0], ys[0]), eager)


@pytest.mark.parametrize(
    "name",
    [
        n if n in DEFAULT_GRAD_ROWS else pytest.param(n, marks=pytest.mark.slow)
        for n in sorted(n for n, (_, smooth) in ROWS.items() if smooth)
    ],
)
def test_grad_matches_finite_differences(name, x64):
    fn, _ = ROWS[name]
    xs, ys = _problems(np.float64)

    def scalar(x, y):
        return jnp.sum(fn(x, y))

    check_grads(scalar, (xs[0], ys[0]), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def _stress_fn(b):
    return lambda x, y: gg.stress(x, y, block_size=b).value


def _pearson_fn(b):
    return lambda x, y: (
        gg.rdm_similarity(x, y, metric="euclidean", method="pearson", block_size=b).value
    )


@pytest.mark.parametrize(
    "make", [_stress_fn, pytest.param(_pearson_fn, marks=pytest.mark.slow)], ids=["stress", "rdm"]
)
def test_dense_and_tiled_agree_with_gradients(make):
    xs, ys = _problems()
    x, y = xs[0], ys[0]
    dense, tiled = make(None), make(5)
    _close(dense(x, y), tiled(x, y))
    _close(jax.grad(dense, argnums=(0, 1))(x, y), jax.grad(tiled, argnums=(0, 1))(x, y))


def test_procrustes_gradient_finite_at_zero_distortion():
    # zero distortion is a kink of sqrt: the zero-safe root gives a finite (zero) gradient
    x = _problems()[0][0]
    g = jax.grad(lambda a: gg.procrustes_distortion(a, 2.0 * a).value)(x)
    assert np.isfinite(np.asarray(g)).all()


def test_value_errors_under_jit():
    xs, _ = _problems()
    bad = xs[0].at[3, 2].set(jnp.nan)
    with pytest.raises(Exception, match="NaN or inf"):
        jax.jit(lambda a: gg.procrustes_distortion(a, a))(bad)
    with pytest.raises(ValueError, match="rank 2"):
        jax.jit(lambda a: gg.cka(a, a))(xs)
