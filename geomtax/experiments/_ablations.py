"""Ablation drivers: head, architecture spread, codebook, Jacobian, attention ratio, Hyena order.

Definitions: docs/reference/systems.md (data, tokenisation, perturbations),
docs/reference/models.md (models, heads, training, variants, headlines) and
docs/reference/rate-distortion.md#scaling-law (the "shattering" epoch). Every cell trains one
model from scratch, embeds clean and perturbed evaluation sequences and measures Procrustes
distortion with ``geomtax.geometry``. Results are appended to ``cells.jsonl`` as each cell
finishes; training state is checkpointed per epoch with orbax, so an interrupted run resumes
where it stopped.
"""

import dataclasses
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .._errors import check_choice
from .._status import PRECEDENCE, status_name
from ..geometry import (
    cka,
    continuity,
    knn_overlap,
    procrustes_distortion,
    rdm_similarity,
    stress,
    trustworthiness,
)
from ..models._encoders import ARCHITECTURES, EncoderConfig
from ..models._heads import SequenceModel, embed, init_model
from ._train import TrainConfig, train

#: CLI system name -> ``geomtax.dynamics.generate`` name and options.
#: Reference time span of each system at 512 samples: (t1, endpoint included).
_REFERENCE_SPAN = {
    "lorenz": (25.0, True),
    "waveform": (1.0, False),
    "damped_oscillator": (4.0, False),
    "coupled_lorenz": (25.0, True),
}
SYSTEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "lorenz": ("lorenz", {}),
    "waveform": ("waveform", {}),
    "oscillator": ("damped_oscillator", {}),
    "coupled-lorenz": ("coupled_lorenz", {"num_oscillators": 2}),
}
"""CLI system name -> (``geomtax.dynamics`` generator name, generator options)."""

EXPERIMENTS = ("head", "architecture", "codebook", "jacobian", "attention", "hyena-order")
"""Experiments of ``geomtax ablation`` (docs/reference/models.md#ablations)."""

PRESETS = ("tiny", "quick", "paper")
"""Named configurations accepted by :func:`preset_config`."""

_PAPER_ATTENTION = (
    (),
    (4,),
    (3, 7),
    (2, 5, 7),
    (1, 3, 5, 7),
    (1, 2, 4, 6, 7),
    (0, 1, 3, 5, 6, 7),
    (0, 1, 2, 3, 5, 6, 7),
    (0, 1, 2, 3, 4, 5, 6, 7),
)


