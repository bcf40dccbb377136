"""``jacobian``: CE cells trained with a Hutchinson Jacobian penalty of growing weight.

Per system, architecture and weight lambda: D (docs/reference/models.md#ablations).
"""

from pathlib import Path

from .._experiment import Cell, Experiment, mean, select


class Jacobian(Experiment):
    """Each of ``jacobian_architectures`` with a CE head, for each of ``jacobian_lambdas``."""

    name = "jacobian"
    presets = {
        "quick": {"jacobian_lambdas": (0.0, 0.01, 1.0)},
        "tiny": {"jacobian_lambdas": (0.0, 0.1)},
    }

    def cells(self, config, system, seed):
        return [
            Cell(system, arch, "ce", seed, jacobian_lambda=float(lam))
            for arch in config.jacobian_architectures
            for lam in config.jacobian_lambdas
        ]

    def summarize(self, config, records, system):
        return [
            {
                "system": system,
                "architecture": arch,
                "jacobian_lambda": float(lam),
                "distortion": mean(select(records, architecture=arch, jacobian_lambda=float(lam))),
            }
            for arch in config.jacobian_architectures
            for lam in config.jacobian_lambdas
        ]

    def figures(self, out: Path, rows, records) -> list[Path]:
        from .._records import sweep_figure

        return [sweep_figure(out, self.name, rows, "jacobian_lambda", symlog=True)]
