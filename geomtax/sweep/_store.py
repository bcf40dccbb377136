"""Append-only, crash-safe result table: one Parquet part file per finished batch of cells.

Layout of an output folder::

    OUT/
      sweep.json                 the normalized config and the number of cells
      parts/part-p000-000003-1a2b3c4d.parquet
      failures.jsonl             cells that raised (retried on the next run)
      .lock  (.lock.p001, ...)   exclusive fcntl lock, one per JAX process

A part file is written under a temporary name and renamed into place with ``os.replace``, which
is atomic on POSIX file systems, so a killed run leaves either a complete part or none; the set
of finished cells is read back from the parts themselves, so there is no index to corrupt.
"""

import fcntl
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class SweepLockedError(RuntimeError):
    """Another ``geomtax sweep`` process holds the lock of this output folder."""


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

    def finished_ids(self) -> set[str]:
        """Ids of every cell that has a row in a complete part file (any process)."""
        ids: set[str] = set()
        for part in sorted(self.parts_dir.glob("part-*.parquet")):
            ids.update(pq.read_table(part, columns=["cell_id"]).column("cell_id").to_pylist())
        return ids

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
    call while a sweep is running: partially written parts are never visible.

    Args:
        out_dir: the sweep's output folder.

    Returns:
        A table with one row per finished cell: ``cell_id``, ``index``, the grid parameters,
        ``estimator``, ``function``, ``options`` (JSON), the data paths, the estimator's scalar
        outputs (named by their pytree path, nats for information quantities), ``seconds``,
        ``group_size``, ``device``, ``process_index`` and ``finished_utc``.

    Raises:
        FileNotFoundError: when ``out_dir`` holds no sweep output.
    """
    parts_dir = Path(out_dir) / "parts"
    if not parts_dir.is_dir():
        raise FileNotFoundError(f"no sweep output in {out_dir} (missing {parts_dir})")
    tables = [pq.read_table(p) for p in sorted(parts_dir.glob("part-*.parquet"))]
    if not tables:
        return pa.table({"cell_id": pa.array([], pa.string())})
    return pa.concat_tables(tables, promote_options="permissive")
