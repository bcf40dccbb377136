"""Genomics utilities: alphabets, FASTA, ground-truth features, perturbations and controls.

Sequences are Python strings (the form every tokenizer and ``embed_fn`` accepts). Randomness is
keyed: each function takes a JAX ``key`` and draws from a NumPy ``Generator`` seeded with the key's
raw bits (``numpy.random.default_rng(key_data(key))``), so the same key gives the same sequences on
every platform, and split keys give independent draws. String manipulation stays on the host; the
numerical parts of the audit run in JAX.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from .._custom_types import KeyArray

DNA_ALPHABET = "ACGT"
"""The DNA alphabet, in the index order used by every k-mer table."""
PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
"""The 20 standard amino acids, in feature order."""
_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")

#: Kyte & Doolittle (1982) hydropathy index, J. Mol. Biol. 157:105-132.
KYTE_DOOLITTLE = {
    "A": 1.8,
    "R": -4.5,
    "N": -3.5,
    "D": -3.5,
    "C": 2.5,
    "Q": -3.5,
    "E": -3.5,
    "G": -0.4,
    "H": -3.2,
    "I": 4.5,
    "L": 3.8,
    "K": -3.9,
    "M": 1.9,
    "F": 2.8,
    "P": -1.6,
    "S": -0.8,
    "T": -0.7,
    "W": -0.9,
    "Y": -1.3,
    "V": 4.2,
}

#: Names of the 16 dinucleotides in feature order (lexicographic over ``ACGT``).
DINUCLEOTIDES = tuple(a + b for a, b in itertools.product(DNA_ALPHABET, repeat=2))
#: Column names of :func:`dna_features`.
DNA_FEATURE_NAMES = ("gc_fraction", *(f"freq_{d}" for d in DINUCLEOTIDES))
#: Column names of :func:`protein_features`.
PROTEIN_FEATURE_NAMES = (
    *(f"freq_{a}" for a in PROTEIN_ALPHABET),
    "length_scaled",
    "net_charge",
    "mean_hydropathy",
)

#: CTCF core motif used by the reference perturbation suite (``N`` = any base).
CTCF_MOTIF = "CCGCGNGGNGGCAG"

_ON_INVALID = ("raise", "drop")


def rng_from_key(key: KeyArray) -> np.random.Generator:
    """Return a NumPy ``Generator`` seeded deterministically from a JAX key.

    Args:
        key: a JAX PRNG key (typed ``jax.random.key`` or legacy ``uint32[2]``).

    Returns:
        ``numpy.random.default_rng(list_of_key_words)``; equal keys give equal streams.

    Examples:
        >>> import jax
        >>> g1 = rng_from_key(jax.random.key(0)); g2 = rng_from_key(jax.random.key(0))
        >>> bool(g1.integers(1000) == g2.integers(1000))
        True
    """
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        data = np.asarray(jax.random.key_data(key))
    else:
        data = np.asarray(key)
    if data.dtype.kind not in "ui":
        raise TypeError(f"key must be a JAX PRNG key, got dtype {data.dtype}")
    return np.random.default_rng([int(v) for v in data.ravel()])


def _as_list(sequences, name: str = "sequences") -> list[str]:
    if isinstance(sequences, str):
        raise TypeError(f"{name} must be a sequence of strings, not a single string")
    seqs = [str(s) for s in sequences]
    if len(seqs) == 0:
        raise ValueError(f"{name} is empty; need at least one sequence")
    return seqs


def validate_sequences(
    sequences: Sequence[str],
    *,
    alphabet: str = DNA_ALPHABET,
    on_invalid: str = "raise",
    min_length: int = 1,
) -> tuple[list[str], np.ndarray]:
    """Upper-case sequences and check every character is in ``alphabet``.

    Args:
        sequences: the sequences (strings). Lower-case (soft-masked) letters are upper-cased.
        alphabet: allowed characters, e.g. :data:`DNA_ALPHABET` or :data:`PROTEIN_ALPHABET`.
        on_invalid: ``"raise"`` (default) raises ``ValueError`` naming the first offending
            sequence, position and character; ``"drop"`` removes such sequences (their indices
            are the ones missing from the returned ``kept`` array).
        min_length: sequences shorter than this are invalid.

    Returns:
        ``(clean_sequences, kept)`` with ``kept`` the int array of original indices kept.

    Raises:
        ValueError: empty input, an invalid character or a too-short sequence under ``"raise"``,
            or no sequence left under ``"drop"``.

    Examples:
        >>> validate_sequences(["acgt", "GGCC"])[0]
        ['ACGT', 'GGCC']
        >>> validate_sequences(["ACGT", "ACNT"], on_invalid="drop")[1]
        array([0])
    """
    if on_invalid not in _ON_INVALID:
        raise ValueError(f"unknown on_invalid {on_invalid!r}; expected one of {_ON_INVALID}")
    seqs = [s.upper() for s in _as_list(sequences)]
    allowed = set(alphabet)
    out, kept = [], []
    for i, s in enumerate(seqs):
        problem = None
        if len(s) < min_length:
            problem = f"sequence {i} has length {len(s)} < {min_length}"
        elif not set(s) <= allowed:
            for j, c in enumerate(s):
                if c not in allowed:
                    problem = (
                        f"sequence {i} has character {c!r} at position {j}, outside the "
                        f"alphabet {alphabet!r} (pass on_invalid='drop' to skip such sequences)"
                    )
                    break
        if problem is None:
            out.append(s)
            kept.append(i)
        elif on_invalid == "raise":
            raise ValueError(problem)
    if not out:
        raise ValueError("no valid sequence left after dropping invalid ones")
    return out, np.asarray(kept, dtype=np.int64)


def encode(sequences: Sequence[str], *, alphabet: str = DNA_ALPHABET) -> list[np.ndarray]:
    """Map each sequence to an int array of alphabet indices (validating it first).

    Examples:
        >>> encode(["ACGT"])[0]
        array([0, 1, 2, 3]...)
    """
    seqs, _ = validate_sequences(sequences, alphabet=alphabet)
    table = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(alphabet):
        table[ord(c)] = i
    return [table[np.frombuffer(s.encode("ascii"), dtype=np.uint8)] for s in seqs]


def decode(codes: np.ndarray, *, alphabet: str = DNA_ALPHABET) -> str:
    """Inverse of :func:`encode` for one sequence."""
    return "".join(np.asarray(list(alphabet))[np.asarray(codes)])


def read_fasta(path: str | Path) -> tuple[list[str], list[str]]:
    """Read a (optionally gzipped) FASTA file.

    Args:
        path: a ``.fa``/``.fasta`` file, or the same with ``.gz``.

    Returns:
        ``(names, sequences)``: header lines without ``>`` and upper-cased sequences, in file order.

    Raises:
        ValueError: the file has no record, or sequence lines before the first header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    names: list[str] = []
    chunks: list[list[str]] = []
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                names.append(line[1:].strip())
                chunks.append([])
            elif not names:
                raise ValueError(
                    f"{path}: sequence data before the first '>' header (line {lineno})"
                )
            else:
                chunks[-1].append(line.upper())
    if not names:
        raise ValueError(f"{path}: no FASTA record found")
    return names, ["".join(c) for c in chunks]


