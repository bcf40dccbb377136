"""Sharded entry points of the three estimator families (distances, MI critics, rate-distortion).

Each one splits the work of a public single-device geomtax function across a device mesh and
returns the same values (to float tolerance): row tiles for the pairwise kernels, the sweep axis
(PRNG keys, betas) for the vmapped critic fits and Blahut--Arimoto.
"""

import inspect
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.tree_util import Partial
from jaxtyping import Array, Float, Int, Key

from .._chunking import map_row_blocks
from .._custom_types import Samples
from .._errors import check_choice, check_rank
from .._status import AbstractResult, finish
from ..geometry import pairwise_distances
from ..info import mutual_information
from ..rd import blahut_arimoto
from ._shard import shard_rows, shard_sweep

_METRICS = ("euclidean", "sqeuclidean", "cosine")


def _pairwise_tile(rows, start, valid, ref, *, metric, block_size, same):
    d = pairwise_distances(rows, ref, metric=metric, block_size=block_size)
    if same:
        ids = start + jnp.arange(rows.shape[0])
        d = jnp.where(ids[:, None] == jnp.arange(ref.shape[0])[None, :], 0.0, d)
    return d


def sharded_pairwise_distances(
    x: Samples,
    y: Float[Array | np.ndarray, "m d"] | None = None,
    *,
    mesh: Mesh,
    metric: str = "euclidean",
    block_size: int | None = None,
    axis_name: str | None = None,
) -> Float[Array, "n m"]:
    r""":func:`geomtax.pairwise_distances` with the query rows split across devices.

    Each device computes the distances :math:`D_{ij} = d(x_i, y_j)` for its slice of rows
    :math:`i` against the full, replicated ``y`` (``y = x`` by default, with an exact zero
    diagonal), walking its rows ``block_size`` at a time. Conventions (metrics, clamping,
    zero-norm cosine) are those of :func:`geomtax.pairwise_distances`.

    Args:
        x: array of shape (n, d).
        y: optional array of shape (m, d); defaults to ``x``.
        mesh: a 1-D :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile on each device; ``None`` for one dense pass per device.
        axis_name: mesh axis to split over; defaults to the mesh's only axis.

    Returns:
        Array of shape (n, m), row-sharded over the mesh.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> d = sharded_pairwise_distances(jnp.array([[0.0, 0.0], [3.0, 4.0]]), mesh=make_mesh(1))
        >>> d.tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    check_choice("metric", metric, _METRICS)
    check_rank("x", x)
    x = jnp.asarray(x)
    same = y is None
    y = x if same else jnp.asarray(y)
    check_rank("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns; got {x.shape} and {y.shape}"
        )
    tile = Partial(_pairwise_tile, metric=metric, block_size=block_size, same=same)
    return shard_rows(tile, x, y, mesh=mesh, axis_name=axis_name)


def _knn_tile(rows, start, valid, ref, *, k, metric, block_size):
    n = ref.shape[0]

    def block(xb, s, v):
        d = pairwise_distances(xb, ref, metric=metric)
        ids = start + s + jnp.arange(xb.shape[0])
        d = jnp.where(ids[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
        neg, idx = lax.top_k(-d, k)
        return -neg, idx

    return map_row_blocks(block, rows, block_size=block_size, remat=False)


def sharded_knn_search(
    x: Samples,
    k: int,
    *,
    mesh: Mesh,
    metric: str = "euclidean",
    block_size: int | None = None,
    axis_name: str | None = None,
) -> tuple[Float[Array, "n k"], Int[Array, "n k"]]:
    """:func:`geomtax.knn_search` with the query rows split across devices.

    Each device finds the ``k`` nearest neighbours of its slice of rows among all ``n`` rows
    (replicated), excluding each row itself by its global index; ties go to the lower index, as
    in the single-device kernel. Memory per device is O(block_size * n).

    Args:
        x: array of shape (n, d).
        k: number of neighbours, ``1 <= k < n``.
        mesh: a 1-D :class:`jax.sharding.Mesh` (see :func:`make_mesh`).
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
        block_size: rows per tile on each device; ``None`` for one dense pass per device.
        axis_name: mesh axis to split over; defaults to the mesh's only axis.

    Returns:
        ``(distances, indices)``, both (n, k), sorted by increasing distance.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> d, i = sharded_knn_search(jnp.array([[0.0], [1.0], [3.0]]), 1, mesh=make_mesh(1))
        >>> i[:, 0].tolist()
        [1, 0, 1]
    """
    check_choice("metric", metric, _METRICS)
    check_rank("x", x)
    x = jnp.asarray(x)
    n = x.shape[0]
    if not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < n; got k={k!r} with x of shape {x.shape}")
    tile = Partial(_knn_tile, k=k, metric=metric, block_size=block_size)
    return shard_rows(tile, x, x, mesh=mesh, axis_name=axis_name)


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


def _rd_point(beta, p_x, dist, *, fn, keyword, options):
    if keyword:
        return fn(p_x, dist, beta=beta, **dict(options))
    return fn(p_x, dist, beta, **dict(options))


def sharded_rd_curve(
    p_x: Float[Array | np.ndarray, " n"],
    dist: Float[Array | np.ndarray, "n m"],
    betas: Float[Array | np.ndarray, " b"],
    *,
    mesh: Mesh,
    fn: Callable[..., Any] | None = None,
    axis_name: str | None = None,
    throw: bool = True,
    **options: Any,
) -> Any:
    r"""A Blahut--Arimoto rate--distortion curve with the betas sharded across devices.

    Computes ``vmap(lambda b: fn(p_x, dist, beta=b, **options))(betas)``, one solve per slope
    :math:`\beta` of :math:`\min_{q(\hat x|x)} I(X;\hat X) + \beta\,\mathbb{E}[d(X,\hat X)]`,
    where ``fn`` defaults to ``geomtax.rd.blahut_arimoto``. Every device solves its share of the
    betas for the replicated source ``p_x`` and distortion matrix ``dist``; points equal the
    single-device solves.

    Args:
        p_x: source distribution of shape (n,).
        dist: distortion matrix of shape (n, m).
        betas: array of shape (B,) of positive slopes.
        mesh: a 1-D :class:`jax.sharding.Mesh`.
        fn: solver ``fn(p_x, dist, beta, **options)`` (``beta`` positional or keyword);
            defaults to ``geomtax.rd.blahut_arimoto``.
        axis_name: mesh axis to shard over; defaults to the mesh's only axis.
        throw: raise :class:`geomtax.StatusError` (one line) if any point's status is not
            ``ok``; with ``throw=False`` the stacked solution is returned with a status per
            beta (a ``not_converged`` point keeps its certified bounds). Every solve runs with
            ``throw=False`` inside the sharded ``vmap``.
        **options: keyword options forwarded to ``fn`` (static values: hashable).

    Returns:
        ``fn``'s solution with a leading axis of length B on every array (rates in nats); for
        the default ``fn`` a :class:`geomtax.rd.RDSolution` whose ``status`` has shape (B,).

    Raises:
        StatusError: with ``throw=True``, when a point's status is not ``ok``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from geomtax.parallel import make_mesh
        >>> solve = lambda p, d, beta: jnp.sum(p) / beta
        >>> sharded_rd_curve(jnp.ones(2), jnp.ones((2, 2)), jnp.array([1.0, 2.0]),
        ...                  mesh=make_mesh(1), fn=solve).tolist()
        [2.0, 1.0]
    """
    fn = blahut_arimoto if fn is None else fn
    options = _no_throw(fn, options)
    betas = jnp.asarray(betas)
    if betas.ndim != 1:
        raise ValueError(f"betas must have shape (B,); got {betas.shape}")
    try:
        param = inspect.signature(fn).parameters.get("beta")
    except (TypeError, ValueError):
        param = None
    keyword = param is not None and param.kind is inspect.Parameter.KEYWORD_ONLY
    point = Partial(_rd_point, fn=fn, keyword=keyword, options=tuple(sorted(options.items())))
    out = shard_sweep(point, betas, mesh=mesh, shared=(p_x, dist), axis_name=axis_name)
    return _finish(out, throw=throw, function="sharded_rd_curve")
