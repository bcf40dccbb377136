"""One model's measurements for :func:`geomtax.audit.run`, and the records they fill.

:func:`_audit_one` runs the core estimators on one model's filtered arrays (the geometry suite
per perturbation, calibrated MI, the R(D) curve); :func:`_upstream_and_regimes` adds the
upstream disparity and the regimes once every model is measured; :func:`_table_row` is the
model's row of the comparison table. The geometry metrics are named in
:mod:`geomtax.audit._metrics` (their ranges and directions come from the metric table).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._status import PRECEDENCE, status_name
from ..geometry import (
    feature_split_stability,
    knn_overlap,
    perturbation_coherence,
    perturbation_effect_size,
    procrustes_distortion,
    procrustes_ratio,
    rdm_similarity,
)
from ..info import CalibratedMIResult, calibrated_mi, pca
from ..rd import rd_curve_from_samples
from ._metrics import MODEL_METRICS, SAME_WIDTH_METRICS, SUMMARY_METRICS
from ._regimes import REGIMES, classify_regimes

#: Status recorded for a summary over perturbations when the model has none.
_NO_PERTURBATION = "not evaluated (no perturbations)"


def _worst(names) -> str:
    """The worst of several status names by precedence (``ok`` when all are ``ok``)."""
    bad = set(names) - {"ok"}
    return next((n for n in PRECEDENCE if n in bad), next(iter(sorted(bad)), "ok"))


def _status(status) -> str:
    """One status name for a concrete (possibly batched) status: the worst entry."""
    return _worst(np.asarray(status_name(status), dtype=object).ravel().tolist())


def _estimate(res) -> tuple[float, str]:
    """``(value, status name)`` of an :class:`geomtax.Estimate`-like result (``.value``)."""
    return float(np.asarray(res.value)), _status(res.status)


def _mi_summary(res: CalibratedMIResult) -> dict:
    """Record of a :class:`geomtax.info.CalibratedMIResult` (nats; per-seed lists kept)."""

    def f(v):
        return float(np.asarray(v))

    def per_seed(v):
        return np.asarray(v).ravel().tolist()

    return {
        "mi_nats": f(res.mi_mean),
        "mi_std_nats": f(res.mi_std),
        "random_mean_nats": f(res.random_mean),
        "random_std_nats": f(res.random_std),
        "floor_nats": f(res.noise_floor),
        "ceiling_nats": f(res.ceiling_mean),
        "ceiling_std_nats": f(res.ceiling_std),
        "normalized_mi": f(res.normalized),
        "excess_mi_nats": f(res.excess),
        "above_floor": bool(np.asarray(res.above_floor)),
        "biased_low": bool(np.asarray(res.biased_low)),
        "status": _status(res.status),
        "num_constant": np.asarray(res.num_constant).ravel().tolist(),
        "mi_per_seed_nats": per_seed(res.mi),
        "ceiling_per_seed_nats": per_seed(res.ceiling),
        "random_per_seed_nats": per_seed(res.random),
    }


def _audit_one(prep, key, mi_options, rd_options, knn_k, compute_rd, compute_mi):
    n_in, clean, pert_names, perts = prep["n_in"], prep["clean"], prep["pert_names"], prep["perts"]
    f_kept, locs, lfeats, kept = prep["f_kept"], prep["locs"], prep["lfeats"], prep["kept"]
    n = clean.shape[0]
    k_geo, k_mi, k_rd = jax.random.split(key, 3)
    rec: dict[str, Any] = {
        "n_input": int(n_in),
        "n_used": int(n),
        "n_dropped": int(n_in - n),
        "dim": int(clean.shape[1]),
        "perturbations": {},
    }
    xc = jnp.asarray(clean, dtype=jnp.float32)
    if clean.shape[1] >= 4:
        fss = feature_split_stability(xc, key=jax.random.fold_in(k_geo, 10_000), throw=False)
        rec["feature_split_stability"], rec["feature_split_stability_status"] = _estimate(fss)
    else:
        rec["feature_split_stability"] = math.nan
        rec["feature_split_stability_status"] = "not evaluated (fewer than 4 columns)"
    for i, (p, xp_np) in enumerate(zip(pert_names, perts, strict=True)):
        rec["perturbations"][p] = _geometry(
            xc, jnp.asarray(xp_np, jnp.float32), knn_k, jax.random.fold_in(k_geo, i)
        )
        rec["perturbations"][p]["identifiable_composite"] = _nanmean(
            [rec["feature_split_stability"], rec["perturbations"][p]["rdm_similarity"]]
        )
    # Means over the perturbations whose estimate is ok; the status is the worst of the terms
    # (so a mean over fewer perturbations than given is never mistaken for a clean one).
    pvals = list(rec["perturbations"].values())
    for name in SUMMARY_METRICS:
        vals = [v[name] for v in pvals]
        rec[f"{name}_mean"] = _nanmean(vals)
        if name == "procrustes_distortion":
            ok_vals = [x for x in vals if math.isfinite(x)]
            rec["procrustes_distortion_std"] = float(np.std(ok_vals)) if ok_vals else math.nan
        rec[f"{name}_mean_status"] = (
            _worst(v[f"{name}_status"] for v in pvals) if pvals else _NO_PERTURBATION
        )
    rec["procrustes_distortion_std_status"] = rec["procrustes_distortion_mean_status"]

    if compute_mi:
        kg, *kl = jax.random.split(k_mi, 1 + len(locs))
        glob = _mi_summary(
            calibrated_mi(jnp.asarray(f_kept, jnp.float32), xc, key=kg, throw=False, **mi_options)
        )
        local = [
            _mi_summary(
                calibrated_mi(
                    jnp.asarray(lf, jnp.float32),
                    jnp.asarray(lx, jnp.float32),
                    key=kk,
                    throw=False,
                    **mi_options,
                )
            )
            for lf, lx, kk in zip(lfeats, locs, kl, strict=True)
        ]
        local_mean = _nanmean([r["mi_nats"] for r in local]) if local else math.nan
        local_status = (
            _worst(r["status"] for r in local) if local else "not evaluated (no local windows)"
        )
        g = glob["mi_nats"]
        rec["mi"] = {
            "global": glob,
            "local": local,
            "local_mean_nats": local_mean,
            "local_mean_status": local_status,
            "local_global_ratio_status": (
                _worst([glob["status"], local_status]) if local else local_status
            ),
            # Decoupling factor; +inf when the global estimate is <= 0 (as in classify_regimes),
            # NaN when either estimate is not ok.
            "local_global_ratio": (
                (local_mean / g if g > 0 else math.inf)
                if local and math.isfinite(g) and math.isfinite(local_mean)
                else math.nan
            ),
        }
    else:
        rec["mi"] = None

    if compute_rd:
        opts = {
            "num_codes": int(min(256, max(2, n // 4))),
            "betas": jnp.geomspace(0.1, 100.0, 16),
            **rd_options,
        }
        opts["betas"] = jnp.asarray(opts["betas"], dtype=xc.dtype)
        curve = rd_curve_from_samples(xc, key=k_rd, throw=False, **opts)
        rec["rd_curve"] = {
            "beta": np.asarray(curve.beta).tolist(),
            "rate": np.asarray(curve.rate).tolist(),
            "distortion": np.asarray(curve.distortion).tolist(),
            "rate_upper": np.asarray(curve.rate_upper).tolist(),
            "rate_lower": np.asarray(curve.rate_lower).tolist(),
            "gap": np.asarray(curve.gap).tolist(),
            "converged": np.asarray(curve.converged).tolist(),
            "status": np.asarray(status_name(curve.status), dtype=object).ravel().tolist(),
        }
    else:
        rec["rd_curve"] = None
    if prep["labels"] is not None:
        rec["num_label_classes"] = int(len(np.unique(prep["labels"])))
    return rec, clean, kept


def _nanmean(vals) -> float:
    v = np.asarray([x for x in vals if x is not None], dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).any():
        return math.nan
    return float(np.nanmean(v))


def _put(out: dict, name: str, res) -> None:
    """Record ``res.value`` under ``name`` and its status under ``name + "_status"``."""
    out[name], out[f"{name}_status"] = _estimate(res)


def _geometry(xc, xp, knn_k, key) -> dict:
    out: dict[str, Any] = {}
    _put(out, "procrustes_distortion", procrustes_distortion(xc, xp, throw=False))
    d = out["procrustes_distortion"]
    out["procrustes_disparity"] = 2 * d**2 - d**4
    if xc.shape[1] == xp.shape[1]:
        pr = procrustes_ratio(xc, xp, throw=False)
        out["procrustes_ratio"] = float(np.asarray(pr.ratio))
        out["procrustes_raw"] = float(np.asarray(pr.raw))
        out["procrustes_ratio_status"] = _status(pr.status)
        _put(out, "perturbation_coherence", perturbation_coherence(xc, xp, throw=False))
        _put(out, "perturbation_effect_size", perturbation_effect_size(xc, xp, throw=False))
    else:
        why = "not evaluated (different widths)"
        for f in SAME_WIDTH_METRICS:
            out[f] = math.nan
            out[f"{f}_status"] = why
        out["procrustes_raw"] = math.nan
    _put(out, "rdm_similarity", rdm_similarity(xc, xp, key=key, throw=False))
    k = int(min(knn_k, xc.shape[0] - 2))
    _put(out, "knn_overlap", knn_overlap(xc, xp, k=k, throw=False))
    return out


def _upstream_disparity(up, down) -> tuple[float, str]:
    """Procrustes disparity between an upstream and a downstream model on their common rows.

    Each side is reduced by PCA (:func:`geomtax.info.pca`) to ``min(50, n - 1)`` components
    when wider (docs/reference/audit.md). Returns ``(disparity, status name)``.
    """
    xu, ku = up
    xd, kd = down
    common, iu, idn = np.intersect1d(ku, kd, return_indices=True)
    if common.size < 4:
        return math.nan, "not evaluated (fewer than 4 common rows)"
    xs, statuses = [], []
    for x in (xu[iu], xd[idn]):
        x = jnp.asarray(x, jnp.float32)
        m = min(50, x.shape[0] - 1)
        if x.shape[1] > m:
            res = pca(x, num_components=m, throw=False)
            statuses.append(_status(res.status))
            x = res.scores
        xs.append(x)
    d, st = _estimate(procrustes_distortion(xs[0], xs[1], throw=False))
    statuses.append(st)
    status = next((n for n in PRECEDENCE if n in statuses), "ok")
    return (2 * d**2 - d**4 if status == "ok" else math.nan), status


def _record_status(rec) -> str:
    """The worst status anywhere in a model's record (``ok`` when every estimate is ok)."""
    found: set[str] = set()

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "status" or str(k).endswith("_status"):
                    found.update(v if isinstance(v, list) else [v])
                else:
                    walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(rec)
    return next((n for n in PRECEDENCE if n in found), "ok")


