"""The realistic-data tier: every public estimator on embeddings shaped like real models'.

Data (``tests/realistic.py``): 768, 1280 or 4096 columns, a power-law spectrum, a few massive
dimensions 100-1000x the rest, a large offset, heavy-tailed row norms, 5 % duplicated rows and
8 constant columns. Each estimator must finish without an exception, and its result must be
*honest*: an ``ok`` status only with finite values inside the quantity's range; anything else
reported through ``status``. Default sizes here; n = 20,000 under ``-m slow``.
"""

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from realistic import WIDTHS, foundation_like

import geomtax as gt
import geomtax.geometry as gg
import geomtax.info as gi
import geomtax.rd as grd

N_FAST = 256
N_SLOW = 20_000
KEY = jax.random.key(11)

# name -> (call(z, x, y) -> result, fields that must be finite when ok, (lo, hi) range or None)
GEOMETRY = {
    "procrustes_distortion": (lambda z, x, y: gg.procrustes_distortion(x, y, throw=False), (0, 1)),
    "procrustes_disparity": (lambda z, x, y: gg.procrustes_disparity(x, y, throw=False), (0, 1)),
    "procrustes_similarity": (lambda z, x, y: gg.procrustes_similarity(x, y, throw=False), (0, 1)),
    "procrustes_ratio": (lambda z, x, y: gg.procrustes_ratio(x, y, throw=False), None),
    "cka": (lambda z, x, y: gg.cka(x, y, throw=False), (-0.05, 1)),
    "rdm_similarity": (lambda z, x, y: gg.rdm_similarity(x, y, throw=False), (-1, 1)),
    "rdm_drift": (lambda z, x, y: gg.rdm_drift(x, y, throw=False), (0, 2)),
    "trustworthiness": (lambda z, x, y: gg.trustworthiness(x, y, k=10, throw=False), (0, 1)),
    "continuity": (lambda z, x, y: gg.continuity(x, y, k=10, throw=False), (0, 1)),
    "knn_overlap": (lambda z, x, y: gg.knn_overlap(x, y, k=10, throw=False), (0, 1)),
    "knn_jaccard": (lambda z, x, y: gg.knn_jaccard(x, y, k=10, throw=False), (0, 1)),
    "neighbor_scores": (lambda z, x, y: gg.neighbor_scores(x, y, k=10, throw=False), None),
    "stress": (lambda z, x, y: gg.stress(x, y, throw=False), (0, math.inf)),
    "bilipschitz_distortion": (lambda z, x, y: gg.bilipschitz_distortion(x, y, throw=False), None),
    "feature_split_stability": (
        lambda z, x, y: gg.feature_split_stability(x, key=KEY, throw=False),
        None,
    ),
    "sample_split_stability": (
        lambda z, x, y: gg.sample_split_stability(x, key=KEY, throw=False),
        None,
    ),
    "anchor_stability": (
        lambda z, x, y: gg.anchor_stability(
            x, key=KEY, num_anchors=32, num_set_rows=96, throw=False
        ),
        None,
    ),
    "perturbation_coherence": (
        lambda z, x, y: gg.perturbation_coherence(x, y, throw=False),
        None,
    ),
    "paired_perturbation_coherence": (
        lambda z, x, y: gg.paired_perturbation_coherence(x, y, throw=False),
        None,
    ),
    "perturbation_effect_size": (
        lambda z, x, y: gg.perturbation_effect_size(x, y, throw=False),
        None,
    ),
    "composite_stability": (
        lambda z, x, y: gg.composite_stability(x, y, key=KEY, throw=False),
        None,
    ),
    "identifiable_composite_stability": (
        lambda z, x, y: gg.identifiable_composite_stability(x, y, key=KEY, throw=False),
        None,
    ),
    "distortion_report": (lambda z, x, y: gg.distortion_report(x, y, key=KEY, throw=False), None),
}
#: geometry primitives: arrays, no status; finite on finite input
PRIMITIVES = {
    "pairwise_distances": lambda z, x, y: gg.pairwise_distances(x[:64]),
    "distance": lambda z, x, y: gg.distance(x[0], y[0]),
    "knn_search": lambda z, x, y: gg.knn_search(x, 10)[0],
    "rdm": lambda z, x, y: gg.rdm(x[:64]),
}
NOT_DATA_FUNCTIONS = {"condensed_index"}


def _mi_opts(n):
    return {} if n > N_FAST else {"num_steps": 300}


