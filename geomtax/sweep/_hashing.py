"""Content hashes of a sweep's input files, cached by (resolved path, size, mtime, ctime).

A cell's id covers the *contents* of its data files (see :class:`geomtax.sweep.Cell`), so an
input overwritten in place gives new ids and its cells are recomputed. Hashing is BLAKE2b over
the file bytes in 1 MiB chunks; the cache (``OUT/input_hashes.json``) only skips re-reading a
file whose size, modification time and status-change time are unchanged.
"""

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from ..audit._loaders import split_data_spec

_CHUNK = 1 << 20
#: A file modified less than this long before it was hashed is not cached: a write in the same
#: timestamp tick could change it without changing its (size, mtime) ("racily clean").
_RACY_NS = 2_000_000_000


def content_hash(path: str | Path) -> str:
    """BLAKE2b (16-byte digest, hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class InputHashes:
    """Content hash of a data path (``PATH`` or ``PATH#KEY``), by file, with an optional cache.

    Calling it with a data path returns the file's hash, or ``None`` when the file cannot be
    read (the sweep's data checks then report it in one line).

    Args:
        base_dir: folder against which relative paths are resolved.
        cache_path: JSON cache file (read if present; written by :meth:`save`); ``None`` for no
            cache.
    """

    def __init__(self, base_dir: str | Path = ".", cache_path: str | Path | None = None):
        self.base_dir = Path(base_dir)
        self.cache_path = None if cache_path is None else Path(cache_path)
        self._cache: dict[str, dict[str, Any]] = {}
        self._by_file: dict[str, str | None] = {}
        self.hashed = 0  # files read in full (cache misses)
        if self.cache_path is not None and self.cache_path.is_file():
            try:
                raw = json.loads(self.cache_path.read_text())
                if isinstance(raw, dict):
                    self._cache = {
                        k: v
                        for k, v in raw.get("files", {}).items()
                        if isinstance(v, dict) and isinstance(v.get("blake2b"), str)
                    }
            except (OSError, ValueError, AttributeError):
                self._cache = {}  # a damaged cache is only a slower start

    def __call__(self, spec: str) -> str | None:
        try:
            path, _ = split_data_spec(spec)
        except ValueError:
            return None
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = self.base_dir / p
        try:
            p = p.resolve()
        except OSError:
            return None
        name = str(p)
        if name not in self._by_file:
            self._by_file[name] = self._hash(p)
        return self._by_file[name]

    def _hash(self, p: Path) -> str | None:
        try:
            before = os.stat(p)
        except OSError:
            return None
        entry = self._cache.get(str(p))
        if entry is not None and entry.get("stamp") == _stamp(before):
            return entry["blake2b"]
        try:
            digest = content_hash(p)
            after = os.stat(p)
        except OSError:
            return None
        self.hashed += 1
        racy = time.time_ns() - after.st_mtime_ns < _RACY_NS
        if _stamp(before) == _stamp(after) and not racy:
            self._cache[str(p)] = {"stamp": _stamp(after), "blake2b": digest}
        else:
            self._cache.pop(str(p), None)
        return digest

    def save(self) -> None:
        """Write the cache atomically (temporary file, then rename); a no-op without a cache."""
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.{uuid.uuid4().hex[:8]}.tmp")
        payload = {"format": 1, "algorithm": "blake2b-128", "files": self._cache}
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
        os.replace(tmp, self.cache_path)
