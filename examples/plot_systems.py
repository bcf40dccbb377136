"""Plot a few trajectories of every built-in synthetic system (figures for docs/systems/).

For each system: the observed signal of a few sequences, plus (Lorenz, coupled Lorenz, damped
oscillator) a state-space view, and the uniform 256-bin tokenization of the first sequence.

Run: ``python examples/plot_systems.py --out-dir docs/systems/img`` (``--num 2 --seq-len 128``
for a fast smoke run).
"""

import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import geomtax.dynamics as gd  # noqa: E402


def plot_system(name, tr, tok, out_dir: Path, **title_opts) -> Path:
    ts = np.asarray(tr.ts)
    obs = np.asarray(tr.observed)
    has_state = tr.states is not None
    fig, axes = plt.subplots(1, 3 if has_state else 2, figsize=(13 if has_state else 9, 3.2))
    ax = axes[0]
    order = np.arange(obs.shape[1])
    x_axis = ts if name != "coupled_lorenz" else order
    for i in range(obs.shape[0]):
        ax.plot(x_axis, obs[i], lw=0.8)
    ax.set_xlabel("t" if name != "coupled_lorenz" else "position (oscillators concatenated)")
    ax.set_ylabel("observed")
    ax.set_title(f"{name}: observed signal")
    if name == "coupled_lorenz":
        seg = np.asarray(tr.segment_ids)
        for b in np.flatnonzero(np.diff(seg)) + 0.5:
            ax.axvline(b, color="k", lw=0.6, ls="--")
    if has_state:
        ax = axes[1]
        st = np.asarray(tr.states)
        if name == "damped_oscillator":
            for i in range(st.shape[0]):
                ax.plot(st[i, :, 0], st[i, :, 1], lw=0.8)
            ax.set_xlabel("x")
            ax.set_ylabel("dx/dt")
            ax.set_title("phase portrait")
        else:
            for i in range(st.shape[0]):
                ax.plot(st[i, :, 0], st[i, :, 2], lw=0.6)
            ax.set_xlabel("x (oscillator 1)")
            ax.set_ylabel("z (oscillator 1)")
            ax.set_title("state projection (x, z)")
    ax = axes[-1]
    ax.step(order, np.asarray(tok.encode(tr.observed[0])), lw=0.7, where="mid")
    ax.set_xlabel("position")
    ax.set_ylabel("token")
    ax.set_title(f"uniform {tok.num_bins}-bin tokens, sequence 0")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(out_dir: str, num: int, seq_len: int, seed: int) -> list[Path]:
    key = jax.random.key(seed)
    paths = []
    for i, name in enumerate(("waveform", "damped_oscillator", "lorenz", "coupled_lorenz")):
        opts = {"num_oscillators": 3} if name == "coupled_lorenz" else {}
        tr = gd.generate(
            name, key=jax.random.fold_in(key, i), num_sequences=num, seq_len=seq_len, **opts
        )
        seg = tr.segment_ids if name == "coupled_lorenz" else None
        tok = gd.uniform_bins(tr.observed, num_bins=256, segment_ids=seg)
        paths.append(plot_system(name, tr, tok, Path(out_dir)))
        print(f"{name}: {tr.observed.shape}, failed={int(tr.failed.sum())} -> {paths[-1]}")
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="docs/systems/img")
    parser.add_argument("--num", type=int, default=3)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--seed", type=int, default=320)
    a = parser.parse_args()
    main(a.out_dir, a.num, a.seq_len, a.seed)
