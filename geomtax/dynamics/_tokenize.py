r"""Tokenizers: equal-width uniform bins and a learned 1-D k-means codebook.

Definitions: docs/reference/systems.md#uniform-tokenizer and docs/reference/systems.md#codebook.

Both are small fitted Equinox modules (arrays plus static sizes) with ``encode``/``decode``, and
both save to and load from ``.npz`` files without pickle (``np.load(..., allow_pickle=False)``).
Tokens are ``int32``; values keep their floating dtype.
"""

import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import KeyArray
from .._errors import check_finite, check_floating, is_traced

#: Bin rules of :func:`uniform_bins`: ``min(floor(u K), K-1)`` (geomtax) or ``int(u (K-1))`` (ref).
BIN_RULES = ("floor", "reference")
_FORMAT_VERSION = 1


def _check_num_bins(num_bins) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
    return int(num_bins)


def _unit(values, low, high):
    """U = clip((v - low) / (high - low), 0, 1) (``low``/``high`` already broadcast)."""
    return jnp.clip((values - low) / (high - low), 0.0, 1.0)


def _bin_index(values, low, high, num_bins, rule: str):
    """int32 bins of ``values`` under ``rule`` (:data:`BIN_RULES`; formulas in the two callers)."""
    k = _check_num_bins(num_bins)
    u = _unit(jnp.asarray(values), low, high)
    if rule == "floor":
        return jnp.minimum(jnp.floor(u * k), k - 1).astype(jnp.int32)
    return jnp.clip(jnp.floor(u * (k - 1)), 0, k - 1).astype(jnp.int32)


def tokenize_uniform(
    values: Float[Array, "..."],
    *,
    low: float | Float[Array, "..."],
    high: float | Float[Array, "..."],
    num_bins: int = 256,
) -> Int[Array, "..."]:
    r"""Equal-width bins (geomtax default): :math:`b = \min(\lfloor u K \rfloor, K - 1)`.

    With :math:`u = \mathrm{clip}((v - \mathrm{low}) / (\mathrm{high} - \mathrm{low}), 0, 1)`, each
    of the K bins has width :math:`(\mathrm{high}-\mathrm{low})/K`; only :math:`u = 1` is folded
    into the last bin. Values outside ``[low, high]`` go to the end bins.

    Args:
        values: floating array of any shape.
        low: range minimum (scalar or broadcast-compatible array of the same rank).
        high: range maximum (> low).
        num_bins: K (>= 2).

    Returns:
        int32 tokens in ``[0, K)``, same shape as ``values``.

    Examples:
        >>> import jax.numpy as jnp
        >>> tokenize_uniform(jnp.array([0.0, 0.24, 0.25, 0.99, 1.0]), low=0.0, high=1.0,
        ...                  num_bins=4).tolist()
        [0, 0, 1, 3, 3]
    """
    return _bin_index(values, low, high, num_bins, "floor")


def tokenize_uniform_ref(
    values: Float[Array, "..."],
    *,
    low: float | Float[Array, "..."],
    high: float | Float[Array, "..."],
    num_bins: int = 256,
) -> Int[Array, "..."]:
    r"""Reference bins: :math:`b = \mathrm{clip}(\mathrm{int}(u (K-1)), 0, K-1)`.

    Definition: docs/reference/systems.md#uniform-tokenizer.

    Bins have width :math:`(\mathrm{high}-\mathrm{low})/(K-1)` and the last bin holds only
    :math:`u = 1`, as in the reference code.

    Args:
        values: floating array of any shape.
        low: range minimum (values below it go to bin 0).
        high: range maximum (> low; only values >= high reach bin K - 1).
        num_bins: K (>= 2).

    Returns:
        int32 tokens in ``[0, K)``, same shape as ``values``; bins ``0 .. K - 2`` have width
        ``(high - low) / (K - 1)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> tokenize_uniform_ref(jnp.array([0.0, 0.4, 0.5, 0.99, 1.0]), low=0.0, high=1.0,
        ...                      num_bins=3).tolist()
        [0, 0, 1, 1, 2]
    """
    return _bin_index(values, low, high, num_bins, "reference")


