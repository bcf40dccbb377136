"""Genomics utilities: features, perturbations and controls against plain-Python oracles."""

import collections
import gzip
import itertools

import jax
import numpy as np
import pytest

import geomtax.audit as ga


def _dinuc_counter(s):
    return collections.Counter(s[i : i + 2] for i in range(len(s) - 1))


def _random_seqs(rng, n, length):
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def test_dna_features_match_counter_oracle():
    rng = np.random.default_rng(0)
    seqs = _random_seqs(rng, 5, 37) + ["GGGG", "AT"]
    f = ga.dna_features(seqs)
    assert f.shape == (7, 17)
    for row, s in zip(f, seqs, strict=True):
        assert row[0] == pytest.approx((s.count("G") + s.count("C")) / len(s), abs=1e-6)
        c = _dinuc_counter(s)
        for j, d in enumerate(a + b for a, b in itertools.product("ACGT", repeat=2)):
            assert row[1 + j] == pytest.approx(c[d] / (len(s) - 1), abs=1e-6)
    assert list(ga.DNA_FEATURE_NAMES[:3]) == ["gc_fraction", "freq_AA", "freq_AC"]


def test_protein_features_hand_values():
    s = "MKRDEAW"
    f = ga.protein_features([s, s.lower()])
    np.testing.assert_allclose(f[0], f[1])
    freq = {a: s.count(a) / len(s) for a in ga.PROTEIN_ALPHABET}
    np.testing.assert_allclose(f[0, :20], [freq[a] for a in ga.PROTEIN_ALPHABET], atol=1e-6)
    assert f[0, 20] == pytest.approx(7 / 1000)
    assert f[0, 21] == pytest.approx((1 + 1 - 1 - 1) / 7)
    kd = {"M": 1.9, "K": -3.9, "R": -4.5, "D": -3.5, "E": -3.5, "A": 1.8, "W": -0.9}
    assert f[0, 22] == pytest.approx(sum(kd[a] for a in s) / 7, abs=1e-5)


def test_kmer_counts_and_rc_permutation():
    rng = np.random.default_rng(1)
    seqs = _random_seqs(rng, 4, 50)
    for k in (1, 2, 3):
        fwd = ga.kmer_frequencies(seqs, k)
        rc = ga.kmer_frequencies(ga.reverse_complement(seqs), k)
        from geomtax.audit._genomics import reverse_complement_kmer_index

        np.testing.assert_allclose(rc, fwd[:, reverse_complement_kmer_index(k)])


def test_reverse_complement_oracle_and_involution():
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    s = "AACGTTGCA"
    assert ga.reverse_complement([s])[0] == "".join(comp[c] for c in reversed(s))
    assert ga.reverse_complement(ga.reverse_complement([s]))[0] == s
    assert ga.reverse_sequences(["MKV"]) == ["VKM"]


@pytest.mark.parametrize("rate", [0.01, 0.02, 0.05, 0.1])
def test_snp_exact_count_distinct_positions_changed(rate, getkey):
    rng = np.random.default_rng(2)
    seqs = _random_seqs(rng, 6, 230)
    out = ga.snp_perturb(seqs, rate=rate, key=getkey())
    for a, b in zip(seqs, out, strict=True):
        diff = sum(x != y for x, y in zip(a, b, strict=True))
        assert diff == max(1, int(len(a) * rate))
        assert set(b) <= set("ACGT") and len(b) == len(a)


def test_protein_substitution_count(getkey):
    s = "ACDEFGHIKLMNPQRSTVWY" * 5
    out = ga.protein_substitute([s], rate=0.1, key=getkey())[0]
    assert sum(x != y for x, y in zip(s, out, strict=True)) == 10


def test_keyed_reproducibility(getkey):
    k = getkey()
    seqs = ["ACGT" * 20]
    assert ga.snp_perturb(seqs, rate=0.1, key=k) == ga.snp_perturb(seqs, rate=0.1, key=k)
    assert ga.random_dna(3, 40, key=k) == ga.random_dna(3, 40, key=k)
    assert ga.random_dna(3, 40, key=k) != ga.random_dna(3, 40, key=getkey())
    legacy = jax.random.PRNGKey(3)
    assert ga.random_dna(2, 10, key=legacy) == ga.random_dna(2, 10, key=legacy)


