"""``geomtax sweep CONFIG``: run or resume a grid of estimator configurations."""

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from ..sweep import SweepLockedError, run_sweep
    from ..sweep._runner import summary_json

    try:
        summary = run_sweep(
            args.config,
            out_dir=args.out,
            max_cells=args.max_cells,
            progress=not args.no_progress,
            distributed=True if args.distributed else None,
        )
    except SweepLockedError as exc:
        print(f"geomtax sweep: {exc}", file=sys.stderr)
        return 3
    print(summary_json(summary))
    return 1 if summary.failed else 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand."""
    p = subparsers.add_parser(
        "sweep",
        help="run or resume a sweep (grid of models/layers/seeds/estimators) into a Parquet table",
        description=(
            "Expand the grid of CONFIG (TOML or JSON), skip cells already in the output table, "
            "and run the rest sharded over the available devices, appending one Parquet part per "
            "finished batch. Exit status: 0 done, 1 some cells failed (see failures.jsonl; rerun "
            "to retry), 3 another run holds the output folder's lock."
        ),
    )
    p.add_argument("config", help="sweep configuration (.toml or .json)")
    p.add_argument("--out", default=None, help="output folder (default: [sweep].out)")
    p.add_argument("--max-cells", type=int, default=None, help="stop after this many cells")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() even without multi-host environment variables",
    )
    p.set_defaults(func=_run)
