r"""Representational dissimilarity matrices (RDMs): their construction, pairs and frames.

RDM layout: the condensed upper triangle (``i < j``, row-major, scipy ``pdist`` order), length
``n (n - 1) / 2``. The correlation of two RDMs (:func:`rdm_similarity`, :func:`rdm_drift`) is in
``_rdm_similarity.py``; its streamed and sampled kernels in ``_rdm_kernels.py``.
Definitions and sources: docs/reference/geometry.md.

Invariance by construction: Euclidean and squared-Euclidean RDMs are invariant to translation
and scale (up to the factor ``s`` or ``s**2``), cosine RDMs to scale only, correlation RDMs to
per-row affine maps. Every RDM is computed on the input brought to that invariant form first
(translated, where translation is allowed; divided by a power of two near its largest absolute
entry before anything is squared), so float32 offsets of 1e6 and scales of 1e-30 or 1e30 give
the value of the unshifted data: the Gram-matrix form of the distances never cancels a large
offset, and no square over- or underflows. :func:`rdm` multiplies the scale back in; the
correlations of :func:`rdm_similarity` do not need it.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._chunking import resolve_block_size
from .._custom_types import Samples
from .._errors import check_choice, check_int, check_real_array
from ._checks import check_block_size, check_zero_norm, prepare_single
from ._distances import pairwise_distances
from ._tiles import frame, map_tiles, rescale

RDM_METRICS = ("euclidean", "sqeuclidean", "cosine", "correlation")


def _two_pass_row_center(x):
    x0 = x - x[:, :1]
    return x0 - jnp.mean(x0, axis=1, keepdims=True)


def _max_scale(x):
    """The power of two nearest above ``max |x|`` (1 for all-zero ``x``).

    Dividing by a power of two is exact, so integer-valued data keeps its exact distance ties.
    """
    m = jnp.max(jnp.abs(x))
    _, e = jnp.frexp(jnp.where(m > 0, m, jnp.ones_like(m)))
    return jnp.ldexp(jnp.ones_like(m), e)


def _invariant_form(x, metric):
    """``(x', kernel metric, s)``: ``x`` in the metric's invariant form and its scale ``s``.

    Euclidean / squared Euclidean: translated by its first row (exact for data on a common
    scale, so a large offset leaves O(spread) numbers and integer data stays integer) and
    divided by a power of two ``s`` near its largest absolute entry (distances of ``x`` are
    ``s`` times, or ``s**2`` times, those of ``x'``). Cosine: divided by ``s`` only (not
    translation invariant). Correlation: rows centred (two-pass), then divided by ``s``;
    evaluated as cosine. Cosine-type distances do not depend on ``s``.
    """
    if metric == "correlation":
        xc = _two_pass_row_center(x)
        s = _max_scale(xc)
        return xc / s, "cosine", s
    if metric == "cosine":
        s = _max_scale(x)
        return x / s, "cosine", s
    x0 = x - x[:1]
    s = _max_scale(x0)
    return x0 / s, metric, s


def _prep_metric(x, metric):
    """``(x', kernel metric)``: the invariant form of ``x`` (distances up to a global scale)."""
    xs, m, _ = _invariant_form(x, metric)
    return xs, m


def _condense(full):
    n = full.shape[0]
    i, j = jnp.triu_indices(n, k=1)
    return full[i, j]


def _pair_values(full):
    """Every unordered pair's value exactly once, in a fixed *circulant* order.

    Row i contributes columns (i + s) mod n for s = 1 .. (n - 1) // 2, plus, for even n, s = n / 2
    for i < n / 2. Correlations only need the same pairing in both vectors, not scipy's order,
    and this layout is a contiguous ``take_along_axis`` (about 8x faster on CPU than gathering
    the upper triangle with ``triu_indices``).
    """
    n = full.shape[0]
    h = (n - 1) // 2
    idx = (jnp.arange(n)[:, None] + 1 + jnp.arange(h)[None, :]) % n
    vals = jnp.take_along_axis(full, idx, axis=1).reshape(-1)
    if n % 2 == 0:
        half = jnp.arange(n // 2)
        vals = jnp.concatenate([vals, full[half, half + n // 2]])
    return vals


def rdm(
    x: Samples,
    *,
    metric: str = "cosine",
    zero_norm: str = "raise",
    block_size: int | str | None = "auto",
) -> Float[Array, " n_pairs"]:
    r"""Condensed representational dissimilarity matrix of the rows of ``x`` (single-set).

    .. math:: \mathrm{RDM}(x)_{(i,j)} = \delta(x_i, x_j), \quad i < j

    in scipy ``pdist`` order. Metrics: ``"cosine"`` (:math:`1 - \cos`, in [0, 2]; default),
    ``"euclidean"``, ``"sqeuclidean"`` (never divided by dimension) and ``"correlation"``
    (cosine distance of row-centred vectors, as scipy). Computed on the invariant form of ``x``
    (see the module docstring), so a large common offset does not cancel the Euclidean
    distances in float32. A primitive: it returns an array, not a result with a status, and
    raises on non-finite input.

    Args:
        x: samples, shape (n, d), n >= 2.
        metric: distance name (see above).
        zero_norm: ``"raise"`` (default) on zero-norm rows under cosine/correlation, or
            ``"fill_one"`` to define the distance to such a row as 1.0 (shesha 0.2 parity).
        block_size: rows per tile while building the distances: ``"auto"`` (default) keeps a
            tile under 64 MiB, ``None`` computes one dense pass, or a positive int (the
            condensed output itself has n(n-1)/2 entries).

    Returns:
        Array of shape (n (n - 1) / 2,).

    Raises:
        ValueError: rank other than 2, fewer than 2 rows, non-finite values (under ``jit``: an
            ``EquinoxRuntimeError``), unknown metric, zero-norm rows under cosine.
        TypeError: complex (or other non-real) input, a non-int ``block_size``.

    Examples:
        >>> import jax.numpy as jnp
        >>> rdm(jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]), metric="euclidean").tolist()
        [5.0, 10.0, 5.0]
    """
    check_choice("metric", metric, RDM_METRICS)
    block_size = _check_block_size(block_size)
    check_real_array("x", x)
    x = prepare_single("x", x, min_rows=2, what="an RDM")
    x = check_zero_norm("x", x, metric, zero_norm)
    block_size = _rows_per_tile(block_size, x.shape[0], x.dtype.itemsize)
    return _rdm_impl(x, metric=metric, block_size=block_size)


def _check_block_size(block_size):
    if block_size is None or isinstance(block_size, str):
        check_block_size(block_size)  # "auto" or None
        return block_size
    return check_int("block_size", block_size, minimum=1)


def _rows_per_tile(block_size, n, itemsize):
    """Concrete rows per tile: ``"auto"`` keeps a (rows, n) tile and its copies under 64 MiB."""
    return resolve_block_size(block_size, n, row_bytes=4 * n * itemsize)


def _pair_values_tiled(x, metric, block_size):
    """``_pair_values(pairwise_distances(x))`` built tile by tile (no n x n intermediate).

    The circulant layout is row-local (row i keeps columns i + 1 .. i + h mod n), so each row
    tile of distances is cut to its (rows, h) pairs as soon as it is computed; peak memory is
    one (block_size, n) tile plus the condensed output.
    """
    n = x.shape[0]
    if block_size is None:
        return _pair_values(pairwise_distances(x, metric=metric, block_size=None))
    xf, s = _pair_frame(x, metric)
    h = (n - 1) // 2
    even = n % 2 == 0

    def tile(d, rows, xb):
        idx = (rows[:, None] + 1 + jnp.arange(h)[None, :]) % n
        out = {"pairs": jnp.take_along_axis(d, idx, axis=1)}
        if even:
            out["half"] = jnp.take_along_axis(d, ((rows + n // 2) % n)[:, None], axis=1)[:, 0]
        return out

    got = map_tiles(tile, xf, xf, metric=metric, block_size=block_size)
    vals = got["pairs"].reshape(-1)
    if even:
        vals = jnp.concatenate([vals, got["half"][: n // 2]])
    return rescale(vals, s, metric)


@eqx.filter_jit
def _rdm_impl(x, *, metric, block_size):
    xs, m, s = _invariant_form(x, metric)
    d = _condense(pairwise_distances(xs, metric=m, block_size=block_size))
    if metric == "euclidean":
        d = d * s
    elif metric == "sqeuclidean":
        d = (d * s) * s
    return d


def _pair_frame(x, metric):
    """The frame :func:`_pair_values_tiled` computes the distances in, and its scale."""
    if metric == "cosine":
        return x, jnp.ones((), x.dtype)
    xf, _, s = frame(x)
    return xf, s