class AblationConfig(eqx.Module):
    """Everything that defines an ablation run (static; serialised to ``config.json``).

    Attributes:
        preset: name of the preset it came from.
        systems: CLI system names (keys of ``SYSTEMS``).
        architectures: encoders of the head / architecture experiments.
        experiments: subset of ``EXPERIMENTS``.
        encoder: base encoder hyper-parameters (``architecture`` is set per cell).
        train: optimiser and loop settings.
        num_train: training sequences per system.
        num_val: validation sequences (the loss that selects the best epoch).
        num_eval: evaluation sequences embedded clean and perturbed.
        num_trajectory: evaluation rows used for the per-epoch distortion trajectory (0 = off).
        seq_len: sequence length.
        num_bins: uniform tokenizer bins K (vocab K + 2: PAD and MASK).
        noise_rates: value-noise rates (docs/reference/systems.md#perturbations).
        seeds: integer seeds; each seed is a full replicate.
        codebook_sizes: k-means codebook sizes of the codebook experiment.
        codebook_architecture: encoder of the codebook experiment.
        jacobian_lambdas: penalty weights of the Jacobian experiment (0 = reference).
        jacobian_architectures: encoders of the Jacobian experiment.
        attention_layers: number of layers of the attention-ratio experiment.
        attention_patterns: attention layer sets of the attention-ratio experiment.
        hyena_orders: Hyena orders of the filter-order experiment.
        hyena_attention_layers: attention layers used in the Hyena-order experiment.
        embed_batch_size: rows per forward pass when embedding.
        reference_dt: keep the reference sampling step (``t1`` scaled by ``seq_len / 512``)
            when ``seq_len < 512``, i.e. a shorter window at the same resolution; ``False`` =
            the system's default span resampled to ``seq_len`` points.
    """

    preset: str = eqx.field(static=True)
    systems: tuple[str, ...] = eqx.field(static=True)
    architectures: tuple[str, ...] = eqx.field(static=True)
    experiments: tuple[str, ...] = eqx.field(static=True)
    encoder: EncoderConfig = eqx.field(static=True)
    train: TrainConfig = eqx.field(static=True)
    num_train: int = eqx.field(static=True)
    num_val: int = eqx.field(static=True)
    num_eval: int = eqx.field(static=True)
    num_trajectory: int = eqx.field(static=True)
    seq_len: int = eqx.field(static=True)
    num_bins: int = eqx.field(static=True, default=256)
    noise_rates: tuple[float, ...] = eqx.field(static=True, default=(0.01, 0.02, 0.05, 0.1))
    seeds: tuple[int, ...] = eqx.field(static=True, default=(320,))
    codebook_sizes: tuple[int, ...] = eqx.field(static=True, default=(32, 64, 128, 256, 512, 1024))
    codebook_architecture: str = eqx.field(static=True, default="bert")
    jacobian_lambdas: tuple[float, ...] = eqx.field(
        static=True, default=(0.0, 0.001, 0.01, 0.1, 1.0)
    )
    jacobian_architectures: tuple[str, ...] = eqx.field(
        static=True, default=("bert", "striped_hyena")
    )
    attention_layers: int = eqx.field(static=True, default=8)
    attention_patterns: tuple[tuple[int, ...], ...] = eqx.field(
        static=True, default=_PAPER_ATTENTION
    )
    hyena_orders: tuple[int, ...] = eqx.field(static=True, default=(1, 2, 4, 8))
    hyena_attention_layers: tuple[int, ...] | None = eqx.field(static=True, default=None)
    embed_batch_size: int = eqx.field(static=True, default=256)
    reference_dt: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        for s in self.systems:
            check_choice("system", s, tuple(SYSTEMS))
        for a in (*self.architectures, *self.jacobian_architectures, self.codebook_architecture):
            check_choice("architecture", a, ARCHITECTURES)
        for e in self.experiments:
            check_choice("experiment", e, EXPERIMENTS)
        if not self.systems or not self.architectures or not self.experiments:
            raise ValueError("systems, architectures and experiments must be non-empty")
        if self.num_train < self.train.batch_size:
            raise ValueError(
                f"num_train={self.num_train} is smaller than batch_size="
                f"{self.train.batch_size}: too small a dataset for one batch"
            )
        if self.num_val < 1 or self.num_eval < 3:
            raise ValueError(
                f"need num_val >= 1 and num_eval >= 3; got {self.num_val}, {self.num_eval}"
            )
        if self.seq_len < 4:
            raise ValueError(f"seq_len must be >= 4, got {self.seq_len}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the fingerprint of an output directory)."""

        def conv(v):
            if isinstance(v, eqx.Module):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            return v

        return conv(self)


def preset_config(
    preset: str,
    *,
    systems: tuple[str, ...] | None = None,
    experiments: tuple[str, ...] | None = None,
    architectures: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
) -> AblationConfig:
    """Build the configuration of a named preset.

    * ``"paper"``: the reference sizes (d_model 256, 4 layers, seq_len 512, 50,000 training and
      2,000 evaluation sequences, 20 epochs, every experiment) - meant for a GPU.
    * ``"quick"``: SmallBERT and SmallLSTM at small sizes (d_model 64, 2 layers, seq_len 128,
      1,536 training sequences, 64 uniform bins, 12 epochs = 288 steps, learning rate 2e-3) and
      the head and architecture experiments on Lorenz, sampled at the reference time step;
      about 6-7 minutes on an idle 2-core CPU. Measured D_CE / D_MSE (value noise) was 1.36
      (bert) and 1.64 (lstm), rising with training length (see docs/guides/ablation.md); with 4
      epochs or 256 bins the CE models are too far from converged and the ratio is below 1.
    * ``"tiny"``: seconds-long smoke test (tests, CI).

    Args:
        preset: ``"tiny"``, ``"quick"`` or ``"paper"``.
        systems: override the systems (CLI names, e.g. ``("lorenz",)``).
        experiments: override the experiments.
        architectures: override the architectures.
        seeds: override the seeds.

    Returns:
        An :class:`AblationConfig`.

    Raises:
        ValueError: on an unknown preset, system, experiment or architecture.

    Examples:
        >>> from geomtax.experiments import preset_config
        >>> cfg = preset_config("quick")
        >>> cfg.systems, cfg.experiments, cfg.encoder.d_model
        (('lorenz',), ('head', 'architecture'), 64)
    """
    check_choice("preset", preset, PRESETS)
    if preset == "paper":
        cfg = dict(
            systems=("lorenz", "waveform", "oscillator"),
            architectures=("bert", "mamba", "striped_hyena", "lstm"),
            experiments=EXPERIMENTS,
            encoder=EncoderConfig(d_model=256, num_layers=4, d_ff=1024, max_len=512),
            train=TrainConfig(num_epochs=20, batch_size=64),
            num_train=50_000,
            num_val=2_000,
            num_eval=2_000,
            num_trajectory=500,
            seq_len=512,
        )
    elif preset == "quick":
        cfg = dict(
            systems=("lorenz",),
            architectures=("bert", "lstm"),
            experiments=("head", "architecture"),
            encoder=EncoderConfig(
                d_model=64,
                num_layers=2,
                num_heads=4,
                d_ff=256,
                max_len=128,
                attention_layers=(1,),
            ),
            train=TrainConfig(num_epochs=12, batch_size=64, learning_rate=2e-3),
            num_train=1_536,
            num_val=256,
            num_eval=512,
            num_trajectory=128,
            seq_len=128,
            num_bins=64,
            codebook_sizes=(32, 64, 128, 256, 512, 1024),
            attention_layers=4,
            attention_patterns=((), (3,), (1, 3), (0, 1, 2, 3)),
            hyena_attention_layers=(1,),
            jacobian_lambdas=(0.0, 0.01, 1.0),
            reference_dt=True,
        )
    else:
        cfg = dict(
            systems=("lorenz",),
            architectures=("bert", "lstm"),
            experiments=("head", "architecture"),
            encoder=EncoderConfig(
                d_model=16,
                num_layers=1,
                num_heads=2,
                d_ff=32,
                max_len=16,
                attention_layers=(0,),
                dropout=0.0,
            ),
            train=TrainConfig(num_epochs=2, batch_size=16),
            num_train=32,
            num_val=16,
            num_eval=16,
            num_trajectory=8,
            seq_len=16,
            num_bins=32,
            codebook_sizes=(4, 8),
            attention_layers=2,
            attention_patterns=((), (1,)),
            hyena_orders=(1, 2),
            hyena_attention_layers=(),
            jacobian_lambdas=(0.0, 0.1),
            embed_batch_size=8,
        )
    if systems is not None:
        cfg["systems"] = tuple(systems)
    if experiments is not None:
        cfg["experiments"] = tuple(experiments)
    if architectures is not None:
        cfg["architectures"] = tuple(architectures)
    if seeds is not None:
        cfg["seeds"] = tuple(int(s) for s in seeds)
    return AblationConfig(preset=preset, **cfg)


# ---------------------------------------------------------------------------------------------
# cells


@dataclasses.dataclass(frozen=True)
class Cell:
    """One trained model: where it sits in which experiment(s)."""

    system: str
    architecture: str
    head: str
    seed: int
    tokenizer: str = "uniform"  # "uniform" or "kmeans"
    num_codes: int = 0  # codebook size for "kmeans"
    jacobian_lambda: float = 0.0
    num_layers: int = 0  # 0 = the base encoder's
    attention_layers: tuple[int, ...] | None = None  # None = the base encoder's
    hyena_order: int = 0  # 0 = the base encoder's

    @property
    def cell_id(self) -> str:
        """Stable, filesystem-safe identifier."""
        parts = [self.system, self.architecture, self.head, f"s{self.seed}"]
        if self.tokenizer == "kmeans":
            parts.append(f"K{self.num_codes}")
        if self.jacobian_lambda:
            parts.append(f"jac{self.jacobian_lambda:g}")
        if self.num_layers:
            parts.append(f"L{self.num_layers}")
        if self.attention_layers is not None:
            parts.append("attn" + "-".join(map(str, self.attention_layers)))
        if self.hyena_order:
            parts.append(f"order{self.hyena_order}")
        return "_".join(parts)


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

    def add(cell: Cell, exp: str) -> None:
        plan.setdefault(cell, [])
        if exp not in plan[cell]:
            plan[cell].append(exp)

    exps = config.experiments
    for seed in config.seeds:
        for system in config.systems:
            for exp in ("head", "architecture"):
                if exp in exps:
                    for arch in config.architectures:
                        for head in ("ce", "mse"):
                            add(Cell(system, arch, head, seed), exp)
            if "codebook" in exps:
                arch = config.codebook_architecture
                add(Cell(system, arch, "mse", seed), "codebook")
                add(Cell(system, arch, "ce", seed), "codebook")
                for k in config.codebook_sizes:
                    add(Cell(system, arch, "ce", seed, "kmeans", k), "codebook")
            if "jacobian" in exps:
                for arch in config.jacobian_architectures:
                    for lam in config.jacobian_lambdas:
                        add(Cell(system, arch, "ce", seed, jacobian_lambda=float(lam)), "jacobian")
            if "attention" in exps:
                n = config.attention_layers
                for pattern in config.attention_patterns:
                    if any(i >= n for i in pattern):
                        raise ValueError(f"attention pattern {pattern} needs more than {n} layers")
                    add(
                        Cell(
                            system,
                            "striped_hyena",
                            "ce",
                            seed,
                            num_layers=n,
                            attention_layers=tuple(pattern),
                        ),
                        "attention",
                    )
                for arch in ("bert", "mamba"):
                    add(Cell(system, arch, "ce", seed, num_layers=n), "attention")
            if "hyena-order" in exps:
                for order in config.hyena_orders:
                    add(
                        Cell(
                            system,
                            "striped_hyena",
                            "ce",
                            seed,
                            attention_layers=config.hyena_attention_layers,
                            hyena_order=int(order),
                        ),
                        "hyena-order",
                    )
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
    num_layers = changes.get("num_layers", base.num_layers)
    attn = changes.get("attention_layers", base.attention_layers)
    if attn is not None:
        changes["attention_layers"] = tuple(i for i in attn if i < num_layers)
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------------------------------------
# data


class _SystemData(eqx.Module):
    train_raw: jax.Array
    val_raw: jax.Array
    eval_raw: jax.Array


def _generate(system: str, key, n: int, seq_len: int, reference_dt: bool = False) -> jax.Array:
    from ..dynamics import generate

    name, options = SYSTEMS[system]
    options = dict(options)
    if reference_dt and seq_len < 512:
        t1, endpoint = _REFERENCE_SPAN[name]
        options["t1"] = t1 * ((seq_len - 1) / 511 if endpoint else seq_len / 512)
    traj = generate(name, key=key, num_sequences=n, seq_len=seq_len, **options)
    observed = np.asarray(traj.observed, np.float32)
    keep = np.asarray(traj.valid) & np.all(np.isfinite(observed), axis=-1)
    return jnp.asarray(observed[keep])


def load_system_data(config: AblationConfig, system: str, seed: int) -> _SystemData:
    """Raw float signals for training, validation and evaluation.

    Seeds and spans: docs/reference/systems.md#common-settings.
    """
    n = config.num_train + config.num_val
    dt = config.reference_dt
    train_all = _generate(system, jax.random.key(seed), n, config.seq_len, dt)
    eval_raw = _generate(system, jax.random.key(seed + 1000), config.num_eval, config.seq_len, dt)
    n_val = min(config.num_val, max(train_all.shape[0] - config.num_train, 1))
    train_raw, val_raw = train_all[:-n_val], train_all[-n_val:]
    if train_raw.shape[0] < config.train.batch_size:
        raise ValueError(
            f"only {train_raw.shape[0]} valid training sequences for {system}, fewer than "
            f"batch_size={config.train.batch_size}"
        )
    return _SystemData(train_raw, val_raw, eval_raw)


class _Tokenized(eqx.Module):
    train_tokens: jax.Array
    train_values: jax.Array
    val_tokens: jax.Array
    val_values: jax.Array
    eval_tokens: jax.Array
    perturbed: dict[str, jax.Array]
    vocab_size: int = eqx.field(static=True)
    reconstruction_mse: float = eqx.field(static=True)


def tokenize_cell(config: AblationConfig, cell: Cell, data: _SystemData, key) -> _Tokenized:
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
    return _Tokenized(
        train_tokens=enc(data.train_raw).astype(jnp.int32),
        train_values=values["train"].astype(jnp.float32),
        val_tokens=enc(data.val_raw).astype(jnp.int32),
        val_values=values["val"].astype(jnp.float32),
        eval_tokens=eval_tokens.astype(jnp.int32),
        perturbed={k: v.astype(jnp.int32) for k, v in perturbed.items()},
        vocab_size=vocab,
        reconstruction_mse=recon,
    )


# ---------------------------------------------------------------------------------------------
# metrics


def _worst(names) -> str:
    """The worst of several status names by the library's precedence (``ok`` if all are)."""
    bad = set(names) - {"ok"}
    return next((n for n in PRECEDENCE if n in bad), "ok")


def _procrustes(x: jax.Array, y: jax.Array) -> tuple[float, str]:
    """Normalised Procrustes distortion D and its status (see docs/api/geometry.md)."""
    res = procrustes_distortion(x, y, throw=False)
    return float(res.value), status_name(res.status)


def shattering_epoch(distortions: Sequence[float], *, skip: int = 3, window: int = 3) -> int:
    r"""The "shattering" transition epoch of a per-epoch distortion trajectory.

    Definition: docs/reference/rate-distortion.md#scaling-law.

    With :math:`\Delta D_e = D_e - D_{e-1}`, epochs ``< skip`` are ignored and the transition is
    the epoch maximising the ``window``-epoch trailing rolling mean of :math:`\Delta D`. With too
    few epochs for that (fewer than ``skip + window``), it falls back to the global argmin of
    :math:`D`.

    Args:
        distortions: 1-D sequence of D per epoch (0-based epochs).
        skip: leading epochs ignored.
        window: trailing rolling-mean window.

    Returns:
        0-based epoch index (the reference reports D at ``transition - 1``).

    Examples:
        >>> from geomtax.experiments import shattering_epoch
        >>> shattering_epoch([0.5, 0.4, 0.3, 0.2, 0.2, 0.2, 0.6, 0.7, 0.7, 0.7])
        7
        >>> shattering_epoch([0.5, 0.3, 0.4])
        1
    """
    d = np.asarray(distortions, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"distortions must be a non-empty 1-D sequence; got shape {d.shape}")
    if d.size < skip + window:
        return int(np.argmin(d))
    delta = np.diff(d, prepend=np.nan)  # delta[e] = D_e - D_{e-1}
    best, best_e = -np.inf, int(np.argmin(d))
    for e in range(skip + window - 1, d.size):
        m = float(np.mean(delta[e - window + 1 : e + 1]))
        if np.isfinite(m) and m > best:
            best, best_e = m, e
    return best_e


@functools.partial(jax.jit, static_argnums=0)
def _embed_block(graphdef, state, tokens):
    return embed(nnx.merge(graphdef, state), tokens)


def _make_embedder(model: SequenceModel, batch_size: int) -> Callable[[jax.Array], jax.Array]:
    """Embed in fixed-size blocks (the last one zero-padded) so each encoder compiles once."""
    graphdef, state = nnx.split(model.encoder)

    def embed_all(tokens):
        n = tokens.shape[0]
        size = min(batch_size, n)
        pad = (-n) % size
        padded = jnp.concatenate([tokens, jnp.zeros((pad, tokens.shape[1]), tokens.dtype)])
        starts = range(0, n + pad, size)
        out = [_embed_block(graphdef, state, padded[i : i + size]) for i in starts]
        return jnp.concatenate(out, axis=0)[:n]

    return embed_all


#: Suite metrics recorded per cell (``suite_<name>`` and ``suite_<name>_status``), means over
#: the value-noise rates.
SUITE_METRICS = (
    "cka_linear",
    "rdm_similarity",
    "trustworthiness",
    "continuity",
    "knn_overlap",
    "stress",
)


def _suite(clean, emb, key, k: int) -> dict:
    """The rest of the suite on one perturbation: ``{metric: (value, status name)}``."""
    results = {
        "cka_linear": cka(clean, emb, throw=False),
        "rdm_similarity": rdm_similarity(clean, emb, metric="euclidean", key=key, throw=False),
        "trustworthiness": trustworthiness(clean, emb, k=k, throw=False),
        "continuity": continuity(clean, emb, k=k, throw=False),
        "knn_overlap": knn_overlap(clean, emb, k=k, throw=False),
        "stress": stress(clean, emb, throw=False),
    }
    return {m: (float(r.value), status_name(r.status)) for m, r in results.items()}


def _distortions(
    model, tok: _Tokenized, rows: int | None, batch_size: int, *, suite_key=None
) -> dict[str, Any]:
    """Procrustes D of clean vs each perturbation (``noise_mean`` over value-noise rates).

    Every estimator runs with ``throw=False``; each value ``out[name]`` comes with its status
    name ``out[name + "_status"]`` (a value whose status is not ``ok`` is NaN, and a mean over
    rates carries the worst status of its terms). With ``suite_key`` the rest of the suite
    (linear CKA, Spearman similarity of the Euclidean RDMs, trustworthiness, continuity,
    k-NN overlap at ``k = min(10, (n - 1) // 2)`` and raw Kruskal stress) is also computed on
    every noise perturbation and averaged over the rates, returned as ``suite_<metric>``.
    """
    embed_all = _make_embedder(model, batch_size)
    sl = slice(None) if rows is None else slice(0, rows)
    clean = embed_all(tok.eval_tokens[sl])
    out: dict[str, Any] = {}
    suite: dict[str, list[tuple[float, str]]] = {m: [] for m in SUITE_METRICS}
    num_neighbors = min(10, (clean.shape[0] - 1) // 2)
    for i, (name, pert) in enumerate(tok.perturbed.items()):
        emb = embed_all(pert[sl])
        out[name], out[f"{name}_status"] = _procrustes(clean, emb)
        if suite_key is not None and name.startswith("noise_"):
            vals = _suite(clean, emb, jax.random.fold_in(suite_key, i), num_neighbors)
            for m in SUITE_METRICS:
                suite[m].append(vals[m])
    noise = [k for k in tok.perturbed if k.startswith("noise_")]
    out["noise_mean"] = float(np.mean([out[k] for k in noise]))
    out["noise_mean_status"] = _worst(out[f"{k}_status"] for k in noise)
    if suite_key is not None:
        for m, v in suite.items():
            out[f"suite_{m}"] = float(np.mean([val for val, _ in v]))
            out[f"suite_{m}_status"] = _worst(st for _, st in v)
    return out


def run_cell(
    config: AblationConfig,
    cell: Cell,
    data: _SystemData,
    *,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one cell; return its flat result record (floats, ints, strings)."""
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
            d = _distortions(current, tok, config.num_trajectory, config.embed_batch_size)
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
    )
    train_seconds = time.perf_counter() - t0
    k_suite = jax.random.fold_in(root, 11)
    final = _distortions(best, tok, None, config.embed_batch_size, suite_key=k_suite)
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
    return record


# ---------------------------------------------------------------------------------------------
# summaries


def _select(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


#: Suite metrics shown next to D in the head table: record field -> column prefix.
_HEAD_SUITE_COLUMNS = {
    "cka_linear": "cka",
    "rdm_similarity": "rdm",
    "trustworthiness": "trust",
    "knn_overlap": "knn",
}


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

    Args:
        config: the ablation configuration.
        records: cell records from :func:`run_cell` (each with an ``experiments`` field).

    Returns:
        ``{experiment: [row, ...]}``.
    """

    def mean(rows, field="distortion"):
        vals = [r[field] for r in rows if r.get(field) is not None]
        return float(np.mean(vals)) if vals else math.nan

    def in_exp(name):
        return [r for r in records if name in r.get("experiments", [])]

    out: dict[str, list[dict]] = {}
    if "head" in config.experiments:
        rows = []
        for system in config.systems:
            for arch in config.architectures:
                sel = [r for r in in_exp("head") if r["system"] == system]
                cells = {h: _select(sel, architecture=arch, head=h) for h in ("ce", "mse")}
                ce, mse = mean(cells["ce"]), mean(cells["mse"])
                row = {
                    "system": system,
                    "architecture": arch,
                    "d_ce": ce,
                    "d_mse": mse,
                    "ratio_ce_over_mse": ce / mse if mse > 0 else math.nan,
                    "d_ce_reversal": mean(cells["ce"], "distortion_reversal"),
                    "d_mse_reversal": mean(cells["mse"], "distortion_reversal"),
                }
                for m, short in _HEAD_SUITE_COLUMNS.items():
                    for head in ("ce", "mse"):
                        row[f"{short}_{head}"] = mean(cells[head], f"suite_{m}")
                rows.append(row)
        out["head"] = rows
    if "architecture" in config.experiments:
        rows = []
        for system in config.systems:
            for head in ("ce", "mse"):
                sel = [
                    r for r in in_exp("architecture") if r["system"] == system and r["head"] == head
                ]
                per_arch = {a: mean(_select(sel, architecture=a)) for a in config.architectures}
                vals = [v for v in per_arch.values() if np.isfinite(v)]
                hi, lo = (max(vals), min(vals)) if vals else (math.nan, math.nan)
                rows.append(
                    {
                        "system": system,
                        "head": head,
                        "max_distortion": hi,
                        "min_distortion": lo,
                        "spread_max_over_min": hi / lo if lo > 0 else math.nan,
                        "argmax": max(per_arch, key=lambda a: per_arch[a]) if vals else "",
                        "argmin": min(per_arch, key=lambda a: per_arch[a]) if vals else "",
                    }
                )
        out["architecture"] = rows
    if "codebook" in config.experiments:
        rows = []
        for system in config.systems:
            sel = [r for r in in_exp("codebook") if r["system"] == system]
            for label, match in (
                ("uniform-mse", dict(tokenizer="uniform", head="mse")),
                ("uniform-ce", dict(tokenizer="uniform", head="ce")),
            ):
                s = _select(sel, **match)
                rows.append(
                    {
                        "system": system,
                        "condition": label,
                        "num_codes": config.num_bins,
                        "distortion": mean(s),
                        "reconstruction_mse": mean(s, "reconstruction_mse"),
                    }
                )
            for k in config.codebook_sizes:
                s = _select(sel, tokenizer="kmeans", num_codes=k)
                rows.append(
                    {
                        "system": system,
                        "condition": "kmeans-ce",
                        "num_codes": k,
                        "distortion": mean(s),
                        "reconstruction_mse": mean(s, "reconstruction_mse"),
                    }
                )
        out["codebook"] = rows
    if "jacobian" in config.experiments:
        rows = []
        for system in config.systems:
            for arch in config.jacobian_architectures:
                for lam in config.jacobian_lambdas:
                    s = _select(
                        in_exp("jacobian"),
                        system=system,
                        architecture=arch,
                        jacobian_lambda=float(lam),
                    )
                    rows.append(
                        {
                            "system": system,
                            "architecture": arch,
                            "jacobian_lambda": float(lam),
                            "distortion": mean(s),
                        }
                    )
        out["jacobian"] = rows
    if "attention" in config.experiments:
        rows = []
        for system in config.systems:
            sel = [r for r in in_exp("attention") if r["system"] == system]
            for pattern in config.attention_patterns:
                s = _select(
                    sel, architecture="striped_hyena", attention_layers="-".join(map(str, pattern))
                )
                rows.append(
                    {
                        "system": system,
                        "model": "striped_hyena",
                        "attention_layers": "-".join(map(str, pattern)),
                        "attention_fraction": len(pattern) / config.attention_layers,
                        "distortion": mean(s),
                    }
                )
            for arch in ("bert", "mamba"):
                s = _select(sel, architecture=arch)
                rows.append(
                    {
                        "system": system,
                        "model": arch,
                        "attention_layers": "",
                        "attention_fraction": 1.0 if arch == "bert" else 0.0,
                        "distortion": mean(s),
                    }
                )
        out["attention"] = rows
    if "hyena-order" in config.experiments:
        rows = []
        for system in config.systems:
            for order in config.hyena_orders:
                s = _select(in_exp("hyena-order"), system=system, hyena_order=int(order))
                rows.append({"system": system, "hyena_order": int(order), "distortion": mean(s)})
        out["hyena-order"] = rows
    return out


# ---------------------------------------------------------------------------------------------
# driver


def config_fingerprint(config: AblationConfig) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``config``."""
    blob = json.dumps(config.to_dict(), sort_keys=True, default=str)
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


def _load_done(out: Path) -> dict[str, dict]:
    path = out / "cells.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interruption: recompute that cell
                continue
            done[rec["cell_id"]] = rec
    return done


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

    from ._records import write_outputs

    out = Path(out)
    _prepare_dir(out, config)
    done = _load_done(out)
    plan = plan_cells(config)
    t0 = time.perf_counter()
    data_cache: dict[tuple[str, int], _SystemData] = {}
    records = []
    for i, (cell, exps) in enumerate(plan):
        if cell.cell_id in done:
            rec = done[cell.cell_id]
        else:
            key = (cell.system, cell.seed)
            if key not in data_cache:
                data_cache[key] = load_system_data(config, cell.system, cell.seed)
            ckpt = out / "checkpoints" / cell.cell_id
            rec = run_cell(config, cell, data_cache[key], checkpoint_dir=ckpt, progress=progress)
            rec["experiments"] = list(exps)
            with open(out / "cells.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
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
