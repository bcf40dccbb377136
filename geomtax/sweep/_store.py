"""Append-only, crash-safe result table: one Parquet part file per finished batch of cells.

Layout of an output folder::

    OUT/
      sweep.json                 the normalized config and the number of cells
      parts/part-p000-000003-1a2b3c4d.parquet
      failures.jsonl             cells that raised (retried on the next run)
      input_hashes.json          cache of the data files' content hashes (see _hashing.py)
      quarantine/                unreadable parts, moved aside (never deleted)
      .lock  (.lock.p001, ...)   exclusive fcntl lock, one per JAX process

A part file is written under a temporary name and renamed into place with ``os.replace``, which
is atomic on POSIX file systems, so a killed run leaves either a complete part or none; the set
of finished cells is read back from the parts themselves, so there is no index to corrupt.

Every start (and every :func:`read_results`) checks the parts: one that cannot be read (empty,
truncated, garbage, no ``cell_id`` column) is moved into ``quarantine/`` with a one-line notice
and its cells count as unfinished; rows repeated for one cell id (a copied part) are kept once
when their results agree, and are an error naming the cell and the parts when they differ.
"""

import fcntl
import json
import math
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class SweepLockedError(RuntimeError):
    """Another ``geomtax sweep`` process holds the lock of this output folder."""


class SweepStoreError(RuntimeError):
    """The stored results contradict themselves (two different rows for one cell id)."""


#: Columns that describe how and when a row was computed, not its result: rows of one cell that
#: differ only here are duplicates of one result.
_BOOKKEEPING = {"seconds", "group_size", "device", "process_index", "finished_utc"}


def _notice(message: str) -> None:
    print(f"geomtax sweep: {message}", file=sys.stderr)


def _quarantine(out_dir: Path, part: Path, err: BaseException) -> Path | None:
    """Move an unreadable part into ``OUT/quarantine/`` (a rename, never a delete)."""
    qdir = out_dir / "quarantine"
    qdir.mkdir(exist_ok=True)
    target = qdir / part.name
    n = 1
    while target.exists():
        target = qdir / f"{part.name}.{n}"
        n += 1
    reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
    try:
        os.replace(part, target)
    except FileNotFoundError:  # moved meanwhile by another reader
        return None
    except OSError as move_err:
        raise SweepStoreError(
            f"{part}: unreadable part ({reason}) that could not be moved aside ({move_err}); "
            "move or delete it by hand"
        ) from err
    _notice(
        f"unreadable part {part.name} ({type(err).__name__}: {reason}) moved to "
        f"{target.relative_to(out_dir)}; its cells count as unfinished"
    )
    return target


