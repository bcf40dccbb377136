"""Sharded entry points of the three estimator families (distances, MI critics, rate-distortion).

Each one splits the work of a public single-device geomtax function across a device mesh and
returns the same values (to float tolerance): row tiles for the pairwise kernels, the sweep axis
(PRNG keys, betas) for the vmapped critic fits and Blahut--Arimoto.
"""

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from jax.sharding import Mesh
from jax.tree_util import Partial
from jaxtyping import Array, Float, Int, Key

from .._custom_types import Samples
from .._sharding import mesh_axis, shard_sweep
from .._status import AbstractResult, finish
from ..geometry import knn_search, pairwise_distances
from ..info import mutual_information
from ..rd import RDCurve, rd_curve


def sharded_pairwise_distances(
    x: Samples,
    y: Float[Array | np.ndarray, "m d"] | None = None,
    *,
    mesh: Mesh,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
) -> Float[Array, "n m"]:
    r""":func:`geomtax.pairwise_distances` with the query rows split across devices.

    The same function as ``pairwise_distances(x, y, mesh=mesh, ...)`` (one implementation):
    each device computes :math:`D_{ij} = d(x_i, y_j)` for its slice of rows :math:`i` against
    the full, replicated ``y`` (``y = x`` by default, with an exact zero diagonal), walking its
    rows ``block_size`` at a time. Conventions are those of :func:`geomtax.pairwise_distances`.

    Args:
        x: array of shape (n, d).
        y: optional array of shape (m, d); defaults to ``x``.
        mesh: a 1-D :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile on each device (``"auto"``: tiles <= 64 MiB; ``None``: one
            dense pass per device).

    Returns:
        Array of shape (n, m), the single-device function's result.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> d = sharded_pairwise_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]]), mesh=make_mesh(1))
        >>> d.tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    mesh_axis(mesh)
    return pairwise_distances(x, y, metric=metric, block_size=block_size, mesh=mesh)


def sharded_knn_search(
    x: Samples,
    k: int,
    *,
    mesh: Mesh,
    metric: str = "euclidean",
    block_size: int | str | None = "auto",
) -> tuple[Float[Array, "n k"], Int[Array, "n k"]]:
    """:func:`geomtax.knn_search` with the query rows split across devices.

    The same function as ``knn_search(x, k, mesh=mesh, ...)``: each device finds the ``k``
    nearest neighbours of its slice of rows among all ``n`` rows (replicated), excluding each
    row itself by its global index; ties go to the lower index, and the k distances are
    refined from the coordinate differences, as in the single-device kernel. Memory per device
    is O(block_size * n).

    Args:
        x: array of shape (n, d).
        k: number of neighbours, ``1 <= k < n``.
        mesh: a 1-D :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile on each device (``"auto"``, an int, or ``None``).

    Returns:
        ``(distances, indices)``, both (n, k), sorted by increasing distance.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> d, i = sharded_knn_search(jnp.array([[0.0], [1.0], [3.0]]), 1, mesh=make_mesh(1))
        >>> i[:, 0].tolist()
        [1, 0, 1]
    """
    mesh_axis(mesh)
    return knn_search(x, k, metric=metric, block_size=block_size, mesh=mesh)


def _no_throw(fn, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``throw=False`` added when ``fn`` takes ``throw`` and it is not set.

    The sharded entry points run every point with ``throw=False`` (an error inside the sharded
    ``vmap`` would abort the whole batch) and apply the library's ``throw`` rule once, on the
    host, to the stacked result (:func:`geomtax._status.finish`).
    """
    try:
        takes = "throw" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes = False
    return {**options, "throw": False} if takes and "throw" not in options else dict(options)


def _finish(result, *, throw: bool, function: str):
    if isinstance(result, AbstractResult):
        return finish(result, throw=throw, function=function)
    return result


def _mi_point(key, x, y, *, fn, options):
    return fn(x, y, key=key, **dict(options))


