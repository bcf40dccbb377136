"""JSON, CSV and self-contained HTML output of an audit (plots embedded as base64 PNG)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._metrics import PLOTTED_METRICS, axis_label, better, directions, value_range
from ._regimes import REGIME_LABELS, REGIMES

#: Section ids every HTML report contains (in order); tests check them.
HTML_SECTIONS = (
    "summary",
    "regimes",
    "mi-distortion-map",
    "perturbation-stability",
    "rate-distortion",
    "local-global",
    "filtering",
    "configuration",
)

_REGIME_COLORS = {
    "none": "#4c72b0",
    "local_global_decoupling": "#dd8452",
    "representational_compression": "#c44e52",
    "geometric_vacuity": "#8172b3",
}


def write_json(report, path) -> Path:
    """Write the report as JSON (non-finite floats become ``null``)."""
    path = Path(path)
    path.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=False))
    return path


def write_csv(report, path) -> Path:
    """Write the comparison table (one row per model) as CSV."""
    path = Path(path)
    rows = report.table
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt_csv(r.get(k, "")) for k in fields})
    return path


def _fmt_csv(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return v


def _fig_to_base64(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'


def _primary_regime(rec) -> str:
    reg = (rec.get("regimes") or {}).get("regimes") or []
    return reg[0] if reg else "none"


def plot_mi_distortion_map(report) -> Figure:
    """Scatter of normalised MI versus mean Procrustes distortion, coloured by regime.

    Returns:
        A matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    seen = set()
    for name, rec in report.models.items():
        mi = rec.get("mi") or {}
        g = mi.get("global") or {}
        y = g.get("normalized_mi", math.nan)
        if not _finite(y):
            y = g.get("mi_nats", math.nan)
        x = rec.get("procrustes_distortion_mean", math.nan)
        if not (_finite(x) and _finite(y)):
            continue
        reg = _primary_regime(rec)
        label = REGIME_LABELS.get(reg, "no regime") if reg not in seen else None
        seen.add(reg)
        ax.scatter([x], [y], s=60, color=_REGIME_COLORS[reg], label=label, edgecolor="k")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    floors = [
        (rec.get("mi") or {}).get("global", {}).get("floor_nats") for rec in report.models.values()
    ]
    ceils = [
        (rec.get("mi") or {}).get("global", {}).get("ceiling_nats")
        for rec in report.models.values()
    ]
    # Models whose MI is not ok have NaN floors/ceilings; average the ok ones (if any).
    floors = [v for v in floors if _finite(v)]
    ceils = [v for v in ceils if _finite(v)]
    f = float(np.mean(floors)) if floors else math.nan
    c = float(np.mean(ceils)) if ceils else math.nan
    if _finite(f) and _finite(c) and c > 0:
        ax.axhline(f / c, color="grey", ls="--", lw=1, label="noise floor / ceiling")
    # The x axis spans the table's range of D; the shaded band is its "geometry lost" end.
    lo, hi = value_range("procrustes_distortion")
    ax.axvspan(0.5, hi, color="#f2d7d5", alpha=0.4, zorder=0, label="D >= 0.5")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(
        "mean Procrustes distortion D (clean vs perturbed; "
        f"{better('procrustes_distortion')} = geometry kept)"
    )
    ax.set_ylabel("normalised MI (MI / ceiling)")
    ax.set_title("MI versus distortion")
    if seen:
        ax.legend(fontsize=7, loc="best")
    return fig


def plot_perturbation_stability(report, *, metric: str = "rdm_similarity") -> Figure:
    """Grouped bars of a per-perturbation stability metric for every model.

    Returns:
        A matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    names = list(report.models)
    perts: list[str] = []
    for rec in report.models.values():
        perts += [p for p in rec["perturbations"] if p not in perts]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(perts) + 2), 3.8))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        vals = [report.models[name]["perturbations"].get(p, {}).get(metric, np.nan) for p in perts]
        ax.bar(np.arange(len(perts)) + i * width, vals, width=width, label=name)
    ax.set_xticks(np.arange(len(perts)) + width * (len(names) - 1) / 2)
    ax.set_xticklabels(perts, rotation=20, fontsize=8)
    ax.set_ylabel(axis_label(metric))
    ax.set_title(f"Per-perturbation stability ({metric})")
    ax.legend(fontsize=7)
    return fig


def plot_rd_curves(report) -> Figure:
    """Rate (nats) against distortion of every model's R(D) curve."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    for name, rec in report.models.items():
        c = rec.get("rd_curve")
        if c and "rate" in c and "distortion" in c:
            d, r = np.asarray(c["distortion"], float), np.asarray(c["rate"], float)
            order = np.argsort(d)
            ax.plot(d[order], r[order], marker="o", ms=3, label=name)
    ax.set_xlabel("distortion D (normalised)")
    ax.set_ylabel("rate R (nats)")
    ax.set_title("Rate-distortion curves")
    ax.legend(fontsize=7)
    return fig


