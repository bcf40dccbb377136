"""Run a sweep: cells -> (sharded, vectorized) estimator calls -> Parquet parts, resumably."""

import collections
import dataclasses
import difflib
import inspect
import json
import string
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from .._status import Status, status_name
from ..audit._loaders import check_array, load_array
from ..parallel import initialize_distributed, make_mesh, shard_sweep
from ._config import (
    OPTION_PREFIX,
    Cell,
    SweepConfigError,
    canonical_json,
    expand_grid,
    load_config,
    normalize_config,
)
from ._hashing import InputHashes
from ._registry import ImportNotAllowedError, resolve_function
from ._store import ResultStore

_RESERVED = {
    "cell_id",
    "cell_key",
    "index",
    "estimator",
    "function",
    "options",
    "seconds",
    "group_size",
    "device",
    "process_index",
    "finished_utc",
}


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep` call did.

    Attributes:
        out_dir: the output folder.
        total: cells in the grid.
        assigned: cells assigned to this process (all of them on a single host).
        already_done: assigned cells found finished on disk and skipped (reused: same
            configuration, same input contents, same geomtax version).
        computed: cells computed and written by this call.
        failed: cells whose estimator raised (logged in ``failures.jsonl``; retried next run).
        seconds: wall-clock time of the call.
        inputs_changed: assigned unfinished cells that have a stored result for older input
            contents or another geomtax version (superseded; recomputed).
        quarantined: unreadable parts moved into ``quarantine/`` on start (their cells are
            recomputed).
    """

    out_dir: str
    total: int
    assigned: int
    already_done: int
    computed: int
    failed: int
    seconds: float
    inputs_changed: int = 0
    quarantined: int = 0

    def describe(self) -> str:
        """One line: cells reused, recomputed because their inputs changed, new, failed."""
        line = (
            f"{self.assigned} cells: {self.already_done} reused, {self.computed} computed "
            f"({self.inputs_changed} because their inputs or geomtax version changed), "
            f"{self.failed} failed"
        )
        if self.quarantined:
            line += f"; {self.quarantined} unreadable parts moved to quarantine/"
        return line


def _takes_key(fn) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _parameters(fn) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _takes_throw(fn) -> bool:
    params = _parameters(fn)
    return params is not None and "throw" in params


def _data_error(spec: str, err: Exception) -> str:
    hint = ""
    if ":" in spec and "#" not in spec and "no such file" in str(err):
        hint = " (name an array inside a file with '#': 'file.npz#NAME')"
    return f"[data] {spec!r}: {err}{hint}"


def _scalar(v) -> Any:
    a = np.asarray(v)
    if a.size != 1:
        return None
    a = a.reshape(())
    if a.dtype == bool:
        return bool(a)
    if np.issubdtype(a.dtype, np.integer):
        return int(a)
    if np.issubdtype(a.dtype, np.floating):
        return float(a)
    return None


def _is_status(x) -> bool:
    return isinstance(x, eqx._enum.EnumerationItem) and x._enumeration is Status


def _metrics(out: Any, index: int | None = None) -> dict[str, Any]:
    """Scalar outputs of an estimator (element ``index`` of a vmapped output), named by path.

    A result's :class:`geomtax.Status` becomes a column of status names (``status``, or
    ``<path>.status`` for a nested result), so no stored number lacks its status.
    """
    leaves = jax.tree_util.tree_flatten_with_path(out, is_leaf=_is_status)[0]
    metrics: dict[str, Any] = {}
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path, simple=True, separator=".") or "value"
        if name in _RESERVED:
            name = f"result.{name}"
        if _is_status(leaf):
            names = np.asarray(status_name(leaf), dtype=object)
            if index is not None and names.ndim >= 1:
                names = names[index]
            if names.size == 1:
                metrics[name] = str(names.reshape(()).item())
            continue
        if not (_is_array(leaf) or isinstance(leaf, (int, float, bool, np.generic))):
            continue
        value = np.asarray(leaf)
        if index is not None and value.ndim >= 1:  # vmapped output; unbatched leaves stay
            value = value[index]
        s = _scalar(value)
        if s is None:
            continue
        metrics[name] = s
    return metrics


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


def _num_positional(fn) -> int:
    """How many positional data arguments ``fn`` accepts (2 for ``fn(x, y, ...)``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in kinds for p in params)


def _call(key, x, y, *, fn, options, has_y):
    kwargs = dict(options)
    if "throw" not in kwargs and _takes_throw(fn):
        kwargs["throw"] = False  # a degenerate cell is a row with its status, not a failure
    if key is not None:
        kwargs["key"] = key
    return fn(x, y, **kwargs) if has_y else fn(x, **kwargs)


def _param_value(v):
    return v if isinstance(v, (int, float, str, bool)) else canonical_json(v)


class _Runner:
    def __init__(self, config, store, mesh, process_index, progress, functions):
        self.config = config
        self.functions = functions
        self.store = store
        self.mesh = mesh
        self.base_dir = Path(config["base_dir"])
        self.process_index = process_index
        self.progress = progress
        self._arrays: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._memo: dict[str, dict[str, Any]] = {}  # outputs of key-free estimators by inputs
        self.failed = 0
        self.device = f"{jax.default_backend()} x{mesh.size}"

    def array(self, path: str) -> np.ndarray:
        if path not in self._arrays:
            self._arrays[path] = load_array(path, base_dir=self.base_dir)
            while len(self._arrays) > 8:
                self._arrays.popitem(last=False)
        return self._arrays[path]

    def row(self, cell: Cell, metrics: dict, seconds: float, group: int) -> dict:
        row = {"cell_id": cell.cell_id, "cell_key": cell.key, "index": cell.index}
        for k, v in cell.params.items():
            if k == "estimator":
                continue
            if k in _RESERVED:
                k = f"param.{k}"
            row[k] = _param_value(v)
        row |= {
            "estimator": cell.estimator,
            "function": cell.function,
            "options": canonical_json(cell.options),
        }
        row |= {f"data.{k}": v for k, v in cell.data.items()}
        row |= metrics
        row |= {
            "seconds": seconds,
            "group_size": group,
            "device": self.device,
            "process_index": self.process_index,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return row

    def fail(self, cell: Cell, exc: BaseException) -> None:
        self.failed += 1
        self.store.log_failure(
            {
                "cell_id": cell.cell_id,
                "index": cell.index,
                "params": cell.params,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5),
                "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    def inputs(self, cell: Cell, fn):
        x = self.array(cell.data["x"])
        use_y = "y" in cell.data and _num_positional(fn) >= 2
        y = self.array(cell.data["y"]) if use_y else None
        return x, y

    def run_vectorized(self, cells: list[Cell]) -> list[dict] | None:
        """One sharded, vmapped call over the seeds of cells that differ only in their seed."""
        first = cells[0]
        fn = self.functions[first.function]
        x, y = self.inputs(first, fn)
        keys = jax.vmap(jax.random.key)(jnp.asarray([c.params["seed"] for c in cells]))
        point = Partial(
            _call, fn=fn, options=tuple(sorted(first.options.items())), has_y=y is not None
        )
        t0 = time.perf_counter()
        out = shard_sweep(point, keys, mesh=self.mesh, shared=(x, y))
        out = jax.device_get(out)
        dt = (time.perf_counter() - t0) / len(cells)
        return [self.row(c, _metrics(out, i), dt, len(cells)) for i, c in enumerate(cells)]

    def run_single(self, cells: list[Cell]) -> list[dict]:
        """Cells one by one, dispatched round-robin over the mesh's devices (asynchronously)."""
        devices = list(self.mesh.devices.flat)
        pending = []
        scheduled: set[str] = set()
        t0 = time.perf_counter()
        for i, cell in enumerate(cells):
            try:
                fn = self.functions[cell.function]
                keyed = _takes_key(fn)
                memo = None if keyed else canonical_json([cell.function, cell.options, cell.data])
                if memo is not None and (memo in self._memo or memo in scheduled):
                    pending.append((cell, None, memo))  # key-free: same inputs, same outputs
                    continue
                if memo is not None:
                    scheduled.add(memo)
                x, y = self.inputs(cell, fn)
                key = jax.random.key(cell.params["seed"]) if keyed else None
                with jax.default_device(devices[i % len(devices)]):
                    out = _call(key, x, y, fn=fn, options=cell.options, has_y=y is not None)
                pending.append((cell, out, memo))
            except Exception as exc:  # noqa: BLE001 - one bad cell must not kill the sweep
                self.fail(cell, exc)
        rows = []
        for cell, out, memo in pending:
            try:
                if out is None:
                    metrics = dict(self._memo[memo])
                else:
                    metrics = _metrics(jax.device_get(out))
                    if memo is not None:
                        self._memo[memo] = metrics
            except Exception as exc:  # noqa: BLE001
                self.fail(cell, exc)
                continue
            rows.append(self.row(cell, metrics, 0.0, len(cells)))
        dt = (time.perf_counter() - t0) / max(len(cells), 1)
        for r in rows:
            r["seconds"] = dt
        return rows

    def batches(self, cells: list[Cell]):
        """Group cells that differ only in their seed (vectorizable), in grid order."""
        chunk_size = self.config["sweep"]["chunk_size"]
        vectorize = self.config["sweep"]["vectorize"]
        groups: dict[str, list[Cell]] = {}
        for cell in cells:
            fn = self.functions[cell.function]
            if vectorize and "seed" in cell.params and _takes_key(fn):
                rest = {k: v for k, v in cell.params.items() if k != "seed"}
                gkey = canonical_json([rest, cell.function, cell.options, cell.data])
            else:
                gkey = f"single:{cell.index // chunk_size}"
            groups.setdefault(gkey, []).append(cell)
        for gkey, group in groups.items():
            for i in range(0, len(group), chunk_size):
                yield (not gkey.startswith("single:")), group[i : i + chunk_size]

    def run(self, cells: list[Cell], pbar) -> int:
        computed = 0
        for vectorized, batch in self.batches(cells):
            rows = None
            if vectorized:
                try:
                    rows = self.run_vectorized(batch)
                except Exception as exc:  # noqa: BLE001 - fall back to one call per cell
                    first_line = (str(exc).splitlines() or [""])[0]
                    print(
                        f"geomtax sweep: vectorized call failed ({type(exc).__name__}: "
                        f"{first_line}); "
                        "running these cells one at a time",
                        file=sys.stderr,
                    )
            if rows is None:
                rows = self.run_single(batch)
            if rows:
                self.store.write_part(rows)
                computed += len(rows)
            pbar.update(len(batch))
        return computed


def check_sweep(
    cfg: dict[str, Any],
    *,
    allow_import: bool = False,
    fingerprint: Callable[[str], str | None] | None = None,
) -> tuple[list[Cell], dict[str, Callable[..., Any]]]:
    """Check a normalized sweep config completely, without running any cell.

    Checks: ``[sweep].python_path`` only with ``allow_import``; every estimator resolves
    (:func:`geomtax.sweep.resolve_function`); an estimator that takes a ``key`` has a ``seed``
    grid key; every option (``[estimators.NAME].options`` and ``opt.*`` grid keys) is a
    parameter of its estimator; every grid key is used (``estimator``, ``seed``, ``opt.*`` or a
    ``{key}`` field of a data path); every distinct data file exists and holds a numeric array
    (``.npy`` headers only; see :func:`geomtax.audit.load_embeddings` for the formats).

    ``fingerprint`` is passed to :func:`expand_grid` (content hashes of the data files).

    Returns:
        ``(cells, {function path: function})``.

    Raises:
        SweepConfigError: the first mistake found, as one line.
    """
    if cfg["sweep"]["python_path"]:
        if not allow_import:
            raise SweepConfigError(
                "[sweep] python_path adds folders to import estimators from; it needs "
                "--allow-import (run_sweep(allow_import=True))"
            )
        for entry in cfg["sweep"]["python_path"]:
            p = str((Path(cfg["base_dir"]) / entry).resolve())
            if p not in sys.path:
                sys.path.insert(0, p)
    cells = expand_grid(cfg, fingerprint=fingerprint)
    functions: dict[str, Callable[..., Any]] = {}
    for cell in cells:
        if cell.function not in functions:
            try:
                functions[cell.function] = resolve_function(
                    cell.function, allow_import=allow_import
                )
            except (ImportNotAllowedError, ValueError) as err:
                where = (
                    f"[estimators.{cell.estimator}] "
                    if cell.estimator in cfg["estimators"]
                    else "[grid] estimator: "
                )
                raise SweepConfigError(f"{where}{err}") from err
    checked: set[str] = set()
    for cell in cells:
        fn = functions[cell.function]
        sig = canonical_json([cell.function, sorted(cell.options)])
        if sig in checked:
            continue
        checked.add(sig)
        if _takes_key(fn) and "seed" not in cell.params:
            raise SweepConfigError(
                f"estimator {cell.function!r} takes a PRNG key; add seed = [...] to [grid]"
            )
        params = _parameters(fn)
        if params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        data_args = [n for n, p in params.items() if p.kind in positional][:2]
        passed = {*data_args, "key"}  # the sweep passes these itself
        for name in cell.options:
            if name not in params or name in passed:
                valid = sorted(n for n in params if n not in passed)
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SweepConfigError(
                    f"estimator {cell.estimator!r} ({cell.function}) has no option {name!r}"
                    f"{hint} (options: {', '.join(valid)})"
                )
    used = {"estimator", "seed"}
    for template in cfg["data"].values():
        used |= {f for _, f, _, _ in string.Formatter().parse(str(template)) if f}
    for key in cfg["grid"]:
        if key not in used and not key.startswith(OPTION_PREFIX):
            raise SweepConfigError(
                f"grid key {key!r} is not used: it is not 'estimator', 'seed', an "
                f"'{OPTION_PREFIX}NAME' option or a {{{key}}} field of a [data] path"
            )
    seen: set[str] = set()
    for cell in cells:
        for spec in cell.data.values():
            if spec in seen:
                continue
            seen.add(spec)
            try:
                check_array(spec, base_dir=cfg["base_dir"])
            except ValueError as err:
                raise SweepConfigError(_data_error(spec, err)) from err
    return cells, functions


def run_sweep(
    config: str | Path | dict[str, Any],
    *,
    out_dir: str | Path | None = None,
    devices: Sequence | None = None,
    max_cells: int | None = None,
    progress: bool = True,
    distributed: bool | None = None,
    allow_import: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep, appending one Parquet part per finished batch of cells.

    Steps: expand the grid (:func:`expand_grid`) and check the whole configuration before any
    cell runs (:func:`check_sweep`: every estimator is in geomtax's registry, or an import path
    with ``allow_import``; every option name is a parameter of its estimator; every grid key is
    used; every data file exists and loads); take the exclusive lock of ``out_dir``
    (raising :class:`SweepLockedError` if another run holds it); check the stored parts
    (unreadable ones are moved into ``quarantine/`` and their cells recomputed); skip cells
    already in the table -- a cell's id covers its configuration, the contents of its data
    files (hashed, cached in ``OUT/input_hashes.json``) and the geomtax version, so a cell
    whose input was overwritten is recomputed; group the others -- cells that differ only in
    ``seed`` and whose estimator takes a
    ``key`` become one ``vmap`` over ``jax.random.key(seed)`` with the seed axis sharded over
    the local devices (:func:`geomtax.parallel.shard_sweep`), other cells are dispatched
    round-robin to the devices -- and write each finished batch atomically. On several hosts
    (``jax.distributed``), process ``p`` of ``P`` runs the cells whose grid index is ``p``
    modulo ``P`` on its local devices.

    The estimator is called as ``fn(x, y, key=..., **options)`` (``y`` and ``key`` only when the
    config has a ``y`` path / the function takes ``key``), with ``throw=False`` when it takes
    ``throw`` and the options do not set it; its scalar outputs become columns, and a result's
    status becomes a column of status names (``status``), so a degenerate cell is a row with
    its status, not a failure.

    Args:
        config: a config file path (TOML/JSON) or a dict as in the file.
        out_dir: output folder; defaults to ``[sweep].out`` (relative to the config file), else
            ``results/sweeps/<name>``.
        devices: devices to use; defaults to ``jax.local_devices()``.
        max_cells: stop after this many cells (for smoke runs); ``None`` runs all.
        progress: show a tqdm progress bar on stderr.
        distributed: call :func:`geomtax.parallel.initialize_distributed` first; ``None``
            does so only when multi-host environment variables are present.
        allow_import: allow estimators named by an import path outside geomtax's registry
            (and ``[sweep].python_path``); such a config runs code it names.

    Returns:
        A :class:`SweepSummary`.

    Raises:
        SweepLockedError: when another run is writing to ``out_dir``.
        SweepStoreError: when the stored parts hold two different results for one cell.
        SweepConfigError: (a ``ValueError``) on any configuration mistake, before any work.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if isinstance(config, dict):
        cfg = normalize_config(
            {k: v for k, v in config.items() if k != "base_dir"},
            base_dir=config.get("base_dir", "."),
        )
    else:
        cfg = load_config(config)
    if out_dir is None:
        out = cfg["sweep"]["out"]
        out_dir = (
            Path(cfg["base_dir"]) / out if out else Path("results/sweeps") / cfg["sweep"]["name"]
        )
    out_dir = Path(out_dir)
    hashes = InputHashes(cfg["base_dir"], cache_path=out_dir / "input_hashes.json")
    cells, functions = check_sweep(cfg, allow_import=allow_import, fingerprint=hashes)
    if distributed or distributed is None:
        initialize_distributed(force=bool(distributed))
    pindex, pcount = jax.process_index(), jax.process_count()
    mine = [c for c in cells if c.index % pcount == pindex]
    mesh = make_mesh(devices=list(jax.local_devices() if devices is None else devices))
    with ResultStore(out_dir, process_index=pindex) as store:
        if pindex == 0:
            hashes.save()
            store.write_json(
                "sweep.json",
                {
                    "config": cfg,
                    "num_cells": len(cells),
                    "num_processes": pcount,
                    "cells": {c.key: c.cell_id for c in cells},
                },
            )
        done = store.finished()
        stored_keys = set(done.values())
        unfinished = [c for c in mine if c.cell_id not in done]
        changed = sum(c.key in stored_keys for c in unfinished)
        todo = list(unfinished)
        if max_cells is not None:
            todo = todo[:max_cells]
        runner = _Runner(cfg, store, mesh, pindex, progress, functions)
        with tqdm(total=len(todo), desc=cfg["sweep"]["name"], disable=not progress) as pbar:
            computed = runner.run(todo, pbar)
    summary = SweepSummary(
        out_dir=str(out_dir),
        total=len(cells),
        assigned=len(mine),
        already_done=len(mine) - len(unfinished),
        computed=computed,
        failed=runner.failed,
        seconds=time.perf_counter() - t0,
        inputs_changed=changed,
        quarantined=len(store.quarantined),
    )
    if progress:
        print(f"geomtax sweep: {summary.describe()}", file=sys.stderr)
    return summary


def summary_json(summary: SweepSummary) -> str:
    """The summary as one JSON line (printed by the CLI)."""
    return json.dumps(dataclasses.asdict(summary))
