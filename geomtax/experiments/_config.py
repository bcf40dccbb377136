"""The configuration of an ablation run and its named presets.

Each experiment's own preset values (codebook sizes, penalty weights, attention patterns, Hyena
orders) are declared in its module (``Experiment.presets``) and merged here.
"""

import dataclasses
from typing import Any

import equinox as eqx

from .._errors import check_choice
from ..dynamics import registered_systems
from ..models._encoders import ARCHITECTURES, EncoderConfig
from ._builtin.attention import PAPER_PATTERNS
from ._registry import EXPERIMENTS, get_experiment, registered_experiments
from ._train import TrainConfig

PRESETS = ("tiny", "quick", "paper")
"""Named configurations accepted by :func:`preset_config`."""

#: what the ``quick`` and ``tiny`` presets run (they differ only in sizes)
_SMALL_AXES = dict(
    systems=("lorenz",), architectures=("bert", "lstm"), experiments=("head", "architecture")
)


class AblationConfig(eqx.Module):
    """Everything that defines an ablation run (static; serialised to ``config.json``).

    Attributes:
        preset: name of the preset it came from.
        systems: system names (``geomtax.dynamics.registered_systems()``).
        architectures: encoders of the head / architecture experiments.
        experiments: names of registered experiments (``EXPERIMENTS`` and those added with
            :func:`register_experiment`).
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
    attention_patterns: tuple[tuple[int, ...], ...] = eqx.field(static=True, default=PAPER_PATTERNS)
    hyena_orders: tuple[int, ...] = eqx.field(static=True, default=(1, 2, 4, 8))
    hyena_attention_layers: tuple[int, ...] | None = eqx.field(static=True, default=None)
    embed_batch_size: int = eqx.field(static=True, default=256)
    reference_dt: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        for s in self.systems:
            check_choice("system", s, registered_systems())
        for a in (*self.architectures, *self.jacobian_architectures, self.codebook_architecture):
            check_choice("architecture", a, ARCHITECTURES)
        for e in self.experiments:
            check_choice("experiment", e, registered_experiments())
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
            systems=("lorenz", "waveform", "damped_oscillator"),
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
            **_SMALL_AXES,
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
            reference_dt=True,
        )
    else:
        cfg = dict(
            **_SMALL_AXES,
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
            embed_batch_size=8,
        )
    for name in registered_experiments():  # each experiment's own values of the preset
        cfg.update(get_experiment(name).presets.get(preset, {}))
    if systems is not None:
        cfg["systems"] = tuple(systems)
    if experiments is not None:
        cfg["experiments"] = tuple(experiments)
    if architectures is not None:
        cfg["architectures"] = tuple(architectures)
    if seeds is not None:
        cfg["seeds"] = tuple(int(s) for s in seeds)
    return AblationConfig(preset=preset, **cfg)