def plot_local_global(report) -> Figure:
    """Bars of global versus mean local MI (nats) per model, with each model's floor."""
    import matplotlib.pyplot as plt

    names = list(report.models)
    g = [
        ((report.models[n].get("mi") or {}).get("global") or {}).get("mi_nats", np.nan)
        for n in names
    ]
    loc = [(report.models[n].get("mi") or {}).get("local_mean_nats", np.nan) for n in names]
    fl = [
        ((report.models[n].get("mi") or {}).get("global") or {}).get("floor_nats", np.nan)
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(names) + 2), 3.6))
    x = np.arange(len(names))
    ax.bar(x - 0.2, g, width=0.4, label="global MI")
    ax.bar(x + 0.2, loc, width=0.4, label="mean local MI")
    ax.scatter(x, fl, color="k", marker="_", s=400, label="noise floor", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_ylabel("MI (nats)")
    ax.set_title("Local versus global MI")
    ax.legend(fontsize=7)
    return fig


def plot_fisher_shares(shares: dict, *, title: str = "Empirical Fisher share per layer") -> Figure:
    """Horizontal bars of per-layer Fisher shares (:func:`geomtax.audit.fisher_shares`)."""
    import matplotlib.pyplot as plt

    names = list(shares)
    fig, ax = plt.subplots(figsize=(5.0, 0.35 * len(names) + 1.2))
    ax.barh(np.arange(len(names)), [shares[n] for n in names], color="#55a868")
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of total empirical Fisher")
    ax.set_title(title)
    return fig


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}
section{margin-bottom:2em}
.flag{color:#b03a2e;font-weight:bold}
code{background:#f5f5f5;padding:0 3px}
"""


def render_html(report) -> str:
    """Render the report as one self-contained HTML string (no external files)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>geomtax audit report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>geomtax foundation-model audit</h1>",
        "<p>All information quantities in nats unless a column says bits. Regime thresholds are "
        "documented placeholders (the paper's are not public); see the configuration section.</p>",
    ]
    parts.append('<section id="summary"><h2>Comparison table</h2>')
    parts.append(_table(report.table))
    parts.append("</section>")

    parts.append('<section id="regimes"><h2>Regimes and evidence</h2>')
    for name, rec in report.models.items():
        reg = rec.get("regimes") or {}
        parts.append(f"<h3>{html.escape(name)}: {html.escape(reg.get('label', 'n/a'))}</h3><ul>")
        for r in REGIMES:
            ev = (reg.get("evidence") or {}).get(r)
            if ev is None:
                continue
            status = (
                "<span class='flag'>FLAGGED</span>"
                if ev["flagged"]
                else ("not flagged" if ev["evaluated"] else "not evaluated")
            )
            parts.append(
                f"<li><b>{html.escape(REGIME_LABELS[r])}</b>: {status} "
                f"({html.escape(ev['reason'])})</li>"
            )
        parts.append("</ul>")
    parts.append("</section>")

    parts.append('<section id="mi-distortion-map"><h2>MI versus distortion map</h2>')
    parts.append(_img(_fig_to_base64(plot_mi_distortion_map(report)), "MI versus distortion"))
    parts.append("</section>")

    parts.append('<section id="perturbation-stability"><h2>Per-perturbation stability</h2>')
    for metric in PLOTTED_METRICS:
        parts.append(
            _img(_fig_to_base64(plot_perturbation_stability(report, metric=metric)), metric)
        )
    legend = [
        {
            "metric": name,
            "geometry kept when": d["better"],
            "lo": d["range"][0],
            "hi": d["range"][1] if math.isfinite(d["range"][1]) else "inf",
            "ideal": d["ideal"],
        }
        for name, d in directions().items()
    ]
    parts.append("<p>Ranges and directions (from the metric table, geomtax.geometry.METRICS):</p>")
    parts.append(_table(legend))
    rows = []
    for name, rec in report.models.items():
        for p, vals in rec["perturbations"].items():
            rows.append({"model": name, "perturbation": p, **vals})
    parts.append(_table(rows))
    parts.append("</section>")

    parts += _figure_section(
        report, "rate-distortion", "Rate-distortion", "rd_curve", plot_rd_curves, "R(D) curves"
    )
    parts += _figure_section(
        report,
        "local-global",
        "Local versus global MI",
        "mi",
        plot_local_global,
        "local vs global MI",
    )

    parts.append('<section id="filtering"><h2>Row filtering</h2>')
    parts.append(
        _table(
            [
                {
                    "model": n,
                    "n_input": r["n_input"],
                    "n_used": r["n_used"],
                    "n_dropped": r["n_dropped"],
                }
                for n, r in report.models.items()
            ]
        )
    )
    parts.append("</section>")

    for key, extra in (report.extras or {}).items():
        parts.append(f'<section id="extra-{html.escape(key)}"><h2>{html.escape(key)}</h2>')
        if isinstance(extra, dict) and "figure_png_base64" in extra:
            parts.append(_img(extra["figure_png_base64"], key))
        body = (
            {k: v for k, v in extra.items() if k != "figure_png_base64"}
            if isinstance(extra, dict)
            else extra
        )
        parts.append(f"<pre>{html.escape(json.dumps(_plain_json(body), indent=1))}</pre>")
        parts.append("</section>")

    parts.append('<section id="configuration"><h2>Configuration</h2>')
    parts.append(f"<pre>{html.escape(json.dumps(_plain_json(report.config), indent=1))}</pre>")
    parts.append("</section></body></html>")
    return "\n".join(parts)


#: what a figure section says when no model has the record it plots
_NOT_COMPUTED = {"rd_curve": "R(D)", "mi": "MI"}


def _figure_section(report, section_id, title, field, plot, alt) -> list[str]:
    """A section with ``plot(report)``, or a line saying ``field`` was not computed."""
    parts = [f'<section id="{section_id}"><h2>{title}</h2>']
    if any(rec.get(field) for rec in report.models.values()):
        parts.append(_img(_fig_to_base64(plot(report)), alt))
    else:
        parts.append(f"<p>{_NOT_COMPUTED[field]} not computed.</p>")
    parts.append("</section>")
    return parts


def _plain_json(obj):
    if isinstance(obj, dict):
        return {str(k): _plain_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_html(report, path) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(report))
    return path
