"""``geomtax bench``: run every family's benchmark script and write JSON plus a Markdown table.

Benchmark scripts follow one contract: ``benchmarks/<area>.py`` defines
``run(*, size="small", repeats=5) -> list[dict]``, built on :mod:`geomtax.bench` (compile time
apart from run time, medians and spread, peak memory, baseline timed in the same run). This
command imports each script by path, runs it, and collects the rows. A missing script is
reported as skipped; a script that raises is reported as an error (and the exit status is 1),
without stopping the others.
"""

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ._errors import UsageError

#: Benchmark areas, in the order they run (``kernels``: pairwise-kernel roofline).
AREAS = ("geometry", "mi", "rd", "dynamics", "training", "kernels")


def find_benchmarks_dir(explicit: str | Path | None = None) -> Path | None:
    """Locate the ``benchmarks/`` folder.

    ``explicit`` if given, else the one next to the package (editable install), else
    ``./benchmarks``; ``None`` when none exists.
    """
    if explicit is not None:
        return Path(explicit)
    import geomtax

    candidates = [Path(geomtax.__file__).resolve().parents[1] / "benchmarks", Path("benchmarks")]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def load_benchmark(path: Path):
    """Import a benchmark script by path and return its module (it must define ``run``)."""
    spec = importlib.util.spec_from_file_location(f"_geomtax_benchmark_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{path} does not define run(*, size, repeats) -> list[dict]")
    return module


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the Markdown table: nested values dropped (they stay in the JSON), pipes escaped."""
    out = []
    for r in rows:
        clean = {}
        for k, v in r.items():
            if isinstance(v, (dict, list, tuple)):
                continue
            clean[k] = v.replace("|", "\\|") if isinstance(v, str) else v
        out.append(clean)
    return out


def run_benchmarks(
    *,
    areas: list[str],
    size: str,
    repeats: int,
    benchmarks_dir: Path | None,
    out_dir: Path,
) -> dict[str, Any]:
    """Run the given areas; write ``<area>.json``, ``bench.json`` and ``bench.md`` in ``out_dir``.

    Returns:
        The payload of ``bench.json``: ``environment``, ``size``, ``repeats`` and, per area,
        ``status`` (``ok``/``skipped``/``error``), ``seconds``, ``rows`` and ``error``.
    """
    from ..bench import environment, format_table, write_results

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for area in areas:
        script = None if benchmarks_dir is None else benchmarks_dir / f"{area}.py"
        if script is None or not script.is_file():
            results[area] = {"status": "skipped", "reason": f"no script {script}"}
            print(f"[bench] {area}: skipped (no {script})", file=sys.stderr)
            continue
        print(f"[bench] {area}: running {script} (size={size})", file=sys.stderr)
        t0 = time.perf_counter()
        try:
            rows = list(load_benchmark(script).run(size=size, repeats=repeats))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not stop the rest
            results[area] = {
                "status": "error",
                "seconds": time.perf_counter() - t0,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8),
            }
            print(f"[bench] {area}: ERROR {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        write_results(out_dir / f"{area}.json", area, rows)
        results[area] = {"status": "ok", "seconds": time.perf_counter() - t0, "rows": rows}

    env = environment()
    payload = {"environment": env, "size": size, "repeats": repeats, "areas": results}
    (out_dir / "bench.json").write_text(json.dumps(payload, indent=2, default=str))

    lines = [
        "# geomtax benchmarks",
        "",
        f"size `{size}`, {repeats} repeats; device **{env['device']}** ({env['backend']}, "
        f"{env['num_devices']} device(s), {env['cpu_count']} CPUs); JAX {env['jax']}, "
        f"geomtax {env['geomtax']}, commit {env['commit']}; {env['time_utc']}.",
        "",
        "Times in seconds: `compile_s` is lowering + compilation, `median_s` / `iqr_s` the "
        "median and interquartile range of the compiled calls; `peak_rss_mb` is peak host "
        "memory. Baselines (scipy / scikit-learn / NumPy) ran in the same process on the same "
        "inputs.",
    ]
    for area, res in results.items():
        lines += ["", f"## {area}", ""]
        if res["status"] == "ok":
            rows = _table_rows(res["rows"])
            lines.append(format_table(rows, _columns(rows)) if rows else "_no rows_")
            lines += ["", f"_{res['seconds']:.1f} s in total._"]
        elif res["status"] == "skipped":
            lines.append(f"_skipped: {res['reason']}_")
        else:
            lines.append(f"**error**: `{res['error']}`")
    (out_dir / "bench.md").write_text("\n".join(lines) + "\n")
    return payload


def _parse_areas(text: str | None) -> list[str]:
    if not text:
        return list(AREAS)
    areas = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark area(s) {unknown}; choose from {', '.join(AREAS)}"
        )
    return areas


def _run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1; got {args.repeats}")
    if args.benchmarks_dir is not None and not Path(args.benchmarks_dir).is_dir():
        raise UsageError(f"--benchmarks-dir {args.benchmarks_dir}: no such folder")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    bench_dir = find_benchmarks_dir(args.benchmarks_dir)
    out_dir = Path(args.out)
    payload = run_benchmarks(
        areas=args.only,
        size=args.size,
        repeats=args.repeats,
        benchmarks_dir=bench_dir,
        out_dir=out_dir,
    )
    print((out_dir / "bench.md").read_text())
    statuses = {a: r["status"] for a, r in payload["areas"].items()}
    print(
        f"[bench] wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'}: {statuses}",
        file=sys.stderr,
    )
    return 1 if "error" in statuses.values() else 0


def register(subparsers) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks of every estimator family; write JSON and a Markdown table",
        description=(
            "Run benchmarks/<area>.py for each area (compile time apart from run time, medians "
            "and spread, peak memory, baselines timed in the same run) and write "
            "OUT/<area>.json, OUT/bench.json and OUT/bench.md. Missing scripts are skipped."
        ),
    )
    p.add_argument("--size", choices=("small", "full"), default="small")
    p.add_argument(
        "--only",
        type=_parse_areas,
        default=list(AREAS),
        metavar="AREAS",
        help=f"comma-separated subset of {','.join(AREAS)} (default: all)",
    )
    p.add_argument("--out", default="results/bench", help="output folder (default results/bench)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    p.add_argument(
        "--benchmarks-dir",
        default=None,
        help="folder holding the <area>.py scripts (default: the repository's benchmarks/)",
    )
    p.set_defaults(func=_run)