def kmer_counts(sequences: Sequence[str], k: int) -> np.ndarray:
    """Overlapping k-mer counts per sequence over ``ACGT``.

    Column ``j`` is the k-mer whose base-4 digits (A=0, C=1, G=2, T=3, most significant first)
    spell ``j``.

    Returns:
        int array ``(n, 4**k)``; row sums are ``max(L - k + 1, 0)``.

    Examples:
        >>> kmer_counts(["AACG"], 2)[0].reshape(4, 4)
        array([[1, 1, 0, 0],
               [0, 0, 1, 0],
               [0, 0, 0, 0],
               [0, 0, 0, 0]])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    codes = encode(sequences)
    out = np.zeros((len(codes), 4**k), dtype=np.int64)
    for i, c in enumerate(codes):
        if len(c) < k:
            continue
        idx = np.zeros(len(c) - k + 1, dtype=np.int64)
        for j in range(k):
            idx = idx * 4 + c[j : len(c) - k + 1 + j]
        out[i] = np.bincount(idx, minlength=4**k)
    return out


def kmer_frequencies(sequences: Sequence[str], k: int) -> np.ndarray:
    """Overlapping k-mer frequencies (counts / number of k-mers), shape ``(n, 4**k)``."""
    counts = kmer_counts(sequences, k).astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return counts / np.maximum(total, 1.0)


def reverse_complement_kmer_index(k: int) -> np.ndarray:
    """Permutation ``p`` with ``freq(rc(s))[:, j] == freq(s)[:, p[j]]`` for k-mer frequencies."""
    idx = np.arange(4**k)
    digits = np.stack([(idx // 4 ** (k - 1 - j)) % 4 for j in range(k)], axis=1)
    rc = 3 - digits[:, ::-1]
    return (rc * 4 ** np.arange(k - 1, -1, -1)).sum(axis=1)


def dna_features(sequences: Sequence[str]) -> np.ndarray:
    r"""Ground-truth DNA features: GC fraction and the 16 dinucleotide frequencies (17 columns).

    .. math::

        \mathrm{GC} = \frac{\#C + \#G}{L},\qquad
        f_{ab} = \frac{\#\{i : s_i s_{i+1} = ab\}}{L - 1}

    Columns follow :data:`DNA_FEATURE_NAMES` (dinucleotides lexicographic over ``ACGT``).
    Sequences of length 1 have all dinucleotide frequencies 0.

    Returns:
        float32 array ``(n, 17)``.

    Examples:
        >>> f = dna_features(["GGCA"])
        >>> float(f[0, 0]), float(f[0, 1 + DINUCLEOTIDES.index("GG")])
        (0.75, 0.333...)
    """
    codes = encode(sequences)
    gc = np.array([np.isin(c, (1, 2)).mean() for c in codes])
    return np.concatenate([gc[:, None], kmer_frequencies(sequences, 2)], axis=1).astype(np.float32)


def protein_features(sequences: Sequence[str], *, length_scale: float = 1000.0) -> np.ndarray:
    r"""Ground-truth protein features (23 columns, :data:`PROTEIN_FEATURE_NAMES`).

    The 20 amino-acid frequencies, ``L / length_scale``, the net charge per residue
    :math:`(\#K + \#R - \#D - \#E)/L` and the mean Kyte–Doolittle hydropathy. (The reference
    study appends a 2-way species one-hot; pass labels separately and concatenate if wanted.)

    Returns:
        float32 array ``(n, 23)``.

    Examples:
        >>> f = protein_features(["KKDA"])
        >>> [round(float(v), 3) for v in f[0, 20:]]
        [0.004, 0.25, -2.375]
    """
    codes = encode(sequences, alphabet=PROTEIN_ALPHABET)
    kd = np.array([KYTE_DOOLITTLE[a] for a in PROTEIN_ALPHABET])
    charge = np.zeros(20)
    for a, q in (("K", 1.0), ("R", 1.0), ("D", -1.0), ("E", -1.0)):
        charge[PROTEIN_ALPHABET.index(a)] = q
    rows = []
    for c in codes:
        freq = np.bincount(c, minlength=20) / len(c)
        rows.append(np.concatenate([freq, [len(c) / length_scale, freq @ charge, freq @ kd]]))
    return np.asarray(rows, dtype=np.float32)


# ----------------------------------------------------------------------------- perturbations


def reverse_complement(sequences: Sequence[str]) -> list[str]:
    """Reverse complement of each DNA sequence.

    Examples:
        >>> reverse_complement(["AACG"])
        ['CGTT']
    """
    seqs, _ = validate_sequences(sequences)
    return [s.translate(_COMPLEMENT)[::-1] for s in seqs]


def reverse_sequences(sequences: Sequence[str]) -> list[str]:
    """Reverse each sequence (the protein "reversal" perturbation)."""
    return [s[::-1] for s in _as_list(sequences)]


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
