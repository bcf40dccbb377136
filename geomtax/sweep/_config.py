"""Sweep configuration: load a TOML/JSON file and expand its grid into cells with stable ids."""

import dataclasses
import hashlib
import itertools
import json
import string
import tomllib
from pathlib import Path
from typing import Any

#: Grid keys starting with this prefix are passed to the estimator as keyword options.
OPTION_PREFIX = "opt."

_SWEEP_DEFAULTS: dict[str, Any] = {
    "name": "sweep",
    "out": None,
    "batch_size": 8,
    "vectorize": True,
    "python_path": [],
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of a sweep grid.

    Attributes:
        cell_id: stable id, the first 16 hex digits of the SHA-256 of :attr:`spec` as canonical
            JSON (sorted keys), so it depends only on what the cell computes.
        index: position in the deterministic expansion order (file order of the grid keys,
            itertools.product order of their values).
        params: the grid values of this cell (``seed``, ``model``, ``layer``, ``opt.*``, ...).
        estimator: estimator name as written in the grid.
        function: import path of the estimator function (``"pkg.module:function"``).
        options: keyword options for the estimator (``[estimators.NAME].options`` updated by the
            cell's ``opt.*`` grid values).
        data: input file paths after formatting with ``params`` (keys ``x`` and optionally ``y``).
    """

    cell_id: str
    index: int
    params: dict[str, Any]
    estimator: str
    function: str
    options: dict[str, Any]
    data: dict[str, str]

    @property
    def spec(self) -> dict[str, Any]:
        """What the cell computes (hashed into :attr:`cell_id`)."""
        return {
            "params": self.params,
            "function": self.function,
            "options": self.options,
            "data": self.data,
        }


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
        ValueError: on an unknown extension or a malformed configuration.
    """
    path = Path(path)
    if path.suffix == ".toml":
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    elif path.suffix == ".json":
        raw = json.loads(path.read_text())
    else:
        raise ValueError(f"sweep config must be a .toml or .json file; got {str(path)!r}")
    return normalize_config(raw, base_dir=path.resolve().parent)


def normalize_config(raw: dict[str, Any], *, base_dir: str | Path = ".") -> dict[str, Any]:
    """Validate a raw config dict and fill in defaults (see :func:`load_config`)."""
    if not isinstance(raw, dict):
        raise ValueError(f"a sweep config must be a table/object; got {type(raw).__name__}")
    unknown = set(raw) - {"sweep", "grid", "data", "estimators"}
    if unknown:
        raise ValueError(
            f"unknown top-level sections {sorted(unknown)}; expected sweep, grid, data, estimators"
        )
    sweep = {**_SWEEP_DEFAULTS, **raw.get("sweep", {})}
    bad = set(sweep) - set(_SWEEP_DEFAULTS)
    if bad:
        raise ValueError(f"unknown [sweep] keys {sorted(bad)}; allowed: {sorted(_SWEEP_DEFAULTS)}")
    if not isinstance(sweep["batch_size"], int) or sweep["batch_size"] < 1:
        raise ValueError(
            f"[sweep] batch_size must be a positive integer; got {sweep['batch_size']}"
        )
    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ValueError("a sweep config needs a non-empty [grid] table")
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    for k, v in grid.items():
        if not v:
            raise ValueError(f"grid key {k!r} has no values")
    if "estimator" not in grid:
        raise ValueError("[grid] must list at least one estimator (key 'estimator')")
    if "seed" in grid and not all(isinstance(s, int) and s >= 0 for s in grid["seed"]):
        raise ValueError(f"grid seeds must be non-negative integers; got {grid['seed']}")
    data = raw.get("data", {})
    if not isinstance(data, dict) or "x" not in data:
        raise ValueError("a sweep config needs a [data] table with at least an 'x' path")
    estimators = raw.get("estimators", {})
    for name, est in estimators.items():
        if not isinstance(est, dict) or "function" not in est:
            raise ValueError(f"[estimators.{name}] needs a 'function' import path")
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
        raise ValueError(
            f"data path {template!r} uses {sorted(missing)}, which are not grid keys "
            f"({sorted(params)})"
        )
    return template.format(**params)


def expand_grid(config: dict[str, Any]) -> list[Cell]:
    """Expand the grid of a (normalized) config into cells, deterministically.

    The order is the Cartesian product of the grid values, keys in file order, the last key
    varying fastest. Each cell gets an id that is a hash of what it computes.

    Raises:
        ValueError: when two cells compute the same thing (duplicate grid values), or a data
            path names a key that is not in the grid.

    Examples:
        >>> cfg = normalize_config({"grid": {"estimator": ["m:f"], "seed": [0, 1]},
        ...                         "data": {"x": "x.npy"}})
        >>> [(c.index, c.params["seed"], c.function) for c in expand_grid(cfg)]
        [(0, 0, 'm:f'), (1, 1, 'm:f')]
    """
    grid = config["grid"]
    keys = list(grid)
    cells = []
    seen: dict[str, int] = {}
    for index, values in enumerate(itertools.product(*(grid[k] for k in keys))):
        params = dict(zip(keys, values, strict=True))
        name = params["estimator"]
        if not isinstance(name, str):
            raise ValueError(f"grid estimators must be strings; got {name!r}")
        est = config["estimators"].get(name, {"function": name, "options": {}})
        options = dict(est.get("options", {}))
        for k, v in params.items():
            if k.startswith(OPTION_PREFIX):
                options[k[len(OPTION_PREFIX) :]] = v
        fmt_params = {k: v for k, v in params.items() if not k.startswith(OPTION_PREFIX)}
        data = {k: _format(str(v), fmt_params) for k, v in config["data"].items()}
        cell = Cell("", index, params, name, est["function"], options, data)
        cid = cell_id(cell.spec)
        if cid in seen:
            raise ValueError(
                f"grid cells {seen[cid]} and {index} are identical ({canonical_json(params)}); "
                "remove the duplicate grid value"
            )
        seen[cid] = index
        cells.append(dataclasses.replace(cell, cell_id=cid))
    return cells
