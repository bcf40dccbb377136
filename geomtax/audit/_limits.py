"""The byte limit on what the audit's loaders allocate (``max_bytes=``, ``GEOMTAX_MAX_LOAD_BYTES``).

Every loader reads a file's declared shape and dtype (an ``.npy`` header, each ``.npz``
member's header, the safetensors JSON header, an HDF5 dataset's shape) *before* allocating,
and refuses an array larger than the limit with a one-line ``ValueError``. The limit is, in
order: the ``max_bytes=`` option, the ``GEOMTAX_MAX_LOAD_BYTES`` environment variable, or half
of the machine's physical memory (8 GiB where that cannot be read).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .._errors import check_int

#: The environment variable that sets the loaders' byte limit.
ENV_VAR = "GEOMTAX_MAX_LOAD_BYTES"
_FALLBACK = 8 * 2**30
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def default_max_bytes() -> int:
    """Half of the physical memory (``os.sysconf``), or 8 GiB where it cannot be read."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK
    return int(total) // 2 if total and total > 0 else _FALLBACK


def parse_bytes(text: str, *, name: str = ENV_VAR) -> int:
    """Parse ``"4000000000"``, ``"4e9"``, ``"4GB"`` or ``"8GiB"`` as a positive byte count.

    Examples:
        >>> parse_bytes("8GiB")
        8589934592
        >>> parse_bytes("2.5e6")
        2500000
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(
            f"{name}={text!r} is not a byte count; use e.g. {name}=8000000000, 8GB or 8GiB"
        )
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"{name}={text!r} must be a positive byte count")
    return value


def resolve_max_bytes(max_bytes: int | None = None) -> int:
    """The byte limit: ``max_bytes``, else ``$GEOMTAX_MAX_LOAD_BYTES``, else the default."""
    if max_bytes is not None:
        return check_int("max_bytes", max_bytes, minimum=1)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_bytes(env)
    return default_max_bytes()


def human(nbytes: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover


def declared_bytes(shape, dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` needs (Python ints: no overflow)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n * np.dtype(dtype).itemsize


def check_bytes(
    path, nbytes: int, limit: int, *, member: str | None = None, what: str = ""
) -> None:
    """Raise a one-line ``ValueError`` when ``nbytes`` exceeds ``limit``.

    ``what`` describes the declaration (e.g. ``"shape (10, 3) float32"``); ``member`` names the
    ``.npz`` member, tensor or dataset.
    """
    if nbytes <= limit:
        return
    where = f" {member!r}" if member is not None else ""
    decl = f" declares {what} =" if what else " needs"
    raise ValueError(
        f"{path}:{where}{decl} {nbytes} bytes ({human(nbytes)}), over the load limit of "
        f"{limit} bytes ({human(limit)}); raise it with max_bytes=... or {ENV_VAR}=... "
        "if the machine has the memory"
    )
