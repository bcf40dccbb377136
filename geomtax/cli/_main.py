"""``geomtax`` console script.

Every subcommand is one module of this package. Each module listed in ``SUBCOMMANDS`` defines
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
namespace, returning an exit code). A listed module that is not installed is skipped; one that
exists but fails to import raises, so breakage is never hidden.

Usage and configuration errors of every subcommand are one line ``geomtax <cmd>: error: ...``
with exit status 2 (:mod:`geomtax.cli._errors`): argparse's through :class:`OneLineParser`, the
subcommands' own checks (made before any work) by raising :class:`UsageError`.
"""

import argparse
import importlib
import importlib.util
import sys

from .._version import __version__
from ._errors import OneLineParser, UsageError, report

#: subcommand name -> module defining ``register(subparsers)``.
SUBCOMMANDS: dict[str, str] = {
    "ablation": "geomtax.cli._ablation",
    "audit": "geomtax.cli._audit",
    "sweep": "geomtax.cli._sweep",
    "bench": "geomtax.cli._bench",
}


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = OneLineParser(
        prog="geomtax",
        description=(
            "Measure the Geometric Alignment Tax: distortion, mutual information and "
            "rate-distortion of learned representations."
        ),
    )
    parser.add_argument("--version", action="version", version=f"geomtax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if _module_exists(module):
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geomtax`` console script."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        return report(f"geomtax {args.command}", err)


if __name__ == "__main__":
    raise SystemExit(main())
