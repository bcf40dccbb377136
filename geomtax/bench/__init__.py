"""Benchmark harness shared by ``benchmarks/*.py`` and ``geomtax bench``.

Every benchmark separates compile time from run time, reports the median and spread of repeated
calls (each wrapped in ``jax.block_until_ready``), measures peak resident memory per measurement,
runs its baseline (scipy / scikit-learn / NumPy) in the same process on the same inputs, and
writes JSON with the device, versions and commit.
"""

from ._harness import (
    Timing as Timing,
)
from ._harness import (
    compile_time as compile_time,
)
from ._harness import (
    current_rss_mb as current_rss_mb,
)
from ._harness import (
    environment as environment,
)
from ._harness import (
    format_table as format_table,
)
from ._harness import (
    measure_peak_rss as measure_peak_rss,
)
from ._harness import (
    time_call as time_call,
)
from ._harness import (
    time_jitted as time_jitted,
)
from ._harness import (
    write_results as write_results,
)

__all__ = [
    "Timing",
    "compile_time",
    "current_rss_mb",
    "environment",
    "format_table",
    "measure_peak_rss",
    "time_call",
    "time_jitted",
    "write_results",
]
