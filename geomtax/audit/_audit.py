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
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import ArrayLike, KeyArray
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
        return _jsonable(dataclasses.asdict(self))

    def save(self, out_dir, *, html: bool = True) -> dict:
        """Write ``audit.json``, ``audit.csv`` and (optionally) ``audit.html`` to ``out_dir``.

        Returns:
            ``{"json": path, "csv": path, "html": path}``.
        """
        from pathlib import Path

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


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- core adapters


def _core(namespace: str, name: str):
    import importlib

    mod = importlib.import_module(f"geomtax.{namespace}")
    fn = getattr(mod, name, None)
    if fn is None:
        raise ImportError(
            f"geomtax.{namespace}.{name} is not available in this build; the audit needs it"
        )
    return fn


def _scalar(res, *names) -> float:
    """A float from a core result: the first attribute in ``names`` present, else the array."""
    for nm in names:
        if hasattr(res, nm):
            return float(np.asarray(getattr(res, nm)))
        if isinstance(res, Mapping) and nm in res:
            return float(np.asarray(res[nm]))
    return float(np.asarray(res))


def _mi_summary(res) -> dict:
    """Record of a :class:`geomtax.info.CalibratedMIResult` (nats; per-seed lists kept)."""

    def f(name):
        return float(np.asarray(getattr(res, name))) if hasattr(res, name) else math.nan

    def per_seed(name):
        return np.asarray(getattr(res, name)).ravel().tolist() if hasattr(res, name) else []

    return {
        "mi_nats": f("mi_mean"),
        "mi_std_nats": f("mi_std"),
        "random_mean_nats": f("random_mean"),
        "random_std_nats": f("random_std"),
        "floor_nats": f("noise_floor"),
        "ceiling_nats": f("ceiling_mean"),
        "ceiling_std_nats": f("ceiling_std"),
        "normalized_mi": f("normalized"),
        "excess_mi_nats": f("excess"),
        "above_floor": bool(np.asarray(getattr(res, "above_floor", False))),
        "diverged": bool(np.asarray(getattr(res, "diverged", False))),
        "num_constant": np.asarray(getattr(res, "num_constant", 0)).ravel().tolist(),
        "mi_per_seed_nats": per_seed("mi"),
        "ceiling_per_seed_nats": per_seed("ceiling"),
        "random_per_seed_nats": per_seed("random"),
    }


