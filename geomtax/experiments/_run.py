"""Shared training and evaluation of the ablation cells, and the driver that runs them.

The plan, the summaries and the figures come from the experiments' declarations
(:class:`Experiment`); everything a cell does (data, tokens, model, training, evaluation, the
record) is the same for every experiment. Results are appended to ``cells.jsonl`` as each cell
finishes; training state is checkpointed per epoch with orbax, so an interrupted run resumes
where it stopped.
"""

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..models._encoders import EncoderConfig
from ..models._heads import init_model
from ._config import AblationConfig
from ._data import SystemData, load_system_data, tokenize_cell
from ._evaluate import SUITE_METRICS, distortions, shattering_epoch
from ._experiment import Cell
from ._registry import get_experiment, registered_experiments
from ._train import train


def _selected(config: AblationConfig) -> list[str]:
    """The configuration's experiments in registry order (the order cells and tables follow)."""
    return [name for name in registered_experiments() if name in config.experiments]


def plan_cells(config: AblationConfig) -> list[tuple[Cell, tuple[str, ...]]]:
    """Every cell the configuration needs, each with the experiments that use it (deduplicated).

    Args:
        config: the ablation configuration.

    Returns:
        ``[(cell, experiments), ...]`` in run order.

    Examples:
        >>> from geomtax.experiments import plan_cells, preset_config
        >>> [c.cell_id for c, _ in plan_cells(preset_config("tiny"))][:2]
        ['lorenz_bert_ce_s320', 'lorenz_bert_mse_s320']
    """
    plan: dict[Cell, list[str]] = {}
    for seed in config.seeds:
        for system in config.systems:
            for name in _selected(config):
                for cell in get_experiment(name).cells(config, system, seed):
                    plan.setdefault(cell, [])
                    if name not in plan[cell]:
                        plan[cell].append(name)
    return [(c, tuple(e)) for c, e in plan.items()]


def _encoder_config(config: AblationConfig, cell: Cell, vocab_size: int) -> EncoderConfig:
    base = config.encoder
    changes: dict[str, Any] = {
        "architecture": cell.architecture,
        "vocab_size": vocab_size,
        "max_len": max(base.max_len, config.seq_len),
    }
    if cell.num_layers:
        changes["num_layers"] = cell.num_layers
    if cell.attention_layers is not None:
        changes["attention_layers"] = cell.attention_layers
    if cell.hyena_order:
        changes["hyena_order"] = cell.hyena_order
    changes.update(cell.overrides)
    num_layers = changes.get("num_layers", base.num_layers)
    attn = changes.get("attention_layers", base.attention_layers)
    if attn is not None:
        changes["attention_layers"] = tuple(i for i in attn if i < num_layers)
    return dataclasses.replace(base, **changes)