def _npz_save(path, kind: str, meta: dict, arrays: dict) -> Path:
    path = Path(path)
    meta = {"kind": kind, "format_version": _FORMAT_VERSION, **meta}
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
    return path


def _npz_load(path, kind: str):
    with np.load(os.fspath(path), allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        if meta.get("kind") != kind:
            raise ValueError(f"{path} holds a {meta.get('kind')!r}, not a {kind!r}")
        arrays = {k: np.asarray(data[k]) for k in data.files if k != "__meta__"}
    return meta, arrays


class UniformBins(eqx.Module):
    r"""Fitted equal-width tokenizer (create with :func:`uniform_bins`).

    ``encode`` maps values to int32 bins (``rule="floor"``: :func:`tokenize_uniform`;
    ``rule="reference"``: :func:`tokenize_uniform_ref`), ``decode`` maps a bin to its centre,
    ``normalize`` gives the continuous-head target
    :math:`\mathrm{clip}((v-\mathrm{low})/(\mathrm{high}-\mathrm{low}), 0, 1)` (not re-quantized).
    With ``segment_ids`` (length L), position ``j`` of the last axis uses the range of segment
    ``segment_ids[j]`` (coupled Lorenz: one range per oscillator) and inputs must end in L.

    Attributes:
        low: (m,) minimum of each segment's training values (m = 1 without segments).
        high: (m,) maximum of each segment's training values.
        segment_ids: (L,) int32 segment of each position, or ``None``.
        num_bins: K.
        rule: ``"floor"`` or ``"reference"``.
    """

    low: Float[Array, " m"]
    high: Float[Array, " m"]
    segment_ids: Int[Array, " L"] | None
    num_bins: int = eqx.field(static=True)
    rule: str = eqx.field(static=True, default="floor")

    def _range(self, values):
        values = jnp.asarray(values)
        if self.segment_ids is None:
            return values, self.low[0], self.high[0]
        length = self.segment_ids.shape[0]
        if values.ndim == 0 or values.shape[-1] != length:
            raise ValueError(
                f"this tokenizer has per-segment ranges over a last axis of length {length}; "
                f"got values of shape {values.shape}"
            )
        lo = jnp.broadcast_to(self.low[self.segment_ids], values.shape)
        hi = jnp.broadcast_to(self.high[self.segment_ids], values.shape)
        return values, lo, hi

    @property
    def bin_width(self) -> Float[Array, " m"]:
        """Width of one bin in value units, per segment: (high-low)/K or /(K-1) (reference)."""
        denom = self.num_bins if self.rule == "floor" else self.num_bins - 1
        return (self.high - self.low) / denom

    def encode(self, values: Float[Array, "..."]) -> Int[Array, "..."]:
        """Tokens in ``[0, num_bins)`` (int32), same shape as ``values``."""
        values, lo, hi = self._range(values)
        return _bin_index(values, lo, hi, self.num_bins, self.rule)

    def decode(self, tokens: Int[Array, "..."]) -> Float[Array, "..."]:
        """Bin centres in value units (reference rule: the last bin decodes to ``high``)."""
        tokens = jnp.asarray(tokens)
        k = self.num_bins
        if self.rule == "floor":
            u = (tokens.astype(self.low.dtype) + 0.5) / k
        else:
            t = tokens.astype(self.low.dtype)
            u = jnp.where(tokens >= k - 1, 1.0, (t + 0.5) / (k - 1))
        _, lo, hi = self._range(jnp.zeros(tokens.shape, self.low.dtype))
        return lo + u * (hi - lo)

    def normalize(self, values: Float[Array, "..."]) -> Float[Array, "..."]:
        """Continuous targets in [0, 1] with the training range (clipped, not re-quantized)."""
        values, lo, hi = self._range(values)
        return _unit(values, lo, hi)

    def denormalize(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """Inverse of :meth:`normalize` on [0, 1]: ``low + u (high - low)``."""
        u, lo, hi = self._range(u)
        return lo + u * (hi - lo)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer to ``path`` as ``.npz`` (no pickle); returns the path."""
        seg = None if self.segment_ids is None else np.asarray(self.segment_ids)
        arrays = {"low": np.asarray(self.low), "high": np.asarray(self.high)}
        if seg is not None:
            arrays["segment_ids"] = seg
        meta = {"num_bins": self.num_bins, "rule": self.rule}
        return _npz_save(path, "uniform_bins", meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "UniformBins":
        """Read a tokenizer written by :meth:`save`."""
        meta, arrays = _npz_load(path, "uniform_bins")
        seg = arrays.get("segment_ids")
        return cls(
            low=jnp.asarray(arrays["low"]),
            high=jnp.asarray(arrays["high"]),
            segment_ids=None if seg is None else jnp.asarray(seg, jnp.int32),
            num_bins=int(meta["num_bins"]),
            rule=str(meta["rule"]),
        )


def uniform_bins(
    values: Float[Array, "..."],
    *,
    num_bins: int = 256,
    rule: str = "floor",
    segment_ids: Int[Array, " L"] | None = None,
) -> UniformBins:
    r"""Fit an equal-width tokenizer on the training set's global range.

    Definition: docs/reference/systems.md#uniform-tokenizer.

    ``low = min(values)``, ``high = max(values)`` over the whole training set (two passes, as in
    the reference: generate everything, then bin); evaluation data reuse the training range, values
    outside it go to the end bins. No quantile binning.

    Args:
        values: training values, any shape (with ``segment_ids``: last axis L).
        num_bins: K (>= 2).
        rule: ``"floor"`` (geomtax default, :func:`tokenize_uniform`) or ``"reference"``
            (:func:`tokenize_uniform_ref`).
        segment_ids: optional (L,) int segment index per position (e.g.
            ``Trajectories.segment_ids``); each segment gets its own range.

    Returns:
        A fitted :class:`UniformBins`.

    Raises:
        ValueError: if ``num_bins < 2``, ``rule`` is unknown, ``values`` contain NaN/inf (first
            bad index named), a segment's range is empty (constant data), or ``segment_ids`` does
            not match the last axis.
        TypeError: if ``values`` is not floating.

    Examples:
        >>> import jax.numpy as jnp
        >>> tok = uniform_bins(jnp.array([[-1.0, 0.0, 3.0]]), num_bins=4)
        >>> tok.encode(jnp.array([-1.0, 0.0, 2.9, 5.0])).tolist()
        [0, 1, 3, 3]
        >>> tok.decode(jnp.array([0, 3])).tolist()
        [-0.5, 2.5]
        >>> tok.normalize(jnp.array([1.0])).tolist()
        [0.5]
    """
    k = _check_num_bins(num_bins)
    if rule not in BIN_RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {BIN_RULES}")
    check_floating("values", values)
    if np.size(values) == 0:
        raise ValueError(f"values is empty (shape {np.shape(values)})")
    values = check_finite("values", values)
    values = jnp.asarray(values)
    if segment_ids is None:
        low, high = jnp.min(values)[None], jnp.max(values)[None]
        seg = None
    else:
        seg_np = np.asarray(segment_ids)
        if seg_np.ndim != 1 or values.ndim == 0 or values.shape[-1] != seg_np.shape[0]:
            raise ValueError(
                f"segment_ids of shape {seg_np.shape} must match the last axis of values of "
                f"shape {values.shape}"
            )
        if seg_np.min() < 0:
            raise ValueError("segment_ids must be >= 0")
        m = int(seg_np.max()) + 1
        flat = values.reshape(-1, values.shape[-1])
        seg = jnp.asarray(seg_np, jnp.int32)
        low = jax.ops.segment_min(jnp.min(flat, axis=0), seg, num_segments=m)
        high = jax.ops.segment_max(jnp.max(flat, axis=0), seg, num_segments=m)
    if not is_traced(low):
        empty = np.asarray(high) <= np.asarray(low)
        if empty.any():
            raise ValueError(
                f"training range is empty (max == min) for segment(s) {np.flatnonzero(empty)}; "
                "constant data cannot be binned"
            )
    return UniformBins(low=low, high=high, segment_ids=seg, num_bins=k, rule=rule)


# ----------------------------------------------------------------------------------------------
# learned 1-D codebook


def _sorted_encode(centroids, values):
    mid = 0.5 * (centroids[:-1] + centroids[1:])
    return jnp.searchsorted(mid, values, side="left").astype(jnp.int32)


def _sorted_mse(centroids, values):
    return jnp.mean((values - centroids[_sorted_encode(centroids, values)]) ** 2)


class KMeansCodebook(eqx.Module):
    r"""Fitted 1-D k-means codebook (create with :func:`kmeans_codebook`).

    ``encode`` = index of the nearest centroid (centroids sorted ascending, so token order follows
    value order; a value exactly between two centroids goes to the lower index), computed with a
    binary search on the midpoints; ``decode`` = centroid value;
    ``reconstruction_mse(v)`` = :math:`\mathrm{mean}((v - \mathrm{decode}(\mathrm{encode}(v)))^2)`.

    Attributes:
        centroids: (K,) sorted centroids.
        low: minimum of the training values (for :func:`codebook_noise`).
        high: maximum of the training values.
        train_mse: reconstruction MSE on the full training values (squared value units).
        num_codes: K.
    """

    centroids: Float[Array, " K"]
    low: Float[Array, ""]
    high: Float[Array, ""]
    train_mse: Float[Array, ""]
    num_codes: int = eqx.field(static=True)

    def encode(self, values: Float[Array, "..."]) -> Int[Array, "..."]:
        """Nearest-centroid tokens in ``[0, K)`` (int32), same shape as ``values``."""
        return _sorted_encode(self.centroids, jnp.asarray(values))

    def decode(self, tokens: Int[Array, "..."]) -> Float[Array, "..."]:
        """Centroid values of ``tokens``."""
        return self.centroids[jnp.asarray(tokens)]

    def reconstruction_mse(self, values: Float[Array, "..."]) -> Float[Array, ""]:
        """Mean squared error of ``decode(encode(values))`` (squared value units)."""
        values = jnp.asarray(values)
        return jnp.mean((values - self.decode(self.encode(values))) ** 2)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the codebook to ``path`` as ``.npz`` (no pickle); returns the path."""
        arrays = {
            "centroids": np.asarray(self.centroids),
            "low": np.asarray(self.low),
            "high": np.asarray(self.high),
            "train_mse": np.asarray(self.train_mse),
        }
        return _npz_save(path, "kmeans_codebook", {"num_codes": self.num_codes}, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KMeansCodebook":
        """Read a codebook written by :meth:`save`."""
        meta, arrays = _npz_load(path, "kmeans_codebook")
        return cls(
            centroids=jnp.asarray(arrays["centroids"]),
            low=jnp.asarray(arrays["low"]),
            high=jnp.asarray(arrays["high"]),
            train_mse=jnp.asarray(arrays["train_mse"]),
            num_codes=int(meta["num_codes"]),
        )


def kmeans_codebook(
    values: Float[Array, "..."],
    *,
    num_codes: int,
    key: KeyArray,
    num_iters: int = 100,
    tol: float = 1e-4,
    max_samples: int | None = 500_000,
    num_inits: int = 3,
) -> KMeansCodebook:
    r"""Fit a K-code codebook by 1-D k-means on raw values ("double bind").

    Definition: docs/reference/systems.md#codebook.

    Minimizes :math:`\sum_i (v_i - c_{a_i})^2` with :func:`geomtax.rd.kmeans` (k-means++ seeding,
    Lloyd iterations) on the flattened values, or on a uniform subsample of ``max_samples`` of them
    drawn without replacement (the reference subsamples 500,000 values). ``num_inits`` independent
    runs (vmapped over keys; the reference's ``n_init=3``) are made and the one with the lowest
    inertia is kept; its centroids are sorted ascending. ``train_mse`` is measured on **all** the
    values passed in.

    Args:
        values: training values, any shape (flattened).
        num_codes: K (>= 2; at most the number of distinct values fitted on).
        key: PRNG key for the subsample and the k-means++ seeding (required).
        num_iters: maximum Lloyd iterations.
        tol: relative centroid-shift tolerance (see :func:`geomtax.rd.kmeans`).
        max_samples: fit on at most this many values (``None``: all).
        num_inits: independent k-means runs; the lowest-inertia one is kept.

    Returns:
        A fitted :class:`KMeansCodebook`.

    Raises:
        ValueError: if ``num_codes < 2``, ``values`` contain NaN/inf, or ``num_codes`` exceeds the
            number of distinct values fitted on.
        TypeError: if ``values`` is not floating.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> v = jnp.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])
        >>> cb = kmeans_codebook(v, num_codes=2, key=jax.random.key(0))
        >>> [round(c, 3) for c in cb.centroids.tolist()]
        [0.1, 5.1]
        >>> cb.encode(jnp.array([0.3, 4.0])).tolist(), round(float(cb.train_mse), 4)
        ([0, 1], 0.0067)
    """
    from ..rd import kmeans  # the general JAX k-means (rd namespace)

    if isinstance(num_codes, bool) or not isinstance(num_codes, int | np.integer) or num_codes < 2:
        raise ValueError(f"num_codes must be an integer >= 2, got {num_codes!r}")
    k = int(num_codes)
    check_floating("values", values)
    if np.size(values) == 0:
        raise ValueError(f"values is empty (shape {np.shape(values)})")
    values = check_finite("values", values)
    flat = jnp.ravel(jnp.asarray(values))
    k_sub, k_fit = jax.random.split(key)
    fit_on = flat
    if max_samples is not None and flat.shape[0] > int(max_samples):
        idx = jax.random.choice(k_sub, flat.shape[0], (int(max_samples),), replace=False)
        fit_on = flat[idx]
    if not is_traced(fit_on):
        distinct = np.unique(np.asarray(fit_on)).shape[0]
        if k > distinct:
            raise ValueError(
                f"num_codes K={k} exceeds the number of distinct values ({distinct} among "
                f"{fit_on.shape[0]} fitted on); reduce K"
            )
    n_init = int(num_inits)
    if n_init < 1:
        raise ValueError(f"num_inits must be >= 1, got {num_inits!r}")
    x = fit_on[:, None]
    # throw=False: a run that stops at num_iters is still a usable codebook (the best of the
    # num_inits runs by MSE is kept); finiteness and K <= distinct values are checked above.
    runs = jax.vmap(
        lambda kk: kmeans(x, k, key=kk, num_iters=num_iters, tol=tol, throw=False).centroids
    )(jax.random.split(k_fit, n_init))  # (num_inits, K, 1)
    runs = jnp.sort(runs[..., 0], axis=-1)
    inertia = jax.vmap(lambda c: _sorted_mse(c, fit_on))(runs)
    centroids = runs[jnp.argmin(inertia)]
    cb = KMeansCodebook(
        centroids=centroids,
        low=jnp.min(flat),
        high=jnp.max(flat),
        train_mse=jnp.zeros((), centroids.dtype),
        num_codes=k,
    )
    return eqx.tree_at(lambda c: c.train_mse, cb, cb.reconstruction_mse(flat))
