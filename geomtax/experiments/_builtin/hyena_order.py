"""``hyena-order``: StripedHyena CE cells with growing Hyena filter order.

Per system and order: D (docs/reference/models.md#ablations).
"""

from pathlib import Path

from .._experiment import Cell, Experiment, mean, select


class HyenaOrder(Experiment):
    """StripedHyena with ``hyena_attention_layers``, one CE cell per order in ``hyena_orders``."""

    name = "hyena-order"
    presets = {
        "quick": {"hyena_attention_layers": (1,)},
        "tiny": {"hyena_orders": (1, 2), "hyena_attention_layers": ()},
    }

    def cells(self, config, system, seed):
        return [
            Cell(
                system,
                "striped_hyena",
                "ce",
                seed,
                attention_layers=config.hyena_attention_layers,
                hyena_order=int(order),
            )
            for order in config.hyena_orders
        ]

    def summarize(self, config, records, system):
        return [
            {
                "system": system,
                "hyena_order": int(order),
                "distortion": mean(select(records, hyena_order=int(order))),
            }
            for order in config.hyena_orders
        ]

    def figures(self, out: Path, rows, records) -> list[Path]:
        from .._records import sweep_figure

        return [sweep_figure(out, self.name, rows, "hyena_order")]
