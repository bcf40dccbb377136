"""Pooling and filtering embeddings; computing them with ``embed_fn`` or transformers.

Loading files (no pickle, bounded) is in ``_loaders.py``; its public loaders are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._custom_types import ArrayLike
from .._errors import renamed_options
from ._loaders import ARRAY_SUFFIXES as ARRAY_SUFFIXES
from ._loaders import check_array as check_array
from ._loaders import load_array as load_array
from ._loaders import load_embeddings as load_embeddings
from ._loaders import load_labels as load_labels
from ._loaders import split_data_spec as split_data_spec


def pool_embeddings(
    x: ArrayLike,
    *,
    window: tuple[int, int] | None = None,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Mean-pool per-position embeddings ``(n, L, d)`` to ``(n, d)``.

    Args:
        x: ``(n, L, d)`` per-position embeddings (already pooled ``(n, d)`` is returned as is).
        window: ``(start, stop)`` positions to average over (``None``: all positions). The
            reference's local windows are ``(500, 628)``, ``(2000, 2128)``, ``(4000, 4128)``.
        mask: optional ``(n, L)`` boolean/0-1 mask of real (non-padding) positions.

    Returns:
        ``(n, d)`` pooled embeddings (float).

    Raises:
        ValueError: bad rank, a window outside ``[0, L]`` or empty, or a row with no position.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(12.0).reshape(1, 4, 3)
        >>> pool_embeddings(x, window=(1, 3))
        array([[4.5, 5.5, 6.5]])
    """
    x = np.asarray(x)
    if x.ndim == 2:
        return x
    if x.ndim != 3:
        raise ValueError(f"embeddings must be (n, d) or (n, L, d), got shape {x.shape}")
    n, length, _ = x.shape
    w = np.ones((n, length), dtype=np.float64) if mask is None else np.asarray(mask, np.float64)
    if w.shape != (n, length):
        raise ValueError(f"mask must have shape {(n, length)}, got {w.shape}")
    if window is not None:
        start, stop = window
        if not 0 <= start < stop <= length:
            raise ValueError(f"window {window} is empty or outside the {length} positions")
        w = w.copy()
        w[:, :start] = 0
        w[:, stop:] = 0
    count = w.sum(axis=1)
    if np.any(count == 0):
        raise ValueError(f"row {int(np.argmin(count))} has no position to pool over")
    return np.einsum("nl,nld->nd", w, x) / count[:, None]