def _same_result(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def norm(row):
        out = {}
        for k, v in row.items():
            if k in _BOOKKEEPING or v is None:
                continue
            out[k] = "nan" if isinstance(v, float) and math.isnan(v) else v
        return out

    return norm(a) == norm(b)


def _load_parts(out_dir: Path) -> tuple[list[pa.Table], list[Path]]:
    """Read every complete part, quarantining unreadable ones and dropping duplicate rows.

    Returns the tables (one row per cell id in all) and the quarantined paths.

    Raises:
        SweepStoreError: two rows of one cell id with different results.
    """
    parts_dir = out_dir / "parts"
    tables: list[pa.Table] = []
    moved: list[Path] = []
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    duplicated: dict[str, int] = {}
    for part in sorted(parts_dir.glob("part-*.parquet")):
        try:
            table = pq.read_table(part)
            if "cell_id" not in table.column_names:
                raise ValueError("no cell_id column")
            rows = table.to_pylist()
        except FileNotFoundError:
            continue
        except Exception as err:  # noqa: BLE001 - any unreadable part is moved aside
            target = _quarantine(out_dir, part, err)
            if target is not None:
                moved.append(target)
            continue
        keep = []
        for i, row in enumerate(rows):
            cid = row["cell_id"]
            if cid not in seen:
                seen[cid] = (part.name, row)
                keep.append(i)
                continue
            first_part, first = seen[cid]
            if not _same_result(first, row):
                raise SweepStoreError(
                    f"cell {cid} has two different results, in {first_part} and {part.name} "
                    f"(under {parts_dir}); move the wrong part out of parts/ and rerun"
                )
            duplicated[part.name] = duplicated.get(part.name, 0) + 1
        if len(keep) < len(rows):
            table = table.take(pa.array(keep, pa.int64()))
        if table.num_rows:
            tables.append(table)
    if duplicated:
        where = ", ".join(f"{name} ({n})" for name, n in sorted(duplicated.items()))
        _notice(
            f"{sum(duplicated.values())} repeated rows of finished cells (same results) "
            f"ignored in {where}"
        )
    return tables, moved


class ResultStore:
    """The on-disk table of a sweep, held under an exclusive lock (a context manager).

    Args:
        out_dir: output folder (created if needed).
        process_index: this JAX process's index; each process has its own lock and part-file
            prefix, so the hosts of one multi-host sweep write disjoint files.
    """

    def __init__(self, out_dir: str | Path, *, process_index: int = 0):
        self.out_dir = Path(out_dir)
        self.parts_dir = self.out_dir / "parts"
        self.process_index = int(process_index)
        suffix = "" if self.process_index == 0 else f".p{self.process_index:03d}"
        self.lock_path = self.out_dir / f".lock{suffix}"
        self._lock_fh = None
        self._seq = 0
        self.quarantined: list[Path] = []

    def __enter__(self) -> "ResultStore":
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise SweepLockedError(
                f"another geomtax sweep (pid {holder}) is writing to {self.out_dir} "
                f"(lock {self.lock_path}); wait for it to finish or use another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh
        prefix = f"part-p{self.process_index:03d}-"
        for tmp in self.parts_dir.glob(f".{prefix}*.tmp"):  # left by a killed run of ours
            tmp.unlink(missing_ok=True)
        self._seq = 1 + max(
            (int(p.name.split("-")[2]) for p in self.parts_dir.glob(f"{prefix}*.parquet")),
            default=-1,
        )
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def _require_lock(self) -> None:
        if self._lock_fh is None:
            raise RuntimeError("ResultStore must be used inside `with` (it holds the lock)")

    def finished(self) -> dict[str, str]:
        """``{cell id: cell key}`` of every cell with a row in a readable part (any process).

        Checks the store first: unreadable parts are moved into ``quarantine/`` (listed in
        :attr:`quarantined`), repeated identical rows count once. Rows written before cell keys
        existed use their cell id as key (their ids were configuration-only).

        Raises:
            SweepStoreError: two different results for one cell id.
        """
        self._require_lock()
        tables, moved = _load_parts(self.out_dir)
        self.quarantined.extend(moved)
        done: dict[str, str] = {}
        for table in tables:
            ids = table.column("cell_id").to_pylist()
            keys = (
                table.column("cell_key").to_pylist()
                if "cell_key" in table.column_names
                else [None] * len(ids)
            )
            done.update({i: k or i for i, k in zip(ids, keys, strict=True)})
        return done

    def finished_ids(self) -> set[str]:
        """Ids of every cell that has a row in a readable part file (see :meth:`finished`)."""
        return set(self.finished())

    def write_part(self, rows: list[dict[str, Any]]) -> Path:
        """Atomically write ``rows`` as one new part file and return its path."""
        self._require_lock()
        if not rows:
            raise ValueError("write_part needs at least one row")
        columns = list(dict.fromkeys(k for r in rows for k in r))  # union, first-seen order
        table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
        name = f"part-p{self.process_index:03d}-{self._seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.parts_dir / name
        tmp = self.parts_dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._seq += 1
        return final

    def write_json(self, name: str, payload: Any) -> None:
        """Atomically (re)write ``OUT/name`` as JSON."""
        self._require_lock()
        tmp = self.out_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, self.out_dir / name)

    def log_failure(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``OUT/failures.jsonl``."""
        self._require_lock()
        with open(self.out_dir / "failures.jsonl", "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


def read_results(out_dir: str | Path) -> pa.Table:
    """All finished rows of a sweep as one :class:`pyarrow.Table` (parts concatenated).

    Parts with different metric columns are merged, with nulls where a column is missing. Safe to
    call while a sweep is running: partially written parts are never visible. The store is
    checked as on a sweep's start: unreadable parts are moved into ``quarantine/`` (one line on
    stderr each), a cell's repeated identical rows are returned once, and rows superseded by a
    newer result of the same cell (its inputs changed; see ``sweep.json``) are left out.

    Args:
        out_dir: the sweep's output folder.

    Returns:
        A table with one row per finished cell: ``cell_id``, ``cell_key``, ``index``, the grid
        parameters,
        ``estimator``, ``function``, ``options`` (JSON), the data paths, the estimator's scalar
        outputs (named by their pytree path, nats for information quantities), ``seconds``,
        ``group_size``, ``device``, ``process_index`` and ``finished_utc``.

    Raises:
        FileNotFoundError: when ``out_dir`` holds no sweep output.
        SweepStoreError: two different results stored for one cell id.
    """
    out_dir = Path(out_dir)
    parts_dir = out_dir / "parts"
    if not parts_dir.is_dir():
        raise FileNotFoundError(f"no sweep output in {out_dir} (missing {parts_dir})")
    tables, _ = _load_parts(out_dir)
    if not tables:
        return pa.table({"cell_id": pa.array([], pa.string())})
    table = pa.concat_tables(tables, promote_options="permissive")
    current = _current_ids(out_dir)
    if current and "cell_key" in table.column_names:
        ids = table.column("cell_id").to_pylist()
        keys = table.column("cell_key").to_pylist()
        keep = [
            i
            for i, (cid, key) in enumerate(zip(ids, keys, strict=True))
            if current.get(key or cid, cid) == cid
        ]
        if len(keep) < table.num_rows:
            table = table.take(pa.array(keep, pa.int64()))
    return table


def _current_ids(out_dir: Path) -> dict[str, str]:
    """``{cell key: cell id}`` of the latest run's grid, from ``sweep.json`` (empty if none)."""
    try:
        meta = json.loads((out_dir / "sweep.json").read_text())
        cells = meta.get("cells", {})
        return {str(k): str(v) for k, v in cells.items()} if isinstance(cells, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}