def run_cell(
    config: AblationConfig,
    cell: Cell,
    data: SystemData,
    *,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one cell; return its flat result record (floats, ints, strings).

    ``log`` receives the one-line notices of a checkpoint that fails to restore (``None``: a
    ``RuntimeWarning``).
    """
    root = jax.random.key(cell.seed)
    k_tok, k_init, k_train = jax.random.split(jax.random.fold_in(root, 7), 3)
    tok = tokenize_cell(config, cell, data, k_tok)
    enc_cfg = _encoder_config(config, cell, tok.vocab_size)
    model = init_model(enc_cfg, head=cell.head, seed=jax.random.bits(k_init, (), jnp.uint32))
    num_params = int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
    tcfg = dataclasses.replace(config.train, jacobian_lambda=float(cell.jacobian_lambda))

    callback = None
    if config.num_trajectory > 0:

        def callback(epoch, current):
            d = distortions(current, tok, config.num_trajectory, config.embed_batch_size)
            return {"distortion_noise_mean": d["noise_mean"]}

    t0 = time.perf_counter()
    best, log, records = train(
        model,
        tok.train_tokens,
        tok.train_values,
        tok.val_tokens,
        tok.val_values,
        config=tcfg,
        key=k_train,
        checkpoint_dir=checkpoint_dir,
        callback=callback,
        progress=progress,
        description=cell.cell_id,
        log=log,
    )
    train_seconds = time.perf_counter() - t0
    k_suite = jax.random.fold_in(root, 11)
    final = distortions(best, tok, None, config.embed_batch_size, suite_key=k_suite)
    trajectory = [r.get("distortion_noise_mean", math.nan) for r in records]
    record: dict[str, Any] = {
        "cell_id": cell.cell_id,
        "system": cell.system,
        "architecture": cell.architecture,
        "head": cell.head,
        "seed": cell.seed,
        "tokenizer": cell.tokenizer,
        "num_codes": cell.num_codes if cell.tokenizer == "kmeans" else config.num_bins,
        "vocab_size": tok.vocab_size,
        "jacobian_lambda": float(cell.jacobian_lambda),
        "num_layers": enc_cfg.num_layers,
        "attention_layers": "-".join(map(str, enc_cfg.resolved_attention_layers))
        if cell.architecture == "striped_hyena"
        else "",
        "attention_fraction": (
            len(enc_cfg.resolved_attention_layers) / enc_cfg.num_layers
            if cell.architecture == "striped_hyena"
            else (1.0 if cell.architecture == "bert" else 0.0)
        ),
        "hyena_order": enc_cfg.hyena_order if cell.architecture == "striped_hyena" else 0,
        "d_model": enc_cfg.d_model,
        "num_params": num_params,
        "num_epochs": int(log.val_loss.shape[0]),
        "best_epoch": int(log.best_epoch),
        "best_val_loss": float(jnp.min(log.val_loss)),
        "final_train_loss": float(log.train_loss[-1]),
        "steps_per_second": float(jnp.median(log.steps_per_second)),
        "train_seconds": train_seconds,
        "reconstruction_mse": tok.reconstruction_mse,
        "distortion": final["noise_mean"],
        "distortion_status": final["noise_mean_status"],
        "distortion_reversal": final.get("reversal", math.nan),
        "distortion_reversal_status": final.get("reversal_status", "not evaluated"),
        "shattering_epoch": shattering_epoch(trajectory) if trajectory else -1,
        "distortion_trajectory": trajectory,
    }
    for rate in config.noise_rates:
        record[f"distortion_noise_{rate:g}"] = final[f"noise_{rate:g}"]
        record[f"distortion_noise_{rate:g}_status"] = final[f"noise_{rate:g}_status"]
    for m in SUITE_METRICS:
        record[f"suite_{m}"] = final[f"suite_{m}"]
        record[f"suite_{m}_status"] = final[f"suite_{m}_status"]
    if cell.overrides:
        record["overrides"] = dict(cell.overrides)
    return record


def summarize(config: AblationConfig, records: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """Experiment tables from cell records (means over seeds).

    * ``head``: per system and architecture, D_CE, D_MSE and ``ratio = D_CE / D_MSE``, the
      time-reversal D of both heads, and the rest of the suite of both heads (``cka_*``,
      ``rdm_*``, ``trust_*``, ``knn_*``: linear CKA, Spearman RDM similarity, trustworthiness
      and k-NN overlap of clean vs value-noise embeddings; 1 = geometry kept).
    * ``architecture``: per system and head, max / min distortion across architectures.
    * ``codebook``: per system and K, distortion and reconstruction MSE (plus the uniform-256 CE
      and MSE references).
    * ``jacobian``, ``attention``, ``hyena-order``: distortion per setting.
    * a registered experiment: the rows of its :meth:`Experiment.summarize`.

    Each experiment's table is its rows for every system in turn (``config.systems`` order),
    computed from the records of that experiment's cells.

    Args:
        config: the ablation configuration.
        records: cell records from :func:`run_cell` (each with an ``experiments`` field).

    Returns:
        ``{experiment: [row, ...]}``.
    """
    out: dict[str, list[dict]] = {}
    for name in _selected(config):
        mine = [r for r in records if name in r.get("experiments", [])]
        experiment = get_experiment(name)
        out[name] = []
        for system in config.systems:
            here = [r for r in mine if r["system"] == system]
            out[name] += experiment.summarize(config, here, system)
    return out


# ---------------------------------------------------------------------------------------------
# driver


def config_fingerprint(config: AblationConfig) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``config``.

    The settings of registered experiments that have fields (:meth:`Experiment.settings`) are
    part of it; the built-in experiments keep theirs in ``config``.
    """
    view = config.to_dict()
    settings = {n: get_experiment(n).settings() for n in _selected(config)}
    settings = {n: s for n, s in settings.items() if s}
    if settings:
        view["experiment_settings"] = settings
    blob = json.dumps(view, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _prepare_dir(out: Path, config: AblationConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    fingerprint = config_fingerprint(config)
    if cfg_path.exists():
        previous = json.loads(cfg_path.read_text())
        if previous.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{out} holds results of a different configuration (fingerprint "
                f"{previous.get('fingerprint')} vs {fingerprint}); refusing to mix them. Use a "
                "new --out directory or the same options as before (which resumes)."
            )
    else:
        if (out / "cells.jsonl").exists():
            raise ValueError(f"{out} holds cells.jsonl but no config.json; refusing to mix")
        cfg_path.write_text(
            json.dumps({"fingerprint": fingerprint, "config": config.to_dict()}, indent=2)
        )


def _load_done(out: Path, log: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Finished cells of ``out/cells.jsonl``; torn or corrupt lines are moved aside."""
    from ._records import load_records

    return load_records(out / "cells.jsonl", log=log)


def run_ablation(
    config: AblationConfig,
    out: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    figures: bool = True,
) -> dict[str, Any]:
    """Run (or resume) every cell of ``config`` and write the results into ``out``.

    Files written: ``config.json`` (configuration + fingerprint), ``cells.jsonl`` (one record
    per finished cell, appended as it finishes), ``checkpoints/<cell_id>/`` (orbax training
    state, removed once the cell is recorded), ``results.json`` (records + summaries),
    ``results.csv`` (one row per cell), ``summary_<experiment>.csv`` and PNG figures.

    Args:
        config: the ablation configuration (e.g. from :func:`preset_config`).
        out: output directory. If it holds results of the same configuration the run resumes;
            if it holds a different configuration a ``ValueError`` is raised.
        progress: show tqdm bars while training.
        log: callable receiving progress lines (``None`` = silent).
        figures: write PNG figures (matplotlib).

    Returns:
        ``{"config", "fingerprint", "records", "summary", "wall_seconds"}``.

    Raises:
        ValueError: on a mismatched output directory or too-small data.
    """
    import shutil

    from ._records import append_record, write_outputs

    out = Path(out)
    _prepare_dir(out, config)
    done = _load_done(out, log)
    plan = plan_cells(config)
    t0 = time.perf_counter()
    data_cache: dict[tuple[str, int], SystemData] = {}
    records = []
    for i, (cell, exps) in enumerate(plan):
        if cell.cell_id in done:
            rec = done[cell.cell_id]
        else:
            key = (cell.system, cell.seed)
            if key not in data_cache:
                data_cache[key] = load_system_data(config, cell.system, cell.seed)
            ckpt = out / "checkpoints" / cell.cell_id
            rec = run_cell(
                config, cell, data_cache[key], checkpoint_dir=ckpt, progress=progress, log=log
            )
            rec["experiments"] = list(exps)
            append_record(out / "cells.jsonl", rec)
            shutil.rmtree(ckpt, ignore_errors=True)
            if log is not None:
                log(
                    f"[{i + 1}/{len(plan)}] {cell.cell_id}: D={rec['distortion']:.4f} "
                    f"val_loss={rec['best_val_loss']:.4f} ({rec['train_seconds']:.1f}s)"
                )
        rec = dict(rec)
        rec["experiments"] = list(exps)
        records.append(rec)
    summary = summarize(config, records)
    result = {
        "config": config.to_dict(),
        "fingerprint": config_fingerprint(config),
        "records": records,
        "summary": summary,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_outputs(out, result, figures=figures)
    return result
