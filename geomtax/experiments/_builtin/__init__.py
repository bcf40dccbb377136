"""The built-in ablation experiments, one module each, in the order they run.

Adding an experiment to the library: write ``<name>.py`` here (a subclass of
:class:`geomtax.experiments.Experiment`) and append an instance to ``BUILTIN``.
"""

from .architecture import Architecture
from .attention import Attention
from .codebook import Codebook
from .head import Head
from .hyena_order import HyenaOrder
from .jacobian import Jacobian

BUILTIN = (Head(), Architecture(), Codebook(), Jacobian(), Attention(), HyenaOrder())
