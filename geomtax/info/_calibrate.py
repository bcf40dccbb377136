"""The paper's calibrated-MI protocol: ceiling, random-embedding noise floor, normalized MI."""

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.tree_util import Partial
from jaxtyping import Array, Bool, Float

from .._custom_types import KeyArray
from .._errors import check_bool, check_float, check_int, check_paired, check_real_array
from .._sharding import shard_sweep
from .._status import (
    PRECEDENCE,
    AbstractResult,
    Status,
    finish,
    nan_unless_ok,
    ok_status,
    worst,
)
from ..geometry._checks import as_float
from ._bounds import AbstractBound
from ._fit import KSG, as_estimator, mutual_information
from ._preprocess import pca, zscore
from ._rules import FLAG_BIASED_LOW


class CalibratedMIResult(AbstractResult):
    """Output of `calibrated_mi`; arrays only, in nats; per-seed arrays have shape (s,).

    Attributes:
        mi: MI(truth, embedding) per seed (raw estimates; see ``status``).
        ceiling: MI(truth, truth + noise) per seed (the estimator's achievable maximum at this n).
        random: MI(truth, random Gaussian embedding) per seed.
        mi_mean: Mean of ``mi`` over seeds (std with ddof 0 in ``mi_std``).
        mi_std: Standard deviation of ``mi`` over seeds.
        ceiling_mean: Mean of ``ceiling``.
        ceiling_std: Standard deviation of ``ceiling``.
        random_mean: Mean of ``random``.
        random_std: Standard deviation of ``random``.
        noise_floor: ``random_mean + 2 * random_std``.
        normalized: ``mi_mean / ceiling_mean`` (NaN if the ceiling is not positive).
        excess: ``mi_mean - random_mean``.
        above_floor: ``mi_mean > noise_floor`` (False unless ``status`` is ``ok``).
        biased_low: some MI fit was flagged by ``ksg_mi``'s k-sensitivity check (its
            ``mi_status`` is ``implausible``): the MI is then biased low in absolute terms, in
            high dimension at high MI. It is kept, and ``status`` stays ``ok``, because every
            number here is read against the same estimator's ceiling and random baseline at
            the same n (a biased-low MI above the floor is conservative evidence of
            dependence); do not read ``mi_mean`` as an absolute MI then (use ``ksg_mi`` or a
            neural bound at larger n).
        num_constant: Constant features dropped from (truth, embedding) by z-scoring.
        mi_status: Status of each seed's MI(truth, embedding) fit, shape (s,).
        ceiling_status: Status of each ceiling fit, shape (s,).
        random_status: Status of each random-baseline fit, shape (s,).
        status: The worst of the preprocessing status, the MI fits' statuses and the ceiling
            and random fits' statuses, where a ceiling or random fit that is only
            ``implausible`` or ``not_converged`` counts as ``ok``: the ceiling is near-infinite
            MI by design (bounds saturate) and the random baseline exists to measure overfitting
            (held-out and training estimates disagree by design). Summary fields are NaN unless
            ``ok``; the per-seed arrays ``mi``, ``ceiling`` and ``random`` hold the raw estimates
            whatever their status (NaN only for a fit with no number: non-finite or
            degenerate input, diverged), so read them with the per-fit statuses.
    """

    mi: Float[Array, " s"]
    ceiling: Float[Array, " s"]
    random: Float[Array, " s"]
    mi_mean: Float[Array, ""]
    mi_std: Float[Array, ""]
    ceiling_mean: Float[Array, ""]
    ceiling_std: Float[Array, ""]
    random_mean: Float[Array, ""]
    random_std: Float[Array, ""]
    noise_floor: Float[Array, ""]
    normalized: Float[Array, ""]
    excess: Float[Array, ""]
    above_floor: Bool[Array, ""]
    biased_low: Bool[Array, ""]
    num_constant: Array
    mi_status: object
    ceiling_status: object
    random_status: object
    status: object


def _seed_fit(k_data, k_fit, truth, emb, *, kind, noise_scale, random_dim, estimator, options):
    """One seed's fit: ``kind`` = "mi" (truth vs embedding), "ceiling" or "random"."""
    if kind == "mi":
        other = emb
    elif kind == "ceiling":
        other = truth + noise_scale * jax.random.normal(k_data, truth.shape, truth.dtype)
    else:
        other = jax.random.normal(k_data, (truth.shape[0], random_dim), truth.dtype)
    res = mutual_information(
        truth, other, key=k_fit, estimator=estimator, throw=False, **dict(options)
    )
    # The raw estimate (held-out, or the tail mean for train_tail / KSG) is kept whatever rule
    # fired; only a fit with no number (non-finite input, degenerate input, diverged) is NaN.
    raw = jnp.where(jnp.isnan(res.heldout), res.tail_mean, res.heldout)
    keep = (
        (res.status == Status.ok)
        | (res.status == Status.implausible)
        | (res.status == Status.not_converged)
    )
    # Flagged only as biased low (a k-sensitive KSG estimate): still a valid witness that the
    # MI exceeds a floor, so it counts as ok for `above_floor` (never for the values).
    low_only = (res.status == Status.implausible) & (res.flags == FLAG_BIASED_LOW)
    floor_status = Status.where(low_only, Status.ok, res.status)
    return jnp.where(keep, raw, jnp.nan), res.status, floor_status


