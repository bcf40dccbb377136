"""Training loop and encoder/head ablation drivers (outer namespace; uses Flax).

``train`` (one jitted AdamW step, best-validation checkpoint, Jacobian penalty, orbax resume),
the ablation configuration and drivers behind ``geomtax ablation``, and result serialisation.
See ``docs/api/experiments.md`` and ``docs/guides/ablation.md``.
"""

from ._ablations import EXPERIMENTS as EXPERIMENTS
from ._ablations import PRESETS as PRESETS
from ._ablations import SYSTEMS as SYSTEMS
from ._ablations import AblationConfig as AblationConfig
from ._ablations import Cell as Cell
from ._ablations import config_fingerprint as config_fingerprint
from ._ablations import plan_cells as plan_cells
from ._ablations import preset_config as preset_config
from ._ablations import run_ablation as run_ablation
from ._ablations import run_cell as run_cell
from ._ablations import shattering_epoch as shattering_epoch
from ._ablations import summarize as summarize
from ._records import format_summary as format_summary
from ._records import markdown_table as markdown_table
from ._records import write_outputs as write_outputs
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
    "SYSTEMS",
    "AblationConfig",
    "Cell",
    "TrainConfig",
    "TrainLog",
    "config_fingerprint",
    "format_summary",
    "jacobian_penalty_fro",
    "jacobian_penalty_mean",
    "make_optimizer",
    "make_train_step",
    "markdown_table",
    "plan_cells",
    "preset_config",
    "run_ablation",
    "run_cell",
    "shattering_epoch",
    "summarize",
    "train",
    "write_outputs",
]