def sharded_mutual_information(
    x: Samples,
    y: Float[Array | np.ndarray, "n e"],
    *,
    keys: Key[Array, " b"],
    mesh: Mesh,
    fn: Callable[..., Any] | None = None,
    axis_name: str | None = None,
    throw: bool = True,
    **options: Any,
) -> Any:
    r"""Independent MI critic fits, one per PRNG key, with the keys sharded across devices.

    Computes ``vmap(lambda key: fn(x, y, key=key, **options))(keys)`` where ``fn`` defaults to
    :func:`geomtax.info.mutual_information`: each device trains its share of the critics (seeds)
    on the replicated samples ``x``, ``y``. The per-key results equal the single-device calls
    with the same keys.

    Args:
        x: samples of shape (n, d_x).
        y: samples of shape (n, d_y), paired with ``x`` row by row.
        keys: PRNG key array of shape (B,) (e.g. ``jax.random.split(key, B)``).
        mesh: a 1-D :class:`jax.sharding.Mesh`.
        fn: the estimator ``fn(x, y, *, key, **options)``; defaults to
            ``geomtax.info.mutual_information``.
        axis_name: mesh axis to shard over; defaults to the mesh's only axis.
        throw: raise :class:`geomtax.StatusError` (one line) if any fit's status is not
            ``ok``; with ``throw=False`` the stacked result is returned with a status per key.
            Every fit runs with ``throw=False`` inside the sharded ``vmap``; the rule is applied
            once to the stacked result (results with a ``status`` only).
        **options: keyword options forwarded to ``fn`` (static values: hashable).

    Returns:
        ``fn``'s result with a leading axis of length B on every array (nats); for the default
        ``fn`` a :class:`geomtax.info.MIResult` whose ``status`` has shape (B,).

    Raises:
        StatusError: with ``throw=True``, when a fit's status is not ``ok``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> est = lambda x, y, *, key: jnp.mean(x * y) + 0.0 * jax.random.normal(key)
        >>> keys = jax.random.split(jax.random.key(0), 3)
        >>> out = sharded_mutual_information(jnp.ones((4, 1)), jnp.ones((4, 1)), keys=keys,
        ...                                  mesh=make_mesh(1), fn=est)
        >>> out.tolist()
        [1.0, 1.0, 1.0]
    """
    fn = mutual_information if fn is None else fn
    opts = _no_throw(fn, options)
    point = Partial(_mi_point, fn=fn, options=tuple(sorted(opts.items())))
    out = shard_sweep(point, keys, mesh=mesh, shared=(x, y), axis_name=axis_name)
    return _finish(out, throw=throw, function="sharded_mutual_information")


def sharded_rd_curve(
    p_x: Float[Array | np.ndarray, " n"],
    dist: Float[Array | np.ndarray, "n m"],
    betas: Float[Array | np.ndarray, " b"],
    *,
    mesh: Mesh,
    throw: bool = True,
    **options: Any,
) -> RDCurve:
    r"""A Blahut--Arimoto rate--distortion curve with the betas sharded across devices.

    The same function as ``rd_curve(p_x, dist, betas=betas, mesh=mesh, **options)`` (one
    implementation, the same :class:`geomtax.rd.RDCurve`): every device solves its share of the
    slopes :math:`\beta` of :math:`\min_{q(\hat x|x)} I(X;\hat X) + \beta\,\mathbb{E}[d(X,\hat X)]`
    for the replicated source ``p_x`` and distortion matrix ``dist``. For a solver of your own,
    sweep it with :func:`shard_sweep`.

    Args:
        p_x: source distribution of shape (n,).
        dist: distortion matrix of shape (n, m).
        betas: array of shape (B,) of positive slopes.
        mesh: a 1-D :class:`jax.sharding.Mesh`.
        throw: as :func:`geomtax.rd.rd_curve`.
        **options: the other options of :func:`geomtax.rd.rd_curve` (``max_steps``, ``tol``, ...).

    Returns:
        An :class:`geomtax.rd.RDCurve` (rates in nats) with a ``status`` per point.

    Raises:
        StatusError: with ``throw=True``, when a point's status is not ``ok``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> p, d = jnp.array([0.5, 0.5]), jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> curve = sharded_rd_curve(p, d, jnp.array([1.0, 4.0]), mesh=make_mesh(1))
        >>> curve.rate.shape
        (2,)
    """
    mesh_axis(mesh)
    return rd_curve(p_x, dist, betas=betas, mesh=mesh, throw=throw, **options)
