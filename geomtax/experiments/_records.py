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


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Lay out, write (120 dpi) and close ``fig``; return ``path``."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def sweep_figure(
    out: Path, name: str, rows: list[dict[str, Any]], xkey: str, *, symlog: bool = False
) -> Path:
    """D against ``xkey``, one line per architecture (or model, or system): ``<name>_sweep.png``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.get("architecture", r.get("model", r["system"])), []).append(r)
    for g, rs in groups.items():
        ax.plot([r[xkey] for r in rs], [r["distortion"] for r in rs], "o-", label=g)
    if symlog:
        ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel(xkey)
    ax.set_ylabel("D")
    ax.set_title(f"{name} sweep")
    ax.legend(fontsize=8)
    return save(fig, out / f"{name.replace('-', '_')}_sweep.png")


def _figures(out: Path, result: dict[str, Any]) -> list[Path]:
    """Each experiment's figures (:meth:`Experiment.figures`), in the order of the summary."""
    from ._registry import get_experiment, registered_experiments

    written = []
    for name, rows in result["summary"].items():
        if rows and name in registered_experiments():
            written += get_experiment(name).figures(out, rows, result["records"])
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
