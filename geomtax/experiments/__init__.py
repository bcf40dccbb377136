"""Training loop and encoder/head ablation drivers (outer namespace; uses Flax).

``train`` (one jitted AdamW step, best-validation checkpoint, Jacobian penalty, orbax resume),
the ablation configuration and driver behind ``geomtax ablation``, the experiments (one
declaration each, ``_builtin/``; add one with :func:`register_experiment`), and result
serialisation.
See ``docs/api/experiments.md`` and ``docs/guides/ablation.md``.
"""

from ._config import PRESETS as PRESETS
from ._config import AblationConfig as AblationConfig
from ._config import preset_config as preset_config
from ._data import load_system_data as load_system_data
from ._evaluate import shattering_epoch as shattering_epoch
from ._experiment import Cell as Cell
from ._experiment import Experiment as Experiment
from ._records import format_summary as format_summary
from ._records import markdown_table as markdown_table
from ._records import write_outputs as write_outputs
from ._registry import EXPERIMENTS as EXPERIMENTS
from ._registry import get_experiment as get_experiment
from ._registry import register_experiment as register_experiment
from ._registry import registered_experiments as registered_experiments
from ._run import config_fingerprint as config_fingerprint
from ._run import plan_cells as plan_cells
from ._run import run_ablation as run_ablation
from ._run import run_cell as run_cell
from ._run import summarize as summarize
from ._train import TrainConfig as TrainConfig
from ._train import TrainLog as TrainLog
from ._train import jacobian_penalty_fro as jacobian_penalty_fro
from ._train import jacobian_penalty_mean as jacobian_penalty_mean
from ._train import make_optimizer as make_optimizer
from ._train import make_train_step as make_train_step
from ._train import train as train

__all__ = [
    "EXPERIMENTS",
    "PRESETS",
    "AblationConfig",
    "Cell",
    "Experiment",
    "TrainConfig",
    "TrainLog",
    "config_fingerprint",
    "format_summary",
    "get_experiment",
    "jacobian_penalty_fro",
    "jacobian_penalty_mean",
    "load_system_data",
    "make_optimizer",
    "make_train_step",
    "markdown_table",
    "plan_cells",
    "preset_config",
    "register_experiment",
    "registered_experiments",
    "run_ablation",
    "run_cell",
    "shattering_epoch",
    "summarize",
    "train",
    "write_outputs",
]
