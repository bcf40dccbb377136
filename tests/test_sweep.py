"""Sweep runner: grid expansion, Parquet table, resume after a kill, lock refusal."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from geomtax.cli._main import main as cli_main
from geomtax.sweep import (
    ResultStore,
    SweepConfigError,
    SweepLockedError,
    expand_grid,
    load_config,
    normalize_config,
    read_results,
    run_sweep,
)

ESTIMATORS = '''
import time
import jax
import jax.numpy as jnp
import numpy as np


def keyed(x, y, *, key, scale=1.0):
    """A stochastic estimator: one uniform draw per key plus a data term."""
    return {"draw": jax.random.uniform(key) * scale, "xy": jnp.mean(x * y), "n": x.shape[0]}


def slow_mean(x, *, factor=1.0, delay=0.0):
    time.sleep(delay)
    return float(np.mean(x) * factor)


def flaky(x, *, key):
    if float(jax.random.uniform(key)) >= 0.0 and x.shape[0] == 3:
        raise RuntimeError("boom")
    return jnp.sum(x)
'''


def _config(tmp_path, *, vectorize=True, delay=0.0, seeds=(0, 1, 2), batch_size=4, layers=(0, 1)):
    (tmp_path / "sweep_test_estimators.py").write_text(ESTIMATORS)
    for layer in layers:
        np.save(tmp_path / f"x{layer}.npy", np.arange(12.0).reshape(6, 2) + layer)
    np.save(tmp_path / "y.npy", np.linspace(0.0, 1.0, 12).reshape(6, 2))
    cfg = {
        "sweep": {
            "name": "t",
            "chunk_size": batch_size,
            "vectorize": vectorize,
            "python_path": ["."],
            "out": "out",
        },
        "grid": {"layer": list(layers), "seed": list(seeds), "estimator": ["keyed", "slow"]},
        "data": {"x": "x{layer}.npy", "y": "y.npy"},
        "estimators": {
            "keyed": {"function": "sweep_test_estimators:keyed", "options": {"scale": 2.0}},
            "slow": {
                "function": "sweep_test_estimators:slow_mean",
                "options": {"factor": 3.0, "delay": delay},
            },
        },
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path, cfg


def _oracle(row, tmp_path):
    """Expected outputs of one row, recomputed independently with NumPy and jax.random."""
    x = np.arange(12.0).reshape(6, 2) + row["layer"]
    y = np.linspace(0.0, 1.0, 12).reshape(6, 2)
    if row["estimator"] == "slow":
        return {"value": np.mean(x) * 3.0}
    draw = float(jax.random.uniform(jax.random.key(row["seed"]))) * 2.0
    return {"draw": draw, "xy": np.mean(x * y), "n": 6}


def _check_rows(table, tmp_path, expected_ids):
    rows = table.to_pylist()
    ids = [r["cell_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated rows"
    assert set(ids) == set(expected_ids), "lost rows"
    for r in rows:
        for k, v in _oracle(r, tmp_path).items():
            np.testing.assert_allclose(r[k], v, rtol=1e-6, err_msg=f"{k} of {r}")


def test_expansion_order_ids_and_errors(tmp_path):
    path, cfg = _config(tmp_path)
    cells = expand_grid(load_config(path))
    assert len(cells) == 2 * 3 * 2
    assert [c.index for c in cells] == list(range(12))
    # Last grid key varies fastest, keys in file order.
    assert [(c.params["layer"], c.params["seed"], c.estimator) for c in cells[:3]] == [
        (0, 0, "keyed"),
        (0, 0, "slow"),
        (0, 1, "keyed"),
    ]
    assert cells[0].data == {"x": "x0.npy", "y": "y.npy"}
    assert cells[0].options == {"scale": 2.0}
    # Ids are stable across loads and formats, and independent of dict key order.
    toml = tmp_path / "sweep.toml"
    toml.write_text(
        textwrap.dedent(
            """
            [sweep]
            name = "t"
            python_path = ["."]
            [grid]
            layer = [0, 1]
            seed = [0, 1, 2]
            estimator = ["keyed", "slow"]
            [data]
            y = "y.npy"
            x = "x{layer}.npy"
            [estimators.keyed]
            function = "sweep_test_estimators:keyed"
            options = {scale = 2.0}
            [estimators.slow]
            function = "sweep_test_estimators:slow_mean"
            options = {delay = 0.0, factor = 3.0}
            """
        )
    )
    assert [c.cell_id for c in expand_grid(load_config(toml))] == [c.cell_id for c in cells]
    assert len({c.cell_id for c in cells}) == 12
    # An option changes the id; "opt." grid keys become options.
    cfg2 = dict(cfg, grid={**cfg["grid"], "estimator": ["keyed"], "opt.scale": [2.0, 5.0]})
    cells2 = expand_grid(normalize_config(cfg2))
    assert len({c.cell_id for c in cells2}) == len(cells2) == 12
    assert cells2[1].options == {"scale": 5.0} and cells2[1].cell_id not in {
        c.cell_id for c in cells
    }
    with pytest.raises(ValueError, match="identical"):
        expand_grid(normalize_config(dict(cfg, grid={**cfg["grid"], "seed": [0, 0]})))
    with pytest.raises(ValueError, match="not grid keys"):
        expand_grid(normalize_config(dict(cfg, data={"x": "x{model}.npy"})))
    with pytest.raises(ValueError, match="unknown"):
        normalize_config(dict(cfg, extra=1))
    with pytest.raises(ValueError, match="estimator"):
        normalize_config(dict(cfg, grid={"seed": [0]}))


def test_run_matches_oracle_vectorized_and_not(tmp_path):
    (tmp_path / "a").mkdir()
    path, _ = _config(tmp_path / "a")
    s = run_sweep(path, allow_import=True, progress=False)
    assert (s.total, s.computed, s.failed, s.already_done) == (12, 12, 0, 0)
    table = read_results(tmp_path / "a" / "out")
    ids = [c.cell_id for c in expand_grid(load_config(path))]
    _check_rows(table, tmp_path, ids)
    # keyed cells with the same layer ran as one vmapped group of 3 seeds.
    assert {r["group_size"] for r in table.to_pylist() if r["estimator"] == "keyed"} == {3}
    # The one-cell-at-a-time path gives the same table.
    (tmp_path / "b").mkdir()
    path_b, _ = _config(tmp_path / "b", vectorize=False)
    run_sweep(path_b, allow_import=True, progress=False)
    _check_rows(read_results(tmp_path / "b" / "out"), tmp_path, ids)
    # A second run finds everything done and writes nothing.
    again = run_sweep(path, allow_import=True, progress=False)
    assert (again.computed, again.already_done) == (0, 12)
    assert read_results(tmp_path / "a" / "out").num_rows == 12


def test_kill_and_resume(tmp_path):
    path, _ = _config(tmp_path, vectorize=False, delay=0.4, batch_size=1, seeds=(0, 1, 2, 3))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "geomtax", "sweep", str(path), "--allow-import", "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    parts = tmp_path / "out" / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = read_results(tmp_path / "out")
    assert 3 <= before.num_rows < 16, "the kill should land mid-sweep"
    # Resume in-process (no delay needed for correctness, but keep the same config => same ids).
    s = run_sweep(path, allow_import=True, progress=False)
    assert s.already_done == before.num_rows
    assert s.computed == 16 - before.num_rows
    after = read_results(tmp_path / "out")
    ids = [c.cell_id for c in expand_grid(load_config(path))]
    _check_rows(after, tmp_path, ids)
    # Rows finished before the kill are untouched.
    kept = {r["cell_id"]: r["finished_utc"] for r in before.to_pylist()}
    assert all(
        kept[r["cell_id"]] == r["finished_utc"] for r in after.to_pylist() if r["cell_id"] in kept
    )


def test_concurrent_run_refused(tmp_path, capsys):
    path, _ = _config(tmp_path)
    with ResultStore(tmp_path / "out"):
        with pytest.raises(SweepLockedError, match="another geomtax sweep"):
            run_sweep(path, allow_import=True, progress=False)
        assert cli_main(["sweep", str(path), "--allow-import", "--no-progress"]) == 3
        assert "lock" in capsys.readouterr().err
    assert not (tmp_path / "out" / "parts").exists() or not list(
        (tmp_path / "out" / "parts").glob("*.parquet")
    )
    assert cli_main(["sweep", str(path), "--allow-import", "--no-progress"]) == 0  # lock released


def test_failures_logged_and_hosts_partition(tmp_path, monkeypatch):
    path, cfg = _config(tmp_path)
    cfg["grid"]["estimator"] = ["sweep_test_estimators:flaky", "slow"]
    cfg["data"]["x"] = "x{layer}.npy"
    cfg["grid"]["layer"] = [0, 1]
    np.save(tmp_path / "x1.npy", np.ones((3, 2)))  # flaky raises on 3-row inputs
    path.write_text(json.dumps(cfg))
    # Two "hosts" of a multi-host job share the output folder: disjoint cells, disjoint files.
    for pid in (0, 1):
        monkeypatch.setattr(jax, "process_index", lambda pid=pid: pid)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        s = run_sweep(path, allow_import=True, progress=False)
        assert s.assigned == 6
    lines = (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    failures = [json.loads(line) for line in lines]
    assert len(failures) == 3 and all("boom" in f["error"] for f in failures)
    table = read_results(tmp_path / "out")
    assert table.num_rows == 12 - 3
    assert sorted(set(table.column("process_index").to_pylist())) == [0, 1]
    assert len(set(table.column("cell_id").to_pylist())) == table.num_rows


def test_partial_part_files_ignored_and_cleaned(tmp_path):
    """A part left half-written by a kill (temporary name) is never read and is removed."""
    path, _ = _config(tmp_path)
    parts = tmp_path / "out" / "parts"
    parts.mkdir(parents=True)
    stale = parts / ".part-p000-000000-deadbeef.parquet.tmp"
    stale.write_bytes(b"PAR1 truncated")
    s = run_sweep(path, allow_import=True, progress=False, max_cells=5)
    assert s.computed == 5 and not stale.exists()
    assert read_results(tmp_path / "out").num_rows == 5
    # Sequence numbers continue after existing parts; nothing is overwritten.
    out2 = tmp_path / "elsewhere"
    argv = ["sweep", str(path), "--allow-import", "--no-progress", "--out", str(out2)]
    assert cli_main(argv) == 0
    assert read_results(out2).num_rows == 12
    names = sorted(p.name for p in parts.glob("part-*.parquet"))
    run_sweep(path, allow_import=True, progress=False)
    new = sorted(p.name for p in parts.glob("part-*.parquet"))
    assert set(names) <= set(new) and read_results(tmp_path / "out").num_rows == 12


# ----------------------------------------------------------------------------- fail early


def _cli(argv, capsys):
    """Exit status and stderr of ``geomtax ARGV`` (argparse errors raise SystemExit)."""
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line_error(code, err, cmd, *needles):
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"geomtax {cmd}: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


def _registry_config(tmp_path, **over):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x @ np.linalg.qr(rng.normal(size=(3, 3)))[0])
    cfg = {
        "sweep": {"name": "r", "out": "out"},
        "grid": {"estimator": ["procrustes_distortion"]},
        "data": {"x": "x.npy", "y": "y.npy"},
    }
    for k, v in over.items():
        cfg[k] = v
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path


def test_registry_estimator_runs_without_opt_in_and_records_status(tmp_path):
    """A registry name needs no opt-in; each stored value comes with its status column."""
    path = _registry_config(tmp_path)
    s = run_sweep(path, progress=False)
    assert (s.computed, s.failed) == (1, 0)
    (row,) = read_results(tmp_path / "out").to_pylist()
    # y is an exact rotation of x: Procrustes D is 0 (an independent closed form).
    assert abs(row["value"]) < 1e-3
    assert row["status"] == "ok"


def test_import_path_refused_without_opt_in(tmp_path, capsys, monkeypatch):
    """A config naming an arbitrary callable (subprocess:check_output) never runs it by default."""
    calls = []
    monkeypatch.setattr(subprocess, "check_output", lambda *a, **k: calls.append(a))
    path = _registry_config(
        tmp_path, grid={"estimator": ["subprocess:check_output"]}, data={"x": "x.npy"}
    )
    with pytest.raises(ValueError, match="allow-import"):
        run_sweep(path, progress=False)
    code, err = _cli(["sweep", str(path), "--no-progress"], capsys)
    _one_line_error(code, err, "sweep", "subprocess:check_output", "--allow-import")
    assert calls == [] and not (tmp_path / "out").exists()
    # python_path is an import mechanism too.
    path = _registry_config(tmp_path, sweep={"python_path": ["."]})
    code, err = _cli(["sweep", str(path), "--no-progress"], capsys)
    _one_line_error(code, err, "sweep", "python_path", "--allow-import")
    # --help documents the flag.
    with pytest.raises(SystemExit):
        cli_main(["sweep", "--help"])
    assert "--allow-import" in capsys.readouterr().out


def test_missing_data_file_found_before_any_work(tmp_path, capsys):
    """Data paths are checked (exist, load) before any cell runs; before, the missing file was
    found mid-run and reported as 'vectorized call failed'."""
    path, cfg = _config(tmp_path, layers=(0,))
    cfg["grid"]["layer"] = [0, 1]  # x1.npy does not exist
    path.write_text(json.dumps(cfg))
    code, err = _cli(["sweep", str(path), "--allow-import", "--no-progress"], capsys)
    _one_line_error(code, err, "sweep", "x1.npy", "no such file")
    assert "vectorized" not in err
    assert not (tmp_path / "out" / "parts").exists()


@pytest.mark.parametrize(
    "mistake, needles",
    [
        ("unknown_estimator", ("procrustes_distorsion", "did you mean 'procrustes_distortion'")),
        ("unused_grid_key", ("'modle'", "not used")),
        ("data_key_not_in_grid", ("{layer}", "not grid keys")),
        ("option_typo", ("'varaint'", "did you mean 'variant'")),
        ("missing_config", ("no such file",)),
        ("invalid_toml", ("invalid TOML",)),
        ("text_npy", ("x.npy", "not a .npy file")),
        ("old_member_syntax", ("'file.npz#NAME'",)),
        ("bad_section", ("unknown top-level sections",)),
    ],
)
def test_config_mistakes_are_one_line_exit_2(tmp_path, capsys, mistake, needles):
    path = _registry_config(tmp_path)
    cfg = json.loads(path.read_text())
    if mistake == "unknown_estimator":
        cfg["grid"]["estimator"] = ["procrustes_distorsion"]
    elif mistake == "unused_grid_key":
        cfg["grid"]["modle"] = ["a", "b"]
    elif mistake == "data_key_not_in_grid":
        cfg["data"]["x"] = "x{layer}.npy"
    elif mistake == "option_typo":
        cfg["grid"]["opt.varaint"] = ["similarity"]
    elif mistake == "text_npy":
        (tmp_path / "x.npy").write_text("1 2 3\n4 5 6\n")
    elif mistake == "old_member_syntax":
        cfg["data"]["x"] = "x.npz:emb"
    elif mistake == "bad_section":
        cfg["extra"] = {}
    path.write_text(json.dumps(cfg))
    if mistake == "missing_config":
        path = tmp_path / "nope.toml"
    elif mistake == "invalid_toml":
        path = tmp_path / "bad.toml"
        path.write_text('[grid]\nestimator = ["knn_overlap"\n')
    code, err = _cli(["sweep", str(path), "--no-progress"], capsys)
    _one_line_error(code, err, "sweep", *needles)
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "parts").exists()


def test_data_member_syntax_is_file_hash_key(tmp_path):
    """Sweep data paths use the audit's PATH#KEY syntax and loaders (.npz member here)."""
    path = _registry_config(tmp_path)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    np.savez(tmp_path / "both.npz", emb=x, target=y)
    cfg = json.loads(path.read_text())
    cfg["data"] = {"x": "both.npz#emb", "y": "both.npz#target"}
    path.write_text(json.dumps(cfg))
    run_sweep(path, progress=False)
    (row,) = read_results(tmp_path / "out").to_pylist()
    assert row["data.x"] == "both.npz#emb" and abs(row["value"]) < 1e-3


