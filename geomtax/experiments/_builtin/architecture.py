"""``architecture``: the spread of D across architectures under each head.

Per system and head: max / min distortion across architectures (the same cells as ``head``,
trained once; docs/reference/models.md#ablations).
"""

import math

import numpy as np

from .._experiment import HEADS, Experiment, mean, select
from .head import Head


class Architecture(Experiment):
    """Each architecture with both heads, uniform tokens (shared with ``head``)."""

    name = "architecture"

    def cells(self, config, system, seed):
        return Head().cells(config, system, seed)

    def summarize(self, config, records, system):
        rows = []
        for head in HEADS:
            sel = select(records, head=head)
            per_arch = {a: mean(select(sel, architecture=a)) for a in config.architectures}
            vals = [v for v in per_arch.values() if np.isfinite(v)]
            hi, lo = (max(vals), min(vals)) if vals else (math.nan, math.nan)
            rows.append(
                {
                    "system": system,
                    "head": head,
                    "max_distortion": hi,
                    "min_distortion": lo,
                    "spread_max_over_min": hi / lo if lo > 0 else math.nan,
                    "argmax": max(per_arch, key=lambda a: per_arch[a]) if vals else "",
                    "argmin": min(per_arch, key=lambda a: per_arch[a]) if vals else "",
                }
            )
        return rows
