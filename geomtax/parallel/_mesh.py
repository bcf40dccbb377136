"""Device meshes and multi-host initialisation, on JAX's own machinery."""

import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

#: Environment variables whose presence means "this process is one of several hosts".
_MULTIHOST_HINTS = (
    "JAX_COORDINATOR_ADDRESS",  # explicit coordinator (with JAX_NUM_PROCESSES / JAX_PROCESS_ID)
    "SLURM_STEP_NUM_TASKS",  # srun with several tasks
    "OMPI_COMM_WORLD_SIZE",  # mpirun (Open MPI)
    "MEGASCALE_COORDINATOR_ADDRESS",  # multi-slice TPU
    "TPU_WORKER_HOSTNAMES",  # TPU pod slice
)


def make_mesh(
    num_devices: int | None = None,
    *,
    axis_name: str = "data",
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """A one-dimensional device mesh for data-parallel (row or sweep) sharding.

    Every sharded entry point in :mod:`geomtax.parallel` splits a single axis of work (query
    rows, seeds, critics, betas) over the devices of a 1-D :class:`jax.sharding.Mesh`.

    Args:
        num_devices: how many devices to use (the first ``num_devices`` of ``devices``);
            ``None`` uses all of them.
        axis_name: name of the mesh axis (used in the ``PartitionSpec`` of sharded arrays).
        devices: candidate devices; defaults to ``jax.devices()`` (all devices of all hosts
            after ``jax.distributed.initialize``). Pass ``jax.local_devices()`` for a per-host
            mesh.

    Returns:
        A :class:`jax.sharding.Mesh` of shape ``(num_devices,)`` with axis ``axis_name``.

    Raises:
        ValueError: if ``num_devices`` is not in ``[1, len(devices)]``.

    Examples:
        >>> mesh = make_mesh(1)
        >>> mesh.shape["data"]
        1
    """
    devs = list(jax.devices() if devices is None else devices)
    if num_devices is None:
        num_devices = len(devs)
    if not isinstance(num_devices, int) or not 1 <= num_devices <= len(devs):
        raise ValueError(
            f"num_devices must be an integer in [1, {len(devs)}] (the available devices); "
            f"got {num_devices!r}"
        )
    if not isinstance(axis_name, str) or not axis_name:
        raise ValueError(f"axis_name must be a non-empty string; got {axis_name!r}")
    return Mesh(np.asarray(devs[:num_devices], dtype=object), (axis_name,))


def multihost_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment describes a multi-process (multi-host) JAX job.

    True when ``JAX_COORDINATOR_ADDRESS`` is set, or a cluster launcher (SLURM ``srun``, Open MPI
    ``mpirun``, a TPU pod) reports more than one process.

    Examples:
        >>> multihost_requested({})
        False
        >>> multihost_requested({"OMPI_COMM_WORLD_SIZE": "4"})
        True
    """
    env = os.environ if environ is None else environ
    for name in _MULTIHOST_HINTS:
        value = env.get(name)
        if not value:
            continue
        if name == "TPU_WORKER_HOSTNAMES":
            if "," in value:
                return True
        elif name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
            if value.isdigit() and int(value) > 1:
                return True
        else:
            return True
    return False


def initialize_distributed(*, force: bool = False) -> bool:
    """Call :func:`jax.distributed.initialize` when running as one of several hosts.

    Must run before any other JAX call that touches devices. With ``JAX_COORDINATOR_ADDRESS``
    set, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (integers) are passed through; otherwise
    JAX's cluster auto-detection (SLURM, Open MPI, TPU pods, GKE) fills them in.

    Args:
        force: initialise even when :func:`multihost_requested` sees no multi-host hints.

    Returns:
        True if ``jax.distributed.initialize`` was called (now or by an earlier call), False
        for a single-process run.
    """
    if getattr(initialize_distributed, "_done", False):
        return True
    if not (force or multihost_requested()):
        return False
    kwargs = {}
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        kwargs["coordinator_address"] = os.environ["JAX_COORDINATOR_ADDRESS"]
        for env, kw in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
            if os.environ.get(env):
                kwargs[kw] = int(os.environ[env])
    jax.distributed.initialize(**kwargs)
    initialize_distributed._done = True
    return True
