"""``geomtax.audit.run``: the foundation-model audit over several models/layers.

For each model (or layer) the audit computes, on host-side records:

1. row filtering (NaN/inf or near-zero rows dropped jointly across every array, with a count);
2. the geometry suite on clean versus each perturbed embedding (Procrustes D and disparity,
   Procrustes ratio, RDM similarity, k-NN overlap, perturbation coherence and effect size) and
   the feature-split stability of the clean embedding;
3. calibrated MINE against the ground-truth features (MI, random-embedding floor, ceiling),
   globally and on local windows (decoupling ratio = mean local MI / global MI);
4. an R(D) curve of the clean embedding;
5. the regime classification (:func:`geomtax.audit.classify_regimes`).

The numerical work is done by the core estimators (``geomtax.geometry``, ``geomtax.info``,
``geomtax.rd``); this module only orchestrates them and records their outputs.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import ArrayLike, KeyArray
from .._errors import check_float, check_int
from .._jsonio import jsonable
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
from ..info import CalibratedMIResult, calibrated_mi, mutual_information, pca
from ..rd import rd_curve_from_samples
from ._embeddings import filter_rows, pool_embeddings
from ._regimes import REGIMES, RegimeThresholds, classify_regimes


@dataclasses.dataclass
class ModelEmbeddings:
    """Everything the audit knows about one model or layer.

    Attributes:
        clean: ``(n, d)`` pooled or ``(n, L, d)`` per-position embeddings of the clean items.
        perturbed: ``{perturbation_name: embeddings}``, row ``i`` = item ``i`` perturbed.
        local: per-window pooled embeddings ``[(n, d), ...]`` (paired with ``local_features``
            passed to :func:`run`); empty to skip the local MI.
        perplexity: the model's perplexity on its own tokens (for regime III), if known.
        upstream: name of another audited model feeding this one (for regime II).
    """

    clean: Any
    perturbed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    local: Sequence[Any] = ()
    perplexity: float | None = None
    upstream: str | None = None


@dataclasses.dataclass
class AuditReport:
    """The audit's results (host-side records; nats unless a field says otherwise).

    Attributes:
        models: ``{name: record}`` with every number, per perturbation and per model.
        table: one comparison row per model (the CSV).
        config: options, thresholds and counts.
        extras: optional extra sections (``"rc_texture"``, ``"fisher"``, ...) for the report.
    """

    models: dict
    table: list
    config: dict
    extras: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (non-finite floats become ``None``)."""
        return jsonable(dataclasses.asdict(self))

    def save(self, out_dir, *, html: bool = True) -> dict:
        """Write ``audit.json``, ``audit.csv`` and (optionally) ``audit.html`` to ``out_dir``.

        Returns:
            ``{"json": path, "csv": path, "html": path}``.
        """
        from ._report import write_csv, write_html, write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": write_json(self, out / "audit.json"),
            "csv": write_csv(self, out / "audit.csv"),
        }
        if html:
            paths["html"] = write_html(self, out / "audit.html")
        return paths


# ----------------------------------------------------------------------------- core results


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


#: Arguments of the core estimators that the audit passes itself (not user options).
_MI_FIXED = frozenset({"x_truth", "x_embedding", "key", "x", "y", "throw"})
_RD_FIXED = frozenset({"x", "key", "throw"})


def _keyword_names(fn) -> set[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds}


def check_options(mi_options: Mapping[str, Any], rd_options: Mapping[str, Any]) -> None:
    """Reject option names that the core estimators do not take, before any work.

    ``mi_options`` go to :func:`geomtax.info.calibrated_mi`, which forwards the ones it does
    not take itself to :func:`geomtax.info.mutual_information`; ``rd_options`` go to
    :func:`geomtax.rd.rd_curve_from_samples`. Names are checked against the real signatures.

    Raises:
        ValueError: one line naming the unknown option, the function and the valid names.
    """
    checks = (
        (
            "mi_options",
            mi_options,
            (_keyword_names(calibrated_mi) | _keyword_names(mutual_information)) - _MI_FIXED,
            "geomtax.info.calibrated_mi / mutual_information",
        ),
        (
            "rd_options",
            rd_options,
            _keyword_names(rd_curve_from_samples) - _RD_FIXED,
            "geomtax.rd.rd_curve_from_samples",
        ),
    )
    for what, options, valid, target in checks:
        for name in options:
            if name not in valid:
                close = difflib.get_close_matches(name, sorted(valid), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{what}: unknown option {name!r} for {target}{hint} "
                    f"(valid: {', '.join(sorted(valid))})"
                )


# ----------------------------------------------------------------------------- the audit


