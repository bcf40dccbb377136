"""``geomtax sweep CONFIG``: run or resume a grid of estimator configurations."""

import argparse
import sys

from ._errors import UsageError


def _run(args: argparse.Namespace) -> int:
    from ..sweep import SweepConfigError, SweepLockedError, SweepStoreError, run_sweep
    from ..sweep._runner import summary_json

    if args.max_cells is not None and args.max_cells < 1:
        raise UsageError(f"--max-cells must be >= 1; got {args.max_cells}")
    try:
        summary = run_sweep(
            args.config,
            out_dir=args.out,
            max_cells=args.max_cells,
            progress=not args.no_progress,
            distributed=True if args.distributed else None,
            allow_import=args.allow_import,
        )
    except SweepConfigError as exc:
        raise UsageError(str(exc)) from exc
    except SweepLockedError as exc:
        print(f"geomtax sweep: {exc}", file=sys.stderr)
        return 3
    except SweepStoreError as exc:  # the results folder disagrees with itself: nothing is lost
        print(f"geomtax sweep: {exc}", file=sys.stderr)
        return 4
    print(summary_json(summary))
    return 1 if summary.failed else 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand."""
    p = subparsers.add_parser(
        "sweep",
        help="run or resume a sweep (grid of models/layers/seeds/estimators) into a Parquet table",
        description=(
            "Expand the grid of CONFIG (TOML or JSON), check it completely (estimators, option "
            "names, grid keys, data files) before any work, skip cells already in the output "
            "table, and run the rest sharded over the available devices, appending one Parquet "
            "part per finished batch. Estimators are geomtax's public functions "
            "(procrustes_distortion, geomtax.info:mutual_information, ...); a config naming any "
            "other import path runs code of its author's choosing and needs --allow-import. "
            "Exit status: 0 done, 1 some cells failed (see failures.jsonl; rerun to retry), "
            "2 a usage or configuration error (one line, nothing run), 3 another run holds the "
            "output folder's lock."
        ),
    )
    p.add_argument("config", help="sweep configuration (.toml or .json)")
    p.add_argument("--out", default=None, help="output folder (default: [sweep].out)")
    p.add_argument("--max-cells", type=int, default=None, help="stop after this many cells")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--allow-import",
        action="store_true",
        help=(
            "allow estimators named by an import path outside geomtax's registry (and "
            "[sweep].python_path): the config then runs code it names; use only with configs "
            "you trust"
        ),
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() even without multi-host environment variables",
    )
    p.set_defaults(func=_run)
