"""``head``: an identical encoder with a CE head over tokens vs a continuous (MSE) head.

Per system and architecture: D_CE, D_MSE, their ratio, the time-reversal D of both heads and
the rest of the suite of both heads (docs/reference/models.md#ablations).
"""

import math
from pathlib import Path
from typing import Any

from .._experiment import HEADS, Cell, Experiment, mean, select

#: Suite metrics shown next to D in the head table: record field ``suite_<m>`` -> column prefix.
SUITE_COLUMNS = {
    "cka_linear": "cka",
    "rdm_similarity": "rdm",
    "trustworthiness": "trust",
    "knn_overlap": "knn",
}


class Head(Experiment):
    """Each architecture with both heads, uniform tokens."""

    name = "head"

    def cells(self, config, system, seed):
        return [Cell(system, arch, head, seed) for arch in config.architectures for head in HEADS]

    def summarize(self, config, records, system):
        rows = []
        for arch in config.architectures:
            cells = {h: select(records, architecture=arch, head=h) for h in HEADS}
            ce, mse = mean(cells["ce"]), mean(cells["mse"])
            row: dict[str, Any] = {
                "system": system,
                "architecture": arch,
                "d_ce": ce,
                "d_mse": mse,
                "ratio_ce_over_mse": ce / mse if mse > 0 else math.nan,
                "d_ce_reversal": mean(cells["ce"], "distortion_reversal"),
                "d_mse_reversal": mean(cells["mse"], "distortion_reversal"),
            }
            for m, short in SUITE_COLUMNS.items():
                for head in HEADS:
                    row[f"{short}_{head}"] = mean(cells[head], f"suite_{m}")
            rows.append(row)
        return rows

    def figures(self, out: Path, rows, records) -> list[Path]:
        import numpy as np

        from .._records import pyplot, save

        plt = pyplot()
        written = []
        labels = [f"{r['architecture']}\n{r['system']}" for r in rows]
        x = np.arange(len(rows))
        fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(rows)), 3.8))
        ax.bar(x - 0.2, [r["d_ce"] for r in rows], 0.4, label="CE head (discrete)")
        ax.bar(x + 0.2, [r["d_mse"] for r in rows], 0.4, label="MSE head (continuous)")
        for xi, r in zip(x, rows, strict=True):
            ax.text(
                xi,
                max(r["d_ce"], r["d_mse"]),
                f"D_CE/D_MSE = {r['ratio_ce_over_mse']:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("Procrustes distortion D (value noise)")
        ax.set_title("Head ablation: identical encoder, CE vs MSE head", fontsize=10)
        top = max(max(r["d_ce"], r["d_mse"]) for r in rows)
        ax.set_ylim(0, 1.35 * top)
        ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)
        written.append(save(fig, out / "head_ablation.png"))
        # Trajectories of the head-ablation cells (uniform tokens, no penalty) only.
        trajectories = [
            r
            for r in records
            if r.get("distortion_trajectory")
            and r["tokenizer"] == "uniform"
            and not r["jacobian_lambda"]
            and "head" in r["experiments"]
        ]
        if trajectories:
            fig, ax = plt.subplots(figsize=(5, 3.4))
            for r in trajectories:
                style = "-" if r["head"] == "ce" else "--"
                ep = np.arange(1, len(r["distortion_trajectory"]) + 1)
                ax.plot(
                    ep,
                    r["distortion_trajectory"],
                    style,
                    marker="o",
                    ms=3,
                    label=f"{r['architecture']} {r['head']}",
                )
            ax.set_xlabel("epoch")
            ax.set_ylabel("D (eval subset)")
            ax.set_title("Distortion trajectory over training")
            ax.legend(fontsize=7, ncol=2)
            written.append(save(fig, out / "distortion_trajectory.png"))
        return written
