"""Result-contract regressions for distances, neighbour metrics, stress, stability (issue 13).

Each test fails on the code before issue 13. Oracles are independent: scipy ``cdist``,
scikit-learn ``trustworthiness``, closed forms, and the invariances the metrics declare
(translation by 1e6 and scale by 1e-30 / 1e30 in float32, compared with the unshifted data).
"""

import inspect
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist
from sklearn.manifold import trustworthiness as sk_trust

import geomtax as gt
import geomtax.geometry as gg

KEY = jax.random.key(3)


def _rng(seed):
    return np.random.default_rng(seed)


def _int_cloud(seed, n=48, d=4, spread=1000):
    """Integer coordinates: adding 1e6 is exact in float32, so the geometry is unchanged."""
    return np.round(_rng(seed).normal(size=(n, d)) * spread / 3).astype(np.float32)


def _pair(seed, n=48):
    x = _int_cloud(seed, n)
    y = np.round(np.tanh(x / 400.0) @ _rng(seed + 1).normal(size=(4, 3)) * 300).astype(np.float32)
    return x, y + np.round(_rng(seed + 2).normal(size=y.shape) * 40).astype(np.float32)


# ------------------------------------------------------------------ primitives: NaN, memory


def test_nan_row_is_an_error_never_distance_zero():
    x = _rng(0).normal(size=(12, 3)).astype(np.float32)
    x[3, 1] = np.nan
    for fn in (lambda a: gg.pairwise_distances(a), lambda a: gg.knn_search(a, 2)):
        with pytest.raises(ValueError, match="row 3"):
            fn(x)
    # traced: NaN propagates; row 3 is nobody's neighbour at distance 0
    d = jax.jit(gg.pairwise_distances)(x)
    assert np.isnan(np.asarray(d)[3]).all() and np.isnan(np.asarray(d)[:, 3]).all()
    dk, _ = jax.jit(lambda a: gg.knn_search(a, 2))(x)
    assert np.isnan(np.asarray(dk)).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        gg.distance(x[3], x[0])


def _largest_intermediate(jaxpr) -> int:
    """Largest number of elements of any value in a (closed) jaxpr, sub-jaxprs included."""
    best = 0

    def walk(jp):
        nonlocal best
        for eqn in jp.eqns:
            for v in list(eqn.outvars) + list(eqn.invars):
                shape = getattr(getattr(v, "aval", None), "shape", None)
                if shape is not None:
                    best = max(best, int(np.prod(shape, dtype=np.int64)))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (list, tuple)) else (p,):
                    if hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                        walk(sub.jaxpr)
                    elif hasattr(sub, "eqns"):
                        walk(sub)

    walk(jaxpr.jaxpr)
    return best


@pytest.mark.parametrize(
    "name",
    [
        "knn_search",
        "trustworthiness",
        "neighbor_scores",
        "stress",
        "bilipschitz_distortion",
        "rdm_similarity_pearson",
    ],
)
def test_defaults_never_build_an_n_by_n_intermediate(name):
    n = 50_000
    fns = {
        "knn_search": lambda x, y: gg.knn_search(x, 10),
        "trustworthiness": lambda x, y: gg.trustworthiness(x, y, throw=False),
        "neighbor_scores": lambda x, y: gg.neighbor_scores(x, y, throw=False),
        "stress": lambda x, y: gg.stress(x, y, throw=False),
        "bilipschitz_distortion": lambda x, y: gg.bilipschitz_distortion(x, y, throw=False),
        "rdm_similarity_pearson": lambda x, y: gg.rdm_similarity(
            x, y, method="pearson", throw=False
        ),
    }
    spec = jax.ShapeDtypeStruct((n, 8), jnp.float32)
    jaxpr = jax.make_jaxpr(fns[name])(spec, spec)
    biggest = _largest_intermediate(jaxpr)
    # a tile is at most 64 MiB (the densest intermediate holds a few bytes per element)
    assert biggest <= 64 * 2**20, f"{name}: an intermediate of {biggest} elements"
    assert biggest < n * n // 100


def test_spearman_rdm_builds_condensed_rdms_not_n_by_n_matrices():
    # Exact ranks need every pair's distance (n(n-1)/2 values per RDM), but by default they are
    # cut from row tiles: nothing as large as the n x n matrix (n = 6,000: 36e6 > 18e6).
    n = 6_000
    spec = jax.ShapeDtypeStruct((n, 8), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda x, y: gg.rdm_similarity(x, y, throw=False))(spec, spec)
    assert _largest_intermediate(jaxpr) < n * n * 0.6


