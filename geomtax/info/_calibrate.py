"""The paper's calibrated-MI protocol: ceiling, random-embedding noise floor, normalized MI."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.tree_util import Partial
from jaxtyping import Array, Bool, Float

from .._custom_types import KeyArray
from .._errors import check_paired
from ._fit import mutual_information
from ._preprocess import pca, zscore


class CalibratedMIResult(eqx.Module):
    """Output of `calibrated_mi`; arrays only, in nats; per-seed arrays have shape (s,).

    Attributes:
        mi: MI(truth, embedding) per seed.
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
        above_floor: ``mi_mean > noise_floor``.
        diverged: True if any of the fits diverged (its value is then NaN).
        num_constant: Constant features dropped from (truth, embedding) by z-scoring.
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
    diverged: Bool[Array, ""]
    num_constant: Array


def _seed_fit(k_data, k_fit, truth, emb, *, kind, noise_scale, random_dim, estimator, options):
    """One seed's fit: ``kind`` = "mi" (truth vs embedding), "ceiling" or "random"."""
    if kind == "mi":
        other = emb
    elif kind == "ceiling":
        other = truth + noise_scale * jax.random.normal(k_data, truth.shape, truth.dtype)
    else:
        other = jax.random.normal(k_data, (truth.shape[0], random_dim), truth.dtype)
    return mutual_information(truth, other, key=k_fit, estimator=estimator, **dict(options)).value


def calibrated_mi(
    x_truth: Float[Array, "n dt"],
    x_embedding: Float[Array, "n de"],
    *,
    key: KeyArray,
    num_seeds: int = 5,
    estimator: str = "dv",
    pca_dim: int | None = 50,
    noise_scale: float = 0.1,
    random_dim: int = 50,
    mesh: Mesh | None = None,
    **mi_options: Any,
) -> CalibratedMIResult:
    r"""MI between ground truth and an embedding, calibrated as in the paper (REFERENCE 6.1).

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

    The ceiling is the estimator's achievable maximum at this n, not a true MI. The default
    estimator is the reference's plain DV with the training-tail estimate
    (`mine_train_tail`); every fit of one call uses the same estimator and options.

    Args:
        x_truth: Ground-truth features, shape (n, d_t), paired with ``x_embedding``.
        x_embedding: Embeddings, shape (n, d_e).
        key: PRNG key; seed s uses ``jax.random.split(key, num_seeds)[s]``.
        num_seeds: Number of seeds (static; reference 5).
        estimator: Estimator name for `mutual_information` (``"ksg"`` allowed).
        pca_dim: PCA target dimension for the embedding, or ``None`` to skip.
        noise_scale: Standard deviation of the ceiling's added noise.
        random_dim: Dimension of the random Gaussian baseline embedding.
        mesh: optional 1-D ``jax.sharding.Mesh``; the seeds of each of the three fits are then
            split across its devices (`geomtax.parallel.shard_sweep`), with the same keys and
            results as the single-device ``vmap``.
        **mi_options: Further options of `mutual_information` (``num_steps``, ...).

    Returns:
        A `CalibratedMIResult`.

    Raises:
        ValueError: Mismatched rows, ``num_seeds < 1``, or any error of
            `mutual_information`.

    Examples:
        >>> from geomtax.info import calibrated_mi
        >>> import jax
        >>> kt, ke, kc = jax.random.split(jax.random.key(0), 3)
        >>> truth = jax.random.normal(kt, (300, 2))
        >>> emb = truth @ jax.random.normal(ke, (2, 8))
        >>> res = calibrated_mi(truth, emb, key=kc, num_seeds=2, estimator="ksg")
        >>> res.mi.shape, res.normalized.shape
        ((2,), ())
    """
    x_truth = jnp.asarray(x_truth)
    x_embedding = jnp.asarray(x_embedding)
    x_truth = x_truth[:, None] if x_truth.ndim == 1 else x_truth
    x_embedding = x_embedding[:, None] if x_embedding.ndim == 1 else x_embedding
    check_paired(x_truth, x_embedding, names=("x_truth", "x_embedding"))
    num_seeds = int(num_seeds)
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    if int(random_dim) < 1:
        raise ValueError(f"random_dim must be >= 1, got {random_dim}")
    zt = zscore(x_truth)
    emb = x_embedding
    if pca_dim is not None and emb.shape[1] > int(pca_dim):
        emb = pca(emb, int(pca_dim))
    ze = zscore(emb)
    truth, emb = zt.values, ze.values.astype(zt.values.dtype)

    keys = jax.random.split(key, num_seeds)
    k_mi, k_ceil_noise, k_ceil, k_rand_data, k_rand = (
        jax.vmap(lambda k: jax.random.split(k, 5))(keys)[:, i] for i in range(5)
    )
    common = dict(
        noise_scale=float(noise_scale),
        random_dim=int(random_dim),
        estimator=estimator,
        options=tuple(sorted(mi_options.items())),
    )

    def run(kind, k_data, k_fit):
        fn = Partial(_seed_fit, kind=kind, **common)
        if mesh is None:
            return jax.vmap(fn, in_axes=(0, 0, None, None))(k_data, k_fit, truth, emb)
        from ..parallel import shard_sweep

        return shard_sweep(fn, k_data, k_fit, mesh=mesh, shared=(truth, emb))

    mi = run("mi", k_mi, k_mi)
    ceiling = run("ceiling", k_ceil_noise, k_ceil)
    random = run("random", k_rand_data, k_rand)
    mi_mean, ceiling_mean, random_mean = jnp.mean(mi), jnp.mean(ceiling), jnp.mean(random)
    random_std = jnp.std(random)
    noise_floor = random_mean + 2.0 * random_std
    normalized = jnp.where(ceiling_mean > 0, mi_mean / ceiling_mean, jnp.nan)
    diverged = ~(
        jnp.all(jnp.isfinite(mi)) & jnp.all(jnp.isfinite(ceiling)) & jnp.all(jnp.isfinite(random))
    )
    return CalibratedMIResult(
        mi=mi,
        ceiling=ceiling,
        random=random,
        mi_mean=mi_mean,
        mi_std=jnp.std(mi),
        ceiling_mean=ceiling_mean,
        ceiling_std=jnp.std(ceiling),
        random_mean=random_mean,
        random_std=random_std,
        noise_floor=noise_floor,
        normalized=normalized,
        excess=mi_mean - random_mean,
        above_floor=mi_mean > noise_floor,
        diverged=diverged,
        num_constant=jnp.stack([zt.num_constant, ze.num_constant]),
    )
