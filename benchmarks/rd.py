"""Rate–distortion benchmarks (issue 4): a Blahut–Arimoto R(D) curve and intrinsic dimension.

1. **R(D) curve**: a 256-symbol source (a two-component Gaussian mixture discretized on a grid
   of 256 points) with 256 reproduction points (the same grid), squared error normalized by the
   variance, and a geometric grid of betas (128 in ``full``; 32 in ``small``). geomtax
   ``rd_curve`` (float32, compile time reported separately, ``beta_batch_size`` 8 and full vmap)
   against two NumPy loops written here, each solving the betas one by one with the **same**
   stopping rule (Blahut's certificate ``max_m log c(m) <= tol``), the same ``tol`` and the same
   ``max_steps``:

   * ``numpy-log``: the same log-domain algorithm (``scipy.special.logsumexp``), the like-for-like
     baseline; it is slow, so it runs on every 4th beta (``small``) or 8th beta (``full``) and its
     time is scaled to all betas (noted in the row);
   * ``numpy-linear``: the textbook exp-kernel iteration (two mat-vecs per step), which is fast
     but can underflow at large beta (NaN counts are reported).

   ``ratio = baseline_s / geomtax_s``; ``max_rate_diff`` is the largest |rate difference| (nats)
   against the baseline on the betas both solved. Most betas of this problem need more than
   ``max_steps`` iterations to certify ``tol`` (BA converges sublinearly while the optimal
   output distribution becomes sparse), and the textbook loop stops early on the betas where it
   produces NaN, so ``per_step_ratio`` (baseline seconds per BA iteration / geomtax seconds per
   iteration, iterations summed over the betas each one ran) is also reported.
2. **intrinsic_dimension** (Levina–Bickel, k = 3..30) on a 3-torus embedded in R^6, n = 5,000
   (``small``) and 50,000 (``full``), against scikit-learn ``NearestNeighbors`` + NumPy.

Run: ``python benchmarks/rd.py --size small --out results/bench/rd.json``.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp
from sklearn.neighbors import NearestNeighbors

from geomtax.bench import format_table, time_call, time_jitted, write_results
from geomtax.rd import intrinsic_dimension, rd_curve

SIZES = {
    "small": {"betas": 32, "log_every": 4, "idim": [5000]},
    "full": {"betas": 128, "log_every": 8, "idim": [5000, 50000]},
}
TOL = 1e-4
MAX_STEPS = 3000
COLUMNS = [
    "task",
    "size",
    "geomtax_s",
    "compile_s",
    "peak_rss_mb",
    "baseline",
    "baseline_s",
    "ratio",
    "max_rate_diff",
    "per_step_ratio",
    "note",
]


def _problem(n=256):
    xs = np.linspace(-4.0, 4.0, n)
    p = 0.6 * np.exp(-((xs + 1.0) ** 2) / 0.5) + 0.4 * np.exp(-((xs - 1.5) ** 2) / 0.8)
    p /= p.sum()
    var = np.sum(p * xs**2) - np.sum(p * xs) ** 2
    d = (xs[:, None] - xs[None, :]) ** 2 / var
    return p, d


def numpy_ba_log(p, d, beta, tol=TOL, max_steps=MAX_STEPS):
    """Straightforward log-domain Blahut–Arimoto (one beta); returns (rate, distortion, steps)."""
    log_p = np.log(p)
    log_q = np.full(d.shape[1], -np.log(d.shape[1]))
    for step in range(1, max_steps + 1):
        a = log_q[None, :] - beta * d
        log_z = logsumexp(a, axis=1)
        log_cond = a - log_z[:, None]
        log_q_new = logsumexp(log_p[:, None] + log_cond, axis=0)
        gap = np.max(log_q_new - log_q)
        log_q = log_q_new
        if gap <= tol:
            break
    a = log_q[None, :] - beta * d
    log_cond = a - logsumexp(a, axis=1)[:, None]
    log_marg = logsumexp(log_p[:, None] + log_cond, axis=0)
    weights = np.exp(log_p[:, None] + log_cond)
    dist = np.sum(weights * d)
    terms = weights * (log_cond - log_marg[None, :])
    return float(np.sum(terms)), float(dist), step


def numpy_ba_linear(p, d, beta, tol=TOL, max_steps=MAX_STEPS):
    """Textbook exp-kernel Blahut–Arimoto (one beta); may underflow (NaN) at large beta."""
    kern = np.exp(-beta * d)
    q = np.full(d.shape[1], 1.0 / d.shape[1])
    with np.errstate(all="ignore"):
        for step in range(1, max_steps + 1):
            z = kern @ q
            c = (p / z) @ kern
            q = q * c
            if not np.log(np.max(c)) > tol:  # also stops on NaN
                break
        cond = kern * q[None, :] / (kern @ q)[:, None]
        qq = p @ cond
        dist = np.sum(p[:, None] * cond * d)
        # Subnormal cond(x, m) can meet an output mass qq(m) that underflowed to 0: those terms
        # are 0 * log(tiny / 0); count them as 0, as the limit p * cond -> 0 does.
        live = (cond > 0) & (qq[None, :] > 0)
        terms = np.where(live, p[:, None] * cond * np.log(cond / qq[None, :]), 0.0)
    return float(np.sum(terms)), float(dist), step


def _bench_curve(spec, repeats):
    rows = []
    p, d = _problem()
    betas = np.geomspace(0.5, 500.0, spec["betas"])
    pj = jnp.asarray(p, jnp.float32)
    dj = jnp.asarray(d, jnp.float32)
    bj = jnp.asarray(betas, jnp.float32)
    geo = {}
    for batch in (8, None):
        f = jax.jit(
            lambda p_, d_, b_, batch=batch: rd_curve(
                p_, d_, betas=b_, tol=TOL, max_steps=MAX_STEPS, throw=False, beta_batch_size=batch
            )
        )
        t = time_jitted(f, pj, dj, bj, repeats=repeats)
        curve = f(pj, dj, bj)
        geo[batch] = (t, curve)

    # Baselines: linear on all betas, log-domain on a subset scaled up.
    holder = {}

    def lin():
        holder["lin"] = [numpy_ba_linear(p, d, b) for b in betas]

    t_lin = time_call(lin, repeats=1, warmup=0).median_s
    sub = np.arange(0, len(betas), spec["log_every"])

    def logd():
        holder["log"] = [numpy_ba_log(p, d, betas[i]) for i in sub]

    t_log = time_call(logd, repeats=1, warmup=0).median_s * len(betas) / len(sub)
    lin_rate = np.array([r[0] for r in holder["lin"]])
    log_rate = np.array([r[0] for r in holder["log"]])
    lin_nan = int(np.sum(~np.isfinite(lin_rate)))
    log_conv = int(sum(r[2] < MAX_STEPS for r in holder["log"]))
    lin_steps = int(sum(r[2] for r in holder["lin"]))
    log_steps = int(sum(r[2] for r in holder["log"])) * len(betas) / len(sub)
    for batch, (t, curve) in geo.items():
        rate = np.asarray(curve.rate, np.float64)
        conv = int(np.sum(np.asarray(curve.converged)))
        geo_step_s = t.median_s / int(np.sum(np.asarray(curve.num_steps)))
        name = f"rd_curve 256x256, {len(betas)} betas, beta_batch_size={batch}"
        common = {
            "task": name,
            "size": f"{len(betas)} betas",
            "geomtax_s": t.median_s,
            "compile_s": t.compile_s,
            "peak_rss_mb": t.peak_rss_mb,
        }
        ok = np.isfinite(lin_rate)
        lin_diff = float(np.max(np.abs(rate[ok] - lin_rate[ok]))) if ok.any() else None
        rows.append(
            common
            | {
                "baseline": "numpy-log (same algorithm)",
                "baseline_s": t_log,
                "ratio": t_log / t.median_s,
                "max_rate_diff": float(np.max(np.abs(rate[sub] - log_rate))),
                "per_step_ratio": t_log / log_steps / geo_step_s,
                "note": f"baseline on {len(sub)} of {len(betas)} betas, scaled, converged "
                f"{log_conv}/{len(sub)}; geomtax converged {conv}/{len(betas)}",
            }
        )
        rows.append(
            common
            | {
                "baseline": "numpy-linear (exp kernel)",
                "baseline_s": t_lin,
                "ratio": t_lin / t.median_s,
                "max_rate_diff": lin_diff,
                "per_step_ratio": t_lin / lin_steps / geo_step_s,
                "note": f"linear baseline NaN on {lin_nan} betas; monotone "
                f"{bool(curve.monotone)}, convex {bool(curve.convex)}",
            }
        )
    return rows


def _torus(n, d=3, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, size=(n, d))
    x = np.concatenate([np.cos(t), np.sin(t)], axis=1)
    q, _ = np.linalg.qr(rng.normal(size=(2 * d, 2 * d)))
    return (x @ q).astype(np.float32)


def _lb_numpy(x, k_min=3, k_max=30):
    dist, _ = NearestNeighbors(n_neighbors=k_max + 1).fit(x).kneighbors(x)
    t = np.log(dist[:, 1:])
    per_k = [
        np.median((k - 1) / ((k - 1) * t[:, k - 1] - t[:, : k - 1].sum(1)))
        for k in range(k_min, k_max + 1)
    ]
    return float(np.median(per_k))


def _bench_idim(spec, repeats):
    rows = []
    for n in spec["idim"]:
        x = _torus(n)
        xj = jnp.asarray(x)
        f = jax.jit(lambda a: intrinsic_dimension(a, block_size=1024, throw=False).dimension)
        t = time_jitted(f, xj, repeats=repeats if n <= 5000 else 2)
        val = float(f(xj))
        holder = {}

        def base(x=x):
            holder["v"] = _lb_numpy(x.astype(np.float64))

        tb = time_call(base, repeats=1 if n > 5000 else 2, warmup=0).median_s
        rows.append(
            {
                "task": "intrinsic_dimension (3-torus in R^6, k 3..30)",
                "size": f"n={n}",
                "geomtax_s": t.median_s,
                "compile_s": t.compile_s,
                "peak_rss_mb": t.peak_rss_mb,
                "baseline": "sklearn NearestNeighbors + numpy",
                "baseline_s": tb,
                "ratio": tb / t.median_s,
                "max_rate_diff": None,
                "note": f"d_hat geomtax {val:.4f}, baseline {holder['v']:.4f} (true 3)",
            }
        )
    return rows


def run(*, size: str = "small", repeats: int = 5) -> list[dict]:
    """Run the rate–distortion benchmarks; ``size`` is ``"small"`` or ``"full"``."""
    spec = SIZES[size]
    t0 = time.perf_counter()
    rows = _bench_curve(spec, repeats) + _bench_idim(spec, repeats)
    for r in rows:
        r["total_bench_s"] = time.perf_counter() - t0
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/rd.json")
    args = parser.parse_args()
    result_rows = run(size=args.size, repeats=args.repeats)
    print(format_table(result_rows, COLUMNS))
    print(f"wrote {write_results(args.out, 'rd', result_rows)}")