def test_resolve_block_size():
    from geomtax._chunking import TILE_BYTES, resolve_block_size

    assert resolve_block_size("auto", 100, row_bytes=400) is None  # fits in one tile
    assert resolve_block_size("auto", 50_000, row_bytes=200_000) == TILE_BYTES // 200_000
    assert resolve_block_size(None, 50_000, row_bytes=1) is None
    assert resolve_block_size(np.int64(7), 50, row_bytes=1) == 7
    with pytest.raises(ValueError, match="block_size"):
        resolve_block_size("dense", 50, row_bytes=1)
    with pytest.raises(TypeError, match="block_size"):
        resolve_block_size(2.5, 50, row_bytes=1)


# ------------------------------------------------------------------ primitives: invariance


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_pairwise_distances_at_offset_1e6_match_scipy(metric):
    x = _int_cloud(1, n=30)
    y = _int_cloud(2, n=20)
    want = cdist(x.astype(np.float64), y.astype(np.float64), metric)
    got = gg.pairwise_distances(x + 1e6, y + 1e6, metric=metric)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=1e-3)
    got_self = gg.pairwise_distances(x + 1e6, metric=metric, block_size=7)
    want_self = cdist(x.astype(np.float64), x.astype(np.float64), metric)
    np.testing.assert_allclose(np.asarray(got_self, np.float64), want_self, rtol=2e-6, atol=1e-3)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distances_scale_1e30(scale, metric):
    x = _rng(3).normal(size=(25, 4)).astype(np.float32)
    want = cdist(x.astype(np.float64), x.astype(np.float64), metric)
    got = np.asarray(gg.pairwise_distances(x * np.float32(scale), metric=metric), np.float64)
    if metric == "euclidean":
        got = got / scale
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_knn_search_duplicates_at_exactly_zero():
    x = _rng(4).normal(size=(40, 6)).astype(np.float32) * 50 + 300
    x = np.concatenate([x, x[:10]])  # rows 40..49 duplicate rows 0..9
    d, i = gg.knn_search(x, 1)
    assert np.all(np.asarray(d)[:10, 0] == 0.0) and np.all(np.asarray(d)[40:, 0] == 0.0)
    np.testing.assert_array_equal(np.asarray(i)[:10, 0], np.arange(40, 50))


def test_knn_search_accepts_numpy_int_and_rejects_others():
    x = _rng(5).normal(size=(20, 3))
    _, i = jax.jit(lambda a: gg.knn_search(a, np.int64(3)))(x)
    assert i.shape == (20, 3)
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="k must be an int"):
            gg.knn_search(x, bad)
    with pytest.raises(TypeError, match="complex"):
        gg.pairwise_distances(x + 1j)


# ------------------------------------------------------------------ neighbour metrics


NEIGHBOR_FNS = {
    "trustworthiness": lambda x, y, **kw: gg.trustworthiness(x, y, k=5, **kw).value,
    "continuity": lambda x, y, **kw: gg.continuity(x, y, k=5, **kw).value,
    "knn_overlap": lambda x, y, **kw: gg.knn_overlap(x, y, k=5, **kw).value,
    "knn_jaccard": lambda x, y, **kw: gg.knn_jaccard(x, y, k=5, **kw).value,
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trustworthiness_at_offset_1e6_matches_sklearn(seed):
    x, y = _pair(10 + seed)
    want = sk_trust(x.astype(np.float64), y.astype(np.float64), n_neighbors=5)
    got = gg.trustworthiness(x + 1e6, y + 1e6, k=5).value
    np.testing.assert_allclose(float(got), want, atol=1e-6)
    got_c = gg.continuity(x + 1e6, y - 1e6, k=5, block_size=11).value
    want_c = sk_trust(y.astype(np.float64), x.astype(np.float64), n_neighbors=5)
    np.testing.assert_allclose(float(got_c), want_c, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(NEIGHBOR_FNS))
def test_neighbor_metrics_translation_invariant_in_float32(name, seed):
    x, y = _pair(20 + seed)
    fn = NEIGHBOR_FNS[name]
    base = float(fn(x, y))
    assert float(fn(x + 1e6, y + 1e6)) == pytest.approx(base, abs=1e-6)
    assert float(fn(x - 1e6, y + 3e5)) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_scores_scale_invariant_in_float32(scale, metric):
    rng = _rng(30)
    x = rng.normal(size=(50, 5)).astype(np.float32)
    y = (np.tanh(x) + 0.3 * rng.normal(size=(50, 5))).astype(np.float32)
    base = gg.neighbor_scores(x, y, k=5, metric=metric)
    s = np.float32(scale)
    got = gg.neighbor_scores(x * s, y / s, k=5, metric=metric)
    for field in ("trustworthiness", "continuity", "knn_overlap", "knn_jaccard"):
        np.testing.assert_allclose(getattr(got, field), getattr(base, field), atol=1e-6)


def test_neighbor_metrics_numpy_int_k_under_jit_and_validation():
    x, y = _pair(40)
    want = float(gg.knn_overlap(x, y, k=3).value)
    got = jax.jit(lambda a, b: gg.knn_overlap(a, b, k=np.int64(3)).value)(x, y)
    assert float(got) == want
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="k must be an int"):
            gg.trustworthiness(x, y, k=bad)
    with pytest.raises(TypeError, match="complex"):
        gg.neighbor_scores(x + 0j, y)
    with pytest.raises(ValueError, match="block_size"):
        gg.knn_jaccard(x, y, block_size="big")