def _table_row(name: str, rec: dict) -> dict:
    ln2 = math.log(2.0)
    row = {
        "model": name,
        "n_used": rec["n_used"],
        "n_dropped": rec["n_dropped"],
        "dim": rec["dim"],
    }
    for name in SUMMARY_METRICS:
        row[f"{name}_mean"] = rec[f"{name}_mean"]
        if f"{name}_std" in rec:
            row[f"{name}_std"] = rec[f"{name}_std"]
    row |= {name: rec[name] for name in MODEL_METRICS}
    row["status"] = _record_status(rec)
    mi = rec.get("mi")
    if mi:
        g = mi["global"]
        row.update(
            mi_nats=g["mi_nats"],
            mi_status=g["status"],
            mi_std_nats=g["mi_std_nats"],
            mi_bits=g["mi_nats"] / ln2,
            floor_nats=g["floor_nats"],
            ceiling_nats=g["ceiling_nats"],
            normalized_mi=g["normalized_mi"],
            excess_mi_nats=g["excess_mi_nats"],
            mi_local_mean_nats=mi["local_mean_nats"],
            local_global_ratio=mi["local_global_ratio"],
        )
    reg = rec.get("regimes") or {}
    row["regime"] = reg.get("label", "not evaluated")
    for r in REGIMES:
        ev = reg.get("evidence", {}).get(r)
        row[r] = "" if not ev or not ev["evaluated"] else bool(ev["flagged"])
    return row


