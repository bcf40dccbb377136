"""Sequence perturbations and synthetic controls (SNPs, motif shifts, Markov and shuffled DNA).

The perturbation suite of the audit (:func:`snp_perturb`, :func:`protein_substitute`,
:func:`motif_shift`) and the synthetic controls of the reverse-complement texture test
(:func:`random_dna`, :func:`markov_dna`, :func:`texture_matched_dna`,
:func:`dinucleotide_shuffle`, :func:`strand_symmetric_dna`). Randomness is keyed as in
:mod:`geomtax.audit._genomics` (:func:`~geomtax.audit.rng_from_key`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._custom_types import KeyArray
from ._genomics import (
    CTCF_MOTIF,
    DNA_ALPHABET,
    PROTEIN_ALPHABET,
    decode,
    encode,
    kmer_counts,
    reverse_complement_kmer_index,
    rng_from_key,
    validate_sequences,
)


def _substitute(sequences, alphabet, rate, key):
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    codes = encode(sequences, alphabet=alphabet)
    rng = rng_from_key(key)
    a = len(alphabet)
    out = []
    for c in codes:
        c = c.copy()
        m = min(len(c), max(1, int(len(c) * rate)))
        pos = rng.choice(len(c), size=m, replace=False)
        c[pos] = (c[pos] + rng.integers(1, a, size=m)) % a
        out.append(decode(c, alphabet=alphabet))
    return out


def snp_perturb(sequences: Sequence[str], *, rate: float, key) -> list[str]:
    """Single-nucleotide substitutions at a rate.

    Each sequence of length ``L`` gets exactly ``max(1, int(L * rate))`` distinct positions,
    each set to a uniformly chosen *different* base.

    Examples:
        >>> import jax
        >>> s = snp_perturb(["A" * 100], rate=0.05, key=jax.random.key(0))[0]
        >>> sum(a != b for a, b in zip(s, "A" * 100))
        5
    """
    return _substitute(sequences, DNA_ALPHABET, rate, key)


def protein_substitute(sequences: Sequence[str], *, rate: float, key) -> list[str]:
    """Amino-acid substitutions: ``max(1, int(L * rate))`` distinct positions, each changed."""
    return _substitute(sequences, PROTEIN_ALPHABET, rate, key)


def motif_shift(sequences: Sequence[str], *, shift: int, key, motif: str = CTCF_MOTIF) -> list[str]:
    """Move a motif by ``shift`` bp, keeping the length and base composition.

    The first occurrence of ``motif`` (``N`` matches any base) is cut out and re-inserted
    ``shift`` bp further (clipped to the sequence). If absent, the motif (with each ``N`` drawn
    uniformly) is first written over the centre of the sequence, then shifted.

    Examples:
        >>> import jax
        >>> s = "T" * 10 + "CCGCGAGGAGGCAG" + "T" * 10
        >>> motif_shift([s], shift=5, key=jax.random.key(0))[0].find("CCGCG")
        15
    """
    seqs, _ = validate_sequences(sequences)
    m = motif.upper()
    rng = rng_from_key(key)
    out = []
    for i, s in enumerate(seqs):
        if len(s) < len(m):
            raise ValueError(f"sequence {i} (length {len(s)}) is shorter than the motif {m!r}")
        pos = _find_motif(s, m)
        if pos < 0:
            fill = "".join(DNA_ALPHABET[rng.integers(4)] if ch == "N" else ch for ch in m)
            pos = (len(s) - len(m)) // 2
            s = s[:pos] + fill + s[pos + len(m) :]
        segment = s[pos : pos + len(m)]
        rest = s[:pos] + s[pos + len(m) :]
        new = int(np.clip(pos + shift, 0, len(rest)))
        out.append(rest[:new] + segment + rest[new:])
    return out


def _find_motif(s: str, motif: str) -> int:
    if "N" not in motif:
        return s.find(motif)
    arr = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
    pat = np.frombuffer(motif.encode("ascii"), dtype=np.uint8)
    care = pat != ord("N")
    if len(arr) < len(pat):
        return -1
    windows = np.lib.stride_tricks.sliding_window_view(arr, len(pat))
    hits = np.nonzero(np.all((windows == pat) | ~care, axis=1))[0]
    return int(hits[0]) if len(hits) else -1


# ----------------------------------------------------------------------------- controls


def random_dna(n: int, length: int, *, key, probs: Sequence[float] | None = None) -> list[str]:
    """I.i.d. random DNA: ``n`` sequences of ``length`` bases drawn from ``probs`` (uniform).

    Examples:
        >>> import jax
        >>> [len(s) for s in random_dna(2, 7, key=jax.random.key(0))]
        [7, 7]
    """
    if n < 1 or length < 1:
        raise ValueError(f"need n >= 1 and length >= 1, got n={n}, length={length}")
    p = np.full(4, 0.25) if probs is None else np.asarray(probs, dtype=np.float64)
    if p.shape != (4,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"probs must be 4 non-negative numbers summing to 1, got {p}")
    codes = rng_from_key(key).choice(4, size=(n, length), p=p)
    return [decode(c) for c in codes]


def fit_markov(
    sequences: Sequence[str], *, pseudocount: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fit a first-order Markov chain over ``ACGT`` (pooled over all sequences).

    Returns:
        ``(initial, transition)``: base marginals ``(4,)`` and row-stochastic ``(4, 4)``
        transition matrix ``P[a, b] = (#ab + c) / sum_b (#ab + c)`` (``c = pseudocount``; a
        base never followed by anything gets a uniform row).
    """
    counts = kmer_counts(sequences, 2).sum(axis=0).reshape(4, 4) + pseudocount
    rows = counts.sum(axis=1, keepdims=True)
    trans = np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), 0.25)
    base = kmer_counts(sequences, 1).sum(axis=0).astype(np.float64)
    return base / base.sum(), trans


