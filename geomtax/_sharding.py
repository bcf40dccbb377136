"""Core-level sharding primitives: row tiles across devices, and vmapped sweeps with a sharded axis.

The core (``geometry``, ``info``, ``rd``) implements its ``mesh=`` options with these two
functions; :mod:`geomtax.parallel` re-exports them for users together with the mesh set-up
(``make_mesh``, ``initialize_distributed``). Nothing here imports the rest of geomtax.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Shaped


def mesh_axis(mesh: Mesh, axis_name: str | None = None) -> str:
    """Name of the (single) axis to shard over; validates ``mesh`` and ``axis_name``."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh; got {type(mesh).__name__}")
    if axis_name is None:
        if len(mesh.axis_names) != 1:
            raise ValueError(
                f"mesh has axes {mesh.axis_names}; pass axis_name= to choose the one to shard over"
            )
        return mesh.axis_names[0]
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
    return axis_name


def _pad_repeat_last(a, pad: int):
    """Pad the leading axis of ``a`` by repeating its last entry (valid input, never zeros)."""
    if pad == 0:
        return a
    tail = jnp.broadcast_to(a[-1:], (pad, *a.shape[1:]))
    return jnp.concatenate([a, tail], axis=0)


def _pad_zeros(a, pad: int):
    if pad == 0:
        return a
    return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))


def _constrain(tree, sharding):
    """``with_sharding_constraint`` on the array leaves of ``tree`` (other leaves untouched)."""
    return jax.tree_util.tree_map(
        lambda a: lax.with_sharding_constraint(a, sharding) if eqx.is_array(a) else a, tree
    )


@eqx.filter_jit
def _rows_impl(fn, x, replicated, mesh, axis, n):
    per = x.shape[0] // mesh.shape[axis]

    def local(xl, rep):
        start = lax.axis_index(axis) * per
        valid = (start + jnp.arange(per)) < n
        return fn(xl, start, valid, *rep)

    rep_specs = jax.tree_util.tree_map(lambda _: P(), replicated)
    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(P(axis), rep_specs), out_specs=P(axis), check_vma=False
    )
    return mapped(x, replicated)


