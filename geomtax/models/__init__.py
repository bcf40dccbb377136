"""Flax NNX sequence encoders and heads for the tax ablations (outer namespace; uses Flax).

Four causal encoders (``SmallBERT``, ``SmallMamba``, ``SmallStripedHyena``, ``SmallLSTM``), three
heads (cross-entropy, continuous MSE, fixed-code regression) and the mean-pooled embedding every
geometry metric is computed on. See ``docs/api/models.md``.
"""

from ._encoders import ARCHITECTURES as ARCHITECTURES
from ._encoders import EncoderConfig as EncoderConfig
from ._encoders import SmallBERT as SmallBERT
from ._encoders import SmallLSTM as SmallLSTM
from ._encoders import SmallMamba as SmallMamba
from ._encoders import SmallStripedHyena as SmallStripedHyena
from ._encoders import make_encoder as make_encoder
from ._heads import HEADS as HEADS
from ._heads import FixedCode as FixedCode
from ._heads import SequenceModel as SequenceModel
from ._heads import embed as embed
from ._heads import init_model as init_model
from ._heads import random_code_table as random_code_table
from ._heads import sequence_loss as sequence_loss

__all__ = [
    "ARCHITECTURES",
    "HEADS",
    "EncoderConfig",
    "FixedCode",
    "SequenceModel",
    "SmallBERT",
    "SmallLSTM",
    "SmallMamba",
    "SmallStripedHyena",
    "embed",
    "init_model",
    "make_encoder",
    "random_code_table",
    "sequence_loss",
]
