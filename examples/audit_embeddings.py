"""Audit embeddings you computed elsewhere: files in, JSON/CSV/HTML report out.

This script plays both roles. First it *writes* the kind of files a user brings (embeddings of
clean and perturbed DNA sequences from three toy "models", as ``.npy``/``.npz``/``.h5ad``, plus
the sequences as FASTA); then it audits them exactly as a user would, with the public API:

    python examples/audit_embeddings.py --out results/audit_example          # ~1-2 min on CPU
    python examples/audit_embeddings.py --tiny --out /tmp/audit_smoke          # CI smoke run

The CLI equivalent of step 2 is printed at the end. Toy models (known by construction):
``kmer`` (composition only), ``rc_sym`` (reverse-complement symmetric) and ``positional``
(position-sensitive); none is a real foundation model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import jax
import numpy as np

import geomtax.audit as ga


def write_user_files(out: Path, *, n: int, length: int, key) -> dict:
    """Step 0 (stand-in for the user's own pipeline): sequences and embeddings on disk."""
    k_seq, k_snp, k1, k2, k3 = jax.random.split(key, 5)
    seqs = ga.strand_symmetric_dna(n, length, key=k_seq, gc_range=(0.25, 0.75))
    (out / "sequences.fa").write_text("".join(f">seq{i}\n{s}\n" for i, s in enumerate(seqs)))
    perturbed = {
        "snp_5pct": ga.snp_perturb(seqs, rate=0.05, key=k_snp),
        "reverse_complement": ga.reverse_complement(seqs),
    }
    models = {
        "kmer": ga.kmer_embedder(key=k1),
        "rc_sym": ga.rc_invariant_embedder(key=k2, max_length=length),
        "positional": ga.position_sensitive_embedder(key=k3, max_length=length),
    }
    files = {}
    for name, fn in models.items():
        arrays = {"clean": ga.embed_sequences(fn, seqs, progress=False)}
        for p, ps in perturbed.items():
            arrays[p] = ga.embed_sequences(fn, ps, progress=False)
        # Local window: the middle 20 % of each sequence, embedded on its own.
        lo, hi = int(0.4 * length), int(0.6 * length)
        arrays["local"] = ga.embed_sequences(fn, [s[lo:hi] for s in seqs], progress=False)
        np.savez(out / f"{name}.npz", **arrays)
        files[name] = out / f"{name}.npz"
    # The same "kmer" embeddings as an AnnData file (obsm key), as single-cell tools write them.
    with h5py.File(out / "kmer.h5ad", "w") as f:
        f.create_group("obsm").create_dataset("X_kmer", data=np.load(files["kmer"])["clean"])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/audit_example")
    parser.add_argument("--tiny", action="store_true", help="CI-sized run")
    parser.add_argument("--figures", default=None, help="also save the report's PNGs here")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, length = (64, 400) if args.tiny else (200, 1000)
    key = jax.random.key(320)  # the one integer seed, converted once
    k_files, k_audit, k_rc = jax.random.split(key, 3)
    files = write_user_files(out, n=n, length=length, key=k_files)

    # Step 1: load what you have, without pickle.
    _, seqs = ga.read_fasta(out / "sequences.fa")
    features = ga.dna_features(seqs)  # GC + 16 dinucleotide frequencies (17 columns)
    lo, hi = int(0.4 * length), int(0.6 * length)
    local_features = ga.dna_features([s[lo:hi] for s in seqs])
    models = {}
    for name, path in files.items():
        models[name] = ga.ModelEmbeddings(
            clean=ga.load_embeddings(path, name="clean"),
            perturbed={
                p: ga.load_embeddings(path, name=p) for p in ("snp_5pct", "reverse_complement")
            },
            local=[ga.load_embeddings(path, name="local")],
        )
    assert np.allclose(ga.load_embeddings(out / "kmer.h5ad", name="X_kmer"), models["kmer"].clean)

    # Step 2: the audit (geometry, calibrated MI, R(D), regimes) and the report.
    mi_options = (
        {"estimator": "ksg", "num_seeds": 3}
        if args.tiny
        else {"num_seeds": 3, "num_steps": 1500, "hidden": (64, 32)}
    )
    report = ga.run(
        models,
        features=features,
        local_features=[local_features],
        key=k_audit,
        mi_options=mi_options,
        rd_options={"num_codes": 32},
    )

    # Step 3 (DNA models you can call): the reverse-complement texture test.
    rc = ga.rc_texture_test(
        ga.kmer_embedder(key=jax.random.split(k_files, 5)[2]),  # the "kmer" model above
        seqs,
        key=k_rc,
        snp_rates=() if args.tiny else (0.01, 0.05),
        num_bootstrap=20 if args.tiny else 200,
    )
    report.extras["rc_texture_test (kmer)"] = rc.to_dict()
    paths = report.save(out)

    for row in report.table:
        print(
            f"{row['model']:>10}: D={row['procrustes_distortion_mean']:.3f} "
            f"MI={row['mi_nats']:.3f} nats [{row['mi_status']}] (floor {row['floor_nats']:.3f}) "
            f"regime={row['regime']} status={row['status']}"
        )
    print(f"RC texture test (kmer): {rc.verdict}; S={rc.stability}")
    for kind, p in paths.items():
        print(f"wrote {kind}: {p}")
    if args.figures:
        fig_dir = Path(args.figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        ga.plot_mi_distortion_map(report).savefig(
            fig_dir / "audit_mi_distortion.png", dpi=80, bbox_inches="tight"
        )
        ga.plot_perturbation_stability(report).savefig(
            fig_dir / "audit_perturbation_stability.png", dpi=80, bbox_inches="tight"
        )
    print(
        "CLI equivalent:\n  geomtax audit "
        + " ".join(f"--model {m}={files[m]}#clean" for m in files)
        + " "
        + " ".join(
            f"--perturbed {m}:{p}={files[m]}#{p}"
            for m in files
            for p in ("snp_5pct", "reverse_complement")
        )
        + f" --fasta {out / 'sequences.fa'} --out {out / 'cli'}"
    )


if __name__ == "__main__":
    main()