@pytest.mark.parametrize(
    "name", ["trustworthiness", "continuity", "knn_overlap", "knn_jaccard", "neighbor_scores"]
)
def test_rank_metrics_raise_under_differentiation(name):
    x, y = _pair(41, n=20)
    fns = dict(NEIGHBOR_FNS)
    fns["neighbor_scores"] = lambda a, b: gg.neighbor_scores(a, b, k=3).trustworthiness
    with pytest.raises(TypeError, match=f"{name} is piecewise constant"):
        jax.grad(lambda a: jnp.sum(fns[name](a, y)))(x)
    with pytest.raises(TypeError, match="piecewise constant"):
        jax.jit(jax.grad(lambda b: jnp.sum(fns[name](x, b))))(y)
    # stop_gradient is the documented way to evaluate it inside a differentiated function
    g = jax.grad(lambda a: jnp.sum(a) + fns[name](jax.lax.stop_gradient(a), y))(x)
    assert np.all(np.asarray(g) == 1.0)


def _all_metric_calls():
    k = KEY
    return {
        "trustworthiness": lambda x, y: gg.trustworthiness(x, y, k=3, throw=False),
        "continuity": lambda x, y: gg.continuity(x, y, k=3, throw=False),
        "knn_overlap": lambda x, y: gg.knn_overlap(x, y, k=3, throw=False),
        "knn_jaccard": lambda x, y: gg.knn_jaccard(x, y, k=3, throw=False),
        "neighbor_scores": lambda x, y: gg.neighbor_scores(x, y, k=3, throw=False),
        "stress": lambda x, y: gg.stress(x, y, throw=False),
        "bilipschitz_distortion": lambda x, y: gg.bilipschitz_distortion(x, y, throw=False),
        "perturbation_coherence": lambda x, y: gg.perturbation_coherence(x, y, throw=False),
        "paired_perturbation_coherence": lambda x, y: gg.paired_perturbation_coherence(
            x, y, throw=False
        ),
        "perturbation_effect_size": lambda x, y: gg.perturbation_effect_size(x, y, throw=False),
        "feature_split_stability": lambda x, y: gg.feature_split_stability(
            x, key=k, num_splits=2, throw=False
        ),
        "identifiable_composite_stability": lambda x, y: gg.identifiable_composite_stability(
            x, y, key=k, num_splits=2, throw=False
        ),
    }


def _values(result):
    names = [n for n in result.__dataclass_fields__ if n != "status"]
    out = [np.asarray(getattr(result, n)) for n in names]
    return [v for v in out if v.dtype.kind == "f"]


@pytest.mark.parametrize("name", sorted(_all_metric_calls()))
def test_nonfinite_input_gives_nan_and_status_under_jit(name):
    fn = _all_metric_calls()[name]
    rng = _rng(50)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = (x + rng.normal(size=(16, 6))).astype(np.float32)
    xb = x.copy()
    xb[3, 2] = np.nan
    for call in (fn, jax.jit(fn)):
        r = call(xb, y)
        assert r.status_name == "nonfinite_input", name
        v = _values(r)
        assert any(np.isnan(a).all() for a in v), name
    # throw=True: one line naming the function and the status
    public = getattr(gg, name)
    with pytest.raises(gt.StatusError, match=f"^{name}: nonfinite_input"):
        kwargs = {"key": KEY, "num_splits": 2} if "stability" in name else {}
        if name in NEIGHBOR_FNS or name == "neighbor_scores":
            kwargs["k"] = 3
        if name == "feature_split_stability":
            public(xb, **kwargs)
        else:
            public(xb, y, **kwargs)


