"""``geomtax audit``: audit precomputed embeddings from files.

Example::

    geomtax audit --model esm=emb_esm.npy --model evo=emb.h5ad#X_evo
        --perturbed esm:snp_5=emb_esm_snp5.npy --features feats.npy --out results/audit

File arguments accept ``PATH`` or ``PATH#NAME`` (an ``.npz`` member, safetensors tensor or
``.h5ad`` obsm key), the same data-path syntax and loaders as ``geomtax sweep``. Integer
``--seed`` is converted once to a JAX key. Every file is loaded, and every option name checked
against the real signatures, before any work: a mistake is one line
``geomtax audit: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json

from ..audit._loaders import check_array, load_array
from ._errors import UsageError, one_line_errors


def _named(spec: str, flag: str) -> tuple[str, str]:
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise UsageError(f"{flag} expects NAME=VALUE, got {spec!r}")
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


def _check_rows(args: argparse.Namespace) -> None:
    """Every input's row count from its header alone, before any array is read.

    Every embedding (clean, perturbed, local windows) and every local feature array is paired
    row by row with ``--features``; a mismatch is a usage error naming both flags.
    """
    given = (("--model", args.model), ("--perturbed", args.perturbed), ("--local", args.local))
    specs = [(f"{flag} {s}", _named(s, flag)[1]) for flag, ss in given for s in ss or []]
    specs += [(f"--local-features {s}", s) for s in args.local_features or []]
    if args.features is not None:
        specs.insert(0, (f"--features {args.features}", args.features))
    rows = []
    for what, spec in specs:
        try:
            shape = check_array(spec)
        except ValueError as err:
            raise UsageError(f"{what}: {err}") from err
        rows.append((what, shape[0] if len(shape) else None))
    if args.features is not None:
        want_what, want = rows[0]
        for what, n in rows[1:]:
            if n != want:
                raise UsageError(
                    f"{what} has {n} rows but {want_what} has {want}; rows must be paired"
                )


def _load(spec: str, flag: str):
    try:
        return load_array(spec)
    except ValueError as err:
        raise UsageError(f"{flag} {spec}: {err}") from err


_APPEND = {"action": "append"}  # the option may be repeated; its values are collected in a list

# fmt: off
#: the input options, in --help order: flag, metavar, help, further add_argument keywords
_INPUTS = (
    ("--model", "NAME=PATH[#KEY]", "clean embeddings of one model/layer (repeat for several)",
     {**_APPEND, "required": True}),
    ("--perturbed", "MODEL:PERT=PATH[#KEY]",
     "perturbed embeddings, paired row by row with the model's clean ones", _APPEND),
    ("--local", "MODEL=PATH[#KEY]",
     "local-window embeddings of a model (repeat per window, in order)", _APPEND),
    ("--features", "PATH[#KEY]", "ground-truth features (n, f); or use --fasta", {}),
    ("--fasta", "PATH", "compute ground-truth features from these sequences instead", {}),
    ("--alphabet", None, "feature set for --fasta (default dna: GC + 16 dinucleotides)",
     {"choices": ("dna", "protein"), "default": "dna"}),
    ("--local-features", "PATH[#KEY]",
     "ground-truth features of each local window (in window order)", _APPEND),
    ("--labels", "PATH[#KEY]", "optional labels, one per row (.npy/.npz/.txt)", {}),
    ("--perplexity", "MODEL=VALUE", "a model's perplexity (enables regime III)", _APPEND),
    ("--upstream", "MODEL=UPSTREAM", "UPSTREAM feeds MODEL (enables regime II)", _APPEND),
)
#: keyword options passed on to the estimators (checked against their signatures)
_ESTIMATOR_OPTIONS = (
    ("--mi-option", "KEY=JSON",
     "keyword option for geomtax.info.calibrated_mi (e.g. num_steps=200)", _APPEND),
    ("--rd-option", "KEY=JSON", "keyword option for geomtax.rd.rd_curve_from_samples", _APPEND),
)
# fmt: on


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
    for flag, metavar, help_, kwargs in _INPUTS:
        p.add_argument(flag, metavar=metavar, help=help_, **kwargs)
    p.add_argument("--seed", type=int, default=320, help="integer seed (default 320)")
    p.add_argument("--out", default="results/audit", help="output directory")
    p.add_argument("--no-mi", action="store_true", help="skip MI (and the regimes)")
    p.add_argument("--no-rd", action="store_true", help="skip the R(D) curve")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    for flag, metavar, help_, kwargs in _ESTIMATOR_OPTIONS:
        p.add_argument(flag, metavar=metavar, help=help_, **kwargs)
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


def _inputs(args: argparse.Namespace):
    """Parse, load and check every input of the audit (raises :class:`UsageError`).

    Returns:
        ``(models, options)``: the :class:`~geomtax.audit.ModelEmbeddings` by name and the
        keyword options of :func:`geomtax.audit.run` other than ``key``.
    """
    from ..audit import _genomics as gen
    from ..audit._audit import ModelEmbeddings, check_options
    from ..audit._loaders import load_labels, split_data_spec
    from ..audit._regimes import RegimeThresholds

    mi_options = _options(args.mi_option, "--mi-option")
    rd_options = _options(args.rd_option, "--rd-option")
    try:
        check_options(mi_options, rd_options)
    except ValueError as err:
        raise UsageError(
            str(err).replace("mi_options", "--mi-option", 1).replace("rd_options", "--rd-option", 1)
        ) from err
    if (args.features is None) == (args.fasta is None):
        raise UsageError("pass exactly one of --features and --fasta")
    _check_rows(args)
    models: dict[str, ModelEmbeddings] = {}
    for spec in args.model:
        name, f = _named(spec, "--model")
        if name in models:
            raise UsageError(f"--model {spec!r}: model {name!r} given twice")
        models[name] = ModelEmbeddings(clean=_load(f, "--model"), perturbed={}, local=[])

    def known(spec, model, flag):
        if model not in models:
            raise UsageError(
                f"{flag} {spec!r}: unknown model {model!r}; --model names: {', '.join(models)}"
            )
        return models[model]

    for spec in args.perturbed or []:
        left, f = _named(spec, "--perturbed")
        model, sep, pert = left.partition(":")
        if not sep or not pert:
            raise UsageError(f"--perturbed {spec!r}: expected MODEL:PERT=PATH[#KEY]")
        known(spec, model, "--perturbed").perturbed[pert] = _load(f, "--perturbed")
    for spec in args.local or []:
        model, f = _named(spec, "--local")
        known(spec, model, "--local").local.append(_load(f, "--local"))
    local_features = [_load(f, "--local-features") for f in args.local_features or []]
    for spec in args.perplexity or []:
        model, v = _named(spec, "--perplexity")
        try:
            ppl = float(v)
        except ValueError:
            raise UsageError(f"--perplexity {spec!r}: {v!r} is not a number") from None
        known(spec, model, "--perplexity").perplexity = ppl
    for spec in args.upstream or []:
        model, up = _named(spec, "--upstream")
        known(spec, model, "--upstream").upstream = up
        known(spec, up, "--upstream")
    if args.features is not None:
        features = _load(args.features, "--features")
    else:
        try:
            _, seqs = gen.read_fasta(args.fasta)
            features = (
                gen.dna_features(seqs) if args.alphabet == "dna" else gen.protein_features(seqs)
            )
        except (OSError, ValueError) as err:
            raise UsageError(f"--fasta {args.fasta}: {err}") from err
    try:
        if args.labels:
            lpath, lkey = split_data_spec(args.labels)
            labels = load_labels(lpath, name=lkey)
        else:
            labels = None
    except ValueError as err:
        raise UsageError(f"--labels {args.labels}: {err}") from err
    try:
        thresholds = RegimeThresholds(
            decoupling_ratio_min=args.decoupling_ratio_min,
            delta_mi_min=args.delta_mi_min,
            disparity_min=args.disparity_min,
            perplexity_max=args.perplexity_max,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    return models, {
        "features": features,
        "local_features": local_features,
        "labels": labels,
        "thresholds": thresholds,
        "mi_options": mi_options,
        "rd_options": rd_options,
        "max_drop_fraction": args.max_drop_fraction,
        "compute_rd": not args.no_rd,
        "compute_mi": not args.no_mi,
    }


@one_line_errors("geomtax audit")
def main(args: argparse.Namespace) -> int:
    """Run the audit described by parsed command-line ``args``; returns an exit code.

    Raises:
        UsageError: any usage or input mistake, found before the audit starts.
    """
    import jax

    from ..audit._audit import run

    models, options = _inputs(args)
    # run() checks shapes, row filtering and option names before it computes anything; an
    # option *value* is checked by the estimator that takes it.
    try:
        report = run(models, key=jax.random.key(args.seed), **options)
    except (ValueError, TypeError) as err:  # an option value the estimator rejects
        raise UsageError(str(err)) from err
    paths = report.save(args.out, html=not args.no_html)
    for row in report.table:
        print(
            f"{row['model']}: D={row['procrustes_distortion_mean']:.4g} "
            f"regime={row['regime']} status={row['status']} "
            f"(n={row['n_used']}, dropped {row['n_dropped']})"
        )
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0
