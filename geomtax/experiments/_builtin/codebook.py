"""``codebook``: k-means codebooks of growing size K under a CE head.

Per system: D and reconstruction MSE for each K, plus the uniform-bin CE and MSE references
(docs/reference/systems.md#codebook, docs/reference/models.md#ablations).
"""

import math
from pathlib import Path

from .._experiment import Cell, Experiment, mean, select


class Codebook(Experiment):
    """``codebook_architecture`` with uniform CE / MSE references and k-means CE cells."""

    name = "codebook"
    presets = {
        "quick": {"codebook_sizes": (32, 64, 128, 256, 512, 1024)},
        "tiny": {"codebook_sizes": (4, 8)},
    }

    def cells(self, config, system, seed):
        arch = config.codebook_architecture
        return [
            Cell(system, arch, "mse", seed),
            Cell(system, arch, "ce", seed),
            *(Cell(system, arch, "ce", seed, "kmeans", k) for k in config.codebook_sizes),
        ]

    def summarize(self, config, records, system):
        rows = []
        for label, match in (
            ("uniform-mse", dict(tokenizer="uniform", head="mse")),
            ("uniform-ce", dict(tokenizer="uniform", head="ce")),
        ):
            s = select(records, **match)
            rows.append(
                {
                    "system": system,
                    "condition": label,
                    "num_codes": config.num_bins,
                    "distortion": mean(s),
                    "reconstruction_mse": mean(s, "reconstruction_mse"),
                }
            )
        for k in config.codebook_sizes:
            s = select(records, tokenizer="kmeans", num_codes=k)
            rows.append(
                {
                    "system": system,
                    "condition": "kmeans-ce",
                    "num_codes": k,
                    "distortion": mean(s),
                    "reconstruction_mse": mean(s, "reconstruction_mse"),
                }
            )
        return rows

    def figures(self, out: Path, rows, records) -> list[Path]:
        from .._records import pyplot, save

        plt = pyplot()
        summary = rows
        rows = [r for r in summary if r["condition"] == "kmeans-ce"]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ks = [r["num_codes"] for r in rows]
        ax.plot(ks, [r["distortion"] for r in rows], "o-", color="C0", label="distortion D")
        refs = {r["condition"]: r for r in summary if r["condition"] != "kmeans-ce"}
        for cond, style in (("uniform-ce", ":"), ("uniform-mse", "-.")):
            if cond in refs and math.isfinite(refs[cond]["distortion"]):
                ax.axhline(
                    refs[cond]["distortion"],
                    ls=style,
                    color="0.4",
                    lw=1,
                    label=f"{cond} ({refs[cond]['num_codes']} bins)",
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("codebook size K")
        ax.set_ylabel("D", color="C0")
        ax.legend(fontsize=7, loc="lower left", frameon=False)
        ax2 = ax.twinx()
        ax2.plot(ks, [r["reconstruction_mse"] for r in rows], "s--", color="C1")
        ax2.set_yscale("log")
        ax2.set_ylabel("reconstruction MSE", color="C1")
        ax.set_title("Codebook sweep: D (k-means CE) and reconstruction MSE", fontsize=10)
        return [save(fig, out / "codebook_sweep.png")]
