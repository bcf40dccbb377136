"""Oracle tests for geomtax.geometry against scipy, scikit-learn and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.manifold import trustworthiness as sk_trust

import geomtax as gt
import geomtax.geometry as gg
from geomtax.geometry._ranks import spearman, twice_ranks_binned, twice_ranks_exact


def _rng(seed=0):
    return np.random.default_rng(seed)


def _rot(d, seed=0):
    q, _ = np.linalg.qr(_rng(seed).normal(size=(d, d)))
    return q


# ----------------------------------------------------------------------------- ranks


def test_exact_average_ranks_match_scipy():
    # continuous, heavy ties, all-equal block, signed zeros and heavy tails in one vector
    v = np.concatenate(
        [
            _rng(0).normal(size=777),
            np.round(_rng(1).normal(size=3000) * 2),
            np.zeros(9),
            np.array([-0.0, 0.0, 1.0, -1.0, -0.0, 2.5, -7.0]),
            _rng(2).standard_cauchy(size=500),
        ]
    ).astype(np.float32)
    got = jax.jit(twice_ranks_exact)(jnp.asarray(v))
    np.testing.assert_array_equal(np.asarray(got) / 2, rankdata(v))
    zeros = jax.jit(twice_ranks_exact)(jnp.zeros(9))
    np.testing.assert_array_equal(np.asarray(zeros) / 2, rankdata(np.zeros(9)))


@pytest.mark.slow
def test_exact_ranks_float64(x64):
    v = np.round(_rng(3).normal(size=1000), 2)
    np.testing.assert_array_equal(np.asarray(twice_ranks_exact(jnp.asarray(v))) / 2, rankdata(v))


def test_binned_spearman_within_its_bound():
    rng = _rng(4)
    for u, v in [
        (rng.normal(size=20000), None),
        (rng.standard_cauchy(size=20000), None),
    ]:
        v = u + rng.normal(size=u.shape)
        exact = spearmanr(u, v)[0]
        rho, constant, bound = jax.jit(lambda a, b: spearman(a, b, rank_method="binned"))(
            jnp.asarray(u, jnp.float32), jnp.asarray(v, jnp.float32)
        )
        assert not bool(constant)
        assert abs(float(rho) - exact) <= float(bound) + 1e-5
        assert float(bound) < 0.01
    _, err = twice_ranks_binned(jnp.asarray(np.round(u)))
    assert float(err) > 0  # ties inside buckets make the bound conservative, never negative


# ----------------------------------------------------------------------------- RDM


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "correlation"])
def test_rdm_matches_pdist(x64, metric):
    x = _rng(0).normal(size=(17, 5))
    np.testing.assert_allclose(gg.rdm(x, metric=metric), pdist(x, metric), atol=1e-10)
    np.testing.assert_allclose(gg.rdm(x, metric=metric, block_size=4), pdist(x, metric), atol=1e-10)


@pytest.mark.parametrize("metric", ["cosine", pytest.param("euclidean", marks=pytest.mark.slow)])
def test_rdm_similarity_spearman_and_pearson(x64, metric):
    rng = _rng(1)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 3)) + 0.5 * rng.normal(size=(40, 3))
    px, py = pdist(x, metric), pdist(y, metric)
    for rm in ("exact", "binned", "auto"):
        r = gg.rdm_similarity(x, y, metric=metric, rank_method=rm)
        assert abs(float(r.value) - spearmanr(px, py)[0]) <= float(r.rank_error_bound) + 1e-10
    assert float(gg.rdm_similarity(x, y, metric=metric).rank_error_bound) == 0.0
    p = gg.rdm_similarity(x, y, metric=metric, method="pearson")
    np.testing.assert_allclose(p.value, pearsonr(px, py)[0], atol=1e-10)
    pb = gg.rdm_similarity(x, y, metric=metric, method="pearson", block_size=7)
    np.testing.assert_allclose(pb.value, pearsonr(px, py)[0], atol=1e-10)
    assert int(p.n_pairs) == 40 * 39 // 2


def test_rdm_similarity_pair_count_beyond_int32():
    """n = 70,000 has 2.45e9 pairs (> int32): streamed Pearson traces, n_pairs is exact."""
    s = jax.ShapeDtypeStruct((70_000, 4), jnp.float32)
    out = jax.eval_shape(
        lambda a, b: gg.rdm_similarity(a, b, method="pearson", block_size=512), s, s
    )
    assert out.n_pairs == 70_000 * 69_999 // 2 and out.value.shape == ()


def test_rdm_similarity_tied_integer_embeddings():
    rng = _rng(2)
    x = rng.integers(0, 3, size=(40, 6)).astype(np.float32)
    y = np.clip(x + rng.integers(-1, 2, size=(40, 6)), 0, 3).astype(np.float32)
    px, py = pdist(x, "sqeuclidean"), pdist(y, "sqeuclidean")
    r = gg.rdm_similarity(x, y, metric="sqeuclidean", rank_method="exact")
    np.testing.assert_allclose(r.value, spearmanr(px, py)[0], atol=1e-6)


def test_rdm_similarity_invariances():
    rng = _rng(3)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.normal(size=(40, 6)).astype(np.float32)
    # strictly monotone transform of distances: sqeuclidean = euclidean^2
    a = gg.rdm_similarity(x, y, metric="euclidean").value
    b = gg.rdm_similarity(x, y, metric="sqeuclidean").value
    np.testing.assert_allclose(a, b, atol=1e-6)
    q = _rot(6).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        r = gg.rdm_similarity(x, 3.0 * x @ q, metric=metric)
        np.testing.assert_allclose(r.value, 1.0, atol=1e-5)


def test_rdm_constant_gives_nan_and_degenerate_status():
    x = np.ones((40, 6), np.float32)
    y = _rng(0).normal(size=(40, 6)).astype(np.float32)
    for method in ("spearman", "pearson"):
        r = gg.rdm_similarity(x, y, metric="euclidean", method=method, throw=False)
        assert np.isnan(float(r.value)) and r.status_name == "degenerate_input"
        d = gg.rdm_drift(x, y, metric="euclidean", method=method, throw=False)
        assert np.isnan(float(d.value)) and d.status_name == "degenerate_input"
        with pytest.raises(gt.StatusError, match="rdm_similarity: degenerate_input"):
            gg.rdm_similarity(x, y, metric="euclidean", method=method)


def test_sampled_pairs_single_draw():
    rng = _rng(5)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = (x + 1.5 * rng.normal(size=(40, 6))).astype(np.float32)
    for method in ("spearman", "pearson"):
        exact = float(gg.rdm_similarity(x, y, metric="euclidean", method=method).value)
        r = gg.rdm_similarity(
            x, y, metric="euclidean", method=method, max_pairs=512, key=jax.random.key(0)
        )
        assert int(r.n_pairs) == 512 and 0.0 < float(r.stderr) < 0.2
        assert abs(float(r.value) - exact) < 3.0 * float(r.stderr)


@pytest.mark.slow
def test_sampled_pairs_within_three_standard_errors():
    rng = _rng(5)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x + 1.5 * rng.normal(size=(300, 5))).astype(np.float32)
    for method in ("spearman", "pearson"):
        exact = float(gg.rdm_similarity(x, y, metric="euclidean", method=method).value)
        z = []
        for s in range(4):
            r = gg.rdm_similarity(
                x, y, metric="euclidean", method=method, max_pairs=20000, key=jax.random.key(s)
            )
            assert 0.0005 < float(r.stderr) < 0.1  # 20000 > PAIR_CHUNK: chunked path
            z.append((float(r.value) - exact) / float(r.stderr))
        # each estimate within 3 SE; 4 draws at nominal 99.7% (seeds fixed, deterministic)
        assert max(abs(t) for t in z) < 3.0, z


def test_rdm_zero_norm_policy():
    x = _rng(0).normal(size=(5, 3)).astype(np.float32)
    x[2] = 0.0
    with pytest.raises(ValueError, match="zero-norm row"):
        gg.rdm(x)
    d = gg.rdm(x, zero_norm="fill_one")
    np.testing.assert_allclose(np.asarray(d)[[1, 4, 7, 8]], 1.0)  # pairs with row 2
    gg.rdm(x, metric="euclidean")  # fine for Euclidean


# ----------------------------------------------------------------------------- Procrustes


def test_procrustes_against_scipy(x64):
    rng = _rng(6)
    a = rng.normal(size=(25, 4))
    b = a + 0.7 * rng.normal(size=(25, 4))
    _, _, disparity = scipy_procrustes(a, b)
    np.testing.assert_allclose(gg.procrustes_disparity(a, b).value, disparity, atol=1e-10)
    np.testing.assert_allclose(
        gg.procrustes_distortion(a, b, variant="similarity").value, disparity, atol=1e-10
    )
    xc, yc = a - a.mean(0), b - b.mean(0)
    xn, yn = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    r, _ = orthogonal_procrustes(xn, yn)
    d_ref = np.linalg.norm(xn @ r - yn) / np.sqrt(2)
    d = gg.procrustes_distortion(a, b).value
    np.testing.assert_allclose(d, d_ref, atol=1e-10)
    np.testing.assert_allclose(gg.procrustes_similarity(a, b).value, 1 - d_ref**2, atol=1e-10)
    np.testing.assert_allclose(disparity, 2 * d_ref**2 - d_ref**4, atol=1e-10)
    np.testing.assert_allclose(gg.procrustes_distortion(b, a).value, d, atol=1e-10)  # symmetric


def test_procrustes_zero_for_similarity_copies_and_scipy_docs_example():
    a = np.array([[1, 3], [1, 2], [1, 1], [2, 1]], np.float32)
    b = np.array([[4, -2], [4, -4], [4, -6], [2, -6]], np.float32)
    assert float(gg.procrustes_disparity(a, b).value) < 1e-6
    x = _rng(7).normal(size=(30, 5)).astype(np.float32)
    y = 2.5 * x @ _rot(5, 1).astype(np.float32) + 4.0
    assert float(gg.procrustes_distortion(x, y).value) < 2e-3
    assert float(gg.procrustes_disparity(x, y).value) < 1e-5


def test_procrustes_degenerate_and_padding():
    x = _rng(8).normal(size=(10, 3)).astype(np.float32)
    ones = np.ones((10, 3), np.float32)
    for fn in (gg.procrustes_distortion, gg.procrustes_disparity, gg.procrustes_similarity):
        r = fn(ones, x, throw=False)
        assert np.isnan(float(r.value)) and r.status_name == "degenerate_input"
    y = _rng(9).normal(size=(10, 2)).astype(np.float32)
    ypad = np.concatenate([y, np.zeros((10, 1), np.float32)], axis=1)
    np.testing.assert_allclose(
        gg.procrustes_distortion(x, y).value, gg.procrustes_distortion(x, ypad).value, atol=1e-6
    )


def test_procrustes_ratio_matches_numpy(x64):
    rng = _rng(10)
    xc = rng.normal(size=(50, 4))
    xp = 1.3 * xc @ _rot(4, 2) + 0.4 * rng.normal(size=(50, 4)) + 2.0
    r = gg.procrustes_ratio(xc, xp)
    a, b = xc - xc.mean(0), xp - xp.mean(0)
    raw = np.linalg.norm(a - b) / np.sqrt(50)
    rot, _ = orthogonal_procrustes(b / np.linalg.norm(b), a / np.linalg.norm(a))
    al = b @ rot
    s = np.sum(a * al) / np.sum(al * al)
    aligned = np.linalg.norm(a - s * al) / np.sqrt(50)
    np.testing.assert_allclose(
        [r.raw, r.aligned, r.ratio], [raw, aligned, aligned / raw], atol=1e-9
    )
    assert 0 <= float(r.ratio) <= 1
    assert r.status_name == "ok"
    same = gg.procrustes_ratio(xc, xc, throw=False)
    assert same.status_name == "degenerate_input" and np.isnan(float(same.ratio))
    assert float(same.raw) == 0.0


# ----------------------------------------------------------------------------- CKA


def test_cka_kornblith_demo_values(x64):
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    np.testing.assert_allclose(gg.cka(x, y).value, 0.55761, atol=5e-6)
    np.testing.assert_allclose(gg.cka(x, y, debiased=True).value, 0.51346, atol=5e-6)
    np.testing.assert_allclose(gg.cka(x, y, kernel="rbf").value, 0.65483, atol=5e-6)


def test_cka_invariances_and_constant():
    x = _rng(11).normal(size=(40, 5)).astype(np.float32)
    y = -3.0 * x @ _rot(5, 3).astype(np.float32) + 1.0
    for kernel in ("linear", "rbf"):
        np.testing.assert_allclose(gg.cka(x, y, kernel=kernel).value, 1.0, atol=1e-4)
    r = gg.cka(np.ones((40, 5), np.float32), x, throw=False)
    assert r.status_name == "degenerate_input" and np.isnan(float(r.value))


def test_debiased_cka_near_zero_for_independent():
    rng = _rng(12)
    biased, debiased = [], []
    for n in (32, 256):
        x, y = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
        biased.append(float(gg.cka(x, y).value))
        debiased.append(float(gg.cka(x, y, debiased=True).value))
    assert biased[1] < biased[0]  # biased CKA decays ~1/n
    assert abs(debiased[1]) < 0.05


# ----------------------------------------------------------------------------- neighbors


@pytest.mark.parametrize(
    "k", [5, pytest.param(1, marks=pytest.mark.slow), pytest.param(12, marks=pytest.mark.slow)]
)
def test_trustworthiness_continuity_match_sklearn(x64, k):
    rng = _rng(13)
    x = rng.normal(size=(60, 6))
    y = x[:, :2] + 0.3 * rng.normal(size=(60, 2))
    t_ref = sk_trust(x, y, n_neighbors=k)
    c_ref = sk_trust(y, x, n_neighbors=k)
    np.testing.assert_allclose(gg.trustworthiness(x, y, k=k).value, t_ref, atol=1e-12)
    t16 = gg.trustworthiness(x, y, k=k, block_size=16).value
    np.testing.assert_allclose(t16, t_ref, atol=1e-12)
    np.testing.assert_allclose(gg.continuity(x, y, k=k, block_size=13).value, c_ref, atol=1e-12)


def test_trustworthiness_similarity_transform_and_duplicates():
    x = _rng(14).normal(size=(30, 3)).astype(np.float32)
    y = 2.0 * x @ _rot(3, 4).astype(np.float32) + 1.0
    assert float(gg.trustworthiness(x, y, k=5).value) == 1.0
    assert float(gg.continuity(x, y, k=5).value) == 1.0
    dup = np.array([[0.0], [0.0], [3.0], [3.0], [7.0]], np.float32)
    assert float(gg.trustworthiness(dup, dup, k=2).value) == 1.0
    assert float(gg.continuity(dup, dup, k=2).value) == 1.0


def test_k_at_least_half_n_raises_sklearn_18567():
    rng = np.random.RandomState(5000)
    x = rng.rand(7, 4)
    y = rng.rand(7, 2)
    with pytest.raises(ValueError, match="k < n / 2"):
        gg.trustworthiness(x, y, k=5)
    with pytest.raises(ValueError, match="k < n / 2"):
        gg.continuity(x, y, k=4)


def _np_knn(x, k):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_knn_overlap_and_jaccard_match_numpy():
    rng = _rng(15)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = (x + 0.5 * rng.normal(size=(50, 4))).astype(np.float32)
    k = 6
    nx, ny = _np_knn(x.astype(np.float64), k), _np_knn(y.astype(np.float64), k)
    o = np.array([len(set(a) & set(b)) for a, b in zip(nx, ny)])
    np.testing.assert_allclose(gg.knn_overlap(x, y, k=k).value, np.mean(o / k), atol=1e-6)
    np.testing.assert_allclose(
        gg.knn_jaccard(x, y, k=k, block_size=9).value, np.mean(o / (2 * k - o)), atol=1e-6
    )
    r = gg.neighbor_scores(x, y, k=k)
    np.testing.assert_allclose(r.knn_overlap, np.mean(o / k), atol=1e-6)


def test_stress_matches_numpy(x64):
    rng = _rng(16)
    x = rng.normal(size=(40, 5))
    y = x[:, :3] * 1.7 + 0.2 * rng.normal(size=(40, 3))
    dx, dy = pdist(x), pdist(y)
    raw = np.sqrt(np.sum((dx - dy) ** 2) / np.sum(dx**2))
    s = np.sum(dx * dy) / np.sum(dy**2)
    opt = np.sqrt(np.sum((dx - s * dy) ** 2) / np.sum(dx**2))
    np.testing.assert_allclose(gg.stress(x, y).value, raw, atol=1e-10)
    np.testing.assert_allclose(gg.stress(x, y, block_size=7).value, raw, atol=1e-10)
    opt9 = gg.stress(x, y, scale_optimal=True, block_size=9).value
    np.testing.assert_allclose(opt9, opt, atol=1e-10)
    np.testing.assert_allclose(gg.stress(x, 5.0 * y, scale_optimal=True).value, opt, atol=1e-10)


def test_bilipschitz_matches_numpy_and_duplicate_rule(x64):
    rng = _rng(17)
    x = rng.normal(size=(30, 3))
    y = np.tanh(x) + 0.1 * rng.normal(size=(30, 3))
    ratio = pdist(y) / pdist(x)
    r = gg.bilipschitz_distortion(x, y, block_size=8)
    np.testing.assert_allclose(r.distortion, ratio.max() / ratio.min(), rtol=1e-9)
    np.testing.assert_allclose(r.expansion, ratio.max(), rtol=1e-9)
    # a duplicate in both spaces is ignored; a merged distinct pair collapses
    x2 = np.concatenate([x, x[:1]])
    y2 = np.concatenate([y, y[:1]])
    np.testing.assert_allclose(
        gg.bilipschitz_distortion(x2, y2).distortion, ratio.max() / ratio.min(), rtol=1e-9
    )
    y3 = y.copy()
    y3[1] = y3[0]
    c = gg.bilipschitz_distortion(x, y3)
    assert bool(c.collapsed) and np.isinf(float(c.distortion))


# ----------------------------------------------------------------------------- stability


@pytest.mark.slow
def test_feature_split_stability_structure_vs_noise():
    rng = _rng(18)
    z = rng.normal(size=(40, 3))
    structured = np.tile(z, (1, 10)) + 0.05 * rng.normal(size=(40, 30))
    noise = rng.normal(size=(40, 200))
    hi = gg.feature_split_stability(structured, key=jax.random.key(0), num_splits=5)
    lo = gg.feature_split_stability(noise, key=jax.random.key(1), num_splits=5)
    assert float(hi.value) > 0.9 and int(hi.n_valid) == 5
    assert abs(float(lo.value)) < 0.15


@pytest.mark.slow
def test_sample_split_and_anchor_are_bounded():
    x = _rng(19).normal(size=(60, 6)).astype(np.float32)
    s = gg.sample_split_stability(x, key=jax.random.key(0), num_splits=3)
    assert -1 <= float(s.value) <= 1 and int(s.n_valid) == 3
    a = gg.anchor_stability(x, key=jax.random.key(1), num_splits=2, num_anchors=10, num_set_rows=20)
    assert -1 <= float(a.value) <= 1
    with pytest.raises(ValueError, match="at least 500 rows"):
        gg.anchor_stability(x, key=jax.random.key(1))


def test_perturbation_coherence_and_effect_size_match_numpy():
    rng = _rng(20)
    xc = rng.normal(size=(40, 5))
    xp = rng.normal(size=(30, 5)) + np.array([1.0, 0, 0, 0, 0])
    mu = xc.mean(0)
    s = xp - mu
    m = s.mean(0)
    coh = np.mean(s @ m / (np.linalg.norm(s, axis=1) * np.linalg.norm(m)))
    np.testing.assert_allclose(gg.perturbation_coherence(xc, xp).value, coh, atol=1e-5)
    np.testing.assert_allclose(
        gg.perturbation_effect_size(xc, xp).value,
        np.linalg.norm(xp.mean(0) - xc.mean(0)),
        atol=1e-5,
    )
    xp2 = xc + rng.normal(size=xc.shape)
    s2 = xp2 - xc
    m2 = s2.mean(0)
    coh2 = np.mean(s2 @ m2 / (np.linalg.norm(s2, axis=1) * np.linalg.norm(m2)))
    np.testing.assert_allclose(gg.paired_perturbation_coherence(xc, xp2).value, coh2, atol=1e-5)
    same = gg.paired_perturbation_coherence(xc, xc, throw=False)
    assert np.isnan(float(same.value)) and same.status_name == "degenerate_input"
    assert int(same.n_used) == 0


@pytest.mark.slow
def test_composite_is_mean_of_components():
    x = _rng(21).normal(size=(50, 8)).astype(np.float32)
    xp = x + 0.3 * _rng(22).normal(size=(50, 8)).astype(np.float32)
    r = gg.composite_stability(x, xp, key=jax.random.key(0), num_splits=3)
    parts = np.array([r.feature_split, r.sample_split, r.anchor, r.rdm_similarity])
    assert np.isnan(parts[2]) and int(r.n_terms) == 3  # anchor needs n >= 500
    np.testing.assert_allclose(r.value, np.nanmean(parts), atol=1e-6)
    exact = gg.rdm_similarity(x, xp).value
    np.testing.assert_allclose(r.rdm_similarity, exact, atol=1e-5)
    i = gg.identifiable_composite_stability(x, xp, key=jax.random.key(0), num_splits=3)
    assert int(i.n_terms) == 2 and np.isnan(float(i.sample_split))
    np.testing.assert_allclose(i.value, (i.feature_split + i.rdm_similarity) / 2, atol=1e-6)


# ----------------------------------------------------------------------------- report


@pytest.mark.parametrize("block_size", [16, pytest.param(None, marks=pytest.mark.slow)])
def test_report_matches_individual_metrics(block_size):
    rng = _rng(23)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    y = (x[:, :4] + 0.3 * rng.normal(size=(50, 4))).astype(np.float32)
    rep = gg.distortion_report(
        x, y, key=jax.random.key(0), k=5, block_size=block_size, num_splits=2
    )
    expect = {
        "procrustes_distortion": gg.procrustes_distortion(x, y).value,
        "procrustes_disparity": gg.procrustes_disparity(x, y).value,
        "cka_linear": gg.cka(x, y).value,
        "rdm_similarity": gg.rdm_similarity(x, y, metric="euclidean").value,
        "trustworthiness": gg.trustworthiness(x, y, k=5).value,
        "continuity": gg.continuity(x, y, k=5).value,
        "knn_overlap": gg.knn_overlap(x, y, k=5).value,
        "knn_jaccard": gg.knn_jaccard(x, y, k=5).value,
        "stress": gg.stress(x, y).value,
        "bilipschitz": gg.bilipschitz_distortion(x, y).distortion,
    }
    for name, value in expect.items():
        np.testing.assert_allclose(getattr(rep, name), value, rtol=2e-5, atol=1e-6, err_msg=name)
    text = str(rep)
    assert "trustworthiness" in text and "Procrustes D" in text and "| ok |" in text
    d = rep.to_dict()
    assert set(d) >= set(expect) and d["status"] == "ok"
    assert set(d["statuses"]) >= set(expect) and set(d["statuses"].values()) == {"ok"}


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clearly():
    x = np.ones((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(10, 3\) and \(9, 3\)"):
        gg.procrustes_distortion(x, x[:9])
    with pytest.raises(ValueError, match="rank 2"):
        gg.cka(x[None], x[None])
    with pytest.raises(ValueError, match="at least 3 rows"):
        gg.rdm_similarity(x[:2], x[:2])
    bad = _rng(0).normal(size=(10, 3)).astype(np.float32)
    bad[4, 1] = np.nan
    with pytest.raises(gt.StatusError, match="trustworthiness: nonfinite_input"):
        gg.trustworthiness(bad, bad, k=2)
    with pytest.raises(ValueError, match="unknown metric"):
        gg.rdm_similarity(bad, bad, metric="manhattan")
    with pytest.raises(ValueError, match="unknown method"):
        gg.rdm_similarity(x, x, method="kendall")
    with pytest.raises(ValueError, match="unknown variant"):
        gg.procrustes_distortion(x, x, variant="affine")
    with pytest.raises(ValueError, match="unknown kernel"):
        gg.cka(x, x, kernel="poly")
    with pytest.raises(ValueError, match="key"):
        gg.rdm_similarity(x + np.arange(3), x, max_pairs=100)
    with pytest.raises(TypeError, match="block_size"):
        gg.stress(x, x, block_size=2.5)
    with pytest.raises(ValueError, match="zero-norm"):
        gg.rdm_similarity(np.zeros((5, 2), np.float32), np.ones((5, 2), np.float32))


@pytest.mark.parametrize(
    "metric, integer", [("euclidean", False), ("cosine", False), ("sqeuclidean", True)]
)
def test_streamed_binned_spearman_equals_the_condensed_path(metric, integer):
    """Binned Spearman in tiles (three passes, bounded memory) = on the two condensed RDMs."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(45, 4))
    y = np.tanh(x) + 0.3 * rng.normal(size=(45, 4))
    if integer:  # many exact distance ties
        x, y = np.round(2 * x), np.round(2 * y)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    opts = dict(metric=metric, rank_method="binned")
    dense = gg.rdm_similarity(x, y, block_size=None, **opts)
    tiled = gg.rdm_similarity(x, y, block_size=7, **opts)
    np.testing.assert_allclose(tiled.value, dense.value, rtol=2e-6)
    np.testing.assert_allclose(tiled.rank_error_bound, dense.rank_error_bound, rtol=1e-5)
    ref = spearmanr(pdist(np.asarray(x, np.float64), metric), pdist(np.asarray(y), metric))[0]
    assert abs(float(tiled.value) - ref) <= float(tiled.rank_error_bound) + 1e-6