def test_degenerate_inputs_are_flagged_not_silent():
    x, y = _pair(60, n=20)
    const = np.full_like(x, 7.3)
    r = gg.stress(const, y, throw=False)  # was a silent NaN
    assert r.status_name == "degenerate_input" and np.isnan(float(r.value))
    with pytest.raises(gt.StatusError, match="stress: degenerate_input"):
        gg.stress(const, y)
    b = gg.bilipschitz_distortion(const, np.full_like(y, 0.1), throw=False)  # was 1.0
    assert b.status_name == "degenerate_input" and np.isnan(float(b.distortion))
    t = gg.trustworthiness(x, np.full_like(y, 1.0 / 3.0), k=3, throw=False)
    assert t.status_name == "degenerate_input" and np.isnan(float(t.value))
    c = gg.paired_perturbation_coherence(x, x, throw=False)  # was 0.0 + degenerate flag
    assert c.status_name == "degenerate_input" and np.isnan(float(c.value))
    s = gg.stress(x, const[:, :3] * 0 + 2.0, scale_optimal=True, throw=False)
    assert s.status_name == "degenerate_input"


# ------------------------------------------------------------------ stress, bi-Lipschitz


def _np_stress(x, y, scale_optimal=False):
    dx, dy = pdist(x.astype(np.float64)), pdist(y.astype(np.float64))
    s = np.sum(dx * dy) / np.sum(dy**2) if scale_optimal else 1.0
    return np.sqrt(np.sum((dx - s * dy) ** 2) / np.sum(dx**2))


@pytest.mark.parametrize("seed", [0, 1])
def test_stress_at_offset_1e6_and_scale_1e30(seed):
    x, y = _pair(70 + seed)
    want = _np_stress(x, y)
    np.testing.assert_allclose(float(gg.stress(x + 1e6, y - 1e6).value), want, rtol=1e-5)
    for s in (np.float32(1e-30), np.float32(1e30)):
        np.testing.assert_allclose(float(gg.stress(x * s, y * s).value), want, rtol=1e-5)
        opt = _np_stress(x, y, scale_optimal=True)
        got = gg.stress(x * s, y / s, scale_optimal=True).value
        np.testing.assert_allclose(float(got), opt, rtol=1e-5)


