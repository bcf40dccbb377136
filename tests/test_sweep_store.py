"""Sweep store faults: inputs changed in place, unreadable / copied / conflicting parts."""

import json
import shutil

import numpy as np
import pytest

from geomtax.sweep import SweepStoreError, expand_grid, load_config, read_results, run_sweep

ESTIMATOR = """
import numpy as np


def mean(x, *, factor=1.0):
    return float(np.mean(x) * factor)
"""


def _sweep(tmp_path):
    (tmp_path / "store_test_estimators.py").write_text(ESTIMATOR)
    for layer in (0, 1):
        np.save(tmp_path / f"x{layer}.npy", np.full((4, 2), float(layer)))
    cfg = {
        "sweep": {"name": "s", "python_path": ["."], "out": "out"},
        "grid": {"layer": [0, 1], "opt.factor": [1.0, 2.0], "estimator": ["m"]},
        "data": {"x": "x{layer}.npy"},
        "estimators": {"m": {"function": "store_test_estimators:mean"}},
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path


def _run(path, progress=False, **kw):
    return run_sweep(path, allow_import=True, progress=progress, **kw)


def _parts(tmp_path):
    return sorted((tmp_path / "out" / "parts").glob("part-*.parquet"))


def test_overwritten_input_recomputes_its_cells(tmp_path, capsys):
    path = _sweep(tmp_path)
    assert _run(path).computed == 4
    again = _run(path, progress=True)
    assert (again.already_done, again.computed, again.inputs_changed) == (4, 0, 0)
    assert "4 reused, 0 computed" in capsys.readouterr().err
    np.save(tmp_path / "x0.npy", np.full((4, 2), 10.0))  # same shape and size, new data
    s = _run(path, progress=True)
    assert (s.already_done, s.computed, s.inputs_changed) == (2, 2, 2)
    assert "2 reused, 2 computed (2 because their inputs" in capsys.readouterr().err
    rows = read_results(tmp_path / "out").to_pylist()
    assert len(rows) == 4
    assert {r["cell_id"] for r in rows} == {c.cell_id for c in expand_grid(load_config(path))}
    got = {(r["layer"], json.loads(r["options"])["factor"]): r["value"] for r in rows}
    assert got == {(0, 1.0): 10.0, (0, 2.0): 20.0, (1, 1.0): 1.0, (1, 2.0): 2.0}
    assert _run(path).already_done == 4  # the hash cache does not hide anything


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_unreadable_part_moved_aside_and_recomputed(tmp_path, capsys, damage):
    path = _sweep(tmp_path)
    run_sweep(
        dict(load_config(path), sweep={**load_config(path)["sweep"], "chunk_size": 2}),
        out_dir=tmp_path / "out",
        allow_import=True,
        progress=False,
    )
    parts = _parts(tmp_path)
    assert len(parts) == 2
    bad = parts[0]
    data = bad.read_bytes()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"x" * 99}[damage]
    )
    table = read_results(tmp_path / "out")  # moves it aside instead of a pyarrow traceback
    err = capsys.readouterr().err
    assert bad.name in err and "quarantine" in err and table.num_rows == 2
    assert (tmp_path / "out" / "quarantine" / bad.name).is_file() and not bad.exists()
    s = _run(path)
    assert (s.already_done, s.computed) == (2, 2)
    ids = read_results(tmp_path / "out").column("cell_id").to_pylist()
    assert sorted(ids) == sorted(c.cell_id for c in expand_grid(load_config(path)))


def test_unreadable_part_found_on_start(tmp_path, capsys):
    path = _sweep(tmp_path)
    _run(path)
    (part,) = _parts(tmp_path)
    part.write_bytes(b"")
    s = _run(path)
    assert (s.quarantined, s.computed) == (1, 4)
    assert part.name in capsys.readouterr().err
    assert read_results(tmp_path / "out").num_rows == 4


def test_copied_part_gives_one_row_per_cell(tmp_path):
    path = _sweep(tmp_path)
    _run(path)
    (part,) = _parts(tmp_path)
    shutil.copy(part, part.with_name(part.name.replace("000000", "000007")))
    table = read_results(tmp_path / "out")
    assert table.num_rows == 4 and len(set(table.column("cell_id").to_pylist())) == 4
    assert _run(path).already_done == 4


def test_conflicting_parts_name_the_cell(tmp_path, capsys):
    import pyarrow.parquet as pq

    path = _sweep(tmp_path)
    _run(path)
    (part,) = _parts(tmp_path)
    rows = pq.read_table(part).to_pylist()
    rows[0]["value"] += 1.0
    import pyarrow as pa

    other = part.with_name(part.name.replace("000000", "000009"))
    pq.write_table(pa.Table.from_pylist(rows[:1]), other)
    with pytest.raises(SweepStoreError, match=rows[0]["cell_id"]) as info:
        read_results(tmp_path / "out")
    assert part.name in str(info.value) and other.name in str(info.value)
    with pytest.raises(SweepStoreError, match=rows[0]["cell_id"]):
        _run(path)
    # the command line says it in one line, exit status 4
    from geomtax.cli._main import main as cli_main

    capsys.readouterr()
    assert cli_main(["sweep", str(path), "--allow-import", "--no-progress"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomtax sweep: ") and rows[0]["cell_id"] in err[0]