INFO = {
    "mutual_information": (
        lambda z, x, y: gi.mutual_information(z, x, key=KEY, throw=False, **_mi_opts(len(x))),
        (-0.05, math.inf),
    ),
    "ksg_mi": (lambda z, x, y: gi.ksg_mi(z[:, :1], x[:, :1], k=3, throw=False), (-0.05, math.inf)),
    "calibrated_mi": (
        lambda z, x, y: gi.calibrated_mi(
            z, x, key=KEY, num_seeds=2, throw=False, **_mi_opts(len(x))
        ),
        None,
    ),
    "zscore": (lambda z, x, y: gi.zscore(x, throw=False), None),
    "copula": (lambda z, x, y: gi.copula(x, throw=False), None),
    "pca": (lambda z, x, y: gi.pca(x, num_components=16, throw=False), None),
}
#: info names that are building blocks (critics, bounds, single training steps), not estimators
INFO_BLOCKS = {
    "AbstractCritic",
    "ConcatCritic",
    "SeparableCritic",
    "dv_bound",
    "infonce_bound",
    "init_mine_state",
    "mine_bound",
    "mine_step",
    "nwj_bound",
    "smile_bound",
    "mine_heldout",
    "mine_train_tail",
}

RD = {
    "intrinsic_dimension": (lambda z, x, y: grd.intrinsic_dimension(x, throw=False), (0, math.inf)),
    "kmeans": (lambda z, x, y: grd.kmeans(x, 16, key=KEY, throw=False), None),
    "rd_curve_from_samples": (
        lambda z, x, y: grd.rd_curve_from_samples(
            x, num_codes=32, betas=jnp.geomspace(0.1, 10.0, 4), key=KEY, throw=False
        ),
        None,
    ),
}
RD_NOT_DATA = {
    "blahut_arimoto",
    "rd_curve",
    "quantize_for_rd",
    "capacity_scaling_fit",
    "shannon_lower_bound",
}


def _is_class(obj):
    return isinstance(obj, type)


def test_every_public_estimator_has_a_row():
    missing = [
        n
        for n in gg.__all__
        if not _is_class(getattr(gg, n))
        and n not in GEOMETRY
        and n not in PRIMITIVES
        and n not in NOT_DATA_FUNCTIONS
    ]
    missing += [
        n
        for n in gi.__all__
        if not _is_class(getattr(gi, n)) and n not in INFO and n not in INFO_BLOCKS
    ]
    missing += [
        n
        for n in grd.__all__
        if not _is_class(getattr(grd, n)) and n not in RD and n not in RD_NOT_DATA
    ]
    assert not missing, f"add realistic-data rows for {missing}"


def _float_leaves(tree):
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        arr = np.asarray(leaf)
        if arr.dtype.kind == "f":
            out.append((jax.tree_util.keystr(path), arr))
    return out


def assert_honest(name, res, value_range):
    """ok -> every value finite and in range; not ok -> the status says so (and value is NaN)."""
    assert hasattr(res, "status"), f"{name} returned {type(res).__name__} without a status"
    names = np.atleast_1d(gt.status_name(res.status))
    assert all(s in gt._status.STATUS_NAMES for s in names)
    value = getattr(res, "value", None)
    all_ok = bool(np.all(names == "ok"))
    if value is not None:
        v = np.asarray(value, np.float64)
        ok = np.broadcast_to(np.asarray(names == "ok"), v.shape) if v.ndim else all_ok
        assert np.all(np.isfinite(v[ok] if v.ndim else (v if ok else 0.0))), (
            f"{name}: status ok with a non-finite value {v}"
        )
        if value_range is not None and all_ok:
            lo, hi = value_range
            assert np.all((v >= lo - 1e-5) & (v <= hi + 1e-5)), f"{name}: {v} outside {value_range}"
        if not all_ok and v.ndim == 0:
            assert not np.isfinite(v) or names[0] in ("not_converged", "implausible"), (
                f"{name}: status {names[0]} but finite value {v}"
            )
    if all_ok:
        for path, arr in _float_leaves(res):
            if "heldout" in path:  # NaN by contract unless evaluation="heldout"
                continue
            assert np.all(~np.isinf(arr)), f"{name}{path}: inf with status ok"
    return names


def _data(seed, n, d):
    z, x, y = foundation_like(seed, n, d)
    return jnp.asarray(z), jnp.asarray(x), jnp.asarray(y)


def _width(i):
    return WIDTHS[i % len(WIDTHS)]


ALL_ROWS = {**GEOMETRY, **INFO, **RD}


