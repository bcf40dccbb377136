"""Entropy, ensemble disagreement, cross-member stability and empirical Fisher diagnostics.

Everything here is in nats (divide by ln 2 for bits, at the report boundary). The
distribution functions take *logits* (any unnormalised log-probabilities) over the last axis
and normalise them with ``log_softmax``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._custom_types import ArrayLike, KeyArray
from .._errors import is_traced, renamed_options
from .._status import status_name
from ..geometry import knn_overlap, procrustes_disparity, rdm_similarity
from ._metrics import ideal


def _log_probs(logits, name: str = "logits"):
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] < 2:
        raise ValueError(f"{name} needs a last (vocabulary) axis of size >= 2, got {logits.shape}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {logits.dtype}")
    # -inf is a legitimate logit (probability zero); NaN and +inf are not.
    if is_traced(logits):
        bad = jnp.isnan(logits) | (logits == jnp.inf)
        logits = eqx.error_if(logits, jnp.any(bad), f"{name} contains NaN or +inf")
    else:
        host = np.asarray(logits)
        bad = np.isnan(host) | (host == np.inf)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} contains NaN or +inf; first at index {idx}")
    return jax.nn.log_softmax(logits, axis=-1)


def _checked(fn):
    """Validate concrete inputs eagerly (clear ValueError), then run ``fn`` under filter_jit."""
    jitted = eqx.filter_jit(fn)

    def wrapper(*args):
        for i, a in enumerate(args):
            _log_probs(a, "logits" if len(args) == 1 else f"logits_{'pq'[i]}")
        return jitted(*args)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


def _entropy_from_logp(logp):
    p = jnp.exp(logp)
    return -jnp.sum(jnp.where(p > 0, p * logp, jnp.zeros_like(p)), axis=-1)


@_checked
def predictive_entropy(logits: Float[Array, "... V"]) -> Float[Array, "..."]:
    r"""Entropy of the predictive distribution at each position, in nats.

    .. math:: H(p) = -\sum_v p_v \log p_v,\qquad p = \mathrm{softmax}(\text{logits})

    Args:
        logits: ``(..., V)`` unnormalised log-probabilities over a vocabulary of size ``V``.

    Returns:
        ``(...)`` entropies in nats, in ``[0, log V]``. Average over positions yourself.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(predictive_entropy(jnp.zeros(4)))  # uniform over 4 tokens: log 4
        1.386...
    """
    return _entropy_from_logp(_log_probs(logits))


@_checked
def kl_to_uniform(logits: Float[Array, "... V"]) -> Float[Array, "..."]:
    r"""KL divergence from the predictive distribution to the uniform one, in nats.

    .. math:: \mathrm{KL}(p \,\|\, U_V) = \log V - H(p) \in [0, \log V]

    Examples:
        >>> import jax.numpy as jnp
        >>> float(kl_to_uniform(jnp.array([0.0, -jnp.inf])))  # a point mass on 2 tokens: log 2
        0.693...
    """
    logp = _log_probs(logits)
    return jnp.log(logp.shape[-1]).astype(logp.dtype) - _entropy_from_logp(logp)


@_checked
def ensemble_jsd(logits: Float[Array, "m ... V"]) -> Float[Array, "..."]:
    r"""Generalised Jensen–Shannon divergence across ``m`` ensemble members, in nats.

    .. math:: \mathrm{JSD}(p_1..p_m) = H\Big(\tfrac1m \sum_k p_k\Big) - \tfrac1m \sum_k H(p_k)

    Bounded by ``log m``; zero iff all members agree.

    Args:
        logits: ``(m, ..., V)``: member axis first.

    Returns:
        ``(...)`` JSD in nats per position.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(ensemble_jsd(jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0]])))  # disjoint: log 2
        0.693...
    """
    logp = _log_probs(logits)
    if logp.ndim < 2:
        raise ValueError(f"ensemble_jsd needs (m, ..., V) logits, got shape {logp.shape}")
    mean_logp = jax.nn.logsumexp(logp, axis=0) - jnp.log(logp.shape[0]).astype(logp.dtype)
    return _entropy_from_logp(mean_logp) - jnp.mean(_entropy_from_logp(logp), axis=0)


@_checked
def js_distance(logits_p: Float[Array, "... V"], logits_q: Float[Array, "... V"]):
    r"""Jensen–Shannon *distance* between two predictive distributions (base 2, in [0, 1]).

    .. math:: d_{JS}(p, q) = \sqrt{\mathrm{JSD}(p, q) / \ln 2}

    A metric (unlike the divergence). Shapes must match.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(js_distance(jnp.array([0.0, -jnp.inf]), jnp.array([-jnp.inf, 0.0])))
        1.0
    """
    lp, lq = _log_probs(logits_p, "logits_p"), _log_probs(logits_q, "logits_q")
    if lp.shape != lq.shape:
        raise ValueError(f"logits_p and logits_q shapes differ: {lp.shape} vs {lq.shape}")
    jsd = ensemble_jsd(jnp.stack([lp, lq]))
    # Identical distributions give exactly 0 (float rounding would otherwise leave sqrt(~1e-8));
    # the double where keeps the gradient finite there.
    same = jnp.all(lp == lq, axis=-1)
    safe = jnp.where(same, jnp.ones_like(jsd), jsd / jnp.log(2.0).astype(jsd.dtype))
    return jnp.where(same, jnp.zeros_like(jsd), jnp.sqrt(jnp.clip(safe, 0.0, 1.0)))


@_checked
def pairwise_js_distance(logits: Float[Array, "m ... V"]) -> Float[Array, "m m"]:
    """Mean Jensen–Shannon distance (base 2) between every pair of ensemble members.

    Args:
        logits: ``(m, ..., V)``.

    Returns:
        ``(m, m)`` symmetric matrix with zero diagonal; entry ``(a, b)`` is the mean over
        positions of :func:`js_distance` between members ``a`` and ``b``.

    Examples:
        >>> import jax.numpy as jnp
        >>> pairwise_js_distance(jnp.zeros((3, 5, 4))).shape
        (3, 3)
    """
    logp = _log_probs(logits)
    one = jax.vmap(jax.vmap(lambda a, b: jnp.mean(js_distance(a, b)), (None, 0)), (0, None))
    return one(logp, logp)


#: the outputs of :func:`member_embedding_stability`, output name -> metric table name
_MEMBER_METRICS = {
    "knn_overlap": "knn_overlap",
    "rdm_spearman": "rdm_similarity",
    "procrustes_disparity": "procrustes_disparity",
}


def member_embedding_stability(
    embeddings: Sequence[Float[Array, "n d"]],
    *,
    key: KeyArray,
    k: int = 10,
    max_pairs: int | None = None,
) -> dict[str, np.ndarray]:
    """Cross-member stability of embeddings of the same items (e.g. static token embeddings).

    For every pair of ensemble members ``(a, b)`` (paired rows: row ``i`` is the same token or
    item in both): k-NN overlap ``|N_k^a(i) ∩ N_k^b(i)| / k`` averaged over rows
    (:func:`geomtax.geometry.knn_overlap`), Spearman correlation of cosine RDMs
    (:func:`geomtax.geometry.rdm_similarity`) and scipy-style Procrustes disparity
    (:func:`geomtax.geometry.procrustes_disparity`, ``= 2 D^2 - D^4``).

    Args:
        embeddings: ``m >= 2`` arrays of shape ``(n, d_a)`` with a common ``n``.
        key: JAX key (RDM pair subsampling when ``max_pairs`` is set).
        k: neighbours for the overlap.
        max_pairs: forwarded to ``rdm_similarity``.

    Returns:
        dict of ``(m, m)`` float arrays: ``knn_overlap``, ``rdm_spearman`` (1 on the diagonal),
        ``procrustes_disparity`` (0 on the diagonal; each diagonal is the metric's ideal value
        in :data:`geomtax.geometry.METRICS`), and for each of them a ``(m, m)`` array of
        status names (``"knn_overlap_status"``, ...; see docs/concepts/status.md). The
        estimators run with ``throw=False``: a pair whose status is not ``ok`` has a NaN entry.
    """
    embs = [jnp.asarray(e) for e in embeddings]
    if len(embs) < 2:
        raise ValueError(f"need at least 2 ensemble members, got {len(embs)}")
    n = embs[0].shape[0]
    for i, e in enumerate(embs):
        if e.ndim != 2 or e.shape[0] != n:
            raise ValueError(f"member {i} has shape {e.shape}; every member needs ({n}, d)")
    m = len(embs)
    out = {}
    for name, metric in _MEMBER_METRICS.items():
        # every member against itself: the metric's ideal value (from the metric table)
        out[name] = np.full((m, m), ideal(metric), dtype=np.float64)
    for name in _MEMBER_METRICS:
        out[f"{name}_status"] = np.full((m, m), "ok", dtype=object)
    keys = jax.random.split(key, m * m)
    for a in range(m):
        for b in range(a + 1, m):
            results = {
                "knn_overlap": knn_overlap(embs[a], embs[b], k=k, throw=False),
                "rdm_spearman": rdm_similarity(
                    embs[a], embs[b], max_pairs=max_pairs, key=keys[a * m + b], throw=False
                ),
                "procrustes_disparity": procrustes_disparity(embs[a], embs[b], throw=False),
            }
            for name, res in results.items():
                out[name][a, b] = out[name][b, a] = float(np.asarray(res.value))
                st = status_name(res.status)
                out[f"{name}_status"][a, b] = out[f"{name}_status"][b, a] = st
    return out


@renamed_options(batch_size="chunk_size")
def empirical_fisher(
    log_likelihood: Callable,
    params: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int | None = None,
) -> Any:
    r"""Empirical Fisher information (trace) of every parameter array, averaged over examples.

    .. math:: F_\theta = \frac1N \sum_{n=1}^N \big\|\nabla_\theta \log p(y_n \mid x_n)\big\|^2

    with observed targets :math:`y_n`; per-example gradients come from ``vmap(grad(...))``.

    Args:
        log_likelihood: ``log_likelihood(params, x_n, y_n) -> scalar`` for ONE example (nats).
        params: any pytree of parameters: a Flax ``params`` dict, an Equinox module (only its
            inexact-array leaves are differentiated), or the ``nnx.State`` of ``nnx.split``.
        x: ``(N, ...)`` inputs.
        y: ``(N, ...)`` observed targets.
        chunk_size: examples per vmapped block (``None``: all at once). Bounds memory.

    Returns:
        A pytree like ``params`` with a scalar :math:`F_\theta` (nats²) at every differentiable
        array leaf and ``None`` elsewhere. Group it by layer with :func:`fisher_by_layer`.

    Examples:
        >>> import jax.numpy as jnp
        >>> ll = lambda p, x, y: -0.5 * (y - p["w"] * x) ** 2
        >>> x, y = jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0])
        >>> f = empirical_fisher(ll, {"w": jnp.array(0.0)}, x, y)
        >>> float(f["w"])  # mean of (y x)^2 = (1 + 4) / 2
        2.5
    """
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must share a leading example axis; got {x.shape}, {y.shape}")
    if x.shape[0] == 0:
        raise ValueError("empirical_fisher needs at least one example")
    return _fisher(log_likelihood, diff, static, x, y, chunk_size)


@eqx.filter_jit
def _fisher(log_likelihood, diff, static, x, y, chunk_size):
    def one(d, xi, yi):
        return log_likelihood(eqx.combine(d, static), xi, yi)

    grads = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))

    def sq_sum(block_x, block_y, valid):
        g = grads(diff, block_x, block_y)

        def leaf(v):
            s = jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=1)
            return jnp.sum(jnp.where(valid, s, jnp.zeros_like(s)))

        return jax.tree_util.tree_map(leaf, g)

    n = x.shape[0]
    if chunk_size is None or chunk_size >= n:
        total = sq_sum(x, y, jnp.ones(n, dtype=bool))
    else:
        nb = -(-n // chunk_size)
        pad = nb * chunk_size - n
        xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]).reshape(
            nb, chunk_size, *x.shape[1:]
        )
        yp = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)]).reshape(
            nb, chunk_size, *y.shape[1:]
        )
        valid = (jnp.arange(nb * chunk_size) < n).reshape(nb, chunk_size)

        def body(carry, blk):
            part = jax.checkpoint(sq_sum)(*blk)
            return jax.tree_util.tree_map(jnp.add, carry, part), None

        init = jax.tree_util.tree_map(lambda v: jnp.zeros((), v.dtype), diff)
        total, _ = jax.lax.scan(body, init, (xp, yp, valid))
    return jax.tree_util.tree_map(lambda t: t / n, total)


def fisher_by_layer(fisher: Any, *, depth: int | None = None) -> dict[str, float]:
    """Sum per-parameter Fisher traces into layers and return each layer's value.

    A leaf's layer is its pytree path without the last entry (e.g. ``params/Dense_0`` for
    ``params/Dense_0/kernel``), or the first ``depth`` path entries when ``depth`` is given.

    Args:
        fisher: the pytree returned by :func:`empirical_fisher`.
        depth: number of leading path entries naming a layer (``None``: all but the last).

    Returns:
        ``{layer_name: F_layer}`` in tree order. Shares are ``F / sum(F)``
        (:func:`fisher_shares`).

    Examples:
        >>> fisher_by_layer({"embed": {"w": 3.0}, "out": {"w": 1.0, "b": 0.0}})
        {'embed': 3.0, 'out': 1.0}
    """
    leaves = jax.tree_util.tree_flatten_with_path(fisher)[0]
    out: dict[str, float] = {}
    for path, value in leaves:
        if value is None:
            continue
        parts = [_key_name(p) for p in path]
        keep = parts[:-1] if depth is None else parts[:depth]
        name = "/".join(keep) if keep else (parts[0] if parts else "params")
        out[name] = out.get(name, 0.0) + float(value)
    return out


def fisher_shares(per_layer: Mapping[str, float]) -> dict[str, float]:
    """Normalise per-layer Fisher values to shares summing to 1 (NaN if the total is 0)."""
    total = float(sum(per_layer.values()))
    return {k: (v / total if total > 0 else float("nan")) for k, v in per_layer.items()}


def _key_name(p) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(p, attr):
            return str(getattr(p, attr))
    return str(p)
