"""Run every benchmark (same as ``geomtax bench``); see ``benchmarks/README.md``.

Run: ``python benchmarks/run_all.py --size small --out results/bench [--only geometry,rd]``.
"""

import sys
from pathlib import Path

from geomtax.cli._main import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--benchmarks-dir" not in args:
        args += ["--benchmarks-dir", str(Path(__file__).resolve().parent)]
    raise SystemExit(main(["bench", *args]))
