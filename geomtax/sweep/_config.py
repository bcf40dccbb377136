"""Sweep configuration: load a TOML/JSON file and expand its grid into cells with stable ids."""

import dataclasses
import hashlib
import itertools
import json
import string
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._version import __version__

#: Grid keys starting with this prefix are passed to the estimator as keyword options.
OPTION_PREFIX = "opt."


class SweepConfigError(ValueError):
    """A mistake in a sweep configuration, found before any cell runs (one line)."""


_SWEEP_DEFAULTS: dict[str, Any] = {
    "name": "sweep",
    "out": None,
    "chunk_size": 8,
    "vectorize": True,
    "python_path": [],
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of a sweep grid.

    Attributes:
        cell_id: stable id, the first 16 hex digits of the SHA-256 of :attr:`spec` as canonical
            JSON (sorted keys): it covers everything the result depends on -- the grid values,
            the estimator and its options, the data paths, the *contents* of the data files
            (:attr:`inputs`) and the geomtax version -- so an input overwritten with new data,
            or a new geomtax release, gives new ids (and recomputed cells).
        index: position in the deterministic expansion order (file order of the grid keys,
            itertools.product order of their values).
        params: the grid values of this cell (``seed``, ``model``, ``layer``, ``opt.*``, ...).
        estimator: estimator name as written in the grid.
        function: import path of the estimator function (``"pkg.module:function"``).
        options: keyword options for the estimator (``[estimators.NAME].options`` updated by the
            cell's ``opt.*`` grid values).
        data: input file paths after formatting with ``params`` (keys ``x`` and optionally ``y``).
        inputs: content hash of each data file (same keys as :attr:`data`; ``None`` for a file
            that could not be read).
        key: the id of the cell's configuration alone (:attr:`spec` without the input contents
            and the version); a stored row with this key but another :attr:`cell_id` is a
            result of the same cell on older inputs (superseded).
    """

    cell_id: str
    index: int
    params: dict[str, Any]
    estimator: str
    function: str
    options: dict[str, Any]
    data: dict[str, str]
    inputs: dict[str, str | None] = dataclasses.field(default_factory=dict)
    key: str = ""

    @property
    def config_spec(self) -> dict[str, Any]:
        """What the cell computes, by configuration only (hashed into :attr:`key`)."""
        return {
            "params": self.params,
            "function": self.function,
            "options": self.options,
            "data": self.data,
        }

    @property
    def spec(self) -> dict[str, Any]:
        """Everything the cell's result depends on (hashed into :attr:`cell_id`)."""
        return {**self.config_spec, "inputs": self.inputs, "geomtax": __version__}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace (the hashed form of a cell)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(spec: dict[str, Any]) -> str:
    """Stable id of a cell spec: ``sha256(canonical_json(spec))[:16]``.

    Examples:
        >>> cell_id({"params": {"seed": 0}}) == cell_id({"params": {"seed": 0}})
        True
        >>> len(cell_id({"a": 1}))
        16
    """
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a sweep configuration from a ``.toml`` or ``.json`` file.

    The returned dict has the keys ``sweep`` (defaults filled in), ``grid``, ``data`` and
    ``estimators``, plus ``base_dir`` (the config file's folder, against which relative paths
    are resolved).

    Raises:
        SweepConfigError: a missing file, an unknown extension, invalid TOML/JSON or a
            malformed configuration (a ``ValueError``).
    """
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise SweepConfigError(f"sweep config must be a .toml or .json file; got {str(path)!r}")
    if not path.is_file():
        raise SweepConfigError(f"{path}: no such file")
    try:
        if path.suffix == ".toml":
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        else:
            raw = json.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SweepConfigError(f"{path}: invalid TOML ({err})") from err
    except json.JSONDecodeError as err:
        raise SweepConfigError(f"{path}: invalid JSON ({err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SweepConfigError(f"{path}: could not read the file ({err})") from err
    return normalize_config(raw, base_dir=path.resolve().parent)


def normalize_config(raw: dict[str, Any], *, base_dir: str | Path = ".") -> dict[str, Any]:
    """Validate a raw config dict and fill in defaults (see :func:`load_config`)."""
    if not isinstance(raw, dict):
        raise SweepConfigError(f"a sweep config must be a table/object; got {type(raw).__name__}")
    unknown = set(raw) - {"sweep", "grid", "data", "estimators"}
    if unknown:
        raise SweepConfigError(
            f"unknown top-level sections {sorted(unknown)}; expected sweep, grid, data, estimators"
        )
    if not isinstance(raw.get("sweep", {}), dict):
        raise SweepConfigError("[sweep] must be a table")
    given = dict(raw.get("sweep", {}))
    if "batch_size" in given:  # the 0.1 name; batch_size means a training minibatch in 0.2
        if "chunk_size" in given:
            raise SweepConfigError("[sweep] has both batch_size (deprecated) and chunk_size")
        warnings.warn(
            "[sweep] batch_size is deprecated since geomtax 0.2 and will be removed in 0.3; "
            "write chunk_size (cells per vectorized call)",
            DeprecationWarning,
            stacklevel=2,
        )
        given["chunk_size"] = given.pop("batch_size")
    sweep = {**_SWEEP_DEFAULTS, **given}
    bad = set(sweep) - set(_SWEEP_DEFAULTS)
    if bad:
        raise SweepConfigError(
            f"unknown [sweep] keys {sorted(bad)}; allowed: {sorted(_SWEEP_DEFAULTS)}"
        )
    if not isinstance(sweep["chunk_size"], int) or sweep["chunk_size"] < 1:
        raise SweepConfigError(
            f"[sweep] chunk_size must be a positive integer; got {sweep['chunk_size']}"
        )
    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise SweepConfigError("a sweep config needs a non-empty [grid] table")
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    for k, v in grid.items():
        if not v:
            raise SweepConfigError(f"grid key {k!r} has no values")
    if "estimator" not in grid:
        raise SweepConfigError("[grid] must list at least one estimator (key 'estimator')")
    if "seed" in grid and not all(isinstance(s, int) and s >= 0 for s in grid["seed"]):
        raise SweepConfigError(f"grid seeds must be non-negative integers; got {grid['seed']}")
    data = raw.get("data", {})
    if not isinstance(data, dict) or "x" not in data:
        raise SweepConfigError("a sweep config needs a [data] table with at least an 'x' path")
    if not isinstance(sweep["python_path"], list) or not all(
        isinstance(p, str) for p in sweep["python_path"]
    ):
        raise SweepConfigError(
            f"[sweep] python_path must be a list of folders; got {sweep['python_path']!r}"
        )
    if not isinstance(sweep["vectorize"], bool):
        raise SweepConfigError(
            f"[sweep] vectorize must be true or false; got {sweep['vectorize']!r}"
        )
    for k in grid:
        if not isinstance(k, str) or not k or k == OPTION_PREFIX:
            raise SweepConfigError(f"bad grid key {k!r}")
    for k, v in data.items():
        if k not in ("x", "y"):
            raise SweepConfigError(f"unknown [data] key {k!r}; expected 'x' and optionally 'y'")
        if not isinstance(v, str) or not v:
            raise SweepConfigError(f"[data] {k} must be a file path; got {v!r}")
    estimators = raw.get("estimators", {})
    if not isinstance(estimators, dict):
        raise SweepConfigError("[estimators] must be a table of [estimators.NAME] tables")
    for name, est in estimators.items():
        if not isinstance(est, dict) or "function" not in est:
            raise SweepConfigError(f"[estimators.{name}] needs a 'function' (an estimator name)")
        extra = set(est) - {"function", "options"}
        if extra:
            raise SweepConfigError(
                f"unknown keys {sorted(extra)} in [estimators.{name}]; allowed: function, options"
            )
        if not isinstance(est.get("options", {}), dict):
            raise SweepConfigError(f"[estimators.{name}] options must be a table")
    return {
        "sweep": sweep,
        "grid": grid,
        "data": dict(data),
        "estimators": estimators,
        "base_dir": str(base_dir),
    }


def _format(template: str, params: dict[str, Any]) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = fields - set(params)
    if missing:
        raise SweepConfigError(
            f"data path {template!r} uses {sorted(missing)}, which are not grid keys "
            f"({sorted(params)})"
        )
    return template.format(**params)


def expand_grid(
    config: dict[str, Any], *, fingerprint: Callable[[str], str | None] | None = None
) -> list[Cell]:
    """Expand the grid of a (normalized) config into cells, deterministically.

    The order is the Cartesian product of the grid values, keys in file order, the last key
    varying fastest. Each cell gets an id that is a hash of what it computes, including the
    contents of its data files.

    Args:
        config: a normalized config (:func:`load_config`).
        fingerprint: content hash of a data path (``None`` for an unreadable file); default:
            :class:`geomtax.sweep._hashing.InputHashes` over ``config["base_dir"]``, uncached
            (``run_sweep`` passes one cached in the output folder).

    Raises:
        ValueError: when two cells compute the same thing (duplicate grid values), or a data
            path names a key that is not in the grid.

    Examples:
        >>> cfg = normalize_config({"grid": {"estimator": ["m:f"], "seed": [0, 1]},
        ...                         "data": {"x": "x.npy"}})
        >>> [(c.index, c.params["seed"], c.function) for c in expand_grid(cfg)]
        [(0, 0, 'm:f'), (1, 1, 'm:f')]
    """
    if fingerprint is None:
        from ._hashing import InputHashes

        fingerprint = InputHashes(config.get("base_dir", "."))
    grid = config["grid"]
    keys = list(grid)
    cells = []
    seen: dict[str, int] = {}
    for index, values in enumerate(itertools.product(*(grid[k] for k in keys))):
        params = dict(zip(keys, values, strict=True))
        name = params["estimator"]
        if not isinstance(name, str):
            raise SweepConfigError(f"grid estimators must be strings; got {name!r}")
        est = config["estimators"].get(name, {"function": name, "options": {}})
        options = dict(est.get("options", {}))
        for k, v in params.items():
            if k.startswith(OPTION_PREFIX):
                options[k[len(OPTION_PREFIX) :]] = v
        fmt_params = {k: v for k, v in params.items() if not k.startswith(OPTION_PREFIX)}
        data = {k: _format(str(v), fmt_params) for k, v in config["data"].items()}
        inputs = {k: fingerprint(v) for k, v in data.items()}
        cell = Cell("", index, params, name, est["function"], options, data, inputs)
        key = cell_id(cell.config_spec)
        if key in seen:
            raise SweepConfigError(
                f"grid cells {seen[key]} and {index} are identical ({canonical_json(params)}); "
                "remove the duplicate grid value"
            )
        seen[key] = index
        cells.append(dataclasses.replace(cell, cell_id=cell_id(cell.spec), key=key))
    return cells