@pytest.mark.parametrize("name", sorted(ALL_ROWS))
def test_estimator_is_honest_on_foundation_like_data(name):
    fn, value_range = ALL_ROWS[name]
    d = _width(sorted(ALL_ROWS).index(name))
    z, x, y = _data(1, N_FAST, d)
    res = fn(z, x, y)
    assert_honest(name, res, value_range)


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitives_finite_on_foundation_like_data(name):
    z, x, y = _data(2, N_FAST, 768)
    out = np.asarray(PRIMITIVES[name](z, x, y))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "name", ["procrustes_distortion", "cka", "rdm_similarity", "trustworthiness", "knn_overlap"]
)
def test_identical_inputs_score_perfectly(name):
    """x against itself is a perfect score even with massive dims, offsets and duplicates."""
    fn, _ = GEOMETRY[name]
    z, x, _ = _data(3, N_FAST, 1280)
    res = fn(z, x, x)
    assert gt.status_name(res.status) == "ok"
    want = 0.0 if name == "procrustes_distortion" else 1.0
    assert float(res.value) == pytest.approx(want, abs=2e-3)


@pytest.mark.parametrize(
    "name", ["cka", "rdm_similarity", "procrustes_distortion", "trustworthiness"]
)
def test_constant_input_is_flagged_not_scored(name):
    fn, _ = GEOMETRY[name]
    z, x, y = _data(4, 64, 768)
    res = fn(z, x, jnp.full_like(y, 0.37))
    assert gt.status_name(res.status) == "degenerate_input"
    assert np.isnan(float(res.value))


def test_nonfinite_input_is_flagged_under_jit():
    z, x, y = _data(5, 64, 768)
    y = y.at[3, 5].set(jnp.nan)
    res = jax.jit(lambda a, b: gg.procrustes_distortion(a, b, throw=False))(x, y)
    assert gt.status_name(res.status) == "nonfinite_input"
    assert np.isnan(float(res.value))


def _audit_models(seed, n, d):
    import geomtax.audit as ga

    z, x, y = foundation_like(seed, n, d)
    _, x2, y2 = foundation_like(seed + 1, n, d)
    up = ga.ModelEmbeddings(clean=x2, perturbed={"noise": y2}, local=[x2[:, : d // 2]])
    down = ga.ModelEmbeddings(clean=x, perturbed={"noise": y}, local=[x], upstream="up")
    return {"up": up, "down": down}, z


def _walk_nan(obj, path=""):
    """Yield paths of NaN floats whose enclosing record carries no non-ok status."""
    if isinstance(obj, dict):
        flagged = any(
            (k == "status" or k.endswith("_status")) and v not in ("ok", None)
            for k, v in obj.items()
            if isinstance(v, str)
        )
        for k, v in obj.items():
            if isinstance(v, float) and math.isnan(v) and not flagged:
                if f"{k}_status" not in obj or obj[f"{k}_status"] == "ok":
                    yield f"{path}.{k}"
            elif isinstance(v, (dict, list)):
                yield from _walk_nan(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_nan(v, f"{path}[{i}]")


def test_audit_end_to_end_on_wide_embeddings(tmp_path):
    """geomtax.audit.run on 768-wide embeddings with an upstream model (the PCA path)."""
    import geomtax.audit as ga

    models, z = _audit_models(6, N_FAST, 768)
    rep = ga.run(
        models,
        features=z,
        local_features=[z],
        key=jax.random.key(0),
        mi_options={"estimator": "ksg", "num_seeds": 2},
        out=tmp_path,
    )
    assert set(rep.models) == {"up", "down"}
    records = json.loads(json.dumps(rep.models, default=str))
    bad = list(_walk_nan(records))
    assert not bad, f"NaN without a status in the audit records: {bad[:10]}"


def test_audit_cli_end_to_end_on_wide_embeddings(tmp_path):
    models, z = _audit_models(7, N_FAST, 1280)
    np.savez(tmp_path / "up.npz", clean=models["up"].clean, noise=models["up"].perturbed["noise"])
    np.savez(
        tmp_path / "down.npz", clean=models["down"].clean, noise=models["down"].perturbed["noise"]
    )
    np.save(tmp_path / "features.npy", z)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "geomtax",
        "audit",
        "--model",
        f"up={tmp_path / 'up.npz'}#clean",
        "--model",
        f"down={tmp_path / 'down.npz'}#clean",
        "--perturbed",
        f"up:noise={tmp_path / 'up.npz'}#noise",
        "--perturbed",
        f"down:noise={tmp_path / 'down.npz'}#noise",
        "--features",
        str(tmp_path / "features.npy"),
        "--upstream",
        "down=up",
        "--mi-option",
        'estimator="ksg"',
        "--mi-option",
        "num_seeds=2",
        "--no-rd",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL_ROWS))
def test_estimator_is_honest_at_full_size(name):
    fn, value_range = ALL_ROWS[name]
    d = _width(sorted(ALL_ROWS).index(name) + 1)
    z, x, y = _data(8, N_SLOW, d)
    res = fn(z, x, y)
    assert_honest(name, res, value_range)