def markov_dna(
    n: int, length: int, *, key, initial: np.ndarray, transition: np.ndarray
) -> list[str]:
    """Sample ``n`` sequences from a first-order Markov chain (initial base from ``initial``)."""
    initial = np.asarray(initial, dtype=np.float64)
    transition = np.asarray(transition, dtype=np.float64)
    if initial.shape != (4,) or transition.shape != (4, 4):
        raise ValueError(
            f"need initial (4,) and transition (4, 4); got {initial.shape}, {transition.shape}"
        )
    codes = _markov_codes(rng_from_key(key), n, length, initial, transition)
    return [decode(c) for c in codes]


def _markov_codes(rng, n, length, initial, transition):
    """Sample ``(n, length)`` codes; ``initial`` (4,) or (n, 4), ``transition`` (4,4)/(n,4,4)."""
    initial = np.broadcast_to(np.asarray(initial, np.float64), (n, 4))
    transition = np.broadcast_to(np.asarray(transition, np.float64), (n, 4, 4))
    cum = np.cumsum(transition, axis=2)
    cum[:, :, -1] = 1.0
    cum0 = np.cumsum(initial / initial.sum(axis=1, keepdims=True), axis=1)
    cum0[:, -1] = 1.0
    codes = np.empty((n, length), dtype=np.int64)
    u = rng.random((n, length))
    codes[:, 0] = (u[:, 0, None] > cum0).sum(axis=1)
    rows = np.arange(n)
    for t in range(1, length):
        codes[:, t] = (u[:, t, None] > cum[rows, codes[:, t - 1]]).sum(axis=1)
    return codes


def texture_matched_dna(
    sequences: Sequence[str],
    *,
    key: KeyArray,
    scope: str = "per_sequence",
    pseudocount: float = 0.5,
) -> list[str]:
    """First-order Markov controls matched to ``sequences`` (same lengths).

    Args:
        sequences: the real sequences.
        key: JAX key.
        scope: ``"per_sequence"`` fits one chain per sequence (keeps each sequence's GC and
            dinucleotide texture in expectation, hence the between-sequence composition
            differences); ``"pooled"`` fits one chain on all sequences (the reference's chr22
            matrix; every control then has the same expected composition).
        pseudocount: added to every dinucleotide count before normalising.

    Returns:
        A list of control sequences, one per input.
    """
    seqs, _ = validate_sequences(sequences, min_length=2)
    if scope not in ("per_sequence", "pooled"):
        raise ValueError(f"unknown scope {scope!r}; expected 'per_sequence' or 'pooled'")
    rng = rng_from_key(key)
    if scope == "pooled":
        init, trans = fit_markov(seqs, pseudocount=pseudocount)
        inits, transs = np.tile(init, (len(seqs), 1)), np.tile(trans, (len(seqs), 1, 1))
    else:
        fits = [fit_markov([s], pseudocount=pseudocount) for s in seqs]
        inits = np.stack([f[0] for f in fits])
        transs = np.stack([f[1] for f in fits])
    out: list[str] = [""] * len(seqs)
    lengths = np.array([len(s) for s in seqs])
    for length in np.unique(lengths):  # one vectorised draw per distinct length
        rows = np.nonzero(lengths == length)[0]
        codes = _markov_codes(rng, len(rows), int(length), inits[rows], transs[rows])
        for r, c in zip(rows, codes, strict=True):
            out[r] = decode(c)
    return out


