"""Regime rules on planted numbers (the planted-embedding test lives in test_audit_run.py)."""

import math

import numpy as np
import pytest

import geomtax.audit as ga


def test_regime_rules_each_regime():
    t = ga.RegimeThresholds()
    out = ga.classify_regimes(mi_global=0.02, floor=0.05, mi_local=0.3, thresholds=t)
    assert out["regimes"] == ["local_global_decoupling"]
    ev = out["evidence"]["local_global_decoupling"]
    assert ev["evaluated"] and ev["floor_nats"] == 0.05 and "MI_local" in ev["reason"]
    # Global above the floor: decoupling needs local/global >= ratio_min.
    assert ga.classify_regimes(mi_global=0.2, floor=0.05, mi_local=0.3)["regimes"] == []
    assert ga.classify_regimes(mi_global=0.1, floor=0.05, mi_local=0.3)["regimes"] == [
        "local_global_decoupling"
    ]
    comp = ga.classify_regimes(mi_global=0.8, floor=0.05, mi_upstream=0.5, disparity_upstream=0.7)
    assert comp["regimes"] == ["representational_compression"]
    assert comp["evidence"]["representational_compression"]["delta_mi_nats"] == pytest.approx(0.3)
    assert (
        ga.classify_regimes(mi_global=0.8, floor=0.05, mi_upstream=0.5, disparity_upstream=0.3)[
            "regimes"
        ]
        == []
    )
    assert (
        ga.classify_regimes(mi_global=0.4, floor=0.05, mi_upstream=0.5, disparity_upstream=0.9)[
            "regimes"
        ]
        == []
    )
    vac = ga.classify_regimes(mi_global=0.01, floor=0.05, perplexity=12.0)
    assert vac["regimes"] == ["geometric_vacuity"] and vac["label"] == "III. Geometric Vacuity"
    assert ga.classify_regimes(mi_global=0.01, floor=0.05, perplexity=60.0)["regimes"] == []
    none = ga.classify_regimes(mi_global=0.5, floor=0.05, mi_local=0.4, perplexity=100.0)
    assert none["label"] == "none"
    assert not none["evidence"]["representational_compression"]["evaluated"]


def test_regime_thresholds_are_parameters():
    strict = ga.RegimeThresholds(decoupling_ratio_min=5.0, perplexity_max=10.0)
    assert (
        ga.classify_regimes(mi_global=0.1, floor=0.05, mi_local=0.3, thresholds=strict)["regimes"]
        == []
    )
    assert (
        ga.classify_regimes(mi_global=0.0, floor=0.05, perplexity=12.0, thresholds=strict)[
            "regimes"
        ]
        == []
    )
    with pytest.raises(ValueError, match="disparity_min"):
        ga.RegimeThresholds(disparity_min=1.5)
    with pytest.raises(ValueError, match="finite"):
        ga.classify_regimes(mi_global=math.nan, floor=0.05)


def test_perplexity_from_nll():
    assert ga.perplexity_from_nll(np.full(10, np.log(4.0))) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        ga.perplexity_from_nll([])
