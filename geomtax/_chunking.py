"""The one memory knob: walk the rows of an array in fixed-size blocks.

Anything quadratic in ``n`` takes ``block_size: int | str | None`` with default ``"auto"``:
:func:`resolve_block_size` turns ``"auto"`` into the largest row count whose tile stays within
:data:`TILE_BYTES` (64 MiB), so no default ever builds an n x n intermediate. ``None``
materialises the whole thing (an explicit opt-in); an integer pads the row axis up to a multiple
of ``block_size`` and walks the blocks with
``lax.map`` (independent outputs) or ``lax.scan`` (streaming reductions). Under ``grad`` each
block body is wrapped in ``jax.checkpoint`` so the backward pass recomputes a block instead of
storing it, which keeps memory at O(block_size * n).

Padded rows are real rows of zeros; callers receive a boolean ``valid`` mask and must ignore them.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ._errors import check_int

#: the memory budget of one tile under ``block_size="auto"`` (bytes)
TILE_BYTES = 64 * 2**20


def resolve_block_size(block_size, n: int, *, row_bytes: int) -> int | None:
    """The concrete tile height for ``block_size`` (static; call before compiling).

    Args:
        block_size: ``"auto"`` (the largest number of rows whose tile is at most
            :data:`TILE_BYTES`), ``None`` (one dense pass; an explicit opt-in) or a positive int.
        n: the number of rows to walk.
        row_bytes: bytes of intermediate per row of a tile (e.g. ``m * itemsize`` for a
            (rows, m) distance tile, times the number of such live arrays).

    Returns:
        ``None`` when one pass over all rows fits (or was asked for), else the rows per tile.

    Raises:
        TypeError, ValueError: ``block_size`` is not ``"auto"``, ``None`` or a positive int.
    """
    if block_size is None:
        return None
    if isinstance(block_size, str):
        if block_size != "auto":
            raise ValueError(
                f"block_size must be 'auto', None or a positive int, got {block_size!r}"
            )
        rows = max(1, TILE_BYTES // max(int(row_bytes), 1))
        return None if rows >= n else int(rows)
    b = check_int("block_size", block_size, minimum=1)
    return None if b >= n else b


def num_blocks(n: int, block_size: int) -> int:
    """Number of row blocks of ``block_size`` needed to cover ``n`` rows."""
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size}")
    return -(-n // block_size)


def _pad_rows(x, total: int):
    pad = total - x.shape[0]
    if pad == 0:
        return x
    return jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))


def split_blocks(x, block_size: int):
    """Pad ``x`` (n, ...) with zero rows and reshape to (num_blocks, block_size, ...).

    Returns:
        ``(blocks, starts, valid)`` where ``starts`` (num_blocks,) holds each block's first row
        index and ``valid`` (num_blocks, block_size) marks real (unpadded) rows.
    """
    n = x.shape[0]
    nb = num_blocks(n, block_size)
    xp = _pad_rows(x, nb * block_size)
    blocks = xp.reshape(nb, block_size, *x.shape[1:])
    starts = jnp.arange(nb) * block_size
    valid = (starts[:, None] + jnp.arange(block_size)[None, :]) < n
    return blocks, starts, valid


def map_row_blocks(fn: Callable[..., Any], x, *, block_size: int | None, remat: bool = True) -> Any:
    """Compute ``fn(block, start, valid)`` block by block and concatenate along rows.

    ``fn`` maps a ``(b, ...)`` block to a pytree whose leaves have leading dimension ``b``.
    With ``block_size=None`` it is called once on the whole array (``start = 0``).
    """
    n = x.shape[0]
    if block_size is None or block_size >= n:
        return fn(x, jnp.asarray(0), jnp.ones((n,), dtype=bool))
    blocks, starts, valid = split_blocks(x, block_size)
    body = jax.checkpoint(fn) if remat else fn
    out = lax.map(lambda args: body(*args), (blocks, starts, valid))
    nb = blocks.shape[0]
    return jax.tree_util.tree_map(lambda o: o.reshape(nb * block_size, *o.shape[2:])[:n], out)


def scan_row_blocks(
    fn: Callable[..., Any], init: Any, x, *, block_size: int | None, remat: bool = True
) -> Any:
    """Fold ``carry = fn(carry, block, start, valid)`` over row blocks; return the final carry.

    Use this for streaming reductions (sums, running maxima, logsumexp) whose memory must not
    grow with ``n``. With ``block_size=None`` it is a single call on the whole array.
    """
    n = x.shape[0]
    if block_size is None or block_size >= n:
        return fn(init, x, jnp.asarray(0), jnp.ones((n,), dtype=bool))
    blocks, starts, valid = split_blocks(x, block_size)
    body = jax.checkpoint(fn) if remat else fn

    def step(carry, args):
        return body(carry, *args), None

    carry, _ = lax.scan(step, init, (blocks, starts, valid))
    return carry
