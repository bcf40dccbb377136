"""Data of the ablation cells: system names, raw signals, tokens and perturbations.

Raw signals come from ``geomtax.dynamics.build_dataset``; tokens, continuous targets and
perturbed evaluation tokens are made per cell.

Definitions: docs/reference/systems.md (data, seeds and spans, tokenisation, perturbations,
codebook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp

from ..dynamics import build_dataset, get_system

if TYPE_CHECKING:
    from ._config import AblationConfig
    from ._experiment import Cell

# ---------------------------------------------------------------------------------------------
# system names: those of geomtax.dynamics' registry


def dynamics_system(system: str, *, seq_len: int, reference_dt: bool) -> tuple[str, dict]:
    """``(geomtax.dynamics name, generator options)`` of an experiment's system.

    Names are those of :func:`geomtax.dynamics.registered_systems` (one registry, one
    spelling for the API and the CLI). With ``reference_dt`` and ``seq_len`` below the
    system's reference length, ``t1`` keeps the reference sampling step (a shorter window,
    :meth:`geomtax.dynamics.System.reference_t1`); otherwise the generator's default span.
    """
    spec = get_system(system)
    options = {}
    if reference_dt and seq_len < spec.reference_seq_len:
        options["t1"] = spec.reference_t1(seq_len)
    return spec.name, options


# ---------------------------------------------------------------------------------------------
# raw signals


class SystemData(eqx.Module):
    """Raw float signals of one system and seed, shared by every cell of that pair."""

    train_raw: jax.Array
    val_raw: jax.Array
    eval_raw: jax.Array


def load_system_data(config: AblationConfig, system: str, seed: int) -> SystemData:
    """Raw float signals for training, validation and evaluation.

    :func:`geomtax.dynamics.build_dataset` with ``seed=seed`` generates
    ``num_train + num_val`` sequences from ``jax.random.key(seed)`` (the last ``num_val`` are
    the validation set) and ``num_eval`` from ``jax.random.key(seed + 1000)``; no cache.
    Seeds and spans: docs/reference/systems.md#common-settings.
    """
    name, options = dynamics_system(
        system, seq_len=config.seq_len, reference_dt=config.reference_dt
    )
    ds = build_dataset(
        name,
        seed=seed,
        num_train=config.num_train + config.num_val,
        num_eval=config.num_eval,
        seq_len=config.seq_len,
        num_bins=config.num_bins,
        system_options=options,
        cache_dir=False,
        chunk_size=None,
    )
    train_all = jnp.asarray(ds.train_values, jnp.float32)
    eval_raw = jnp.asarray(ds.eval_values, jnp.float32)
    n_val = min(config.num_val, max(train_all.shape[0] - config.num_train, 1))
    train_raw, val_raw = train_all[:-n_val], train_all[-n_val:]
    if train_raw.shape[0] < config.train.batch_size:
        raise ValueError(
            f"only {train_raw.shape[0]} valid training sequences for {system}, fewer than "
            f"batch_size={config.train.batch_size}"
        )
    return SystemData(train_raw, val_raw, eval_raw)


# ---------------------------------------------------------------------------------------------
# tokens


class Tokenized(eqx.Module):
    """Tokens, targets and perturbed evaluation tokens of one cell."""

    train_tokens: jax.Array
    train_values: jax.Array
    val_tokens: jax.Array
    val_values: jax.Array
    eval_tokens: jax.Array
    perturbed: dict[str, jax.Array]
    vocab_size: int = eqx.field(static=True)
    reconstruction_mse: float = eqx.field(static=True)


def tokenize_cell(config: AblationConfig, cell: Cell, data: SystemData, key) -> Tokenized:
    """Tokens, continuous targets and perturbed evaluation tokens of one cell.

    Uniform cells: ``uniform_bins`` fitted on the training set (vocab ``num_bins + 2``),
    perturbations = value noise at each rate plus time reversal. k-means cells: the codebook is
    fitted on the raw training values (vocab ``K + 2``), perturbations = noise in continuous space
    re-encoded by the codebook (no time reversal); see docs/reference/systems.md#perturbations
    and docs/reference/systems.md#codebook.
    """
    from .. import dynamics as dyn

    tok = dyn.uniform_bins(data.train_raw, num_bins=config.num_bins)
    values = {
        "train": tok.normalize(data.train_raw),
        "val": tok.normalize(data.val_raw),
    }
    keys = jax.random.split(key, len(config.noise_rates) + 1)
    perturbed: dict[str, jax.Array] = {}
    if cell.tokenizer == "uniform":
        enc = tok.encode
        vocab = config.num_bins + 2
        eval_tokens = enc(data.eval_raw)
        for k, rate in zip(keys, config.noise_rates, strict=False):
            perturbed[f"noise_{rate:g}"] = dyn.value_noise(
                eval_tokens, key=k, rate=rate, num_bins=config.num_bins
            )
        perturbed["reversal"] = dyn.time_reversal(eval_tokens)
        recon = float(jnp.mean((tok.decode(enc(data.train_raw)) - data.train_raw) ** 2))
    else:
        cb = dyn.kmeans_codebook(data.train_raw, num_codes=cell.num_codes, key=keys[-1])
        enc = cb.encode
        vocab = cell.num_codes + 2
        eval_tokens = enc(data.eval_raw)
        for k, rate in zip(keys, config.noise_rates, strict=False):
            perturbed[f"noise_{rate:g}"] = dyn.codebook_noise(data.eval_raw, cb, key=k, rate=rate)
        recon = float(cb.reconstruction_mse(data.train_raw))
    return Tokenized(
        train_tokens=enc(data.train_raw).astype(jnp.int32),
        train_values=values["train"].astype(jnp.float32),
        val_tokens=enc(data.val_raw).astype(jnp.int32),
        val_values=values["val"].astype(jnp.float32),
        eval_tokens=eval_tokens.astype(jnp.int32),
        perturbed={k: v.astype(jnp.int32) for k, v in perturbed.items()},
        vocab_size=vocab,
        reconstruction_mse=recon,
    )