def run(
    models: Mapping[str, ModelEmbeddings | Any],
    *,
    features: ArrayLike,
    key: KeyArray,
    local_features: Sequence[Any] = (),
    labels: ArrayLike | None = None,
    thresholds: RegimeThresholds = RegimeThresholds(),
    mi_options: Mapping[str, Any] | None = None,
    rd_options: Mapping[str, Any] | None = None,
    knn_k: int = 10,
    max_drop_fraction: float = 0.1,
    compute_rd: bool = True,
    compute_mi: bool = True,
    out: str | Path | None = None,
) -> AuditReport:
    r"""Audit one or several models/layers against ground-truth features.

    For each model: drop bad rows (:func:`geomtax.audit.filter_rows`, jointly over every array
    of that model and the features), compute per perturbation ``p`` the Procrustes distortion
    :math:`D_p` (:func:`geomtax.geometry.procrustes_distortion`), the disparity
    :math:`2D_p^2 - D_p^4`, the Procrustes ratio, RDM similarity, k-NN overlap, perturbation
    coherence and effect size; the feature-split stability of the clean embedding; calibrated
    MINE (:func:`geomtax.info.calibrated_mi`) of ``features`` against the clean embedding and
    of each ``local_features[w]`` against ``local[w]``; an R(D) curve
    (:func:`geomtax.rd.rd_curve_from_samples`); and the regimes
    (:func:`geomtax.audit.classify_regimes`, the floor being calibrated MINE's random baseline
    mean + 2 std).

    Args:
        models: ``{name: ModelEmbeddings}`` (a bare array is read as clean embeddings only).
        features: ``(n, f)`` ground-truth features (e.g. :func:`dna_features`), paired with the
            clean embeddings row by row.
        key: JAX key; split per model and per estimator.
        local_features: per-window feature arrays paired with each model's ``local`` list.
        labels: optional ``(n,)`` labels, kept in the record (row filtering applies).
        thresholds: :class:`RegimeThresholds`.
        mi_options: keyword options for ``calibrated_mi`` (e.g. ``num_steps``, ``num_seeds``).
        rd_options: keyword options for ``rd_curve_from_samples``; defaults
            ``num_codes = min(256, n // 4)``, ``betas = geomspace(0.1, 100, 16)``.
        knn_k: neighbours for the k-NN overlap.
        max_drop_fraction: error if more than this fraction of a model's rows is bad.
        compute_rd: compute the R(D) curve.
        compute_mi: compute MI (without it, regimes are not evaluated).
        out: if given, also write the report there (:meth:`AuditReport.save`: JSON, CSV, HTML).

    Every estimator is called with ``throw=False``, so one degenerate input never stops the
    audit: each number is recorded next to its status name (``"procrustes_distortion"`` and
    ``"procrustes_distortion_status"``, ``mi["global"]["status"]``, ``rd_curve["status"]`` per
    point; see docs/concepts/status.md). A value whose status is not ``ok`` is NaN, and the
    table's ``status`` column is the worst status of the model's record. Regimes are not
    evaluated when the global MI is not ok.

    Returns:
        :class:`AuditReport`; ``report.save(out_dir)`` writes JSON, CSV and HTML.

    Raises:
        ValueError: before any work: empty ``models``, row-count or rank mismatches, an
            unknown ``upstream`` name, local windows that do not match ``local_features``, an
            option name that ``calibrated_mi`` / ``mutual_information`` /
            ``rd_curve_from_samples`` do not take, or a bad ``knn_k`` / ``max_drop_fraction``;
            during the run: too many bad rows in one model.

    Examples:
        A minimal call (no MI, no R(D), no perturbation) that shows the row filtering; a full
        audit passes perturbed embeddings, ``mi_options`` and keeps MI and R(D) on:

        >>> import jax, numpy as np
        >>> emb = np.random.default_rng(0).normal(size=(50, 3))
        >>> emb[7] = np.nan
        >>> rep = run({"layer": emb}, features=np.ones((50, 2)), key=jax.random.key(0),
        ...           compute_mi=False, compute_rd=False)
        >>> rep.models["layer"]["n_used"], rep.models["layer"]["n_dropped"]
        (49, 1)
    """
    if not models:
        raise ValueError("run() needs at least one model")
    feats = np.asarray(features)
    if feats.ndim == 1:
        feats = feats[:, None]
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (n, f) array, got shape {feats.shape}")
    specs = {
        name: m if isinstance(m, ModelEmbeddings) else ModelEmbeddings(clean=m)
        for name, m in models.items()
    }
    for name, m in specs.items():
        if m.upstream is not None and m.upstream not in specs:
            raise ValueError(f"model {name!r} names upstream {m.upstream!r}, which is not audited")
        if len(m.local) != len(local_features):
            raise ValueError(
                f"model {name!r} has {len(m.local)} local windows but {len(local_features)} "
                "local feature arrays were given"
            )
    mi_options = dict(mi_options or {})
    rd_options = dict(rd_options or {})
    # Everything that can be checked without computing is checked here, before any model runs.
    check_options(mi_options, rd_options)
    knn_k = check_int("knn_k", knn_k, minimum=1)
    max_drop_fraction = check_float(
        "max_drop_fraction", max_drop_fraction, minimum=0.0, maximum=1.0
    )
    _check_shapes(specs, feats, local_features, labels)
    keys = jax.random.split(key, len(specs))
    records: dict[str, dict] = {}
    clean_kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Row filtering of every model first, so that a bad model is reported before any work.
    preps = {
        name: _prepare_one(name, m, feats, local_features, labels, max_drop_fraction)
        for name, m in specs.items()
    }
    for name, k in zip(specs, keys, strict=True):
        rec, clean, kept = _audit_one(
            preps[name], k, mi_options, rd_options, knn_k, compute_rd, compute_mi
        )
        records[name] = rec
        clean_kept[name] = (clean, kept)

    # Upstream disparity and regimes (after every model is measured: regime II compares a
    # model with its upstream one).
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

    table = [_table_row(name, rec) for name, rec in records.items()]
    config = {
        "num_models": len(specs),
        "num_features": int(feats.shape[1]),
        "num_rows": int(feats.shape[0]),
        "thresholds": {f.name: getattr(thresholds, f.name) for f in dataclasses.fields(thresholds)},
        "mi_options": {k: _plain(v) for k, v in mi_options.items()},
        "rd_options": {k: _plain(v) for k, v in rd_options.items()},
        "knn_k": knn_k,
        "max_drop_fraction": max_drop_fraction,
        "units": "nats (bits columns are nats / ln 2)",
    }
    report = AuditReport(models=records, table=table, config=config)
    if out is not None:
        report.save(out)
    return report


