"""``geomtax ablation``: run the encoder/head ablations and write tables and figures."""

import argparse
import time

from ..dynamics import get_system, registered_systems
from ..experiments._config import PRESETS
from ..experiments._registry import EXPERIMENTS
from ._errors import UsageError, one_line_errors


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _systems(value: str) -> tuple[str, ...]:
    """System names of ``--system``, each as the dynamics registry spells it.

    A deprecated spelling (``oscillator``, ``coupled-lorenz``) is accepted with a warning; an
    unknown one is a usage error naming the registered systems.
    """
    out = []
    for name in _csv(value):
        try:
            out.append(get_system(name).name)
        except ValueError as err:
            raise UsageError(f"--system {name!r}: {err}") from None
    return tuple(out)


def register(subparsers) -> None:
    """Add the ``ablation`` subcommand to the top-level parser."""
    p = subparsers.add_parser(
        "ablation",
        help="train encoders with CE vs continuous heads and measure their distortion",
        description=(
            "Encoder/head ablations of the Geometric Alignment Tax (see docs/guides/ablation.md). "
            "Writes config.json, cells.jsonl, results.json, results.csv, summary_*.csv and PNG "
            "figures into --out; rerunning with the same options resumes."
        ),
    )
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)}")
    p.add_argument(
        "--system",
        default=None,
        help=f"comma-separated systems ({', '.join(registered_systems())}); default: the preset's",
    )
    p.add_argument(
        "--experiments",
        default=None,
        help=f"comma-separated subset of {', '.join(EXPERIMENTS)}; default: the preset's",
    )
    p.add_argument(
        "--architectures",
        default=None,
        help="comma-separated subset of bert, mamba, striped_hyena, lstm; default: the preset's",
    )
    p.add_argument("--seeds", default=None, help="comma-separated integer seeds (default 320)")
    p.add_argument("--out", default="results/ablation", help="output directory")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=main)


@one_line_errors("geomtax ablation")
def main(args: argparse.Namespace) -> int:
    """Run the ablation described by parsed CLI ``args``; return the exit code."""
    from ..experiments import format_summary, preset_config, run_ablation

    try:
        seeds = tuple(int(s) for s in _csv(args.seeds)) if args.seeds else None
    except ValueError:
        raise UsageError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    try:
        config = preset_config(
            args.preset,
            systems=_systems(args.system) if args.system else None,
            experiments=_csv(args.experiments) if args.experiments else None,
            architectures=_csv(args.architectures) if args.architectures else None,
            seeds=seeds,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    t0 = time.perf_counter()
    try:
        result = run_ablation(
            config, args.out, progress=not args.no_progress, figures=not args.no_figures
        )
    except ValueError as err:  # e.g. --out holds a run with a different configuration
        raise UsageError(str(err)) from err
    print()
    print(format_summary(result))
    print(f"\nwall time {time.perf_counter() - t0:.1f} s; results in {args.out}")
    return 0
