"""Evaluation of a trained cell: embeddings, Procrustes distortion and the suite metrics.

Also the "shattering" epoch of a distortion trajectory. Definitions: docs/reference/models.md
(embedding, headlines) and docs/reference/rate-distortion.md#scaling-law. Every estimator runs
with ``throw=False`` and each value travels with its status name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .._status import PRECEDENCE, status_name
from ..geometry import distortion_report, metric_spec, procrustes_distortion
from ..models._heads import SequenceModel, embed

if TYPE_CHECKING:
    from ._data import Tokenized


def worst_status(names) -> str:
    """The worst of several status names by the library's precedence (``ok`` if all are)."""
    bad = set(names) - {"ok"}
    return next((n for n in PRECEDENCE if n in bad), "ok")


def _procrustes(x: jax.Array, y: jax.Array) -> tuple[float, str]:
    """Normalised Procrustes distortion D and its status (see docs/api/geometry.md)."""
    res = procrustes_distortion(x, y, throw=False)
    return float(res.value), status_name(res.status)


def shattering_epoch(distortions: Sequence[float], *, skip: int = 3, window: int = 3) -> int:
    r"""The "shattering" transition epoch of a per-epoch distortion trajectory.

    Definition: docs/reference/rate-distortion.md#scaling-law.

    With :math:`\Delta D_e = D_e - D_{e-1}`, epochs ``< skip`` are ignored and the transition is
    the epoch maximising the ``window``-epoch trailing rolling mean of :math:`\Delta D`. With too
    few epochs for that (fewer than ``skip + window``), it falls back to the global argmin of
    :math:`D`.

    Args:
        distortions: 1-D sequence of D per epoch (0-based epochs).
        skip: leading epochs ignored.
        window: trailing rolling-mean window.

    Returns:
        0-based epoch index (the reference reports D at ``transition - 1``).

    Examples:
        >>> from geomtax.experiments import shattering_epoch
        >>> shattering_epoch([0.5, 0.4, 0.3, 0.2, 0.2, 0.2, 0.6, 0.7, 0.7, 0.7])
        7
        >>> shattering_epoch([0.5, 0.3, 0.4])
        1
    """
    d = np.asarray(distortions, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"distortions must be a non-empty 1-D sequence; got shape {d.shape}")
    if d.size < skip + window:
        return int(np.argmin(d))
    delta = np.diff(d, prepend=np.nan)  # delta[e] = D_e - D_{e-1}
    best, best_e = -np.inf, int(np.argmin(d))
    for e in range(skip + window - 1, d.size):
        m = float(np.mean(delta[e - window + 1 : e + 1]))
        if np.isfinite(m) and m > best:
            best, best_e = m, e
    return best_e


@functools.partial(jax.jit, static_argnums=0)
def _embed_block(graphdef, state, tokens):
    return embed(nnx.merge(graphdef, state), tokens)


def _make_embedder(model: SequenceModel, batch_size: int) -> Callable[[jax.Array], jax.Array]:
    """Embed in fixed-size blocks (the last one zero-padded) so each encoder compiles once."""
    graphdef, state = nnx.split(model.encoder)

    def embed_all(tokens):
        n = tokens.shape[0]
        size = min(batch_size, n)
        pad = (-n) % size
        padded = jnp.concatenate([tokens, jnp.zeros((pad, tokens.shape[1]), tokens.dtype)])
        starts = range(0, n + pad, size)
        out = [_embed_block(graphdef, state, padded[i : i + size]) for i in starts]
        return jnp.concatenate(out, axis=0)[:n]

    return embed_all


# ---------------------------------------------------------------------------------------------
# the suite: the one place that names the metrics recorded per cell

#: Suite metrics recorded per cell (``suite_<name>`` and ``suite_<name>_status``), means over
#: the value-noise rates. Each is a field of :func:`geomtax.geometry.distortion_report` (a row
#: of :data:`geomtax.geometry.METRICS`), which computes them in one call.
SUITE_METRICS = (
    "cka_linear",
    "rdm_similarity",
    "trustworthiness",
    "continuity",
    "knn_overlap",
    "stress",
)
for _m in SUITE_METRICS:  # a report field the table no longer has fails at import
    metric_spec(_m)


def _suite(clean, emb, key, k: int) -> dict:
    """The rest of the suite on one perturbation: ``{metric: (value, status name)}``.

    One :func:`~geomtax.geometry.distortion_report` (feature-split score off, all pairs for
    the Euclidean RDM similarity); each value and status is the one the metric's own function
    returns.
    """
    report = distortion_report(clean, emb, key=key, k=k, num_splits=0, throw=False).to_dict()
    return {m: (report[m], report["statuses"][m]) for m in SUITE_METRICS}


def distortions(
    model, tok: Tokenized, rows: int | None, batch_size: int, *, suite_key=None
) -> dict[str, Any]:
    """Procrustes D of clean vs each perturbation (``noise_mean`` over value-noise rates).

    Every estimator runs with ``throw=False``; each value ``out[name]`` comes with its status
    name ``out[name + "_status"]`` (a value whose status is not ``ok`` is NaN, and a mean over
    rates carries the worst status of its terms). With ``suite_key`` the rest of the suite
    (linear CKA, Spearman similarity of the Euclidean RDMs, trustworthiness, continuity,
    k-NN overlap at ``k = min(10, (n - 1) // 2)`` and raw Kruskal stress) is also computed on
    every noise perturbation and averaged over the rates, returned as ``suite_<metric>``.
    """
    embed_all = _make_embedder(model, batch_size)
    sl = slice(None) if rows is None else slice(0, rows)
    clean = embed_all(tok.eval_tokens[sl])
    out: dict[str, Any] = {}
    suite: dict[str, list[tuple[float, str]]] = {m: [] for m in SUITE_METRICS}
    num_neighbors = min(10, (clean.shape[0] - 1) // 2)
    for i, (name, pert) in enumerate(tok.perturbed.items()):
        emb = embed_all(pert[sl])
        out[name], out[f"{name}_status"] = _procrustes(clean, emb)
        if suite_key is not None and name.startswith("noise_"):
            vals = _suite(clean, emb, jax.random.fold_in(suite_key, i), num_neighbors)
            for m in SUITE_METRICS:
                suite[m].append(vals[m])
    noise = [k for k in tok.perturbed if k.startswith("noise_")]
    out["noise_mean"] = float(np.mean([out[k] for k in noise]))
    out["noise_mean_status"] = worst_status(out[f"{k}_status"] for k in noise)
    if suite_key is not None:
        for m, v in suite.items():
            out[f"suite_{m}"] = float(np.mean([val for val, _ in v]))
            out[f"suite_{m}_status"] = worst_status(st for _, st in v)
    return out
