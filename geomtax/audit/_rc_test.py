"""The reverse-complement (RC) texture test and reference embedders.

Definitions: docs/reference/audit.md#rc-texture-test.

**Question.** Is a model's embedding stability under reverse complement a learned (or built-in)
symmetry, or a by-product of RC barely changing base composition?

**Stability measure.** ``S_c`` is the RDM similarity (Spearman correlation of cosine RDMs,
:func:`geomtax.geometry.rdm_similarity`) between the forward embeddings ``X_c`` and the RC
embeddings of the same sequences in condition ``c`` — the perturbation-dependent term of the
reference harness. It asks whether the *differences between sequences* survive RC. An absolute
measure (mean paired cosine of ``f(s)`` and ``f(rc s)``) is reported too, but it cannot support the
verdict: the aggregate composition of i.i.d. random DNA is itself almost exactly RC-symmetric (each
k-mer and its reverse complement have the same expected count), so a composition-only embedder
maps ``s`` and ``rc s`` of a random sequence to nearly the same point and would look "robust" on
random DNA as well.

**What each reference embedder does** (documented expectation, checked in the tests):

* :func:`kmer_embedder` (composition only). On genome-like DNA, sequences differ mostly in
  RC-invariant ways (GC content, CpG depletion; Chargaff's second rule), so the RDM survives RC:
  ``S_real`` high. On i.i.d. random DNA the sequences differ only by sampling noise in their k-mer
  counts; RC replaces the count of each k-mer by the count of its reverse complement, an
  (almost) independent draw, so the between-sequence geometry is scrambled: ``S_iid`` low. The
  dinucleotide shuffle keeps each sequence's exact dinucleotide counts and the per-sequence
  Markov control keeps them in expectation, so both recover most of ``S_real``: verdict
  ``"composition"``.
* :func:`rc_invariant_embedder` (explicit symmetry, ``f(s) = g(s) + g(rc s)``): ``f(rc s) == f(s)``
  exactly, so ``S = 1`` in every condition, random DNA included. ``S_real - S_iid ≈ 0`` makes the
  recovery ratio undefined (NaN + flag): verdict ``"symmetric"``.
* :func:`position_sensitive_embedder` (neither property): RC reverses positions and complements
  bases, so ``f(rc s)`` is unrelated to ``f(s)``: ``S ≈ 0`` everywhere: verdict ``"not_robust"``.

**Verdict** (every cut-off is an argument): with ``S_real < robust_min`` → ``"not_robust"``;
else if ``S_real - S_iid < separation_min`` → ``"symmetric"`` (robust on random DNA too, so the
robustness does not come from sequence texture); else the recovery ratios
``r_c = (S_c - S_iid) / (S_real - S_iid)`` of the texture-matched and shuffled controls decide:
``min(r) >= confirm_min`` (0.7) → ``"composition"``, ``min(r) >= partial_min`` (0.3) →
``"partial"`` (higher-order texture matters), else ``"rejected"`` (the robustness on real DNA
needs more than composition).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import KeyArray
from .._errors import renamed_options
from .._jsonio import jsonable
from .._status import status_name
from ..geometry import rdm_similarity
from ._controls import dinucleotide_shuffle, snp_perturb, texture_matched_dna
from ._embeddings import embed_sequences
from ._genomics import (
    kmer_counts,
    kmer_frequencies,
    reverse_complement,
    rng_from_key,
    validate_sequences,
)

CONDITIONS = ("real", "iid", "texture", "shuffle")

# ----------------------------------------------------------------------------- embedders


def kmer_embedder(*, key, k: int = 3, dim: int = 16, scale: float = 20.0) -> Callable:
    r"""Composition-only reference embedder (depends on the sequence only through k-mer counts).

    .. math:: f(s) = \tanh\big(\text{scale}\cdot W (\phi_k(s) - 4^{-k})\big),
        \qquad W_{ij} \sim \mathcal N(0, 1)

    with :math:`\phi_k(s)` the overlapping k-mer frequencies. The random projection ``W``
    (``dim x 4**k``, drawn from ``key``) and the ``tanh`` keep the RC map (a permutation of
    k-mer coordinates) from being an isometry of the embedding.

    Returns:
        ``embed_fn(list_of_sequences) -> (n, dim)`` float32 array.
    """
    w = np.asarray(jax.random.normal(key, (4**k, dim)), dtype=np.float64)

    def embed_fn(batch):
        phi = kmer_frequencies(batch, k) - 4.0**-k
        return np.tanh(scale * phi @ w).astype(np.float32)

    return embed_fn


def position_sensitive_embedder(
    *, key, max_length: int = 2048, k: int = 3, dim: int = 16
) -> Callable:
    r"""Reference embedder with neither RC symmetry nor a composition bottleneck.

    .. math:: f(s) = \tanh\Big(\tfrac{1}{\sqrt{L}} \sum_{p} W_{p,\, s_{p:p+k}}\Big)

    with an independent Gaussian weight vector for every (position, k-mer) pair, so the
    embedding depends on *where* each k-mer occurs (``max_length`` positions supported).

    Returns:
        ``embed_fn(list_of_sequences) -> (n, dim)`` float32 array.
    """
    w = np.asarray(jax.random.normal(key, (max_length, 4**k, dim)), dtype=np.float32)

    def embed_fn(batch):
        out = np.empty((len(batch), dim), dtype=np.float32)
        for i, s in enumerate(batch):
            if len(s) > max_length:
                raise ValueError(f"sequence of length {len(s)} exceeds max_length={max_length}")
            idx = _kmer_index_per_position(s, k)
            out[i] = np.tanh(w[np.arange(len(idx)), idx].sum(axis=0) / math.sqrt(len(idx)))
        return out

    return embed_fn


def rc_invariant_embedder(*, key, max_length: int = 2048, k: int = 3, dim: int = 16) -> Callable:
    r"""Reference embedder that is RC-symmetric by construction (equivariant features pooled).

    .. math:: f(s) = g(s) + g(\mathrm{rc}(s))

    with ``g`` the :func:`position_sensitive_embedder` (before its ``tanh``) — the
    "sum over both strands" used by RC-equivariant architectures (e.g. Caduceus-PS) before
    invariant pooling. ``f(rc s) == f(s)`` exactly, in floating point too.

    Returns:
        ``embed_fn(list_of_sequences) -> (n, dim)`` float32 array.
    """
    w = np.asarray(jax.random.normal(key, (max_length, 4**k, dim)), dtype=np.float32)

    def g(s):
        idx = _kmer_index_per_position(s, k)
        return w[np.arange(len(idx)), idx].sum(axis=0) / math.sqrt(len(idx))

    def embed_fn(batch):
        rcs = reverse_complement(batch)
        return np.stack([np.tanh(g(s) + g(r)) for s, r in zip(batch, rcs, strict=True)])

    return embed_fn


def _kmer_index_per_position(s: str, k: int) -> np.ndarray:
    codes = np.frombuffer(s.upper().encode("ascii"), dtype=np.uint8)
    table = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate("ACGT"):
        table[ord(c)] = i
    c = table[codes]
    if np.any(c < 0) or len(c) < k:
        raise ValueError(f"sequence must be >= {k} bases of ACGT")
    idx = np.zeros(len(c) - k + 1, dtype=np.int64)
    for j in range(k):
        idx = idx * 4 + c[j : len(c) - k + 1 + j]
    return idx


# ----------------------------------------------------------------------------- the test


@dataclasses.dataclass(frozen=True)
class RCTextureReport:
    """Outcome of :func:`rc_texture_test` (host-side report; floats, not arrays).

    Attributes:
        verdict: ``"composition"``, ``"partial"``, ``"rejected"``, ``"symmetric"`` or
            ``"not_robust"`` (module docstring).
        stability: ``S_c`` (RDM Spearman, forward vs RC) per condition.
        stability_ci: ``(low, high)`` bootstrap percentile interval of ``S_c``.
        recovery: ``r_c`` for ``"texture"`` and ``"shuffle"`` (NaN when undefined).
        recovery_ci: bootstrap intervals of ``r_c``.
        paired_cosine: mean cosine of ``f(s)`` and ``f(rc s)`` per condition (absolute measure).
        effect_size: ``||mean f(rc s) - mean f(s)||`` per condition (embedding units).
        kmer_control: cosine of forward vs RC aggregate k-mer frequencies, per condition and k.
        gc_max_abs_diff: max |GC(s) - GC(rc s)| per condition (sanity: exactly 0).
        snp_stability: ``S`` under each SNP rate (clean vs SNP), per condition.
        flags: messages about undefined quantities.
        thresholds: the cut-offs used.
        n: sequences per condition.
    """

    verdict: str
    stability: dict
    stability_ci: dict
    recovery: dict
    recovery_ci: dict
    paired_cosine: dict
    effect_size: dict
    kmer_control: dict
    gc_max_abs_diff: dict
    snp_stability: dict
    flags: tuple
    thresholds: dict
    n: int

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return jsonable(dataclasses.asdict(self))


@eqx.filter_jit
def _rdm_cosine(x, y):
    return rdm_similarity(x, y, metric="cosine", throw=False)


def _similarity(x, y, flags: list | None = None, what: str = "") -> float:
    """Spearman RDM similarity of cosine RDMs; NaN (and a flag) when its status is not ok."""
    res = _rdm_cosine(jnp.asarray(x), jnp.asarray(y))
    status = status_name(res.status)
    if status != "ok" and flags is not None:
        flags.append(f"{what}: rdm_similarity status {status} (value NaN)")
    return float(np.asarray(res.value))


@renamed_options(batch_size="chunk_size")
def rc_texture_test(
    embed_fn: Callable[[list[str]], np.ndarray],
    sequences: Sequence[str],
    *,
    key: KeyArray,
    snp_rates: Sequence[float] = (0.01, 0.02, 0.05, 0.10),
    texture_scope: str = "per_sequence",
    num_bootstrap: int = 200,
    ci: float = 0.95,
    kmer_ks: Sequence[int] = (2, 3),
    robust_min: float = 0.5,
    separation_min: float = 0.2,
    confirm_min: float = 0.7,
    partial_min: float = 0.3,
    chunk_size: int = 64,
    progress: bool = False,
) -> RCTextureReport:
    r"""Reverse-complement texture test: is RC robustness explained by base composition?

    Four conditions of ``n`` sequences each (same lengths as ``sequences``): ``real`` (the
    input), ``iid`` (uniform random bases), ``texture`` (first-order Markov samples matched to
    the real sequences; ``texture_scope``) and ``shuffle`` (Altschul–Erickson dinucleotide
    shuffle of each real sequence). For each, ``S_c`` = Spearman correlation of the cosine RDMs of
    ``embed_fn(seqs)`` and ``embed_fn(rc(seqs))``, then

    .. math:: r_c = \frac{S_c - S_{iid}}{S_{real} - S_{iid}},\qquad c \in \{texture, shuffle\}

    and the verdict rule of the module docstring. Intervals are percentile bootstraps over
    sequences (one resampling of row indices shared by all conditions per replicate). The k-mer
    control is the cosine between forward and RC aggregate k-mer frequency vectors.

    Args:
        embed_fn: ``embed_fn(list_of_sequences) -> (batch, d)`` pooled embeddings.
        sequences: real DNA sequences over ``ACGT`` (upper/lower case), length >= 3.
        key: JAX key (controls, SNPs, bootstrap).
        snp_rates: SNP rates whose stability is reported alongside (``()`` to skip).
        texture_scope: ``"per_sequence"`` (default; keeps between-sequence composition
            differences, which the RDM measure needs) or ``"pooled"`` (one chain for all, the
            reference's chr22 matrix; every control then has the same expected composition).
        num_bootstrap: bootstrap replicates (0 to skip intervals).
        ci: interval mass.
        kmer_ks: k values of the k-mer control.
        robust_min: ``S_real`` below this → ``"not_robust"``.
        separation_min: ``S_real - S_iid`` below this → ``"symmetric"`` (ratios NaN + flag).
        confirm_min: ``min(r_texture, r_shuffle) >= confirm_min`` → ``"composition"``.
        partial_min: ``min(r) >= partial_min`` → ``"partial"``; below → ``"rejected"``.
        chunk_size: sequences per ``embed_fn`` call.
        progress: show progress bars.

    Returns:
        :class:`RCTextureReport`.

    Raises:
        ValueError: fewer than 4 sequences, characters outside ``ACGT``, or bad options.

    Examples:
        >>> import jax
        >>> from geomtax.audit import kmer_embedder, strand_symmetric_dna
        >>> k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
        >>> seqs = strand_symmetric_dna(40, 1000, key=k1, gc_range=(0.25, 0.75))
        >>> rep = rc_texture_test(kmer_embedder(key=k2), seqs, key=k3, snp_rates=(),
        ...                       num_bootstrap=0)
        >>> rep.verdict
        'composition'
    """
    seqs, _ = validate_sequences(sequences, min_length=3)
    n = len(seqs)
    if n < 4:
        raise ValueError(f"rc_texture_test needs at least 4 sequences, got {n}")
    if not 0 <= partial_min <= confirm_min:
        raise ValueError(f"need 0 <= partial_min <= confirm_min, got {partial_min}, {confirm_min}")
    k_iid, k_tex, k_shuf, k_snp, k_boot = jax.random.split(key, 5)
    lengths = [len(s) for s in seqs]
    rng_iid = rng_from_key(k_iid)
    iid = [
        "".join(np.asarray(list("ACGT"))[rng_iid.integers(4, size=length)]) for length in lengths
    ]
    sets = {
        "real": seqs,
        "iid": iid,
        "texture": texture_matched_dna(seqs, key=k_tex, scope=texture_scope),
        "shuffle": dinucleotide_shuffle(seqs, key=k_shuf),
    }
    flags: list[str] = []

    def emb(ss, label):
        return np.asarray(
            embed_sequences(embed_fn, ss, chunk_size=chunk_size, progress=progress, desc=label),
            dtype=np.float32,
        )

    fwd, rev = {}, {}
    stability, paired_cos, effect, kctl, gcdiff, snp_stab = {}, {}, {}, {}, {}, {}
    snp_keys = jax.random.split(k_snp, max(1, len(snp_rates) * len(CONDITIONS)))
    for ci_, (c, ss) in enumerate(sets.items()):
        rc = reverse_complement(ss)
        fwd[c], rev[c] = emb(ss, c), emb(rc, f"{c} (RC)")
        if fwd[c].ndim != 2:
            raise ValueError(f"embed_fn must return pooled (batch, d) arrays, got {fwd[c].shape}")
        stability[c] = _similarity(fwd[c], rev[c], flags, f"S_{c}")
        num = np.sum(fwd[c] * rev[c], axis=1)
        den = np.linalg.norm(fwd[c], axis=1) * np.linalg.norm(rev[c], axis=1)
        paired_cos[c] = float(np.mean(num / np.maximum(den, 1e-12)))
        effect[c] = float(np.linalg.norm(rev[c].mean(0) - fwd[c].mean(0)))
        kctl[c] = {}
        for k in kmer_ks:
            a = kmer_counts(ss, k).sum(0).astype(np.float64)
            b = kmer_counts(rc, k).sum(0).astype(np.float64)
            kctl[c][f"k{k}"] = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))
        gc_f = np.array([(s.count("G") + s.count("C")) / len(s) for s in ss])
        gc_r = np.array([(s.count("G") + s.count("C")) / len(s) for s in rc])
        gcdiff[c] = float(np.max(np.abs(gc_f - gc_r)))
        snp_stab[c] = {}
        for j, rate in enumerate(snp_rates):
            mutated = snp_perturb(ss, rate=rate, key=snp_keys[ci_ * len(snp_rates) + j])
            x_snp = emb(mutated, f"{c} (SNP {rate:g})")
            snp_stab[c][f"{rate:g}"] = _similarity(fwd[c], x_snp, flags, f"SNP {rate:g} ({c})")

    recovery = _recovery(stability, separation_min, flags)
    verdict = _verdict(stability, recovery, robust_min, separation_min, confirm_min, partial_min)

    stability_ci = {c: (math.nan, math.nan) for c in CONDITIONS}
    recovery_ci = {c: (math.nan, math.nan) for c in ("texture", "shuffle")}
    if num_bootstrap > 0:
        rng = rng_from_key(k_boot)
        boot_s = {c: [] for c in CONDITIONS}
        boot_r = {c: [] for c in ("texture", "shuffle")}
        for _ in range(num_bootstrap):
            idx = jnp.asarray(rng.integers(n, size=n))
            s_b = {
                c: _similarity(jnp.asarray(fwd[c])[idx], jnp.asarray(rev[c])[idx])
                for c in CONDITIONS
            }
            for c in CONDITIONS:
                boot_s[c].append(s_b[c])
            r_b = _recovery(s_b, separation_min, [])
            for c in boot_r:
                boot_r[c].append(r_b[c])
        lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
        for c, vals in boot_s.items():
            stability_ci[c] = tuple(float(v) for v in np.nanpercentile(vals, [lo, hi]))
        for c, vals in boot_r.items():
            v = np.asarray(vals, dtype=np.float64)
            if np.isfinite(v).any():
                recovery_ci[c] = tuple(float(q) for q in np.nanpercentile(v, [lo, hi]))

    return RCTextureReport(
        verdict=verdict,
        stability=stability,
        stability_ci=stability_ci,
        recovery=recovery,
        recovery_ci=recovery_ci,
        paired_cosine=paired_cos,
        effect_size=effect,
        kmer_control=kctl,
        gc_max_abs_diff=gcdiff,
        snp_stability=snp_stab,
        flags=tuple(flags),
        thresholds={
            "robust_min": robust_min,
            "separation_min": separation_min,
            "confirm_min": confirm_min,
            "partial_min": partial_min,
            "texture_scope": texture_scope,
        },
        n=n,
    )


def _recovery(s: dict, separation_min: float, flags: list) -> dict:
    gap = s["real"] - s["iid"]
    if not gap >= separation_min:
        flags.append(
            f"S_real - S_iid = {gap:.3f} < separation_min = {separation_min}: recovery ratios "
            "are undefined (NaN)"
        )
        return {"texture": math.nan, "shuffle": math.nan}
    return {c: (s[c] - s["iid"]) / gap for c in ("texture", "shuffle")}


def _verdict(s, r, robust_min, separation_min, confirm_min, partial_min) -> str:
    if not s["real"] >= robust_min:
        return "not_robust"
    if not s["real"] - s["iid"] >= separation_min:
        return "symmetric"
    worst = min(r["texture"], r["shuffle"])
    if worst >= confirm_min:
        return "composition"
    if worst >= partial_min:
        return "partial"
    return "rejected"