def filter_rows(
    *arrays: ArrayLike,
    min_norm: float = 1e-6,
    max_drop_fraction: float = 0.1,
    names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Drop rows that are non-finite in any array, or have near-zero norm in the first one.

    The reference filter (docs/reference/geometry.md#inputs-and-pairing): pair ``i`` is
    dropped if any array has a NaN/inf in row ``i`` or the first (embedding) array has
    ``||row||_2 <= min_norm``.

    Args:
        *arrays: arrays with a common first axis (embeddings first, then features, ...).
        min_norm: norm threshold on the first array (``0`` disables it).
        max_drop_fraction: raise if more than this fraction of rows would be dropped.
        names: names for error messages.

    Returns:
        ``(filtered_arrays, kept_indices)``; the number dropped is ``n - len(kept_indices)``.

    Raises:
        ValueError: row counts differ, the input is empty, or too many rows are bad.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 2.0]])
        >>> (xf,), kept = filter_rows(x, max_drop_fraction=0.5)
        >>> kept
        array([0, 2])
    """
    if not arrays:
        raise ValueError("filter_rows needs at least one array")
    names = list(names) if names is not None else [f"array {i}" for i in range(len(arrays))]
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0] if arrs[0].ndim else 0
    if n == 0:
        raise ValueError(f"{names[0]} is empty (shape {arrs[0].shape})")
    for a, nm in zip(arrs, names, strict=True):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(
                f"{nm} has shape {a.shape} but {names[0]} has {n} rows; rows must be paired"
            )
    ok = np.ones(n, dtype=bool)
    for a in arrs:
        if a.dtype.kind in "fc":
            ok &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    if min_norm > 0:
        with np.errstate(invalid="ignore"):
            norms = np.linalg.norm(np.nan_to_num(arrs[0].reshape(n, -1).astype(np.float64)), axis=1)
        ok &= norms > min_norm
    dropped = int((~ok).sum())
    if dropped > max_drop_fraction * n:
        first = int(np.argmin(ok))
        raise ValueError(
            f"{dropped} of {n} rows are non-finite or near-zero (first: row {first}); this is "
            f"more than max_drop_fraction={max_drop_fraction}"
        )
    kept = np.nonzero(ok)[0]
    return [a[kept] for a in arrs], kept


@renamed_options(batch_size="chunk_size")
def embed_sequences(
    embed_fn: Callable[[list[str]], np.ndarray],
    sequences: Sequence[str],
    *,
    chunk_size: int = 32,
    progress: bool = True,
    desc: str = "embedding",
) -> np.ndarray:
    """Call ``embed_fn`` on batches of sequences and stack the results.

    Args:
        embed_fn: ``embed_fn(list_of_sequences) -> array (batch, d)`` (or ``(batch, L, d)``
            with equal ``L``); any array type convertible by ``numpy.asarray``.
        sequences: the sequences.
        chunk_size: sequences per call.
        progress: show a tqdm progress bar.
        desc: progress-bar label.

    Returns:
        ``(n, ...)`` NumPy array, rows in input order.

    Raises:
        ValueError: empty input, or ``embed_fn`` returning the wrong number of rows.

    Examples:
        >>> import numpy as np
        >>> embed_sequences(lambda b: np.array([[len(s)] for s in b]), ["A", "AC", "ACG"],
        ...                 chunk_size=2, progress=False)[:, 0]
        array([1, 2, 3])
    """
    seqs = list(sequences)
    if not seqs:
        raise ValueError("no sequences to embed")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    from tqdm.auto import tqdm

    chunks = []
    bar = tqdm(total=len(seqs), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(seqs), chunk_size):
        batch = seqs[start : start + chunk_size]
        out = np.asarray(embed_fn(batch))
        if out.ndim < 1 or out.shape[0] != len(batch):
            raise ValueError(
                f"embed_fn returned shape {out.shape} for a batch of {len(batch)} sequences"
            )
        chunks.append(out)
        bar.update(len(batch))
    bar.close()
    return np.concatenate(chunks, axis=0)


def huggingface_embed_fn(
    model: Any,
    tokenizer: Any,
    *,
    layer: int = -1,
    pooling: str = "mean",
    max_length: int | None = None,
) -> Callable[[list[str]], np.ndarray]:
    """Wrap a Hugging Face ``transformers`` model and tokenizer as an ``embed_fn``.

    ``transformers`` (and the model's framework, usually PyTorch) is an optional extra, imported
    lazily. The returned function tokenizes a batch with padding, runs the model with
    ``output_hidden_states=True`` under ``torch.no_grad()`` and pools hidden state ``layer``.

    Args:
        model: a ``transformers`` PyTorch model (``AutoModel``/``AutoModelForMaskedLM``...).
        tokenizer: its tokenizer.
        layer: index into ``hidden_states`` (``-1``: last layer; ``0``: input embeddings).
        pooling: ``"mean"`` (attention-mask-weighted mean over tokens), ``"cls"`` (first
            token) or ``"none"`` (per-token ``(batch, L, d)``; needs equal lengths).
        max_length: truncate tokenized inputs to this length.

    Returns:
        ``embed_fn(list_of_sequences) -> np.ndarray``.
    """
    if pooling not in ("mean", "cls", "none"):
        raise ValueError(f"unknown pooling {pooling!r}; expected 'mean', 'cls' or 'none'")
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "huggingface_embed_fn needs PyTorch and transformers: pip install torch transformers"
        ) from err

    def embed_fn(batch: list[str]) -> np.ndarray:
        enc = tokenizer(
            list(batch),
            return_tensors="pt",
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
        )
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
        hidden = out.hidden_states[layer].float()
        if pooling == "cls":
            return hidden[:, 0].cpu().numpy()
        if pooling == "none":
            return hidden.cpu().numpy()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).cpu().numpy()

    return embed_fn