def dinucleotide_shuffle(sequences: Sequence[str], *, key) -> list[str]:
    """Altschul–Erickson dinucleotide shuffle (exact dinucleotide counts preserved).

    Each sequence is the walk of a random Eulerian path through its own multigraph of
    dinucleotide edges (Altschul & Erickson 1985; Kandel et al. 1996): a random arborescence of
    "last exit" edges towards the final base is drawn with Wilson's loop-erased random walk
    (edges weighted by multiplicity), the other exits of each base are shuffled, and the walk
    starts at the first base. First base, last base, mononucleotide and dinucleotide counts are
    all unchanged; higher-order structure is destroyed.

    References:
        Altschul & Erickson (1985), Mol. Biol. Evol. 2:526-538; Kandel et al. (1996),
        Random Struct. Algorithms 8:111-121.

    Examples:
        >>> import jax
        >>> s = "ACGTTGCAAGCTTACG"
        >>> t = dinucleotide_shuffle([s], key=jax.random.key(1))[0]
        >>> bool((kmer_counts([s], 2) == kmer_counts([t], 2)).all()), t[0] == s[0]
        (True, True)
    """
    codes = encode(sequences)
    rng = rng_from_key(key)
    return [decode(_shuffle_one(c, rng)) for c in codes]


def _shuffle_one(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(c) <= 2:
        return c.copy()
    edges = [list(c[1:][c[:-1] == a]) for a in range(4)]  # out-neighbours with multiplicity
    last = int(c[-1])
    in_tree = {last}
    nxt: dict[int, int] = {}
    for v in range(4):
        u = v
        if not edges[v] or v in in_tree:
            continue
        while u not in in_tree:  # loop-erased random walk (Wilson)
            nxt[u] = int(edges[u][rng.integers(len(edges[u]))])
            u = nxt[u]
        u = v
        while u not in in_tree:
            in_tree.add(u)
            u = nxt[u]
    order: list[list[int]] = []
    for v in range(4):
        out = list(edges[v])
        if v in nxt:
            out.remove(nxt[v])
            rng.shuffle(out)
            out.append(nxt[v])
        else:
            rng.shuffle(out)
        order.append(out)
    ptr = [0, 0, 0, 0]
    walk = [int(c[0])]
    for _ in range(len(c) - 1):
        v = walk[-1]
        walk.append(order[v][ptr[v]])
        ptr[v] += 1
    return np.asarray(walk, dtype=np.int64)


def strand_symmetric_dna(
    n: int,
    length: int,
    *,
    key,
    gc_range: tuple[float, float] = (0.3, 0.7),
    cpg_ratio: float = 0.25,
) -> list[str]:
    """Genome-like synthetic DNA: heterogeneous GC, CpG depletion, strand-symmetric texture.

    Each sequence draws its own GC fraction uniformly from ``gc_range`` and is sampled from a
    first-order Markov chain whose dinucleotide frequencies are proportional to
    ``p(a) p(b) w(ab)`` with ``w(CG) = cpg_ratio`` and 1 otherwise, symmetrised under reverse
    complement (Chargaff's second parity rule). Unlike i.i.d. DNA, sequences differ in
    composition in a way the reverse complement preserves, as real genomic windows do. A stand-in
    for real DNA in tests and examples, not a model of any genome.
    """
    rng = rng_from_key(key)
    rc = reverse_complement_kmer_index(2)
    inits, transs = [], []
    for _ in range(n):
        gc = rng.uniform(*gc_range)
        p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
        joint = np.outer(p, p)
        joint[1, 2] *= cpg_ratio
        flat = joint.ravel()
        joint = ((flat + flat[rc]) / 2).reshape(4, 4)
        transs.append(joint / joint.sum(axis=1, keepdims=True))
        inits.append(joint.sum(axis=1) / joint.sum())
    codes = _markov_codes(rng, n, length, np.stack(inits), np.stack(transs))
    return [decode(c) for c in codes]
