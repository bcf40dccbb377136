"""``geomtax bench``: runs benchmark scripts by path, skips missing ones, writes JSON + Markdown."""

import json

import pytest

from geomtax.cli._bench import find_benchmarks_dir, load_benchmark
from geomtax.cli._main import main as cli_main

GOOD = """
from geomtax.bench import time_call

def run(*, size="small", repeats=5):
    n = 10 if size == "small" else 1000
    t = time_call(lambda: sum(range(n)), repeats=repeats)
    base = time_call(lambda: sum(list(range(n))), repeats=repeats)
    return [{"case": "sum", "n": n, "size": size, "median_s": t.median_s, "iqr_s": t.iqr_s,
             "baseline_s": base.median_s, "ratio": t.median_s / base.median_s,
             "timing": t.as_dict(), "note": "|err| < 1e-6"}]
"""

BROKEN = """
def run(*, size="small", repeats=5):
    raise RuntimeError("kaputt")
"""


@pytest.fixture
def bench_dir(tmp_path):
    d = tmp_path / "benchmarks"
    d.mkdir()
    (d / "geometry.py").write_text(GOOD)
    (d / "rd.py").write_text(BROKEN)
    return d


def test_only_one_family_writes_json_and_markdown(bench_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", "--only", "geometry", "--repeats", "3", "--benchmarks-dir", str(bench_dir)]
    assert cli_main([*argv, "--out", str(out)]) == 0
    payload = json.loads((out / "bench.json").read_text())
    assert list(payload["areas"]) == ["geometry"]
    (row,) = payload["areas"]["geometry"]["rows"]
    assert row["n"] == 10 and row["size"] == "small" and row["median_s"] > 0
    assert payload["environment"]["jax"]
    per_area = json.loads((out / "geometry.json").read_text())
    assert per_area["benchmark"] == "geometry" and per_area["rows"] == [row]
    md = (out / "bench.md").read_text()
    assert "## geometry" in md and "| case | n | size | median_s |" in md
    assert "| sum | 10 | small |" in md
    assert "\\|err\\| < 1e-6" in md  # pipes escaped so the table stays a table
    assert "timing" not in md and row["timing"]["repeats"] == 3  # nested: JSON only
    assert "## geometry" in capsys.readouterr().out


def test_missing_skipped_broken_reported(bench_dir, tmp_path):
    out = tmp_path / "out"
    argv = ["bench", "--only", "geometry,mi,rd", "--repeats", "2", "--size", "full"]
    assert cli_main([*argv, "--benchmarks-dir", str(bench_dir), "--out", str(out)]) == 1
    areas = json.loads((out / "bench.json").read_text())["areas"]
    assert areas["geometry"]["status"] == "ok" and areas["geometry"]["rows"][0]["n"] == 1000
    assert areas["mi"]["status"] == "skipped"
    assert areas["rd"]["status"] == "error" and "kaputt" in areas["rd"]["error"]
    md = (out / "bench.md").read_text()
    assert "_skipped:" in md and "kaputt" in md
    assert not (out / "rd.json").exists()


def test_unknown_area_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "--only", "geometry,banana"])
    assert exc.value.code == 2
    assert "banana" in capsys.readouterr().err


def test_repository_benchmarks_follow_the_contract():
    """Every script in the repository's benchmarks/ folder imports and defines run()."""
    d = find_benchmarks_dir()
    assert d is not None and (d / "kernels.py").is_file()
    for script in sorted(d.glob("*.py")):
        if script.name.startswith("_") or script.stem in {"run_all"}:
            continue
        try:
            module = load_benchmark(script)
        except ImportError as exc:  # a family still being written may import missing names
            pytest.skip(f"{script.name}: {exc}")
        assert callable(module.run)


def test_every_subcommand_lives_in_the_cli_package():
    """All command-line code is in ``geomtax.cli`` (no ``_cli`` modules in other namespaces)."""
    import importlib.util
    from pathlib import Path

    import geomtax
    from geomtax.cli._main import SUBCOMMANDS

    assert set(SUBCOMMANDS) == {"ablation", "audit", "sweep", "bench"}
    assert all(m.startswith("geomtax.cli.") for m in SUBCOMMANDS.values())
    assert all(importlib.util.find_spec(m) is not None for m in SUBCOMMANDS.values())
    root = Path(geomtax.__file__).parent
    stray = [p for p in root.rglob("*cli*.py") if root / "cli" not in p.parents]
    assert not stray, stray
