"""Mutual-information benchmark: critic training throughput, vmapped fits, KSG vs scikit-learn.

Rows (all timings exclude compilation, reported separately as ``compile_s``):

* ``mine_single``: one MINE fit (default critic (256, 128), batch 64) on n = 2,000 correlated
  Gaussians; ``steps_per_s`` and the estimate next to the true MI.
* ``mine_vmap32`` vs ``mine_sequential32``: 32 fits (32 seeds) in one ``vmap``-ed call versus 32
  calls of the same compiled single fit, in the same run; ``throughput_ratio`` = sequential time /
  vmapped time (target >= 4 on a 2-core CPU). The ``*_small`` rows repeat this with a (32,)
  critic, where per-step overhead rather than matrix products dominates a single fit.
* ``gemm_ceiling``: what the hardware allows ``vmap`` to gain. The critic's largest product
  ((2 x batch, 256) @ (256, 128)) timed 32 times one after the other, as one batched product of
  32 (what ``vmap`` produces), and as one large product with the same FLOPs and a shared weight
  (the machine's dense-GEMM rate). ``max_ratio`` = large-GEMM rate / single-product rate bounds
  ``throughput_ratio`` for a compute-bound fit even with a perfect batched kernel;
  ``batched_ratio`` is what XLA's batched product gives.
* ``ksg``: :func:`geomtax.info.ksg_mi` (float32, tiled) versus scikit-learn's
  ``mutual_info_regression`` (1-D, k = 3) at n = 2,000 (and 20,000 with ``--size full``);
  ``speedup`` = sklearn time / geomtax time, and ``abs_diff_f64`` is the difference of the values
  when geomtax runs in float64 with scikit-learn's conventions (``rescale=True``,
  ``clip_negative=True``), target < 1e-6.

Usage: ``python benchmarks/mi.py --size small|full --out results/bench/mi.json``.
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from geomtax.bench import format_table, time_call, time_jitted, write_results
from geomtax.info import ksg_mi, mutual_information

RHO = 0.6
TRUE_MI = -0.5 * np.log(1 - RHO**2)


def _gaussian(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    y = RHO * x + np.sqrt(1 - RHO**2) * rng.standard_normal((n, 1))
    return x.astype(dtype), y.astype(dtype)


def _neural_rows(
    num_steps: int, num_critics: int, repeats: int, hidden=(256, 128), tag=""
) -> list[dict]:
    x, y = (jnp.asarray(a) for a in _gaussian(2000, 0))
    opts = dict(estimator="mine", num_steps=num_steps, learning_rate=1e-3, hidden=hidden)

    single = eqx.filter_jit(
        lambda a, b, k: mutual_information(a, b, key=k, throw=False, **opts).value
    )
    many = eqx.filter_jit(
        lambda a, b, ks: jax.vmap(
            lambda k: mutual_information(a, b, key=k, throw=False, **opts).value
        )(ks)
    )
    keys = jax.random.split(jax.random.key(0), num_critics)
    t1 = time_jitted(single, x, y, keys[0], repeats=repeats)
    est1 = float(single(x, y, keys[0]))
    tv = time_jitted(many, x, y, keys, repeats=max(1, repeats // 2))
    estv = np.asarray(many(x, y, keys))
    compiled = single.lower(x, y, keys[0]).compile()

    def sequential():
        return [compiled(x, y, k) for k in keys]

    ts = time_call(sequential, repeats=max(1, repeats // 2))
    rows = [
        dict(
            name="mine_single" + tag,
            hidden=str(hidden),
            n=2000,
            critics=1,
            num_steps=num_steps,
            median_s=t1.median_s,
            compile_s=t1.compile_s,
            peak_rss_mb=t1.peak_rss_mb,
            steps_per_s=num_steps / t1.median_s,
            estimate_nats=est1,
            true_nats=TRUE_MI,
        ),
        dict(
            name="mine_vmap32" + tag,
            hidden=str(hidden),
            n=2000,
            critics=num_critics,
            num_steps=num_steps,
            median_s=tv.median_s,
            compile_s=tv.compile_s,
            peak_rss_mb=tv.peak_rss_mb,
            steps_per_s=num_critics * num_steps / tv.median_s,
            estimate_nats=float(np.mean(estv)),
            estimate_std=float(np.std(estv)),
            true_nats=TRUE_MI,
            throughput_ratio=ts.median_s / tv.median_s,
        ),
        dict(
            name="mine_sequential32" + tag,
            hidden=str(hidden),
            n=2000,
            critics=num_critics,
            num_steps=num_steps,
            median_s=ts.median_s,
            compile_s=t1.compile_s,
            peak_rss_mb=ts.peak_rss_mb,
            steps_per_s=num_critics * num_steps / ts.median_s,
            true_nats=TRUE_MI,
        ),
    ]
    return rows


def _gemm_ceiling_row(repeats: int, batch: int = 64, hidden=(256, 128), critics: int = 32):
    rng = np.random.default_rng(0)
    m, k, n = 2 * batch, hidden[0], hidden[1]
    a = jnp.asarray(rng.standard_normal((critics, m, k)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((critics, k, n)), jnp.float32)
    flops = 2.0 * critics * m * k * n

    def one_by_one(a, w):
        return lax.scan(lambda c, aw: (c, aw[0] @ aw[1]), 0, (a, w))[1]

    cases = {
        "single": jax.jit(one_by_one),
        "batched": jax.jit(lambda a, w: jnp.einsum("cmk,ckn->cmn", a, w)),
        "large": jax.jit(lambda a, w: a.reshape(critics * m, k) @ w[0]),
    }
    rate = {
        name: flops / time_jitted(f, a, w, repeats=max(5, 4 * repeats)).median_s / 1e9
        for name, f in cases.items()
    }
    return dict(
        name="gemm_ceiling",
        hidden=str(hidden),
        critics=critics,
        single_gflops=rate["single"],
        batched_gflops=rate["batched"],
        large_gflops=rate["large"],
        batched_ratio=rate["batched"] / rate["single"],
        max_ratio=rate["large"] / rate["single"],
    )


def _ksg_rows(sizes, repeats: int) -> list[dict]:
    from sklearn.feature_selection import mutual_info_regression

    rows = []
    for n in sizes:
        x, y = _gaussian(n, n)
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        fn = eqx.filter_jit(lambda a, b: ksg_mi(a, b, k=3, block_size=1024, throw=False).value)
        t = time_jitted(fn, xj, yj, repeats=repeats)
        value = float(fn(xj, yj))
        skl = time_call(
            lambda x=x, y=y: mutual_info_regression(x, y[:, 0], n_neighbors=3, random_state=0),
            repeats=repeats,
        )
        skl_value = float(
            mutual_info_regression(
                x.astype(np.float64), y[:, 0].astype(np.float64), n_neighbors=3, random_state=0
            )[0]
        )
        with jax.enable_x64(True):
            v64 = float(
                ksg_mi(
                    x.astype(np.float64),
                    y.astype(np.float64),
                    k=3,
                    rescale=True,
                    clip_negative=True,
                    throw=False,
                ).value
            )
        rows.append(
            dict(
                name="ksg",
                n=n,
                median_s=t.median_s,
                compile_s=t.compile_s,
                peak_rss_mb=t.peak_rss_mb,
                sklearn_s=skl.median_s,
                speedup=skl.median_s / t.median_s,
                estimate_nats=value,
                sklearn_nats=skl_value,
                abs_diff_f64=abs(v64 - skl_value),
                true_nats=TRUE_MI,
            )
        )
    return rows


def run(*, size: str = "small", repeats: int = 5) -> list[dict]:
    """Run the benchmark; ``size="small"`` is a quick check, ``"full"`` the issue's sizes."""
    if size not in ("small", "full"):
        raise ValueError(f"size must be 'small' or 'full', got {size!r}")
    if size == "small":
        rows = _neural_rows(num_steps=50, num_critics=32, repeats=min(repeats, 3))
        rows += _neural_rows(
            num_steps=200, num_critics=32, repeats=min(repeats, 3), hidden=(32,), tag="_small"
        )
        rows.append(_gemm_ceiling_row(repeats))
        rows += _ksg_rows([2000], repeats=repeats)
    else:
        rows = _neural_rows(num_steps=500, num_critics=32, repeats=repeats)
        rows += _neural_rows(
            num_steps=2000, num_critics=32, repeats=repeats, hidden=(32,), tag="_small"
        )
        rows.append(_gemm_ceiling_row(repeats))
        rows += _ksg_rows([2000, 20000], repeats=min(repeats, 3))
    return rows


COLUMNS = [
    "name",
    "hidden",
    "n",
    "critics",
    "num_steps",
    "median_s",
    "compile_s",
    "peak_rss_mb",
    "steps_per_s",
    "throughput_ratio",
    "single_gflops",
    "batched_gflops",
    "large_gflops",
    "batched_ratio",
    "max_ratio",
    "sklearn_s",
    "speedup",
    "estimate_nats",
    "sklearn_nats",
    "abs_diff_f64",
    "true_nats",
]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/mi.json")
    args = parser.parse_args()
    result_rows = run(size=args.size, repeats=args.repeats)
    print(format_table(result_rows, COLUMNS))
    print(f"wrote {write_results(args.out, 'mi', result_rows)}")
