"""The audit reads its geometry metrics' ranges, directions and ideal values from the table."""

import jax
import numpy as np
import pytest

import geomtax.audit as ga
from geomtax.audit import _metrics
from geomtax.geometry import METRICS


def test_audit_metric_names_are_table_entries():
    names = {*_metrics.PERTURBATION_METRICS, *_metrics.MODEL_METRICS, *_metrics.PLOTTED_METRICS}
    assert names <= set(METRICS)
    assert set(_metrics.SUMMARY_METRICS) <= set(_metrics.PERTURBATION_METRICS)
    for name, d in _metrics.directions().items():
        spec = METRICS[name]
        assert d == {"better": spec.better, "range": list(spec.range), "ideal": spec.ideal}


@pytest.mark.parametrize("name", ["procrustes_disparity", "rdm_similarity"])
def test_geometry_lost_follows_the_table_direction(name):
    spec = METRICS[name]
    lo, hi = spec.range
    mid = 0.5 * (lo + hi)
    assert not _metrics.geometry_lost(name, spec.ideal, mid)
    worst = hi if spec.better == "lower" else lo
    assert _metrics.geometry_lost(name, worst, mid) and _metrics.geometry_lost(name, mid, mid)


def test_disparity_threshold_range_is_the_table_range():
    lo, hi = METRICS["procrustes_disparity"].range
    ga.RegimeThresholds(disparity_min=lo)
    ga.RegimeThresholds(disparity_min=hi)
    with pytest.raises(ValueError, match=r"disparity_min must be in \[0, 1\]"):
        ga.RegimeThresholds(disparity_min=hi + 0.5)


def test_report_records_directions_and_member_diagonal_is_ideal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4))
    rep = ga.run(
        {"m": x}, features=x[:, :2], key=jax.random.key(0), compute_mi=False, compute_rd=False
    )
    assert rep.config["geometry_metrics"] == _metrics.directions()
    assert "geometry kept when" in ga.render_html(rep)
    out = ga.member_embedding_stability([x, x @ np.eye(4)[::-1]], key=jax.random.key(1), k=3)
    for name, metric in (("knn_overlap", "knn_overlap"), ("rdm_spearman", "rdm_similarity")):
        assert np.all(np.diag(out[name]) == METRICS[metric].ideal)
    assert np.all(np.diag(out["procrustes_disparity"]) == METRICS["procrustes_disparity"].ideal)