def test_motif_shift_moves_motif_and_keeps_composition(getkey):
    s = "A" * 30 + "CCGCGTGGTGGCAG" + "A" * 30
    for shift in (-10, -5, 5, 20):
        out = ga.motif_shift([s], shift=shift, key=getkey())[0]
        assert out.find("CCGCGTGGTGGCAG") == 30 + shift
        assert sorted(out) == sorted(s)
    absent = ga.motif_shift(["T" * 60], shift=5, key=getkey())[0]
    pos = absent.find("CCGCG")
    assert pos == (60 - 14) // 2 + 5 and len(absent) == 60


def test_dinucleotide_shuffle_preserves_counts_exactly(getkey):
    rng = np.random.default_rng(4)
    seqs = _random_seqs(rng, 30, 120) + ["AAAAAAAT", "ACGTACGTTTGCA", "CG", "GATTACA"]
    seqs += ga.strand_symmetric_dna(5, 300, key=getkey())
    out = ga.dinucleotide_shuffle(seqs, key=getkey())
    changed = 0
    for a, b in zip(seqs, out, strict=True):
        assert _dinuc_counter(a) == _dinuc_counter(b)
        assert a[0] == b[0] and a[-1] == b[-1] and len(a) == len(b)
        changed += a != b
    assert changed >= 30  # long random sequences are (almost surely) rearranged


def test_dinucleotide_shuffle_is_not_degenerate(getkey):
    # Several shuffles of one sequence differ from each other (a real randomisation).
    s = _random_seqs(np.random.default_rng(5), 1, 200)[0]
    outs = {ga.dinucleotide_shuffle([s], key=getkey())[0] for _ in range(5)}
    assert len(outs) == 5


def test_markov_fit_and_texture_controls(getkey):
    s = "AACCGGTTACGT" * 10
    init, trans = ga.fit_markov([s])
    c = _dinuc_counter(s)
    row_a = np.array([c["A" + b] for b in "ACGT"], float)
    np.testing.assert_allclose(trans[0], row_a / row_a.sum())
    np.testing.assert_allclose(trans.sum(1), 1.0)
    ctrl = ga.texture_matched_dna([s, s[:50]], key=getkey())
    assert [len(x) for x in ctrl] == [120, 50]
    pooled = ga.texture_matched_dna([s, s[:50]], key=getkey(), scope="pooled")
    assert [len(x) for x in pooled] == [120, 50]
    # A deterministic chain reproduces itself.
    det = np.eye(4)[[1, 2, 3, 0]]
    out = ga.markov_dna(2, 9, key=getkey(), initial=np.array([1.0, 0, 0, 0]), transition=det)
    assert out == ["ACGTACGTA", "ACGTACGTA"]


def test_markov_sampler_matches_transition_statistically():
    # ~10,000 transitions, ~2,500 per row: sd of each estimate <= 0.01; atol 0.045 is 4.5 sd.
    trans = np.array([[0.7, 0.1, 0.1, 0.1], [0.25] * 4, [0.1, 0.1, 0.1, 0.7], [0.25] * 4])
    seqs = ga.markov_dna(20, 500, key=jax.random.key(0), initial=np.full(4, 0.25), transition=trans)
    _, est = ga.fit_markov(seqs)
    np.testing.assert_allclose(est, trans, atol=0.045)


def test_invalid_characters_and_policies():
    with pytest.raises(ValueError, match=r"sequence 1 has character 'N' at position 2"):
        ga.dna_features(["ACGT", "ACNT"])
    kept, idx = ga.validate_sequences(["ACGT", "ACNT", "gg"], on_invalid="drop")
    assert kept == ["ACGT", "GG"] and list(idx) == [0, 2]
    with pytest.raises(ValueError, match="empty"):
        ga.dna_features([])
    with pytest.raises(TypeError):
        ga.dna_features("ACGT")
    with pytest.raises(ValueError, match="on_invalid"):
        ga.validate_sequences(["A"], on_invalid="ignore")
    with pytest.raises(ValueError, match="position 0"):
        ga.protein_features(["BAA"])


def test_read_fasta(tmp_path):
    text = ">seq1 desc\nACGT\nacgt\n\n>seq2\nGGCC\n"
    p = tmp_path / "x.fa"
    p.write_text(text)
    names, seqs = ga.read_fasta(p)
    assert names == ["seq1 desc", "seq2"] and seqs == ["ACGTACGT", "GGCC"]
    gz = tmp_path / "x.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    assert ga.read_fasta(gz)[1] == seqs
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>x\nA\n")
    with pytest.raises(ValueError, match="before the first"):
        ga.read_fasta(bad)
    (tmp_path / "empty.fa").write_text("")
    with pytest.raises(ValueError, match="no FASTA record"):
        ga.read_fasta(tmp_path / "empty.fa")
