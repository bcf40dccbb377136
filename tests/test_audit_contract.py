"""The audit on wide embeddings, with statuses, and every CLI mistake as one line (exit 2).

Regression tests of issue 13: the upstream (Representational Compression) path on embeddings
wider than 50 columns called ``pca`` with a keyword it does not take; option typos surfaced as a
raw ``TypeError`` after the work; CLI mistakes were tracebacks or multi-line usage blocks.
"""

import json

import jax
import numpy as np
import pytest
from scipy.spatial import procrustes as scipy_procrustes

import geomtax.audit as ga
import geomtax.audit._audit as audit_mod
from geomtax import Status
from geomtax.cli._main import main as cli_main

STATUS_NAMES = set(Status._name_to_item)
N, WIDE = 64, 768
MI = {"estimator": "ksg", "num_seeds": 2, "random_dim": 8}


def _foundation_like(rng, n=N, d=WIDE):
    """An embedding like a foundation model's: decaying spectrum, a few massive dimensions."""
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d))
    x = rng.normal(size=(n, d)) * spectrum
    x[:, [3, 100, 500]] *= 100.0  # "massive activation" dimensions
    return (x + 5.0).astype(np.float32)


def _pca_scores(x, m):
    """Independent PCA oracle (float64 SVD of the centred data)."""
    xc = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u[:, :m] * s[:m]