def _plain(v):
    if isinstance(v, np.ndarray | jax.Array):
        return np.asarray(v).tolist()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v if isinstance(v, int | float | str | bool | type(None)) else repr(v)


def _rows(x) -> int | None:
    shape = np.shape(x)
    return int(shape[0]) if len(shape) >= 1 else None


def _check_shapes(specs, feats, local_features, labels) -> None:
    """Row counts and ranks of every input, checked before any model is audited."""
    n = feats.shape[0]
    for i, lf in enumerate(local_features):
        if np.ndim(lf) not in (1, 2) or _rows(lf) != n:
            raise ValueError(
                f"local_features[{i}] has shape {np.shape(lf)}; expected ({n}, f) rows paired "
                "with the features"
            )
    if labels is not None and _rows(labels) != n:
        raise ValueError(f"labels have shape {np.shape(labels)}; expected {n} rows")
    for name, m in specs.items():
        arrays = {"clean": m.clean, **{f"perturbed {p!r}": v for p, v in m.perturbed.items()}}
        arrays |= {f"local window {i}": v for i, v in enumerate(m.local)}
        for what, a in arrays.items():
            if np.ndim(a) not in (2, 3):
                raise ValueError(
                    f"model {name!r}: {what} has shape {np.shape(a)}; expected (n, d) or (n, L, d)"
                )
            if _rows(a) != n:
                raise ValueError(
                    f"model {name!r}: {what} has {_rows(a)} rows but the features have {n}; "
                    "rows must be paired"
                )


def _prepare_one(name, m, feats, local_features, labels, max_drop_fraction) -> dict:
    """Pool and filter one model's arrays (no estimator runs here)."""
    clean = pool_embeddings(np.asarray(m.clean))
    pert_names = list(m.perturbed)
    perts = [pool_embeddings(np.asarray(m.perturbed[p])) for p in pert_names]
    locs = [pool_embeddings(np.asarray(x)) for x in m.local]
    lfeats = [np.asarray(f)[:, None] if np.ndim(f) == 1 else np.asarray(f) for f in local_features]
    arrays = [clean, *perts, feats, *locs, *lfeats]
    arr_names = [
        f"{name}: clean",
        *(f"{name}: perturbed {p!r}" for p in pert_names),
        "features",
        *(f"{name}: local window {i}" for i in range(len(locs))),
        *(f"local_features[{i}]" for i in range(len(lfeats))),
    ]
    if labels is not None:
        arrays.append(np.asarray(labels))
        arr_names.append("labels")
    n_in = clean.shape[0]
    try:
        filtered, kept = filter_rows(*arrays, max_drop_fraction=max_drop_fraction, names=arr_names)
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from err
    j = 2 + len(perts)
    prep = {
        "n_in": n_in,
        "clean": filtered[0],
        "pert_names": pert_names,
        "perts": filtered[1 : 1 + len(perts)],
        "f_kept": filtered[1 + len(perts)],
        "locs": filtered[j : j + len(locs)],
        "lfeats": filtered[j + len(locs) : j + len(locs) + len(lfeats)],
        "labels": filtered[-1] if labels is not None else None,
        "kept": kept,
    }
    if prep["clean"].shape[0] < 4:
        raise ValueError(
            f"model {name!r}: only {prep['clean'].shape[0]} usable rows after filtering; need >= 4"
        )
    return prep


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
    for name in ("procrustes_distortion", "rdm_similarity"):
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
        for f in ("procrustes_ratio", "perturbation_coherence", "perturbation_effect_size"):
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
        "procrustes_distortion_mean": rec["procrustes_distortion_mean"],
        "procrustes_distortion_std": rec["procrustes_distortion_std"],
        "rdm_similarity_mean": rec["rdm_similarity_mean"],
        "feature_split_stability": rec["feature_split_stability"],
        "status": _record_status(rec),
    }
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
