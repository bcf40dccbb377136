"""Geometric distortion suite vs scipy / scikit-learn (issue 2 performance targets).

For n in {1,000, 4,000} ("small") plus 16,000 ("full"), d = 128, float32, times the jitted
geomtax kernels (median of repeats, compile time separate, peak RSS of the first timed call):

* ``rdm_similarity`` Spearman of cosine RDMs, with exact ranks (packed-key sort) and with binned
  ranks (proven error bound, reported in the ``note`` column) vs ``scipy.spatial.distance.pdist``
  x 2 + ``scipy.stats.spearmanr``;
* ``procrustes_distortion`` vs ``scipy.spatial.procrustes``;
* ``trustworthiness`` (k = 10) vs ``sklearn.manifold.trustworthiness``;
* the suite combined (Spearman + Procrustes + trustworthiness), exact and binned.

``ratio = baseline_s / geomtax_s`` (> 1: geomtax faster). Baselines run in the same process on
the same inputs (float64 copies, as scipy computes in float64); those that would take minutes
or several GB at n = 16,000 (pdist + spearmanr on 128M pairs, sklearn's dense n x n argsort) are
skipped and marked so in the row.

``--size full`` also runs n = 100,000, d = 256 with bounded memory: ``rdm_similarity`` Pearson
exact (streamed tiles, ``block_size=512``), Spearman on 2^20 sampled pairs, and
``trustworthiness`` with ``block_size=256``, reporting peak RSS (target < 4 GB); these take
tens of minutes on 2 CPU cores.

Run: ``python benchmarks/geometry.py --size small --out results/bench/geometry.json``.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import procrustes
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.manifold import trustworthiness as sk_trustworthiness

from geomtax import procrustes_distortion, rdm_similarity, trustworthiness
from geomtax.bench import format_table, time_call, time_jitted, write_results

SIZES = {"small": [1000, 4000], "full": [1000, 4000, 16000]}
D = 128
K = 10
COLUMNS = [
    "n",
    "metric",
    "geomtax_s",
    "compile_s",
    "peak_rss_mb",
    "baseline",
    "baseline_s",
    "ratio",
    "note",
]


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))
    x = np.tanh(z @ rng.normal(size=(8, d))) + 0.1 * rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32), y.astype(np.float32)


def _spearman_fn(rank_method):
    return jax.jit(lambda x, y: rdm_similarity(x, y, rank_method=rank_method, throw=False))


def run(*, size: str = "small", repeats: int = 5) -> list[dict]:
    rows = []
    for n in SIZES[size]:
        x, y = _data(n, D)
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        heavy = n > 8000
        base_reps = 1 if n >= 4000 else 2

        # --- Spearman RDM similarity
        if heavy:
            sp_base, sp_val = None, None
        else:
            holder = {}

            def scipy_spearman():
                holder["v"] = spearmanr(pdist(x64, "cosine"), pdist(y64, "cosine"))[0]
                return holder["v"]

            sp_base = time_call(scipy_spearman, repeats=base_reps, warmup=0).median_s
            sp_val = holder["v"]
        geo = {}
        for rm in ("exact", "binned"):
            f = _spearman_fn(rm)
            t = time_jitted(f, xj, yj, repeats=repeats if n < 8000 else 2)
            r = f(xj, yj)
            err = "" if sp_val is None else f"|diff vs scipy| {abs(float(r.value) - sp_val):.1e}; "
            geo[f"spearman_{rm}"] = t.median_s
            rows.append(
                {
                    "n": n,
                    "metric": f"rdm_similarity spearman ({rm} ranks)",
                    "geomtax_s": t.median_s,
                    "compile_s": t.compile_s,
                    "peak_rss_mb": t.peak_rss_mb,
                    "baseline": "pdist x2 + spearmanr",
                    "baseline_s": sp_base,
                    "ratio": None if sp_base is None else sp_base / t.median_s,
                    "note": err
                    + f"bound {float(r.rank_error_bound):.1e}"
                    + ("; baseline skipped (128M pairs: minutes, >4 GB)" if heavy else ""),
                }
            )

        # --- Procrustes
        f = jax.jit(lambda a, b: procrustes_distortion(a, b, throw=False).value)
        t = time_jitted(f, xj, yj, repeats=repeats)
        pr_base = time_call(lambda: procrustes(x64, y64)[2], repeats=base_reps, warmup=0).median_s
        geo["procrustes"] = t.median_s
        rows.append(
            {
                "n": n,
                "metric": "procrustes_distortion",
                "geomtax_s": t.median_s,
                "compile_s": t.compile_s,
                "peak_rss_mb": t.peak_rss_mb,
                "baseline": "scipy.spatial.procrustes",
                "baseline_s": pr_base,
                "ratio": pr_base / t.median_s,
                "note": "",
            }
        )

        # --- trustworthiness
        f = jax.jit(lambda a, b: trustworthiness(a, b, k=K, block_size=512, throw=False).value)
        t = time_jitted(f, xj, yj, repeats=repeats if n < 8000 else 2)
        if heavy:
            tw_base, note = None, "baseline skipped (dense 16k x 16k argsort: minutes, >4 GB)"
        else:
            holder = {}

            def sk():
                holder["v"] = sk_trustworthiness(x64, y64, n_neighbors=K)
                return holder["v"]

            tw_base = time_call(sk, repeats=base_reps, warmup=0).median_s
            note = f"|diff vs sklearn| {abs(float(f(xj, yj)) - holder['v']):.1e}"
        geo["trust"] = t.median_s
        rows.append(
            {
                "n": n,
                "metric": "trustworthiness k=10 (block 512)",
                "geomtax_s": t.median_s,
                "compile_s": t.compile_s,
                "peak_rss_mb": t.peak_rss_mb,
                "baseline": "sklearn trustworthiness",
                "baseline_s": tw_base,
                "ratio": None if tw_base is None else tw_base / t.median_s,
                "note": note,
            }
        )

        # --- suite combined
        base_total = None if heavy else sp_base + pr_base + tw_base
        for rm in ("exact", "binned"):
            total = geo[f"spearman_{rm}"] + geo["procrustes"] + geo["trust"]
            rows.append(
                {
                    "n": n,
                    "metric": f"SUITE ({rm} Spearman + Procrustes + trust)",
                    "geomtax_s": total,
                    "compile_s": None,
                    "peak_rss_mb": None,
                    "baseline": "sum of the three baselines",
                    "baseline_s": base_total,
                    "ratio": None if base_total is None else base_total / total,
                    "note": "target at n=4000: ratio >= 10",
                }
            )
    if size == "full":
        rows.extend(_large(repeats=1))
    return rows


def _large(*, repeats: int = 1) -> list[dict]:
    n, d = 100_000, 256
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    y = x + 0.5 * jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    out = []
    cases = [
        (
            "rdm_similarity pearson exact (block 512)",
            jax.jit(
                lambda a, b: (
                    rdm_similarity(a, b, method="pearson", block_size=512, throw=False).value
                )
            ),
        ),
        (
            "rdm_similarity spearman, 2^20 sampled pairs",
            jax.jit(
                lambda a, b: (
                    rdm_similarity(
                        a, b, max_pairs=1 << 20, key=jax.random.key(0), throw=False
                    ).value
                )
            ),
        ),
        (
            "trustworthiness k=10 (block 256)",
            jax.jit(lambda a, b: trustworthiness(a, b, k=K, block_size=256, throw=False).value),
        ),
    ]
    for name, f in cases:
        t = time_jitted(f, x, y, repeats=repeats)
        out.append(
            {
                "n": n,
                "metric": name,
                "geomtax_s": t.median_s,
                "compile_s": t.compile_s,
                "peak_rss_mb": t.peak_rss_mb,
                "baseline": "none (infeasible)",
                "note": "d=256; target peak < 4096 MB",
            }
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/geometry.json")
    args = parser.parse_args()
    rows = run(size=args.size, repeats=args.repeats)
    print(format_table(rows, COLUMNS))
    print(f"written to {write_results(args.out, 'geometry', rows)}")