def _ignore_rules(status):
    """A baseline fit's status, counting only failures that leave no number."""
    soft = (status == Status.implausible) | (status == Status.not_converged)
    return Status.where(soft, Status.ok, status)


def calibrated_mi(
    x_truth: Float[Array, "n dt"],
    x_embedding: Float[Array, "n de"],
    *,
    key: KeyArray,
    num_seeds: int = 5,
    estimator: AbstractBound | KSG | str = "dv",
    pca_dim: int | None = 50,
    noise_scale: float = 0.1,
    random_dim: int = 50,
    mesh: Mesh | None = None,
    throw: bool = True,
    **mi_options: Any,
) -> CalibratedMIResult:
    r"""MI between ground truth and an embedding, calibrated as in the paper.

    1. Preprocess: z-score the truth; reduce the embedding by PCA to ``pca_dim`` dimensions
       (skipped if ``d <= pca_dim`` or ``pca_dim is None``), then z-score it (constant features
       dropped and counted in ``num_constant``).
    2. For each of ``num_seeds`` seeds (all seeds run in one ``vmap``):
       \(I_s = \hat I(T; E)\), the ceiling \(C_s = \hat I(T; T + \sigma Z)\) with
       \(\sigma\) = ``noise_scale``, and the random baseline
       \(R_s = \hat I(T; Z')\), \(Z' \sim N(0, I_{\text{random\_dim}})\).
    3. Report means and standard deviations (ddof 0) over seeds, the noise floor
       \(\bar R + 2\,\mathrm{sd}(R)\), the normalized MI \(\bar I / \bar C\) and the
       excess MI \(\bar I - \bar R\).

    The ceiling is the estimator's achievable maximum at this n, not a true MI. Every fit of one
    call uses the same estimator and options (`mutual_information`'s defaults otherwise:
    copula preprocessing and held-out evaluation; pass ``evaluation="train_tail"`` for the
    reference's training-tail estimate). See docs/api/info.md.

    Status codes: ``nonfinite_input`` / ``degenerate_input`` (from the preprocessing: NaN or inf
    in either input, or every truth or embedding feature constant), then the worst status of
    the MI fits (any status) and of the ceiling and random fits (``diverged`` and the input
    statuses; their ``implausible``/``not_converged`` do not count, see `CalibratedMIResult`).
    The summary fields are NaN unless ``status`` is ok; the per-seed arrays keep the raw
    estimates.

    Args:
        x_truth: Ground-truth features, shape (n, d_t), paired with ``x_embedding``.
        x_embedding: Embeddings, shape (n, d_e).
        key: PRNG key; seed s uses ``jax.random.split(key, num_seeds)[s]``.
        num_seeds: Number of seeds (static), >= 1 (reference 5).
        estimator: The estimator of every fit, as ``estimator`` of `mutual_information`: a
            bound object (``DV()``, ``SMILE(tau=5.0)``, your own `AbstractBound`), ``KSG(k=3)``,
            or a name (``"dv"``, ..., ``"ksg"``).
        pca_dim: PCA target dimension for the embedding (>= 1), or ``None`` to skip.
        noise_scale: Standard deviation of the ceiling's added noise, > 0.
        random_dim: Dimension of the random Gaussian baseline embedding, >= 1.
        mesh: optional 1-D ``jax.sharding.Mesh``; the seeds of each of the three fits are then
            split across its devices (`geomtax.parallel.shard_sweep`), with the same keys and
            results as the single-device ``vmap``.
        throw: Raise `geomtax.StatusError` when the status is not ``ok``.
        **mi_options: Further options of `mutual_information` (``num_steps``, ...).

    Returns:
        A `CalibratedMIResult`.

    Raises:
        ValueError: Mismatched rows, an out-of-range option, or any option error of
            `mutual_information`.
        geomtax.StatusError: With ``throw=True``, when the status is not ``ok``.

    Examples:
        >>> from geomtax.info import calibrated_mi
        >>> import jax
        >>> kt, ke, kc = jax.random.split(jax.random.key(0), 3)
        >>> truth = jax.random.normal(kt, (300, 2))
        >>> emb = truth @ jax.random.normal(ke, (2, 8))
        >>> res = calibrated_mi(truth, emb, key=kc, num_seeds=2, estimator="ksg", throw=False)
        >>> res.mi.shape, res.normalized.shape
        ((2,), ())
    """
    throw = check_bool("throw", throw)
    check_real_array("x_truth", x_truth)
    check_real_array("x_embedding", x_embedding)
    x_truth = as_float("x_truth", x_truth)
    x_embedding = as_float("x_embedding", x_embedding)
    x_truth = x_truth[:, None] if x_truth.ndim == 1 else x_truth
    x_embedding = x_embedding[:, None] if x_embedding.ndim == 1 else x_embedding
    check_paired(x_truth, x_embedding, names=("x_truth", "x_embedding"))
    num_seeds = check_int("num_seeds", num_seeds, minimum=1)
    random_dim = check_int("random_dim", random_dim, minimum=1)
    noise_scale = check_float("noise_scale", noise_scale, positive=True)
    if pca_dim is not None:
        pca_dim = check_int("pca_dim", pca_dim, minimum=1)
    estimator = as_estimator(estimator)
    if "throw" in mi_options or "key" in mi_options:
        raise TypeError("calibrated_mi sets key and throw of its fits itself")
    zt = zscore(x_truth, throw=False)
    emb = x_embedding
    if pca_dim is not None and emb.shape[1] > pca_dim:
        p = pca(emb, num_components=min(pca_dim, emb.shape[0]), throw=False)
        emb, pca_status = p.scores, p.status
    else:
        pca_status = Status.ok
    ze = zscore(emb, throw=False)
    truth, emb = zt.values, ze.values.astype(zt.values.dtype)
    prep_status = worst(zt.status, pca_status, ze.status)

    keys = jax.random.split(key, num_seeds)
    k_mi, k_ceil_noise, k_ceil, k_rand_data, k_rand = (
        jax.vmap(lambda k: jax.random.split(k, 5))(keys)[:, i] for i in range(5)
    )
    common = dict(
        noise_scale=float(noise_scale),
        random_dim=random_dim,
        estimator=estimator,
        options=tuple(sorted(mi_options.items())),
    )

    def run(kind, k_data, k_fit):
        fn = Partial(_seed_fit, kind=kind, **common)
        if mesh is None:
            return jax.vmap(fn, in_axes=(0, 0, None, None))(k_data, k_fit, truth, emb)
        return shard_sweep(fn, k_data, k_fit, mesh=mesh, shared=(truth, emb))

    mi, mi_status, mi_floor_status = run("mi", k_mi, k_mi)
    ceiling, ceiling_status, _ = run("ceiling", k_ceil_noise, k_ceil)
    random, random_status, _ = run("random", k_rand_data, k_rand)
    ceiling_counted = jax.vmap(_ignore_rules)(ceiling_status)
    random_counted = jax.vmap(_ignore_rules)(random_status)
    # A k-sensitive KSG fit (flagged only as biased low) stays in: every quantity here is
    # relative to the same estimator's ceiling and random baseline at the same n; the per-seed
    # `mi_status` keeps its flag and `biased_low` says so.
    status = _worst_of(prep_status, mi_floor_status, ceiling_counted, random_counted)
    biased_low = jnp.any((mi_status == Status.implausible) & (mi_floor_status == Status.ok))
    mi_mean, ceiling_mean, random_mean = jnp.mean(mi), jnp.mean(ceiling), jnp.mean(random)
    random_std = jnp.std(random)
    noise_floor = random_mean + 2.0 * random_std
    normalized = jnp.where(ceiling_mean > 0, mi_mean / ceiling_mean, jnp.nan)
    res = CalibratedMIResult(
        mi=mi,
        ceiling=ceiling,
        random=random,
        mi_mean=nan_unless_ok(mi_mean, status),
        mi_std=nan_unless_ok(jnp.std(mi), status),
        ceiling_mean=nan_unless_ok(ceiling_mean, status),
        ceiling_std=nan_unless_ok(jnp.std(ceiling), status),
        random_mean=nan_unless_ok(random_mean, status),
        random_std=nan_unless_ok(random_std, status),
        noise_floor=nan_unless_ok(noise_floor, status),
        normalized=nan_unless_ok(normalized, status),
        excess=nan_unless_ok(mi_mean - random_mean, status),
        above_floor=(mi_mean > noise_floor) & (status == Status.ok),
        biased_low=biased_low,
        num_constant=jnp.stack([zt.num_constant, ze.num_constant]),
        mi_status=mi_status,
        ceiling_status=ceiling_status,
        random_status=random_status,
        status=status,
    )
    return finish(res, throw=throw, function="calibrated_mi")


def _worst_of(*statuses):
    """The worst status over every entry of every (possibly batched) status."""
    out = ok_status()
    for name in reversed(PRECEDENCE):
        item = Status._name_to_item[name]
        hit = jnp.zeros((), bool)
        for st in statuses:
            hit = hit | jnp.any(st == item)
        out = Status.where(hit, item, out)
    return out
