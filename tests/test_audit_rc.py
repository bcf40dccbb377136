"""RC texture test: the reference embedders get the verdicts their construction implies."""

import jax
import numpy as np
import pytest

import geomtax.audit as ga

pytest.importorskip("geomtax.geometry._rdm")  # rdm_similarity (geometry helper)


@pytest.fixture(scope="module")
def real_like():
    # Genome-like stand-in: heterogeneous GC, strand-symmetric texture (see strand_symmetric_dna).
    return ga.strand_symmetric_dna(40, 1000, key=jax.random.key(11), gc_range=(0.25, 0.75))


def test_composition_embedder_verdict(real_like):
    emb = ga.kmer_embedder(key=jax.random.key(1))
    rep = ga.rc_texture_test(
        emb, real_like, key=jax.random.key(2), snp_rates=(0.05,), num_bootstrap=20
    )
    assert rep.verdict == "composition", rep
    # On i.i.d. DNA the between-sequence geometry is scrambled by RC ...
    assert rep.stability["real"] - rep.stability["iid"] > 0.3
    # ... although i.i.d. composition is itself almost RC-symmetric (the k-mer control).
    assert rep.kmer_control["iid"]["k2"] > 0.99
    assert min(rep.recovery.values()) >= 0.7
    lo, hi = rep.stability_ci["real"]
    assert lo <= rep.stability["real"] <= hi
    assert set(rep.snp_stability["real"]) == {"0.05"}
    assert all(v == 0.0 for v in rep.gc_max_abs_diff.values())  # GC(s) == GC(rc s) exactly


def test_rc_invariant_embedder_verdict(real_like):
    emb = ga.rc_invariant_embedder(key=jax.random.key(3))
    seqs = real_like[:3]
    np.testing.assert_array_equal(emb(seqs), emb(ga.reverse_complement(seqs)))
    rep = ga.rc_texture_test(emb, real_like, key=jax.random.key(4), snp_rates=(), num_bootstrap=0)
    assert rep.verdict == "symmetric"
    assert rep.stability["iid"] == pytest.approx(1.0)
    assert np.isnan(rep.recovery["texture"]) and rep.flags  # undefined ratio is flagged


def test_position_sensitive_embedder_verdict(real_like):
    emb = ga.position_sensitive_embedder(key=jax.random.key(5))
    rep = ga.rc_texture_test(emb, real_like, key=jax.random.key(6), snp_rates=(), num_bootstrap=0)
    assert rep.verdict == "not_robust"
    assert abs(rep.stability["real"]) < 0.3


def test_pooled_texture_control_removes_composition_differences(real_like):
    # With one pooled chain every control has the same expected composition, so a
    # composition-only embedder no longer recovers real-DNA robustness on that control.
    emb = ga.kmer_embedder(key=jax.random.key(1))
    rep = ga.rc_texture_test(
        emb, real_like, key=jax.random.key(2), snp_rates=(), num_bootstrap=0, texture_scope="pooled"
    )
    assert rep.recovery["texture"] < 0.5
    assert rep.recovery["shuffle"] >= 0.7
    assert rep.verdict in ("rejected", "partial")


def test_verdict_logic_thresholds():
    from geomtax.audit._rc_test import _recovery, _verdict

    s = {"real": 0.9, "iid": 0.1, "texture": 0.5, "shuffle": 0.85}
    r = _recovery(s, 0.2, [])
    assert r["texture"] == pytest.approx(0.5) and r["shuffle"] == pytest.approx(0.9375)
    assert _verdict(s, r, 0.5, 0.2, 0.7, 0.3) == "partial"
    assert _verdict(s, r, 0.5, 0.2, 0.4, 0.3) == "composition"
    assert _verdict(s, r, 0.5, 0.2, 0.95, 0.6) == "rejected"


def test_rc_test_bad_input():
    emb = ga.kmer_embedder(key=jax.random.key(0))
    with pytest.raises(ValueError, match="at least 4"):
        ga.rc_texture_test(emb, ["ACGT"] * 3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="position 1"):
        ga.rc_texture_test(emb, ["ANGT"] * 5, key=jax.random.key(0))