def _safe_div(a, b) -> float:
    return a / b if b and math.isfinite(b) and b != 0 else math.nan


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
            ``num_codes = min(256, n // 4)``, ``betas = geomspace(0.1, 100, 16)``,
            ``throw=False`` (non-converged points are flagged in ``converged``).
        knn_k: neighbours for the k-NN overlap.
        max_drop_fraction: error if more than this fraction of a model's rows is bad.
        compute_rd: compute the R(D) curve.
        compute_mi: compute MI (without it, regimes are not evaluated).

    Returns:
        :class:`AuditReport`; ``report.save(out_dir)`` writes JSON, CSV and HTML.

    Raises:
        ValueError: empty ``models``, row-count mismatches, too many bad rows, an unknown
            ``upstream`` name, or local windows that do not match ``local_features``.

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
    keys = jax.random.split(key, len(specs))
    records: dict[str, dict] = {}
    clean_kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (name, m), k in zip(specs.items(), keys, strict=True):
        rec, clean, kept = _audit_one(
            name,
            m,
            feats,
            local_features,
            labels,
            k,
            mi_options,
            rd_options,
            knn_k,
            max_drop_fraction,
            compute_rd,
            compute_mi,
        )
        records[name] = rec
        clean_kept[name] = (clean, kept)

    # Regimes (after every model is measured, because regime II compares with an upstream model).
    for name, m in specs.items():
        rec = records[name]
        if not compute_mi:
            rec["regimes"] = {"regimes": [], "label": "not evaluated", "evidence": {}}
            continue
        mi_up = disp = None
        if m.upstream is not None:
            mi_up = records[m.upstream]["mi"]["global"]["mi_nats"]
            disp = _upstream_disparity(clean_kept[m.upstream], clean_kept[name])
            rec["upstream"] = {"name": m.upstream, "disparity": disp, "mi_upstream_nats": mi_up}
        mi_local = rec["mi"]["local_mean_nats"] if m.local else None
        rec["regimes"] = classify_regimes(
            mi_global=rec["mi"]["global"]["mi_nats"],
            floor=rec["mi"]["global"]["floor_nats"],
            mi_local=mi_local,
            mi_upstream=mi_up,
            disparity_upstream=disp,
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
    return AuditReport(models=records, table=table, config=config)


def _plain(v):
    if isinstance(v, np.ndarray | jax.Array):
        return np.asarray(v).tolist()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v if isinstance(v, int | float | str | bool | type(None)) else repr(v)


def _audit_one(
    name,
    m,
    feats,
    local_features,
    labels,
    key,
    mi_options,
    rd_options,
    knn_k,
    max_drop_fraction,
    compute_rd,
    compute_mi,
):
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
    filtered, kept = filter_rows(*arrays, max_drop_fraction=max_drop_fraction, names=arr_names)
    clean = filtered[0]
    perts = filtered[1 : 1 + len(perts)]
    f_kept = filtered[1 + len(perts)]
    j = 2 + len(perts)
    locs = filtered[j : j + len(locs)]
    lfeats = filtered[j + len(locs) : j + len(locs) + len(lfeats)]
    n = clean.shape[0]
    if n < 4:
        raise ValueError(f"model {name!r}: only {n} usable rows after filtering; need >= 4")

    k_geo, k_mi, k_rd = jax.random.split(key, 3)
    rec: dict[str, Any] = {
        "n_input": int(n_in),
        "n_used": int(n),
        "n_dropped": int(n_in - n),
        "dim": int(clean.shape[1]),
        "perturbations": {},
    }
    xc = jnp.asarray(clean, dtype=jnp.float32)
    fss = _core("geometry", "feature_split_stability")
    rec["feature_split_stability"] = (
        _scalar(fss(xc, key=jax.random.fold_in(k_geo, 10_000)), "value", "score", "mean")
        if clean.shape[1] >= 4
        else math.nan
    )
    for i, (p, xp_np) in enumerate(zip(pert_names, perts, strict=True)):
        rec["perturbations"][p] = _geometry(
            xc, jnp.asarray(xp_np, jnp.float32), knn_k, jax.random.fold_in(k_geo, i)
        )
        rec["perturbations"][p]["identifiable_composite"] = _nanmean(
            [rec["feature_split_stability"], rec["perturbations"][p]["rdm_similarity"]]
        )
    dvals = [v["procrustes_distortion"] for v in rec["perturbations"].values()]
    rec["procrustes_distortion_mean"] = _nanmean(dvals)
    rec["procrustes_distortion_std"] = float(np.nanstd(dvals)) if dvals else math.nan
    rec["rdm_similarity_mean"] = _nanmean(
        [v["rdm_similarity"] for v in rec["perturbations"].values()]
    )

    if compute_mi:
        cmi = _core("info", "calibrated_mi")
        kg, *kl = jax.random.split(k_mi, 1 + len(locs))
        glob = _mi_summary(cmi(jnp.asarray(f_kept, jnp.float32), xc, key=kg, **mi_options))
        local = [
            _mi_summary(
                cmi(
                    jnp.asarray(lf, jnp.float32), jnp.asarray(lx, jnp.float32), key=kk, **mi_options
                )
            )
            for lf, lx, kk in zip(lfeats, locs, kl, strict=True)
        ]
        local_mean = _nanmean([r["mi_nats"] for r in local]) if local else math.nan
        rec["mi"] = {
            "global": glob,
            "local": local,
            "local_mean_nats": local_mean,
            # Decoupling factor; +inf when the global estimate is <= 0 (as in classify_regimes).
            "local_global_ratio": (
                (local_mean / glob["mi_nats"] if glob["mi_nats"] > 0 else math.inf)
                if local
                else math.nan
            ),
        }
    else:
        rec["mi"] = None

    if compute_rd:
        rdf = _core("rd", "rd_curve_from_samples")
        opts = {
            "num_codes": int(min(256, max(2, n // 4))),
            "betas": jnp.geomspace(0.1, 100.0, 16),
            "throw": False,
            **rd_options,
        }
        opts["betas"] = jnp.asarray(opts["betas"], dtype=xc.dtype)
        curve = rdf(xc, key=k_rd, **opts)
        rec["rd_curve"] = {
            f: np.asarray(getattr(curve, f)).tolist()
            for f in ("beta", "rate", "distortion", "rate_upper", "rate_lower", "gap", "converged")
            if hasattr(curve, f)
        }
    else:
        rec["rd_curve"] = None
    if labels is not None:
        rec["num_label_classes"] = int(len(np.unique(filtered[-1])))
    return rec, clean, kept


def _nanmean(vals) -> float:
    v = np.asarray([x for x in vals if x is not None], dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).any():
        return math.nan
    return float(np.nanmean(v))


def _geometry(xc, xp, knn_k, key) -> dict:
    pd_ = _core("geometry", "procrustes_distortion")
    d = _scalar(pd_(xc, xp), "value", "distortion")
    out = {"procrustes_distortion": d, "procrustes_disparity": 2 * d**2 - d**4}
    if xc.shape[1] == xp.shape[1]:
        pr = _core("geometry", "procrustes_ratio")(xc, xp)
        out["procrustes_ratio"] = _scalar(pr, "ratio", "value")
        out["procrustes_raw"] = (
            _scalar(pr, "raw", "raw_distance") if hasattr(pr, "raw") else math.nan
        )
        coh = _core("geometry", "perturbation_coherence")
        out["perturbation_coherence"] = _scalar(coh(xc, xp), "value", "coherence")
        eff = _core("geometry", "perturbation_effect_size")
        out["perturbation_effect_size"] = _scalar(eff(xc, xp), "value", "effect_size")
    else:
        for f in (
            "procrustes_ratio",
            "procrustes_raw",
            "perturbation_coherence",
            "perturbation_effect_size",
        ):
            out[f] = math.nan
    rs = _core("geometry", "rdm_similarity")
    out["rdm_similarity"] = _scalar(rs(xc, xp, key=key), "value", "similarity")
    k = int(min(knn_k, xc.shape[0] - 2))
    out["knn_overlap"] = _scalar(_core("geometry", "knn_overlap")(xc, xp, k=k), "value", "overlap")
    return out


def _upstream_disparity(up, down) -> float:
    """Procrustes disparity between an upstream and a downstream model on their common rows.

    Each side is reduced by PCA to ``min(50, n - 1)`` components (REFERENCE 7.3) when wider.
    """
    xu, ku = up
    xd, kd = down
    common, iu, idn = np.intersect1d(ku, kd, return_indices=True)
    if common.size < 4:
        return math.nan
    xs = []
    for x in (xu[iu], xd[idn]):
        x = jnp.asarray(x, jnp.float32)
        m = min(50, x.shape[0] - 1)
        if x.shape[1] > m:
            pca = _core("info", "pca")
            res = pca(x, num_components=m)
            x = getattr(res, "scores", getattr(res, "projected", res))
        xs.append(jnp.asarray(x))
    d = _scalar(_core("geometry", "procrustes_distortion")(xs[0], xs[1]), "value", "distortion")
    return 2 * d**2 - d**4


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
    }
    mi = rec.get("mi")
    if mi:
        g = mi["global"]
        row.update(
            mi_nats=g["mi_nats"],
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
