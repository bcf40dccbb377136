import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
    """Run-time statistics of repeated calls, in seconds."""

    median_s: float
    min_s: float
    max_s: float
    iqr_s: float
    repeats: int
    compile_s: float | None = None
    peak_rss_mb: float | None = None
    rss_before_mb: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view for JSON."""
        return dataclasses.asdict(self)


def _read_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0). False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MB (Linux VmRSS); ``None`` where unavailable."""
    kb = _read_status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else None


def measure_peak_rss(fn: Callable[[], Any]) -> tuple[Any, float | None]:
    """Call ``fn()`` and return ``(result, peak resident memory in MB during the call)``.

    Uses the Linux VmHWM counter, reset before the call, so it covers XLA's allocations as well
    as NumPy's. The peak is the whole process's resident set, so memory that earlier work still
    holds (XLA caches, live arrays) is included: compare with :func:`current_rss_mb` taken before
    the call for the increment. Returns ``None`` where the counter is unavailable. On GPU this is
    host memory only; device memory is reported by :func:`environment` (``memory_stats``).
    """
    ok = _reset_peak_rss()
    out = fn()
    jax.block_until_ready(out)
    peak = _read_status_kb("VmHWM") if ok else None
    return out, (peak / 1024.0 if peak is not None else None)


def _stats(samples: Sequence[float]) -> tuple[float, float, float, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
    return statistics.median(s), s[0], s[-1], q[2] - q[0]


def time_call(
    fn: Callable[[], Any], *, repeats: int = 10, warmup: int = 1, memory: bool = True
) -> Timing:
    """Time ``fn()`` (blocking on its result) ``repeats`` times after ``warmup`` calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    samples = []
    peak = None
    before = current_rss_mb()
    for i in range(repeats):
        t0 = time.perf_counter()
        if memory and i == 0:
            _, peak = measure_peak_rss(fn)
        else:
            jax.block_until_ready(fn())
        samples.append(time.perf_counter() - t0)
    med, lo, hi, iqr = _stats(samples)
    return Timing(med, lo, hi, iqr, repeats, None, peak, before)


def compile_time(jitted, *args, **kwargs) -> tuple[Any, float]:
    """Lower and compile ``jitted`` for these arguments; return ``(compiled, seconds)``."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - t0


def time_jitted(jitted, *args, repeats: int = 10, memory: bool = True, **kwargs) -> Timing:
    """Compile ``jitted`` once (timed separately), then time the compiled executable."""
    compiled, ct = compile_time(jitted, *args, **kwargs)
    t = time_call(lambda: compiled(*args, **kwargs), repeats=repeats, memory=memory)
    return dataclasses.replace(t, compile_s=ct)


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    """Device, versions, CPU count and commit, recorded with every benchmark result."""
    import numpy as np

    from .._version import __version__

    dev = jax.devices()[0]
    info: dict[str, Any] = {
        "geomtax": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "commit": _git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        stats = dev.memory_stats()
        if stats:
            info["device_peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001 - memory_stats is unsupported on some backends
        pass
    return info


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render rows as a Markdown table with the given columns (floats to 4 significant digits)."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_results(path: str | os.PathLike, name: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``{"benchmark", "environment", "rows"}`` as JSON to ``path`` and return it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "environment": environment(), "rows": list(rows)}
    p.write_text(json.dumps(payload, indent=2, default=float))
    return p
