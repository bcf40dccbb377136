"""Result records -> JSON, CSV, Markdown tables and PNG figures; the checksummed ``cells.jsonl``."""

import csv
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
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


# ---------------------------------------------------------------------------------------------
# cells.jsonl: one checksummed JSON object per line, appended atomically

_CHECKSUM = "_sha256"


def _digest(record: dict[str, Any]) -> str:
    blob = json.dumps(record, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _notify(log: Callable[[str], None] | None, message: str) -> None:
    if log is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        log(message)


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines file ``path`` as one checksummed line.

    The line carries ``"_sha256"`` (first 16 hex digits of the SHA-256 of the record's sorted
    JSON) and is written with one ``write``, then flushed and ``fsync``-ed. If the file does not
    end with a newline (a torn line left by a kill), a newline is written first, so the torn
    line is never merged into this record; :func:`load_records` moves it aside.

    Args:
        path: the ``cells.jsonl`` file (created if missing).
        record: a flat JSON-serialisable dict without an ``"_sha256"`` key.
    """
    path = Path(path)
    if _CHECKSUM in record:
        raise ValueError(f"record already holds a {_CHECKSUM!r} field")
    line = json.dumps({**record, _CHECKSUM: _digest(record)}) + "\n"
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    line = "\n" + line
        fh.write(line.encode())
        fh.flush()
        os.fsync(fh.fileno())


def _parse(line: str) -> dict[str, Any] | None:
    """The record of one line, or ``None`` if it is torn, not an object or fails its checksum."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(rec, dict) or "cell_id" not in rec:
        return None
    checksum = rec.pop(_CHECKSUM, None)
    if checksum is not None and checksum != _digest(rec):
        return None
    return rec  # a line without a checksum: written before 0.2, read as it is


def load_records(
    path: str | Path, *, log: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Read the checksummed records of ``path`` (``{cell_id: record}``, the last one wins).

    Lines that are torn (no closing newline, not JSON) or fail their checksum are moved aside:
    appended to ``<path>.corrupt`` (never deleted), and ``path`` is rewritten without them (a
    temporary file renamed over it), with a one-line notice. Their cells are then recomputed.
    Lines without a checksum (files written before 0.2) are read as they are.

    Args:
        path: the ``cells.jsonl`` file (a missing file holds no records).
        log: receives the notice (``None``: a ``RuntimeWarning``).

    Returns:
        The valid records by cell id, without their checksum field.
    """
    path = Path(path)
    if not path.exists():
        return {}
    raw = path.read_bytes()
    done: dict[str, dict[str, Any]] = {}
    good: list[bytes] = []
    bad: list[bytes] = []
    for chunk in raw.splitlines(keepends=True):
        if not chunk.strip():
            continue
        rec = None
        if chunk.endswith(b"\n"):
            try:
                rec = _parse(chunk.decode())
            except UnicodeDecodeError:
                rec = None
        if rec is None:
            bad.append(chunk if chunk.endswith(b"\n") else chunk + b"\n")
            continue
        good.append(chunk)
        done[rec["cell_id"]] = rec
    if bad:
        aside = path.with_name(path.name + ".corrupt")
        with open(aside, "ab") as fh:
            fh.write(b"".join(bad))
            fh.flush()
            os.fsync(fh.fileno())
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(good))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _notify(
            log,
            f"{path}: {len(bad)} torn or corrupt line(s) moved to {aside}; "
            "their cells will be recomputed",
        )
    return done
