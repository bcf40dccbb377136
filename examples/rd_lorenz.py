"""R(D) curve of a Lorenz attractor versus an embedding of it (matplotlib figure).

The attractor: states (x, y, z) of Lorenz trajectories from ``geomtax.dynamics.generate``
(the first quarter of each sequence is dropped as transient). The "embedding": a fixed random
two-layer tanh network mapping the states to 64 dimensions, plus a little isotropic noise, as a
stand-in for a model's hidden states. Both point clouds are quantized the same way
(``rd_curve_from_samples``: k-means source cells and reproduction atoms, squared error
normalized by tr Cov) and their R(D) curves are drawn on one plot, with the Levina–Bickel
intrinsic dimension of each cloud in the legend (the attractor's is about 2.06).

Run: ``python examples/rd_lorenz.py --out results/examples`` (``--tiny`` for a smoke run).
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import geomtax.dynamics as gdyn  # noqa: E402
import geomtax.rd as grd  # noqa: E402


def lorenz_states(key, num_sequences, seq_len):
    """(num_points, 3) Lorenz states after a transient."""
    traj = gdyn.generate("lorenz", key=key, num_sequences=num_sequences, seq_len=seq_len)
    states = traj.states[:, seq_len // 4 :, :]
    return states.reshape(-1, 3)


def embed(x, key, width=64, noise=0.05):
    """A fixed random tanh network R^3 -> R^width, plus isotropic noise."""
    k1, k2, k3 = jax.random.split(key, 3)
    z = (x - x.mean(0)) / x.std(0)
    h = jnp.tanh(z @ jax.random.normal(k1, (3, width)))
    e = jnp.tanh(h @ jax.random.normal(k2, (width, width)) / jnp.sqrt(width))
    return e + noise * jax.random.normal(k3, e.shape)


def main(out: Path, *, tiny: bool = False) -> Path:
    """Compute both curves and save ``rd_lorenz.png`` under ``out``; return its path."""
    key = jax.random.key(320)
    k_sim, k_sub, k_emb, k_rd1, k_rd2 = jax.random.split(key, 5)
    num_seq, seq_len, n, codes, cells = (4, 200, 400, 16, 64) if tiny else (8, 2000, 5000, 128, 512)
    states = lorenz_states(k_sim, num_seq, seq_len)
    states = states[jax.random.choice(k_sub, states.shape[0], (n,), replace=False)]
    emb = embed(states, k_emb)
    betas = jnp.geomspace(0.3, 300.0, 12 if tiny else 48)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, cloud, k in (
        ("Lorenz attractor (3-D state)", states, k_rd1),
        ("random tanh embedding (64-D)", emb, k_rd2),
    ):
        curve = grd.rd_curve_from_samples(
            cloud, key=k, num_codes=codes, num_cells=cells, betas=betas, tol=1e-4, throw=False
        )
        dim = grd.intrinsic_dimension(cloud, k_max=20 if tiny else 30).dimension
        ok = curve.converged
        ax.plot(
            curve.distortion[ok],
            curve.rate[ok] / jnp.log(2.0),
            "o-",
            ms=3,
            label=f"{name}, $\\hat d$ = {float(dim):.2f}",
        )
        print(
            f"{name}: d_hat = {float(dim):.3f}; converged {int(ok.sum())}/{ok.size}; "
            f"monotone {bool(curve.monotone)}, convex {bool(curve.convex)}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("distortion D (squared error / tr Cov)")
    ax.set_ylabel("rate R(D) [bits]")
    ax.set_title("Blahut–Arimoto R(D): attractor vs embedding")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rd_lorenz.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/examples"))
    parser.add_argument("--tiny", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    main(args.out, tiny=args.tiny)