def _walk_statuses(obj, found):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "status" or str(k).endswith("_status"):
                found.append((k, v))
            else:
                _walk_statuses(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _walk_statuses(v, found)
    return found


@pytest.fixture(scope="module")
def wide_report():
    rng = np.random.default_rng(0)
    up = _foundation_like(rng)
    down = np.tanh(up[:, :WIDE] @ rng.normal(size=(WIDE, WIDE)).astype(np.float32) / 30.0)
    feats = up[:, :3] + rng.normal(size=(N, 3)).astype(np.float32)
    models = {
        "up": ga.ModelEmbeddings(
            clean=up, perturbed={"noise": up + 0.1 * rng.normal(size=up.shape)}
        ),
        "down": ga.ModelEmbeddings(clean=down.astype(np.float32), upstream="up"),
    }
    rep = ga.run(models, features=feats, key=jax.random.key(0), mi_options=MI, compute_rd=False)
    return models, rep


def test_upstream_pca_path_on_768_wide_embeddings(wide_report):
    """Before: pca(x, num_components=m) raised TypeError for every embedding wider than 50."""
    models, rep = wide_report
    up = rep.models["down"]["upstream"]
    assert up["name"] == "up" and up["disparity_status"] == "ok"
    # Oracle: PCA to min(50, n - 1) components in float64, then scipy's Procrustes disparity.
    m = min(50, N - 1)
    _, _, disparity = scipy_procrustes(
        _pca_scores(models["up"].clean, m), _pca_scores(models["down"].clean, m)
    )
    assert up["disparity"] == pytest.approx(disparity, abs=2e-3)
    ev = rep.models["down"]["regimes"]
    assert ev["label"] != "not evaluated" or "status" in ev.get("reason", "")


def test_every_recorded_number_has_a_status(wide_report):
    _, rep = wide_report
    rec = rep.models["up"]
    pert = rec["perturbations"]["noise"]
    for name in (
        "procrustes_distortion",
        "procrustes_ratio",
        "perturbation_coherence",
        "perturbation_effect_size",
        "rdm_similarity",
        "knn_overlap",
    ):
        assert pert[f"{name}_status"] in STATUS_NAMES, (name, pert)
        assert (pert[f"{name}_status"] == "ok") == bool(np.isfinite(pert[name])), name
    assert rec["mi"]["global"]["status"] in STATUS_NAMES
    found = _walk_statuses(rec, [])
    assert len(found) >= 8
    assert {row["status"] for row in rep.table} <= STATUS_NAMES
    json.dumps(rep.to_dict())  # statuses are plain strings


def test_degenerate_perturbation_is_recorded_not_raised():
    """One degenerate input (every perturbed row identical) never stops the audit."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    const = np.ones_like(x)
    rep = ga.run(
        {"m": ga.ModelEmbeddings(clean=x, perturbed={"collapsed": const, "noise": x + 0.1})},
        features=x[:, :2],
        key=jax.random.key(0),
        compute_mi=False,
        compute_rd=False,
    )
    bad = rep.models["m"]["perturbations"]["collapsed"]
    assert bad["procrustes_distortion_status"] == "degenerate_input"
    assert np.isnan(bad["procrustes_distortion"])
    good = rep.models["m"]["perturbations"]["noise"]
    assert good["procrustes_distortion_status"] == "ok" and np.isfinite(
        good["procrustes_distortion"]
    )
    assert rep.table[0]["status"] == "degenerate_input"


@pytest.fixture
def no_work(monkeypatch):
    """Make any audit work fail loudly: the checks must all happen before it."""

    def boom(*args, **kwargs):
        raise AssertionError("the audit started working before rejecting its input")

    monkeypatch.setattr(audit_mod, "_audit_one", boom)


def test_option_typo_rejected_before_work(no_work):
    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match=r"'num_step'.*did you mean 'num_steps'"):
        ga.run({"m": x}, features=x[:, :2], key=jax.random.key(0), mi_options={"num_step": 5})
    with pytest.raises(ValueError, match="'num_code'"):
        ga.run({"m": x}, features=x[:, :2], key=jax.random.key(0), rd_options={"num_code": 5})


def _cli(argv, capsys):
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _assert_one_line(code, err, cmd, *needles):
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"geomtax {cmd}: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(30, 4)))
    np.save(tmp_path / "feats.npy", rng.normal(size=(30, 2)))
    np.savez(tmp_path / "many.npz", a=rng.normal(size=(30, 4)), b=rng.normal(size=(30, 4)))
    (tmp_path / "text.npy").write_text("1 2 3\n4 5 6\n")
    return tmp_path


@pytest.mark.parametrize(
    "mistake, needles",
    [
        ("mi_option_typo", ("--mi-option", "'num_step'", "did you mean 'num_steps'")),
        ("rd_option_typo", ("--rd-option", "'num_code'")),
        ("missing_model_file", ("--model", "missing.npy", "no such file")),
        ("text_named_npy", ("text.npy", "not a .npy file")),
        ("npz_key_missing", ("many.npz", "no array named 'zz'")),
        ("unknown_model_perturbed", ("--perturbed", "unknown model 'nope'")),
        ("unknown_upstream", ("--upstream", "unknown model 'ghost'")),
        ("bad_perplexity", ("--perplexity", "not a number")),
        ("no_features", ("--features", "--fasta")),
        ("no_model_flag", ("--model",)),
        ("bad_named", ("--model expects NAME=VALUE",)),
        ("row_mismatch", ("rows must be paired",)),
        ("perturbed_row_mismatch", ("--perturbed m:noise=", "has 29 rows", "has 30")),
    ],
)
def test_audit_cli_mistakes_are_one_line_before_work(files, capsys, no_work, mistake, needles):
    emb, feats = str(files / "emb.npy"), str(files / "feats.npy")
    argv = ["audit", "--model", f"m={emb}", "--features", feats, "--out", str(files / "o")]
    if mistake == "mi_option_typo":
        argv += ["--mi-option", "num_step=5"]
    elif mistake == "rd_option_typo":
        argv += ["--rd-option", "num_code=5"]
    elif mistake == "missing_model_file":
        argv[2] = f"m={files / 'missing.npy'}"
    elif mistake == "text_named_npy":
        argv[2] = f"m={files / 'text.npy'}"
    elif mistake == "npz_key_missing":
        argv[2] = f"m={files / 'many.npz'}#zz"
    elif mistake == "unknown_model_perturbed":
        argv += ["--perturbed", f"nope:noise={emb}"]
    elif mistake == "unknown_upstream":
        argv += ["--upstream", "m=ghost"]
    elif mistake == "bad_perplexity":
        argv += ["--perplexity", "m=low"]
    elif mistake == "no_features":
        argv = argv[:3] + argv[5:]
    elif mistake == "no_model_flag":
        argv = ["audit", "--features", feats]
    elif mistake == "bad_named":
        argv[2] = emb
    elif mistake == "row_mismatch":
        np.save(files / "short.npy", np.ones((29, 2)))
        argv[4] = str(files / "short.npy")
    elif mistake == "perturbed_row_mismatch":
        np.save(files / "short.npy", np.ones((29, 4)))
        argv += ["--perturbed", f"m:noise={files / 'short.npy'}"]
    code, err = _cli(argv, capsys)
    _assert_one_line(code, err, "audit", *needles)
    assert not (files / "o").exists()


def test_audit_cli_checks_row_counts_from_headers_before_loading(files, capsys, monkeypatch):
    """Row counts come from the files' headers: no array is read before they agree."""
    import geomtax.cli._audit as cli_audit

    def refuse(*a, **k):
        raise AssertionError("an array was loaded before the row counts were checked")

    monkeypatch.setattr(cli_audit, "load_array", refuse)
    np.save(files / "short.npy", np.ones((29, 4)))
    argv = ["audit", "--model", f"m={files / 'emb.npy'}", "--features", str(files / "feats.npy")]
    argv += ["--local", f"m={files / 'short.npy'}", "--out", str(files / "o")]
    code, err = _cli(argv, capsys)
    _assert_one_line(code, err, "audit", "--local m=", "has 29 rows", "rows must be paired")


def test_ablation_and_bench_cli_mistakes_are_one_line(capsys):
    code, err = _cli(["ablation", "--preset", "nope", "--no-progress"], capsys)
    _assert_one_line(code, err, "ablation", "nope")
    code, err = _cli(["ablation", "--seeds", "1,x"], capsys)
    _assert_one_line(code, err, "ablation", "--seeds")
    code, err = _cli(["bench", "--only", "geometry,banana"], capsys)
    _assert_one_line(code, err, "bench", "banana")
    code, err = _cli(["bench", "--repeats", "0"], capsys)
    _assert_one_line(code, err, "bench", "--repeats")
    code, err = _cli(["sweep"], capsys)
    _assert_one_line(code, err, "sweep", "config")


def test_ablation_help_points_to_the_docs(capsys):
    with pytest.raises(SystemExit):
        cli_main(["ablation", "--help"])
    out = capsys.readouterr().out
    assert "REFERENCE.md" not in out and "docs/" in out
