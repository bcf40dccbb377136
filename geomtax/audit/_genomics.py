"""Genomics utilities: alphabets, FASTA, k-mers, ground-truth features, reverse complements.

Sequences are Python strings (the form every tokenizer and ``embed_fn`` accepts). Randomness is
keyed: each function takes a JAX ``key`` and draws from a NumPy ``Generator`` seeded with the key's
raw bits (``numpy.random.default_rng(key_data(key))``), so the same key gives the same sequences on
every platform, and split keys give independent draws. String manipulation stays on the host; the
numerical parts of the audit run in JAX. The perturbations and synthetic controls are in
:mod:`geomtax.audit._controls`.
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
