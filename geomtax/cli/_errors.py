"""One-line usage errors for every ``geomtax`` subcommand.

Every usage or configuration mistake (a bad flag, an unknown estimator, a missing or unreadable
file, an option name the estimator does not take) is reported before any work starts as one
line ``geomtax <cmd>: error: <message>`` on stderr, with exit status 2:

* argparse's own errors go through :class:`OneLineParser` (no usage block, one line);
* a subcommand raises :class:`UsageError` while it checks its inputs;
  :func:`geomtax.cli._main.main` prints it and returns 2.
"""

import argparse
import functools
import sys
from typing import NoReturn

#: Exit status of a usage or configuration error (argparse's convention).
USAGE_EXIT = 2


class UsageError(Exception):
    """A usage or configuration error, reported as one line with exit status 2."""


def one_line(message: object) -> str:
    """``message`` with its lines joined by ``"; "`` (so the report is always one line)."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts) or type(message).__name__


def error_line(prog: str, message: object) -> str:
    """The one-line report: ``"<prog>: error: <message>"``."""
    return f"{prog}: error: {one_line(message)}"


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: ...``), exit status 2.

    Subparsers created by ``add_subparsers`` inherit the class, so every subcommand's
    argparse errors have the same form. ``--help`` still shows the full usage.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit with status 2."""
        self.exit(USAGE_EXIT, error_line(self.prog, message) + "\n")


def report(prog: str, message: object) -> int:
    """Print the one-line error of ``prog`` on stderr and return the exit status 2."""
    print(error_line(prog, message), file=sys.stderr)
    return USAGE_EXIT


def one_line_errors(prog: str):
    """Decorate a subcommand's ``main(args)``: a :class:`UsageError` becomes one line, exit 2.

    Examples:
        >>> @one_line_errors("geomtax demo")
        ... def main(args):
        ...     raise UsageError("no such file")
        >>> main(None)
        2
    """

    def wrap(fn):
        @functools.wraps(fn)
        def main(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UsageError as err:
                return report(prog, err)

        return main

    return wrap
