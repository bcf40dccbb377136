"""geomtax: JAX-native estimators of the Geometric Alignment Tax.

The core namespaces (``geometry``, ``info``, ``rd``, ``dynamics``) depend only on jax, equinox,
diffrax, optax and numpy, and never import Flax. Their public names are re-exported here.
Importing geomtax creates no device arrays.
"""

from . import dynamics as dynamics
from . import geometry as geometry
from . import info as info
from . import rd as rd
from ._status import AbstractResult as AbstractResult
from ._status import Estimate as Estimate
from ._status import Status as Status
from ._status import StatusError as StatusError
from ._status import status_name as status_name
from ._version import __version__ as __version__
from .geometry import *  # noqa: F403  (curated by geometry.__all__)
from .info import *  # noqa: F403
from .rd import *  # noqa: F403

__all__ = [
    "__version__",
    "AbstractResult",
    "Estimate",
    "Status",
    "StatusError",
    "status_name",
    "dynamics",
    "geometry",
    "info",
    "rd",
    *geometry.__all__,
    *info.__all__,
    *rd.__all__,
]
