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
``geomtax.rd``); this module checks the inputs and filters rows, :mod:`geomtax.audit._measure`
runs the estimators and records their outputs, and :mod:`geomtax.audit._metrics` names the
geometry metrics (ranges and directions from the metric table, :data:`geomtax.geometry.METRICS`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._custom_types import ArrayLike, KeyArray
from .._errors import check_float, check_int
from .._jsonio import jsonable
from ..info import calibrated_mi, mutual_information
from ..rd import rd_curve_from_samples
from ._embeddings import filter_rows, pool_embeddings
from ._measure import _audit_one, _table_row, _upstream_and_regimes
from ._metrics import directions
from ._regimes import RegimeThresholds


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


# ----------------------------------------------------------------------------- options


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
    _upstream_and_regimes(specs, records, clean_kept, compute_mi, thresholds)

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
        "geometry_metrics": directions(),
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
