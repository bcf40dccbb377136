"""Entropy / disagreement / Fisher diagnostics against scipy and hand computations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import entropy

import geomtax.audit as ga


def test_entropy_and_kl_to_uniform_vs_scipy(x64):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7, 12)) * 3
    p = softmax(logits, axis=-1)
    np.testing.assert_allclose(ga.predictive_entropy(logits), entropy(p, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(
        ga.kl_to_uniform(logits), np.log(12) - entropy(p, axis=-1), rtol=1e-9, atol=1e-12
    )
    # Bits at the report boundary: 4,096-way uniform is 12 bits, KL 0.
    u = jnp.zeros(4096)
    assert float(ga.predictive_entropy(u)) / np.log(2) == pytest.approx(12.0)
    assert float(ga.kl_to_uniform(u)) == pytest.approx(0.0, abs=1e-9)


def test_jsd_and_js_distance_vs_scipy(x64):
    rng = np.random.default_rng(1)
    la, lb = rng.normal(size=(2, 6, 9))
    pa, pb = softmax(la, -1), softmax(lb, -1)
    ref = np.array([jensenshannon(pa[i], pb[i], base=2) for i in range(6)])
    np.testing.assert_allclose(ga.js_distance(la, lb), ref, rtol=1e-8)
    # Generalised JSD with m = 3 members against its definition computed with scipy.
    logits = rng.normal(size=(3, 4, 5))
    p = softmax(logits, -1)
    ref = entropy(p.mean(0), axis=-1) - entropy(p, axis=-1).mean(0)
    np.testing.assert_allclose(ga.ensemble_jsd(logits), ref, rtol=1e-9)
    pw = np.asarray(ga.pairwise_js_distance(logits))
    assert pw.shape == (3, 3)
    np.testing.assert_allclose(np.diag(pw), 0.0, atol=1e-7)
    np.testing.assert_allclose(pw, pw.T, atol=1e-12)
    expect01 = np.mean([jensenshannon(p[0, i], p[1, i], base=2) for i in range(4)])
    assert pw[0, 1] == pytest.approx(expect01, rel=1e-7)


def test_distribution_input_errors():
    with pytest.raises(ValueError, match="vocabulary"):
        ga.predictive_entropy(jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        ga.predictive_entropy(jnp.array([0.0, jnp.nan]))
    with pytest.raises(TypeError, match="floating"):
        ga.predictive_entropy(jnp.array([1, 2]))
    with pytest.raises(ValueError, match="shapes differ"):
        ga.js_distance(jnp.zeros(3), jnp.zeros(4))


def test_fisher_matches_hand_computation_linear_gaussian(x64):
    # log p(y|x) = -(y - w.x - b)^2 / 2 - log(2 pi)/2  =>  grad_w = r x, grad_b = r.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = rng.normal(size=40)
    w, b = rng.normal(size=3), 0.3
    params = {"dense": {"w": jnp.asarray(w), "b": jnp.asarray(b)}}

    def ll(p, xi, yi):
        r = yi - xi @ p["dense"]["w"] - p["dense"]["b"]
        return -0.5 * r**2 - 0.5 * jnp.log(2 * jnp.pi)

    r = y - x @ w - b
    f = ga.empirical_fisher(ll, params, x, y)
    assert float(f["dense"]["w"]) == pytest.approx(np.mean(r**2 * (x**2).sum(1)), rel=1e-10)
    assert float(f["dense"]["b"]) == pytest.approx(np.mean(r**2), rel=1e-10)
    fb = ga.empirical_fisher(ll, params, x, y, chunk_size=7)  # tiled path, 40 = 5*7 + 5
    assert float(fb["dense"]["w"]) == pytest.approx(float(f["dense"]["w"]), rel=1e-10)
    layers = ga.fisher_by_layer(f)
    assert list(layers) == ["dense"]
    assert layers["dense"] == pytest.approx(np.mean(r**2 * ((x**2).sum(1) + 1)), rel=1e-10)


def test_fisher_two_layer_logistic_equinox_vs_numpy(x64, getkey):
    # Logistic regression on an embedding: p(y=1|x) = sigmoid(v . (E x)); hand gradients.
    class Tiny(eqx.Module):
        embed: jax.Array
        head: jax.Array
        name: str = eqx.field(static=True, default="tiny")

        def __call__(self, x):
            return self.head @ (self.embed @ x)

    rng = np.random.default_rng(3)
    e, v = rng.normal(size=(2, 3)), rng.normal(size=2)
    model = Tiny(jnp.asarray(e), jnp.asarray(v))
    x = rng.normal(size=(25, 3))
    y = rng.integers(0, 2, size=25).astype(np.float64)

    def ll(m, xi, yi):
        z = m(xi)
        return yi * jax.nn.log_sigmoid(z) + (1 - yi) * jax.nn.log_sigmoid(-z)

    f = ga.empirical_fisher(ll, model, x, y)
    z = x @ e.T @ v
    g = y - 1 / (1 + np.exp(-z))  # d ll / d z
    grad_head = g[:, None] * (x @ e.T)
    grad_embed = g[:, None, None] * v[None, :, None] * x[:, None, :]
    assert float(f.head) == pytest.approx(np.mean((grad_head**2).sum(1)), rel=1e-10)
    assert float(f.embed) == pytest.approx(np.mean((grad_embed**2).sum((1, 2))), rel=1e-10)
    shares = ga.fisher_shares(ga.fisher_by_layer(f, depth=1))
    assert set(shares) == {"embed", "head"}
    assert sum(shares.values()) == pytest.approx(1.0)


def test_fisher_flax_params_grouping():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(nn.relu(nn.Dense(4)(x)))

    m = MLP()
    x = jnp.ones((6, 2)) * jnp.arange(6.0)[:, None] / 6
    y = jnp.arange(6) % 3
    params = m.init(jax.random.key(0), x[0])

    def ll(p, xi, yi):
        return jax.nn.log_softmax(m.apply(p, xi))[yi]

    f = ga.empirical_fisher(ll, params, x, y)
    layers = ga.fisher_by_layer(f)
    assert list(layers) == ["params/Dense_0", "params/Dense_1"]
    assert all(v >= 0 for v in layers.values())
    fig = ga.plot_fisher_shares(ga.fisher_shares(layers))
    assert fig.axes


def test_fisher_bad_input():
    with pytest.raises(ValueError, match="leading example axis"):
        ga.empirical_fisher(lambda p, x, y: x, {"w": jnp.ones(1)}, jnp.ones(3), jnp.ones(2))
    with pytest.raises(ValueError, match="at least one example"):
        ga.empirical_fisher(lambda p, x, y: x, {"w": jnp.ones(1)}, jnp.ones((0,)), jnp.ones(0))


def test_member_embedding_stability_known_cases(getkey):
    rng = np.random.default_rng(7)
    e1 = rng.normal(size=(40, 6)).astype(np.float32)
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0].astype(np.float32)
    e2 = 2.0 * e1 @ q  # same geometry up to rotation and scale
    e3 = rng.normal(size=(40, 6)).astype(np.float32)  # an unrelated member
    out = ga.member_embedding_stability([e1, e2, e3], key=getkey(), k=5)
    assert out["knn_overlap"][0, 1] == pytest.approx(1.0)
    assert out["rdm_spearman"][0, 1] == pytest.approx(1.0, abs=1e-5)
    assert out["procrustes_disparity"][0, 1] == pytest.approx(0.0, abs=1e-4)
    assert out["procrustes_disparity"][0, 2] > 0.3 and out["knn_overlap"][0, 2] < 0.5
    # scipy's procrustes disparity is the oracle for the unrelated pair.
    from scipy.spatial import procrustes

    assert out["procrustes_disparity"][0, 2] == pytest.approx(procrustes(e1, e3)[2], abs=1e-4)
    # Every entry comes with its status (all ok here), and a degenerate member is recorded, not
    # raised: a collapsed member (all rows identical) gives NaN with degenerate_input.
    for name in ("knn_overlap", "rdm_spearman", "procrustes_disparity"):
        assert set(out[f"{name}_status"].ravel()) == {"ok"}
    collapsed = np.ones_like(e1)
    bad = ga.member_embedding_stability([e1, collapsed], key=getkey(), k=5)
    assert bad["procrustes_disparity_status"][0, 1] == "degenerate_input"
    assert np.isnan(bad["procrustes_disparity"][0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        ga.member_embedding_stability([e1], key=getkey())
