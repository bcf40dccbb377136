"""Train/eval datasets of tokenized synthetic sequences, cached on disk as ``.npz``.

The cache file name is ``{system}-{digest}.npz`` where ``digest`` is the SHA-256 of the canonical
JSON of the configuration (system, options, sizes, seeds or key data, tokenizer settings and the
cache format version), so a sweep that asks for the same configuration reads the file instead of
regenerating. Files are written atomically (temporary file, then rename) and read without pickle.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import KeyArray
from ._integrate import _check_positive_int, _chunk_size_renamed
from ._registry import generate, registered_systems
from ._tokenize import BIN_RULES, UniformBins, uniform_bins

#: Size presets of :func:`build_dataset` (explicit ``num_train``/``num_eval``/``seq_len`` win).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_train": 256, "num_eval": 64, "seq_len": 128},
    "quick": {"num_train": 4_096, "num_eval": 512, "seq_len": 512},
    "full": {"num_train": 50_000, "num_eval": 2_000, "seq_len": 512},
}
#: Offset between the train and eval integer seeds (the reference uses seed 320 / 320 + 1000).
EVAL_SEED_OFFSET = 1000
_CACHE_VERSION = 1
_SPLITS = ("train", "eval")


class Dataset(eqx.Module):
    """Tokenized train/eval splits of one synthetic system (see :func:`build_dataset`).

    Attributes:
        train_values: (num_train, L) raw observed values.
        eval_values: (num_eval, L) raw observed values.
        train_tokens: (num_train, L) int32 tokens of ``tokenizer`` (fitted on the train split).
        eval_tokens: (num_eval, L) int32 tokens (training range reused).
        train_targets: (num_train, L) continuous targets in [0, 1] (``tokenizer.normalize``).
        eval_targets: (num_eval, L) continuous targets in [0, 1].
        ts: (L,) time of each sample.
        segment_ids: (L,) int32 oscillator of each sample (coupled Lorenz; else zeros).
        train_params: sampled parameters of the train split (leading axis num_train).
        eval_params: sampled parameters of the eval split.
        train_failed: (num_train,) True where the first draw failed and was re-drawn.
        eval_failed: (num_eval,) same for eval.
        tokenizer: the fitted :class:`UniformBins`.
        config_json: canonical JSON of the configuration (what the cache key hashes).
        cache_path: the ``.npz`` file, or ``None`` when caching is off.
        from_cache: True when the arrays were read from the cache rather than generated.
    """

    train_values: Float[Array, "n_train L"]
    eval_values: Float[Array, "n_eval L"]
    train_tokens: Int[Array, "n_train L"]
    eval_tokens: Int[Array, "n_eval L"]
    train_targets: Float[Array, "n_train L"]
    eval_targets: Float[Array, "n_eval L"]
    ts: Float[Array, " L"]
    segment_ids: Int[Array, " L"]
    train_params: dict[str, Array]
    eval_params: dict[str, Array]
    train_failed: Bool[Array, " n_train"]
    eval_failed: Bool[Array, " n_eval"]
    tokenizer: UniformBins
    config_json: str = eqx.field(static=True)
    cache_path: str | None = eqx.field(static=True)
    from_cache: bool = eqx.field(static=True)

    @property
    def config(self) -> dict[str, Any]:
        """The configuration as a dict."""
        return json.loads(self.config_json)


def default_cache_dir() -> Path:
    """``$GEOMTAX_CACHE_DIR`` if set, else ``~/.cache/geomtax/datasets``."""
    env = os.environ.get("GEOMTAX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "geomtax" / "datasets"


def _jsonable(v):
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, int | float | str | bool) or v is None:
        return v
    raise TypeError(f"system option value {v!r} is not JSON-serialisable; cannot key the cache")


def _keys_from(seed, key):
    if (seed is None) == (key is None):
        raise ValueError("pass exactly one of seed= (an int, as in experiment configs) or key=")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        seed = int(seed)
        ident = {"seed": seed, "eval_seed": seed + EVAL_SEED_OFFSET}
        return jax.random.key(seed), jax.random.key(seed + EVAL_SEED_OFFSET), ident
    k_train, k_eval = jax.random.split(key)
    data = np.asarray(jax.random.key_data(key))
    ident = {"key_data": data.ravel().tolist(), "key_impl": str(jax.random.key_impl(key))}
    return k_train, k_eval, ident


@_chunk_size_renamed
def build_dataset(
    system: str = "lorenz",
    *,
    seed: int | None = None,
    key: KeyArray | None = None,
    preset: str = "full",
    num_train: int | None = None,
    num_eval: int | None = None,
    seq_len: int | None = None,
    num_bins: int = 256,
    rule: str = "floor",
    system_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None | bool = None,
    chunk_size: int | None = 4_096,
) -> Dataset:
    """Generate (or read from cache) tokenized train/eval splits of a synthetic system.

    Steps (docs/reference/systems.md): generate ``num_train`` training and ``num_eval`` evaluation
    sequences with :func:`generate` from independent keys; fit :func:`uniform_bins` on the
    **training** values' global range (coupled Lorenz: one range per oscillator, via
    ``segment_ids``); encode both splits with it, and compute the continuous [0, 1] targets.

    Keys: with ``seed`` (experiment configs), train uses ``jax.random.key(seed)`` and eval
    ``jax.random.key(seed + 1000)`` (the reference's 320 / 1320); with ``key``, the two splits use
    ``jax.random.split(key)``. Rows that still fail after the generator's re-draws raise.

    Caching: with ``cache_dir`` (``None``: :func:`default_cache_dir`; ``False``: no cache), the
    result is stored as ``{system}-{sha256(config)[:20]}.npz`` and later calls with the same
    configuration load it (``from_cache=True``) without generating anything.

    Args:
        system: a name from :func:`registered_systems` (default ``"lorenz"``).
        seed: integer seed (exactly one of ``seed`` / ``key``).
        key: PRNG key (exactly one of ``seed`` / ``key``).
        preset: ``"tiny"`` (256 / 64, length 128), ``"quick"`` (4,096 / 512, length 512) or
            ``"full"`` (50,000 / 2,000, length 512, the reference sizes).
        num_train: training sequences (overrides the preset).
        num_eval: evaluation sequences (overrides the preset).
        seq_len: sequence length (overrides the preset).
        num_bins: K of the uniform tokenizer (>= 2).
        rule: ``"floor"`` (geomtax) or ``"reference"`` bin rule.
        system_options: keyword options of the generator (JSON-serialisable values).
        cache_dir: cache folder, ``None`` for the default, ``False`` to disable caching.
        chunk_size: sequences integrated at once (memory only; does not change the data).
            ``batch_size=`` is its deprecated name.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: on an unknown system or preset, non-positive sizes, ``num_bins < 2``, both or
            neither of ``seed``/``key``, or rows that failed to integrate.

    Examples:
        >>> ds = build_dataset("waveform", seed=320, preset="tiny", num_train=8, num_eval=4,
        ...                    seq_len=16, cache_dir=False)
        >>> ds.train_tokens.shape, ds.eval_tokens.shape, ds.train_tokens.dtype
        ((8, 16), (4, 16), dtype('int32'))
        >>> int(ds.train_tokens.min()), int(ds.train_tokens.max())
        (0, 255)
    """
    if system not in registered_systems():
        raise ValueError(f"unknown system {system!r}; expected one of {registered_systems()}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {tuple(PRESETS)}")
    sizes = dict(PRESETS[preset])
    for name, val in (("num_train", num_train), ("num_eval", num_eval), ("seq_len", seq_len)):
        if val is not None:
            sizes[name] = _check_positive_int(name, val)
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
    if rule not in BIN_RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {BIN_RULES}")
    options = dict(system_options or {})
    for reserved in ("key", "num_sequences", "seq_len", "chunk_size", "batch_size"):
        if reserved in options:
            raise ValueError(f"system_options may not set {reserved!r}; use build_dataset's own")
    k_train, k_eval, ident = _keys_from(seed, key)
    config = {
        "cache_version": _CACHE_VERSION,
        "system": system,
        "system_options": {k: _jsonable(options[k]) for k in sorted(options)},
        **sizes,
        "num_bins": int(num_bins),
        "rule": rule,
        **ident,
    }
    config_json = json.dumps(config, sort_keys=True, separators=(",", ":"))
    path = None
    if cache_dir is not False:
        folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
        digest = hashlib.sha256(config_json.encode()).hexdigest()[:20]
        path = folder / f"{system}-{digest}.npz"
        if path.exists():
            return _load(path, config_json)

    splits = {}
    for split, k, n in (
        ("train", k_train, sizes["num_train"]),
        ("eval", k_eval, sizes["num_eval"]),
    ):
        tr = generate(
            system,
            key=k,
            num_sequences=n,
            seq_len=sizes["seq_len"],
            chunk_size=chunk_size,
            **options,
        )
        bad = ~np.asarray(tr.valid)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} {split} sequence(s) of {system!r} failed to integrate even "
                f"after re-drawing (first row {int(np.flatnonzero(bad)[0])}); loosen rtol/atol, "
                "raise max_steps or max_retries"
            )
        splits[split] = tr
    seg = splits["train"].segment_ids
    use_seg = seg if int(np.asarray(seg).max()) > 0 else None
    tok = uniform_bins(
        splits["train"].observed, num_bins=int(num_bins), rule=rule, segment_ids=use_seg
    )
    arrays: dict[str, np.ndarray] = {
        "ts": np.asarray(splits["train"].ts),
        "segment_ids": np.asarray(seg),
        "tok_low": np.asarray(tok.low),
        "tok_high": np.asarray(tok.high),
    }
    for split, tr in splits.items():
        arrays[f"{split}_values"] = np.asarray(tr.observed)
        arrays[f"{split}_tokens"] = np.asarray(tok.encode(tr.observed))
        arrays[f"{split}_targets"] = np.asarray(tok.normalize(tr.observed))
        arrays[f"{split}_failed"] = np.asarray(tr.failed)
        for name, val in tr.params.items():
            arrays[f"{split}_params__{name}"] = np.asarray(val)
    if path is not None:
        _save(path, arrays, config_json, tokenizer_segmented=use_seg is not None)
    return _from_arrays(
        arrays,
        config_json,
        cache_path=None if path is None else str(path),
        from_cache=False,
        tokenizer_segmented=use_seg is not None,
    )


def _save(path: Path, arrays, config_json: str, *, tokenizer_segmented: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"config": config_json, "tokenizer_segmented": tokenizer_segmented})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=np.array(meta), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load(path: Path, config_json: str) -> Dataset:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: np.asarray(data[k]) for k in data.files if k != "__meta__"}
    if meta["config"] != config_json:
        raise ValueError(f"cache file {path} holds a different configuration (hash collision?)")
    return _from_arrays(
        arrays,
        config_json,
        cache_path=str(path),
        from_cache=True,
        tokenizer_segmented=bool(meta["tokenizer_segmented"]),
    )


def _from_arrays(arrays, config_json, *, cache_path, from_cache, tokenizer_segmented) -> Dataset:
    config = json.loads(config_json)
    seg = jnp.asarray(arrays["segment_ids"], jnp.int32)
    tok = UniformBins(
        low=jnp.asarray(arrays["tok_low"]),
        high=jnp.asarray(arrays["tok_high"]),
        segment_ids=seg if tokenizer_segmented else None,
        num_bins=int(config["num_bins"]),
        rule=str(config["rule"]),
    )
    fields: dict[str, Any] = {}
    for split in _SPLITS:
        for part in ("values", "tokens", "targets", "failed"):
            fields[f"{split}_{part}"] = jnp.asarray(arrays[f"{split}_{part}"])
        prefix = f"{split}_params__"
        fields[f"{split}_params"] = {
            k[len(prefix) :]: jnp.asarray(v) for k, v in arrays.items() if k.startswith(prefix)
        }
    return Dataset(
        ts=jnp.asarray(arrays["ts"]),
        segment_ids=seg,
        tokenizer=tok,
        config_json=config_json,
        cache_path=cache_path,
        from_cache=from_cache,
        **fields,
    )
