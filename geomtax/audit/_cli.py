"""``geomtax audit``: audit precomputed embeddings from files.

Example::

    geomtax audit --model esm=emb_esm.npy --model evo=emb.h5ad#X_evo
        --perturbed esm:snp_5=emb_esm_snp5.npy --features feats.npy --out results/audit

File arguments accept ``PATH`` or ``PATH#NAME`` (an ``.npz`` member, safetensors tensor or
``.h5ad`` obsm key). Integer ``--seed`` is converted once to a JAX key.
"""

from __future__ import annotations

import argparse
import json
import sys


def _split_file(spec: str) -> tuple[str, str | None]:
    path, _, name = spec.partition("#")
    return path, (name or None)


def _named(spec: str, flag: str) -> tuple[str, str]:
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"geomtax audit: {flag} expects NAME=VALUE, got {spec!r}")
    return name, rest


def _options(specs: list[str] | None, flag: str) -> dict:
    out = {}
    for s in specs or []:
        k, v = _named(s, flag)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
        if isinstance(out[k], list):
            out[k] = tuple(out[k])
    return out


def register(subparsers) -> None:
    """Add the ``audit`` subcommand to the top-level ``geomtax`` parser."""
    p = subparsers.add_parser(
        "audit",
        help="audit foundation-model embeddings (geometry, MI, R(D), regimes)",
        description=(
            "Audit precomputed embeddings: geometry on clean vs perturbed rows, calibrated MINE "
            "against ground-truth features (global and local windows), an R(D) curve and the "
            "failure-regime classification. Writes audit.json, audit.csv and audit.html."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=PATH[#KEY]",
        help="clean embeddings of one model/layer (repeat for several)",
    )
    p.add_argument(
        "--perturbed",
        action="append",
        metavar="MODEL:PERT=PATH[#KEY]",
        help="perturbed embeddings, paired row by row with the model's clean ones",
    )
    p.add_argument(
        "--local",
        action="append",
        metavar="MODEL=PATH[#KEY]",
        help="local-window embeddings of a model (repeat per window, in order)",
    )
    p.add_argument(
        "--features", metavar="PATH[#KEY]", help="ground-truth features (n, f); or use --fasta"
    )
    p.add_argument(
        "--fasta", metavar="PATH", help="compute ground-truth features from these sequences instead"
    )
    p.add_argument(
        "--alphabet",
        choices=("dna", "protein"),
        default="dna",
        help="feature set for --fasta (default dna: GC + 16 dinucleotides)",
    )
    p.add_argument(
        "--local-features",
        action="append",
        metavar="PATH[#KEY]",
        help="ground-truth features of each local window (in window order)",
    )
    p.add_argument("--labels", metavar="PATH", help="optional labels, one per row")
    p.add_argument(
        "--perplexity",
        action="append",
        metavar="MODEL=VALUE",
        help="a model's perplexity (enables regime III)",
    )
    p.add_argument(
        "--upstream",
        action="append",
        metavar="MODEL=UPSTREAM",
        help="UPSTREAM feeds MODEL (enables regime II)",
    )
    p.add_argument("--seed", type=int, default=320, help="integer seed (default 320)")
    p.add_argument("--out", default="results/audit", help="output directory")
    p.add_argument("--no-mi", action="store_true", help="skip MI (and the regimes)")
    p.add_argument("--no-rd", action="store_true", help="skip the R(D) curve")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument(
        "--mi-option",
        action="append",
        metavar="KEY=JSON",
        help="keyword option for geomtax.info.calibrated_mi (e.g. num_steps=200)",
    )
    p.add_argument(
        "--rd-option",
        action="append",
        metavar="KEY=JSON",
        help="keyword option for geomtax.rd.rd_curve_from_samples",
    )
    p.add_argument(
        "--max-drop-fraction",
        type=float,
        default=0.1,
        help="error if more than this fraction of rows is NaN/zero (default 0.1)",
    )
    p.add_argument("--decoupling-ratio-min", type=float, default=2.0)
    p.add_argument("--delta-mi-min", type=float, default=0.0)
    p.add_argument("--disparity-min", type=float, default=0.5)
    p.add_argument("--perplexity-max", type=float, default=50.0)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the audit described by parsed command-line ``args``; returns an exit code."""
    import jax

    from . import _genomics as gen
    from ._audit import ModelEmbeddings, run
    from ._embeddings import load_embeddings, load_labels
    from ._regimes import RegimeThresholds

    try:
        if (args.features is None) == (args.fasta is None):
            raise ValueError("pass exactly one of --features and --fasta")
        if args.features is not None:
            fpath, fkey = _split_file(args.features)
            features = load_embeddings(fpath, name=fkey)
        else:
            _, seqs = gen.read_fasta(args.fasta)
            features = (
                gen.dna_features(seqs) if args.alphabet == "dna" else gen.protein_features(seqs)
            )
        models: dict[str, ModelEmbeddings] = {}
        for spec in args.model:
            name, f = _named(spec, "--model")
            path, key = _split_file(f)
            models[name] = ModelEmbeddings(
                clean=load_embeddings(path, name=key), perturbed={}, local=[]
            )
        for spec in args.perturbed or []:
            left, f = _named(spec, "--perturbed")
            model, sep, pert = left.partition(":")
            if not sep or model not in models:
                raise ValueError(f"--perturbed {spec!r}: expected MODEL:PERT with a known MODEL")
            path, key = _split_file(f)
            models[model].perturbed[pert] = load_embeddings(path, name=key)
        for spec in args.local or []:
            model, f = _named(spec, "--local")
            if model not in models:
                raise ValueError(f"--local {spec!r}: unknown model {model!r}")
            path, key = _split_file(f)
            models[model].local.append(load_embeddings(path, name=key))
        local_features = [
            load_embeddings(p, name=k) for p, k in map(_split_file, args.local_features or [])
        ]
        for spec in args.perplexity or []:
            model, v = _named(spec, "--perplexity")
            models[model].perplexity = float(v)
        for spec in args.upstream or []:
            model, up = _named(spec, "--upstream")
            models[model].upstream = up
        labels = load_labels(args.labels) if args.labels else None
        thresholds = RegimeThresholds(
            decoupling_ratio_min=args.decoupling_ratio_min,
            delta_mi_min=args.delta_mi_min,
            disparity_min=args.disparity_min,
            perplexity_max=args.perplexity_max,
        )
        report = run(
            models,
            features=features,
            key=jax.random.key(args.seed),
            local_features=local_features,
            labels=labels,
            thresholds=thresholds,
            mi_options=_options(args.mi_option, "--mi-option"),
            rd_options=_options(args.rd_option, "--rd-option"),
            max_drop_fraction=args.max_drop_fraction,
            compute_rd=not args.no_rd,
            compute_mi=not args.no_mi,
        )
    except (ValueError, KeyError) as err:
        print(f"geomtax audit: error: {err}", file=sys.stderr)
        return 2
    paths = report.save(args.out, html=not args.no_html)
    for row in report.table:
        print(
            f"{row['model']}: D={row['procrustes_distortion_mean']:.4g} "
            f"regime={row['regime']} (n={row['n_used']}, dropped {row['n_dropped']})"
        )
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0