def shard_rows(
    fn: Callable[..., Any],
    x: Shaped[Array | np.ndarray, "n ..."],
    *replicated: Any,
    mesh: Mesh,
    axis_name: str | None = None,
) -> Any:
    r"""Split the rows of ``x`` across the devices of ``mesh`` and compute ``fn`` on each slice.

    Device :math:`p` of :math:`P` receives the contiguous query rows
    :math:`[p\,\lceil n/P \rceil, (p+1)\lceil n/P \rceil)` of ``x`` (zero-padded at the end) and a
    replicated copy of every array in ``replicated`` (typically the full reference set), and
    calls ``fn(rows, start, valid, *replicated)`` where ``start`` is the global index of its first
    row and ``valid`` (rows,) masks the padding. The per-device outputs (pytrees whose leaves have
    the row axis first) are concatenated back in row order and the padding is dropped. Runs as a
    ``jax.shard_map`` inside ``jit``; no communication happens between devices.

    Args:
        fn: row-tile function ``fn(rows, start, valid, *replicated) -> pytree``. Pass a
            ``jax.tree_util.Partial`` (or a module-level function) to reuse the compiled program
            across calls; a fresh closure recompiles.
        x: array of shape (n, ...); its rows are split.
        *replicated: arrays copied to every device.
        mesh: a :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        axis_name: mesh axis to split over; defaults to the mesh's only axis.

    Returns:
        The pytree of ``fn``'s outputs for all ``n`` rows, leading axis ``n``, laid out across
        devices by rows (``NamedSharding(mesh, P(axis_name))`` before the padding is trimmed).

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> mesh = make_mesh(1)
        >>> f = lambda rows, start, valid, ref: rows @ ref.T
        >>> shard_rows(f, jnp.eye(3), jnp.ones((2, 3)), mesh=mesh).shape
        (3, 2)
    """
    axis = mesh_axis(mesh, axis_name)
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have at least one row; got shape {x.shape}")
    n = x.shape[0]
    devices = mesh.shape[axis]
    per = -(-n // devices)
    xp = _pad_zeros(x, per * devices - n)
    replicated = tuple(jnp.asarray(r) if not eqx.is_array(r) else r for r in replicated)
    out = _rows_impl(fn, xp, replicated, mesh, axis, n)
    return jax.tree_util.tree_map(lambda o: o[:n], out)


@eqx.filter_jit
def _sweep_impl(fn, batched, shared, batch_sharding, replicated_sharding):
    batched = _constrain(batched, batch_sharding)
    shared = _constrain(shared, replicated_sharding)
    in_axes = (0,) * len(batched) + (None,) * len(shared)
    out = eqx.filter_vmap(fn, in_axes=in_axes)(*batched, *shared)
    return _constrain(out, batch_sharding)


def shard_sweep(
    fn: Callable[..., Any],
    *batched_args: Any,
    mesh: Mesh,
    shared: tuple = (),
    axis_name: str | None = None,
) -> Any:
    r"""Run ``vmap(fn)`` over a sweep axis that is sharded across the devices of ``mesh``.

    Computes :math:`[\,fn(a_1[i], \dots, a_k[i], *shared)\,]_{i < B}` for batched arguments
    :math:`a_j` with a common leading (sweep) axis of length :math:`B` -- seeds or PRNG keys of
    MI critic fits, betas of Blahut--Arimoto, hyperparameters. The sweep axis is padded to a
    multiple of the device count by repeating its last entry (so padding never feeds an invalid
    value such as ``beta = 0`` to ``fn``), laid out with ``NamedSharding(mesh, P(axis_name))``,
    run as one jitted, vmapped program (XLA's SPMD partitioner gives each device its slice), and
    trimmed back to :math:`B`. ``shared`` arguments are replicated and not vmapped.

    Args:
        fn: function of one sweep point; must be vmappable. Reuse the same function object
            (or an equal ``jax.tree_util.Partial``) to avoid recompiling.
        *batched_args: pytrees of arrays (PRNG key arrays included) with leading axis B.
        mesh: a :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        shared: extra positional arguments passed unbatched to every call (arrays are
            replicated on every device; non-array values are static).
        axis_name: mesh axis to shard over; defaults to the mesh's only axis.

    Returns:
        The vmapped output of ``fn``: a pytree whose array leaves have leading axis B.

    Raises:
        ValueError: if no batched argument is given or their leading axes differ.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> mesh = make_mesh(1)
        >>> shard_sweep(lambda b, c: b * c, jnp.arange(3.0), mesh=mesh, shared=(2.0,)).tolist()
        [0.0, 2.0, 4.0]
    """
    axis = mesh_axis(mesh, axis_name)
    if not batched_args:
        raise ValueError("shard_sweep needs at least one batched argument")
    leaves = [leaf for a in batched_args for leaf in jax.tree_util.tree_leaves(a)]
    if not leaves or not all(eqx.is_array(leaf) and leaf.ndim >= 1 for leaf in leaves):
        raise ValueError(
            "every leaf of the batched arguments must be an array with a leading sweep axis; got "
            f"{[getattr(leaf, 'shape', type(leaf).__name__) for leaf in leaves]}"
        )
    sizes = {leaf.shape[0] for leaf in leaves}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "batched arguments must share one non-empty leading axis; got leading sizes "
            f"{sorted(sizes)}"
        )
    (size,) = sizes
    devices = mesh.shape[axis]
    pad = (-size) % devices
    batched = tuple(
        jax.tree_util.tree_map(lambda a: _pad_repeat_last(a, pad), arg) for arg in batched_args
    )
    out = _sweep_impl(
        fn,
        batched,
        tuple(shared),
        NamedSharding(mesh, P(axis)),
        NamedSharding(mesh, P()),
    )
    return jax.tree_util.tree_map(lambda o: o[:size] if eqx.is_array(o) else o, out)
