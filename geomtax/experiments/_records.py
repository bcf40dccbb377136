"""Result records -> JSON, CSV, Markdown tables and PNG figures."""

import csv
import json
import math
from pathlib import Path
from typing import Any

_CELL_COLUMNS = (
    "cell_id",
    "experiments",
    "system",
    "architecture",
    "head",
    "seed",
    "tokenizer",
    "num_codes",
    "vocab_size",
    "jacobian_lambda",
    "num_layers",
    "attention_layers",
    "attention_fraction",
    "hyena_order",
    "d_model",
    "num_params",
    "num_epochs",
    "best_epoch",
    "best_val_loss",
    "final_train_loss",
    "steps_per_second",
    "train_seconds",
    "reconstruction_mse",
    "distortion",
    "distortion_status",
    "distortion_reversal",
    "distortion_reversal_status",
    "suite_cka_linear",
    "suite_cka_linear_status",
    "suite_rdm_similarity",
    "suite_rdm_similarity_status",
    "suite_trustworthiness",
    "suite_trustworthiness_status",
    "suite_continuity",
    "suite_continuity_status",
    "suite_knn_overlap",
    "suite_knn_overlap_status",
    "suite_stress",
    "suite_stress_status",
    "shattering_epoch",
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ";".join(_fmt(x) for x in v)
    return "" if v is None else str(v)


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Render ``rows`` as a Markdown table (floats to 4 significant digits).

    Args:
        rows: list of flat dicts.
        columns: column order (default: keys of the first row).

    Returns:
        The table as a string.

    Examples:
        >>> from geomtax.experiments import markdown_table
        >>> print(markdown_table([{"a": 1, "b": 0.123456}]))
        | a | b |
        |---|---|
        | 1 | 0.1235 |
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow(
                [_fmt(r.get(c)) if isinstance(r.get(c), list) else r.get(c) for c in columns]
            )


def _figures(out: Path, result: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    summary = result["summary"]
    if "head" in summary and summary["head"]:
        rows = summary["head"]
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
        fig.tight_layout()
        p = out / "head_ablation.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    # Trajectories of the head-ablation cells (uniform tokens, no penalty) only.
    trajectories = [
        r
        for r in result["records"]
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
        fig.tight_layout()
        p = out / "distortion_trajectory.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    if summary.get("codebook"):
        rows = [r for r in summary["codebook"] if r["condition"] == "kmeans-ce"]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ks = [r["num_codes"] for r in rows]
        ax.plot(ks, [r["distortion"] for r in rows], "o-", color="C0", label="distortion D")
        refs = {r["condition"]: r for r in summary["codebook"] if r["condition"] != "kmeans-ce"}
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
        fig.tight_layout()
        p = out / "codebook_sweep.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    for name, xkey in (
        ("jacobian", "jacobian_lambda"),
        ("attention", "attention_fraction"),
        ("hyena-order", "hyena_order"),
    ):
        rows = summary.get(name)
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.4))
        groups: dict[str, list] = {}
        for r in rows:
            groups.setdefault(r.get("architecture", r.get("model", r["system"])), []).append(r)
        for g, rs in groups.items():
            ax.plot([r[xkey] for r in rs], [r["distortion"] for r in rs], "o-", label=g)
        if name == "jacobian":
            ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_xlabel(xkey)
        ax.set_ylabel("D")
        ax.set_title(f"{name} sweep")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / f"{name.replace('-', '_')}_sweep.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    return written


def write_outputs(out: str | Path, result: dict[str, Any], *, figures: bool = True) -> list[Path]:
    """Write ``results.json``, ``results.csv``, ``summary_<experiment>.csv`` and figures.

    Args:
        out: output directory.
        result: the dict returned by :func:`run_ablation`.
        figures: also write PNG figures.

    Returns:
        The paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.csv"]
    paths[0].write_text(json.dumps(result, indent=2, default=float))
    _write_csv(paths[1], result["records"], list(_CELL_COLUMNS))
    for name, rows in result["summary"].items():
        if rows:
            p = out / f"summary_{name.replace('-', '_')}.csv"
            _write_csv(p, rows, list(rows[0].keys()))
            paths.append(p)
    if figures:
        paths += _figures(out, result)
    return paths


def format_summary(result: dict[str, Any]) -> str:
    """Markdown tables of every experiment summary, with headings."""
    parts = []
    for name, rows in result["summary"].items():
        parts.append(f"### {name}\n\n" + markdown_table(rows))
    return "\n\n".join(parts)