def test_stress_gradient_at_offset_matches_unshifted():
    x, y = _pair(72, n=20)
    x, y = x / 100, y / 100
    g0 = jax.grad(lambda a: gg.stress(a, y).value)(x)
    g1 = jax.grad(lambda a: gg.stress(a, y + 1e3).value)(x + 1e3)
    np.testing.assert_allclose(g1, g0, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_bilipschitz_invariant_at_offset_and_scale(seed):
    x, y = _pair(80 + seed, n=30)
    ratio = pdist(y.astype(np.float64)) / pdist(x.astype(np.float64))
    want = ratio.max() / ratio.min()
    got = gg.bilipschitz_distortion(x + 1e6, y - 1e6)
    np.testing.assert_allclose(float(got.distortion), want, rtol=1e-5)
    np.testing.assert_allclose(float(got.expansion), ratio.max(), rtol=1e-5)
    s = np.float32(1e30)
    got = gg.bilipschitz_distortion(x * s, y / s)
    np.testing.assert_allclose(float(got.distortion), want, rtol=1e-5)
    got = gg.bilipschitz_distortion(x * s, y)  # the expansion itself scales by 1e-30
    np.testing.assert_allclose(float(got.expansion) * 1e30, ratio.max(), rtol=1e-5)


# ------------------------------------------------------------------ perturbation metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perturbation_metrics_translation_and_scale(seed):
    rng = _rng(90 + seed)
    xc = np.round(rng.normal(size=(40, 5)) * 300).astype(np.float32)
    xp = np.round(rng.normal(size=(30, 5)) * 300 + np.array([200, 0, 0, 0, 0])).astype(np.float32)
    xq = xc + np.round(rng.normal(size=xc.shape) * 50 + 30).astype(np.float32)
    a, b, q = (v.astype(np.float64) for v in (xc, xp, xq))
    eff = np.linalg.norm(b.mean(0) - a.mean(0))
    sh = b - a.mean(0)
    coh = np.mean(sh @ sh.mean(0) / (np.linalg.norm(sh, axis=1) * np.linalg.norm(sh.mean(0))))
    s2 = q - a
    pcoh = np.mean(s2 @ s2.mean(0) / (np.linalg.norm(s2, axis=1) * np.linalg.norm(s2.mean(0))))
    for off in (0.0, 1e6, -1e6):
        o = np.float32(off)
        np.testing.assert_allclose(
            float(gg.perturbation_effect_size(xc + o, xp + o).value), eff, rtol=1e-5
        )
        np.testing.assert_allclose(
            float(gg.perturbation_coherence(xc + o, xp + o).value), coh, atol=1e-5
        )
        np.testing.assert_allclose(
            float(gg.paired_perturbation_coherence(xc + o, xq + o).value), pcoh, atol=1e-5
        )
    for scale in (1e-30, 1e30):
        s = np.float32(scale)
        got = gg.perturbation_effect_size(xc * s, xp * s).value
        np.testing.assert_allclose(float(got) / scale, eff, rtol=1e-5)
        got = gg.perturbation_coherence(xc * s, xp * s).value
        np.testing.assert_allclose(float(got), coh, atol=1e-5)  # was 0.0 "degenerate" at 1e-30
        got = gg.paired_perturbation_coherence(xc * s, xq * s).value
        np.testing.assert_allclose(float(got), pcoh, atol=1e-5)


# ------------------------------------------------------------------ stability


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_feature_split_stability_invariances(metric):
    rng = _rng(100)
    z = rng.normal(size=(40, 2))
    x = (np.tile(z, (1, 4)) + 0.3 * rng.normal(size=(40, 8))).astype(np.float32) * 300
    base = gg.feature_split_stability(x, key=KEY, num_splits=3, metric=metric)
    got = gg.feature_split_stability(x * np.float32(1e30), key=KEY, num_splits=3, metric=metric)
    np.testing.assert_allclose(float(got.value), float(base.value), atol=1e-5)
    got = gg.feature_split_stability(x * np.float32(1e-30), key=KEY, num_splits=3, metric=metric)
    np.testing.assert_allclose(float(got.value), float(base.value), atol=1e-5)
    if metric == "euclidean":
        xi = np.round(x)
        b = gg.feature_split_stability(xi, key=KEY, num_splits=3, metric=metric).value
        got = gg.feature_split_stability(xi + 1e6, key=KEY, num_splits=3, metric=metric).value
        np.testing.assert_allclose(float(got), float(b), atol=1e-5)


def test_stability_options_validated_before_work():
    x = _rng(101).normal(size=(30, 6))
    with pytest.raises(TypeError, match="num_splits"):
        gg.feature_split_stability(x, key=KEY, num_splits=2.0)
    with pytest.raises(TypeError, match="num_splits"):
        gg.sample_split_stability(x, key=KEY, num_splits=True)
    with pytest.raises(ValueError, match="fraction"):
        gg.sample_split_stability(x, key=KEY, fraction=float("nan"))
    with pytest.raises(TypeError, match="complex"):
        gg.feature_split_stability(x + 1j, key=KEY)
    r = gg.feature_split_stability(x, key=KEY, num_splits=np.int64(2))
    assert int(r.n_valid) == 2
    z = np.zeros((30, 6))
    z[:, :3] = x[:, :3]
    z[5] = 0.0
    s = gg.sample_split_stability(z, key=KEY, num_splits=2, throw=False)  # zero-norm row, cosine
    assert s.status_name == "degenerate_input"


def test_old_count_option_names_warn_and_give_the_same_value():
    """0.2 renamed the n_* counts to num_*; the old keywords still work for one release."""
    x = _rng(102).normal(size=(24, 6)).astype(np.float32)
    new = gg.anchor_stability(x, key=KEY, num_splits=2, num_anchors=4, num_set_rows=10)
    with pytest.warns(DeprecationWarning, match=r"anchor_stability\(n_set=\.\.\.\).*num_set_rows"):
        old = gg.anchor_stability(x, key=KEY, n_splits=2, n_anchors=4, n_set=10)
    assert float(old.value) == float(new.value) and int(old.n_valid) == 2
    with pytest.warns(DeprecationWarning, match="use num_splits="):
        old = gg.feature_split_stability(x, key=KEY, n_splits=2)
    assert float(old.value) == float(gg.feature_split_stability(x, key=KEY, num_splits=2).value)
    with pytest.raises(TypeError, match="both n_splits="):
        gg.feature_split_stability(x, key=KEY, n_splits=2, num_splits=2)
    params = inspect.signature(gg.distortion_report).parameters
    assert "num_splits" in params and "n_splits" not in params


def test_eqx_on_error_nan_mode_still_flags_nonfinite_input():
    code = (
        "import numpy as np, jax, geomtax.geometry as gg\n"
        "x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)\n"
        "xb = x.copy(); xb[2, 1] = np.nan\n"
        "for f in (lambda a: gg.trustworthiness(a, x, k=3, throw=False),\n"
        "          lambda a: gg.stress(a, x, throw=False),\n"
        "          lambda a: gg.perturbation_effect_size(a, x, throw=False)):\n"
        "    for g in (f, jax.jit(f)):\n"
        "        r = g(xb)\n"
        "        assert r.status_name == 'nonfinite_input' and np.isnan(float(r.value))\n"
        "d = jax.jit(gg.pairwise_distances)(xb)\n"
        "assert np.isnan(np.asarray(d)[2]).all()\n"
        "print('ok')\n"
    )
    env = dict(os.environ, EQX_ON_ERROR="nan", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.slow
def test_knn_search_50k_points_at_defaults_runs():
    x = _rng(7).normal(size=(50_000, 8)).astype(np.float32)
    d, i = gg.knn_search(x, 10)
    assert d.shape == (50_000, 10) and np.isfinite(np.asarray(d)).all()
    j = 12_345
    full = np.linalg.norm(x - x[j], axis=1)
    full[j] = np.inf
    np.testing.assert_array_equal(np.sort(np.asarray(i)[j]), np.sort(np.argsort(full)[:10]))


# ------------------------------------------------------------------ distortion report


def test_report_status_per_metric_and_nonfinite_under_jit():
    x, y = _pair(110, n=24)
    const = np.full_like(y, 2.5)
    rep = gg.distortion_report(x, const, key=KEY, k=3, num_splits=2, throw=False)
    d = rep.to_dict()
    assert d["status"] == "degenerate_input"
    assert d["statuses"]["trustworthiness"] == "degenerate_input"
    assert d["statuses"]["stress"] == "ok"  # the reference x is not constant: stress is defined
    assert np.isnan(d["trustworthiness"]) and np.isfinite(d["stress"])
    msg = "distortion_report: degenerate_input.*trustworthiness"
    with pytest.raises(gt.StatusError, match=msg):
        gg.distortion_report(x, const, key=KEY, k=3, num_splits=2)
    xb = x.copy()
    xb[0, 0] = np.inf
    fn = jax.jit(lambda a, b: gg.distortion_report(a, b, key=KEY, k=3, num_splits=2, throw=False))
    d = fn(xb, y).to_dict()
    assert set(d["statuses"].values()) == {"nonfinite_input"} and d["status"] == "nonfinite_input"
    for name in ("trustworthiness", "stress", "bilipschitz", "procrustes_distortion"):
        assert np.isnan(d[name]), name


def test_report_translation_invariant_in_float32():
    x, y = _pair(111, n=40)
    base = gg.distortion_report(x, y, key=KEY, k=4, num_splits=0).to_dict()
    got = gg.distortion_report(x + 1e6, y - 1e6, key=KEY, k=4, num_splits=0).to_dict()
    for name in ("trustworthiness", "continuity", "knn_overlap", "knn_jaccard"):
        assert got[name] == pytest.approx(base[name], abs=1e-6), name
    for name in ("stress", "bilipschitz"):
        assert got[name] == pytest.approx(base[name], rel=1e-5), name


def test_bilipschitz_ignores_exact_duplicates_in_wide_float32_data():
    rng = _rng(120)
    x = rng.normal(size=(60, 768)) * np.linspace(3.0, 0.1, 768)
    x[:, 7] *= 300.0  # a "massive activation" dimension
    x = (x + 5.0).astype(np.float32)
    y = np.tanh(x / 3.0).astype(np.float32) @ rng.normal(size=(768, 64)).astype(np.float32)
    x[50:], y[50:] = x[:10], y[:10]  # exact duplicates in both spaces
    r = gg.bilipschitz_distortion(x, y)
    assert not bool(r.collapsed) and np.isfinite(float(r.distortion))
    a, b = x[:50].astype(np.float64), y[:50].astype(np.float64)
    ratio = pdist(b) / pdist(a)
    np.testing.assert_allclose(float(r.distortion), ratio.max() / ratio.min(), rtol=1e-3)
