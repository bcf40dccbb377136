"""``attention``: StripedHyena with a growing share of attention layers, plus BERT and Mamba.

Per system and attention pattern: D against the attention fraction
(docs/reference/models.md#ablations).
"""

from pathlib import Path

from .._experiment import Cell, Experiment, mean, select

#: The paper's attention patterns of an 8-layer StripedHyena (0 to 8 attention layers).
PAPER_PATTERNS = (
    (),
    (4,),
    (3, 7),
    (2, 5, 7),
    (1, 3, 5, 7),
    (1, 2, 4, 6, 7),
    (0, 1, 3, 5, 6, 7),
    (0, 1, 2, 3, 5, 6, 7),
    (0, 1, 2, 3, 4, 5, 6, 7),
)
#: Pure-attention and attention-free references.
REFERENCES = ("bert", "mamba")


class Attention(Experiment):
    """``attention_layers``-layer StripedHyena CE cells, one per pattern, plus references."""

    name = "attention"
    presets = {
        "quick": {"attention_layers": 4, "attention_patterns": ((), (3,), (1, 3), (0, 1, 2, 3))},
        "tiny": {"attention_layers": 2, "attention_patterns": ((), (1,))},
    }

    def cells(self, config, system, seed):
        n = config.attention_layers
        out = []
        for pattern in config.attention_patterns:
            if any(i >= n for i in pattern):
                raise ValueError(f"attention pattern {pattern} needs more than {n} layers")
            out.append(
                Cell(
                    system,
                    "striped_hyena",
                    "ce",
                    seed,
                    num_layers=n,
                    attention_layers=tuple(pattern),
                )
            )
        return out + [Cell(system, arch, "ce", seed, num_layers=n) for arch in REFERENCES]

    def summarize(self, config, records, system):
        rows = []
        for pattern in config.attention_patterns:
            layers = "-".join(map(str, pattern))
            s = select(records, architecture="striped_hyena", attention_layers=layers)
            rows.append(
                {
                    "system": system,
                    "model": "striped_hyena",
                    "attention_layers": layers,
                    "attention_fraction": len(pattern) / config.attention_layers,
                    "distortion": mean(s),
                }
            )
        for arch in REFERENCES:
            rows.append(
                {
                    "system": system,
                    "model": arch,
                    "attention_layers": "",
                    "attention_fraction": 1.0 if arch == "bert" else 0.0,
                    "distortion": mean(select(records, architecture=arch)),
                }
            )
        return rows

    def figures(self, out: Path, rows, records) -> list[Path]:
        from .._records import sweep_figure

        return [sweep_figure(out, self.name, rows, "attention_fraction")]
