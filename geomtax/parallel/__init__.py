"""Sharded execution on JAX's own multi-device machinery (``jax.sharding``, ``jax.distributed``).

Primitives: :func:`make_mesh`, :func:`shard_rows` (row tiles across devices, reference set
replicated), :func:`shard_sweep` (a vmapped sweep axis sharded across devices) and
:func:`initialize_distributed` (multi-host start-up). Entry points built on them:
:func:`sharded_pairwise_distances`, :func:`sharded_knn_search`,
:func:`sharded_mutual_information` and :func:`sharded_rd_curve`. Each returns what the
single-device function returns: the distance, k-NN and rate-distortion ones *are* the core
functions called with ``mesh=`` (one implementation, in the core's
``geomtax._sharding``); the MI one is ``vmap(mutual_information)`` over PRNG keys.
"""

from .._sharding import (
    shard_rows as shard_rows,
)
from .._sharding import (
    shard_sweep as shard_sweep,
)
from ._entry import (
    sharded_knn_search as sharded_knn_search,
)
from ._entry import (
    sharded_mutual_information as sharded_mutual_information,
)
from ._entry import (
    sharded_pairwise_distances as sharded_pairwise_distances,
)
from ._entry import (
    sharded_rd_curve as sharded_rd_curve,
)
from ._mesh import (
    initialize_distributed as initialize_distributed,
)
from ._mesh import (
    make_mesh as make_mesh,
)
from ._mesh import (
    multihost_requested as multihost_requested,
)

__all__ = [
    "initialize_distributed",
    "make_mesh",
    "multihost_requested",
    "shard_rows",
    "shard_sweep",
    "sharded_knn_search",
    "sharded_mutual_information",
    "sharded_pairwise_distances",
    "sharded_rd_curve",
]