def test_degenerate_cell_is_a_row_with_its_status_and_vmapped_statuses(tmp_path):
    """Estimators run with throw=False: a constant input is a row whose status says so (not a
    failure), and a vmapped group of seeds records one status per seed."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x0.npy", rng.normal(size=(24, 6)))
    np.save(tmp_path / "x1.npy", np.ones((24, 6)))  # every row identical: degenerate
    np.save(tmp_path / "y.npy", rng.normal(size=(24, 6)))
    cfg = {
        "sweep": {"name": "d", "out": "out", "chunk_size": 4},
        "grid": {
            "layer": [0, 1],
            "seed": [0, 1, 2],
            "estimator": ["procrustes_distortion", "feature_split_stability"],
        },
        "data": {"x": "x{layer}.npy", "y": "y.npy"},
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    s = run_sweep(path, progress=False)
    assert (s.computed, s.failed) == (12, 0)
    rows = read_results(tmp_path / "out").to_pylist()
    for r in rows:
        assert r["status"] in ("ok", "degenerate_input"), r
        assert (r["status"] == "ok") == bool(np.isfinite(r["value"])), r
    pd = {r["layer"]: r["status"] for r in rows if r["estimator"] == "procrustes_distortion"}
    assert pd == {0: "ok", 1: "degenerate_input"}
    fss = [r for r in rows if r["estimator"] == "feature_split_stability"]
    assert {r["group_size"] for r in fss} == {3}  # one vmapped call per layer
    assert {r["status"] for r in fss if r["layer"] == 0} == {"ok"}
    assert {r["status"] for r in fss if r["layer"] == 1} == {"degenerate_input"}


def test_sweep_batch_size_is_a_deprecated_alias_of_chunk_size():
    """0.2: ``[sweep] chunk_size`` (cells per vectorized call); the 0.1 key still reads, warned."""
    base = {"grid": {"seed": [0], "estimator": ["cka"]}, "data": {"x": "x.npy", "y": "x.npy"}}
    with pytest.warns(DeprecationWarning, match="batch_size is deprecated.*chunk_size"):
        old = normalize_config({"sweep": {"batch_size": 3}, **base})
    assert old["sweep"]["chunk_size"] == 3 and "batch_size" not in old["sweep"]
    with pytest.raises(SweepConfigError, match="both batch_size"):
        normalize_config({"sweep": {"batch_size": 3, "chunk_size": 3}, **base})
    with pytest.raises(SweepConfigError, match="chunk_size must be a positive integer"):
        normalize_config({"sweep": {"chunk_size": 0}, **base})
