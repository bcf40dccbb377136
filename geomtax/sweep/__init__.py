"""Resumable sweeps over a grid of configurations, sharded across devices and hosts.

A sweep is a TOML/JSON file (see the *Running sweeps* guide). :func:`expand_grid` turns it into
cells with stable ids, :func:`check_sweep` checks the whole configuration before any work
(estimators from geomtax's :func:`registry`; import paths only with ``allow_import``),
:func:`run_sweep` runs the unfinished cells (vectorizing and sharding seeds over devices) and
appends results, with each estimate's status, to a Parquet table that :func:`read_results`
reads back. ``geomtax sweep CONFIG`` is the command-line front end.
"""

from ._config import Cell as Cell
from ._config import SweepConfigError as SweepConfigError
from ._config import cell_id as cell_id
from ._config import expand_grid as expand_grid
from ._config import load_config as load_config
from ._config import normalize_config as normalize_config
from ._registry import ImportNotAllowedError as ImportNotAllowedError
from ._registry import registry as registry
from ._registry import resolve_function as resolve_function
from ._runner import SweepSummary as SweepSummary
from ._runner import check_sweep as check_sweep
from ._runner import run_sweep as run_sweep
from ._store import ResultStore as ResultStore
from ._store import SweepLockedError as SweepLockedError
from ._store import SweepStoreError as SweepStoreError
from ._store import read_results as read_results

__all__ = [
    "Cell",
    "ImportNotAllowedError",
    "ResultStore",
    "SweepConfigError",
    "SweepLockedError",
    "SweepStoreError",
    "SweepSummary",
    "cell_id",
    "check_sweep",
    "expand_grid",
    "load_config",
    "normalize_config",
    "read_results",
    "registry",
    "resolve_function",
    "run_sweep",
]
