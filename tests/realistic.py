"""Embeddings shaped like real foundation models' (the data users bring), for the realistic tier.

Real hidden states are wide (768-4096 columns), have a steeply decaying spectrum, a handful of
"massive activation" dimensions 100-1000x larger than the rest (Sun et al. 2024, "Massive
activations in large language models"), a large common offset, heavy-tailed row norms, exact
duplicate rows (repeated inputs: padding, duplicated sequences) and constant columns (dead
units). :func:`foundation_like` makes such a matrix from a low-dimensional latent state, and a
paired "perturbed" copy, so every estimator can be run on what users actually pass it.
"""

import numpy as np

WIDTHS = (768, 1280, 4096)


def foundation_like(
    seed: int,
    n: int,
    d: int,
    *,
    latent_dim: int = 6,
    num_massive: int = 4,
    massive_scale: tuple[float, float] = (100.0, 1000.0),
    tail_df: float = 3.0,
    duplicate_fraction: float = 0.05,
    num_constant: int = 8,
    offset: float = 20.0,
    noise: float = 0.05,
    dtype=np.float32,
):
    """Return ``(latent, clean, perturbed)``: (n, latent_dim) truth and two (n, d) embeddings.

    * the clean embedding is a smooth nonlinear map of the latent state through ``d`` directions
      with a power-law spectrum (singular values ~ 1 / i);
    * ``num_massive`` columns are multiplied by factors drawn in ``massive_scale``;
    * every row is scaled by a Student-t-distributed factor (``tail_df`` degrees of freedom) so
      row norms are heavy-tailed;
    * a common offset of about ``offset`` per column is added (real embeddings are not centred);
    * ``duplicate_fraction`` of the rows are exact copies of other rows (in both embeddings, and
      in the latent state);
    * ``num_constant`` columns are set to one constant value;
    * the perturbed copy adds Gaussian noise of relative size ``noise`` to the varying columns.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent_dim))
    feats = np.concatenate([z, np.tanh(z), np.sin(2 * z), z**2 / 3], axis=1)
    r = feats.shape[1]
    spectrum = 1.0 / np.arange(1, r + 1)
    q, _ = np.linalg.qr(rng.normal(size=(d, r)))
    clean = (feats * spectrum) @ q.T
    clean /= clean.std()
    cols = rng.choice(d, size=num_massive + num_constant, replace=False)
    massive, constant = cols[:num_massive], cols[num_massive:]
    clean[:, massive] *= rng.uniform(*massive_scale, size=num_massive)
    row_scale = np.abs(rng.standard_t(tail_df, size=(n, 1))) + 0.5
    clean *= row_scale
    clean += offset * (1.0 + rng.normal(size=(1, d)))
    pert = clean + noise * clean.std(axis=0, keepdims=True) * rng.normal(size=clean.shape)
    n_dup = int(round(duplicate_fraction * n))
    if n_dup:
        src = rng.choice(n - n_dup, size=n_dup)
        z[n - n_dup :] = z[src]
        clean[n - n_dup :] = clean[src]
        pert[n - n_dup :] = pert[src]
    clean[:, constant] = 0.37
    pert[:, constant] = 0.37
    return z.astype(dtype), clean.astype(dtype), pert.astype(dtype)
