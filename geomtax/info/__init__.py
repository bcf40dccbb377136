"""Mutual information: Equinox critics, variational bounds, checked fits, KSG and calibration.

See ``docs/api/info.md`` for every formula, its bias/variance caveats and the conventions.
"""

from ._bounds import DV as DV
from ._bounds import MINE as MINE
from ._bounds import NWJ as NWJ
from ._bounds import SMILE as SMILE
from ._bounds import AbstractBound as AbstractBound
from ._bounds import CriticScores as CriticScores
from ._bounds import InfoNCE as InfoNCE
from ._bounds import MineState as MineState
from ._bounds import dv_bound as dv_bound
from ._bounds import infonce_bound as infonce_bound
from ._bounds import init_mine_state as init_mine_state
from ._bounds import mine_bound as mine_bound
from ._bounds import nwj_bound as nwj_bound
from ._bounds import smile_bound as smile_bound
from ._calibrate import CalibratedMIResult as CalibratedMIResult
from ._calibrate import calibrated_mi as calibrated_mi
from ._critics import AbstractCritic as AbstractCritic
from ._critics import ConcatCritic as ConcatCritic
from ._critics import SeparableCritic as SeparableCritic
from ._fit import KSG as KSG
from ._fit import mine_heldout as mine_heldout
from ._fit import mine_train_tail as mine_train_tail
from ._fit import mutual_information as mutual_information
from ._ksg import KSGResult as KSGResult
from ._ksg import ksg_mi as ksg_mi
from ._preprocess import PCAResult as PCAResult
from ._preprocess import ZScoreResult as ZScoreResult
from ._preprocess import copula as copula
from ._preprocess import pca as pca
from ._preprocess import zscore as zscore
from ._rules import MIResult as MIResult
from ._train import mine_step as mine_step

__all__ = [
    "DV",
    "KSG",
    "MINE",
    "NWJ",
    "SMILE",
    "AbstractBound",
    "AbstractCritic",
    "CalibratedMIResult",
    "ConcatCritic",
    "CriticScores",
    "InfoNCE",
    "KSGResult",
    "MIResult",
    "MineState",
    "PCAResult",
    "SeparableCritic",
    "ZScoreResult",
    "calibrated_mi",
    "copula",
    "dv_bound",
    "infonce_bound",
    "init_mine_state",
    "ksg_mi",
    "mine_bound",
    "mine_heldout",
    "mine_step",
    "mine_train_tail",
    "mutual_information",
    "nwj_bound",
    "pca",
    "smile_bound",
    "zscore",
]