def _upstream_and_regimes(specs, records, clean_kept, compute_mi, thresholds) -> None:
    """Add ``upstream`` and ``regimes`` to every record (after every model is measured).

    Regime II compares a model with its upstream one, so this runs once all records exist.
    """
    for name, m in specs.items():
        rec = records[name]
        if m.upstream is not None:
            disp, disp_status = _upstream_disparity(clean_kept[m.upstream], clean_kept[name])
            rec["upstream"] = {
                "name": m.upstream,
                "disparity": disp,
                "disparity_status": disp_status,
                "mi_upstream_nats": (
                    records[m.upstream]["mi"]["global"]["mi_nats"] if compute_mi else math.nan
                ),
                "mi_upstream_status": (
                    records[m.upstream]["mi"]["global"]["status"]
                    if compute_mi
                    else "not evaluated (compute_mi=False)"
                ),
            }
        if not compute_mi:
            rec["regimes"] = {"regimes": [], "label": "not evaluated", "evidence": {}}
            continue
        glob = rec["mi"]["global"]
        if not (math.isfinite(glob["mi_nats"]) and math.isfinite(glob["floor_nats"])):
            rec["regimes"] = {
                "regimes": [],
                "label": "not evaluated",
                "evidence": {},
                "reason": f"the global MI estimate has status {glob['status']}",
            }
            continue
        up = rec.get("upstream")
        mi_local = rec["mi"]["local_mean_nats"] if m.local else None
        rec["regimes"] = classify_regimes(
            mi_global=glob["mi_nats"],
            floor=glob["floor_nats"],
            mi_local=mi_local,
            mi_upstream=None if up is None else up["mi_upstream_nats"],
            disparity_upstream=None if up is None else up["disparity"],
            perplexity=m.perplexity,
            thresholds=thresholds,
        )
