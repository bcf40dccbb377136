"""Pairwise-kernel roofline: achieved FLOP/s and bandwidth of the distance kernels.

For each size ``(n, d)`` (float32), times the jitted dense ``pairwise_distances`` (sqeuclidean
and euclidean), the tiled variant (``block_size=1024``), the tiled ``knn_search`` (k = 10) and,
with more than one device, the row-sharded ``sharded_pairwise_distances`` over all devices.
Compile time is separate; medians and spread come from :mod:`geomtax.bench`.

Work model (Gram-matrix form ``|u|^2 + |v|^2 - 2 u.v``): ``flops = n^2 (2d + 3)`` (the matmul
plus the norm additions and the clamp; the square root adds ``n^2`` more for euclidean), and
``bytes = 4 (2 n d + n^2)`` (read both operands once, write the output once), the minimum
traffic of an (n, n) float32 output. ``gflops`` and ``gbps`` are these over the median time;
on a device whose peak is in ``PEAKS`` the fraction of peak is reported too (``frac_flops``
against the dense TF32/bf16 tensor peak, ``frac_bw`` against HBM bandwidth). A kernel that
writes an n x n matrix is bandwidth-bound for d below about ``peak_flops / (2 * peak_bw)``.

Baseline: ``scipy.spatial.distance.cdist`` (float64) for the distance matrices and scikit-learn's
brute-force ``NearestNeighbors`` (float64) for kNN, on the same inputs in the same run;
``speedup = baseline_s / median_s``.

Run: ``python benchmarks/kernels.py --size small --out results/bench/kernels.json``.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial.distance as ssd
from sklearn.neighbors import NearestNeighbors

from geomtax import knn_search, pairwise_distances
from geomtax.bench import format_table, time_call, time_jitted, write_results

SIZES = {
    "small": [(1024, 32), (2048, 128)],
    "full": [(4096, 128), (8192, 256), (16384, 768)],
}

#: Published dense peaks: (TF32/bf16 tensor FLOP/s used by float32 matmuls, memory bytes/s).
PEAKS = {
    "H200": (494.7e12, 4.8e12),
    "H100": (494.7e12, 3.35e12),  # SXM; PCIe: 378e12, 2.0e12
    "A100": (156e12, 2.0e12),
    "V100": (15.7e12, 0.9e12),  # no TF32: fp32 CUDA-core peak
    "L4": (60e12, 0.3e12),
    "TPU v4": (275e12, 1.2e12),
    "TPU v5 lite": (197e12, 0.82e12),
    "TPU v5p": (459e12, 2.76e12),
}


def device_peak(device_kind: str) -> tuple[float, float] | None:
    """(peak FLOP/s, peak bytes/s) of a device kind, matched by substring; None if unknown."""
    for name, peak in PEAKS.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def run(*, size: str = "small", repeats: int = 5) -> list[dict]:
    """Time the pairwise kernels at the sizes of ``size``; one row per (kernel, n, d)."""
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", str(device))
    peak = device_peak(kind)
    rows = []
    for n, d in SIZES[size]:
        x = jax.random.normal(jax.random.key(0), (n, d), dtype=jnp.float32)
        xh = np.asarray(x, dtype=np.float64)
        base_reps = max(1, min(repeats, 3))
        base = {
            "sqeuclidean": time_call(lambda: ssd.cdist(xh, xh, "sqeuclidean"), repeats=base_reps),
            "euclidean": time_call(lambda: ssd.cdist(xh, xh, "euclidean"), repeats=base_reps),
        }
        cases = [
            ("pairwise sqeuclidean", "sqeuclidean", None),
            ("pairwise euclidean", "euclidean", None),
            ("pairwise sqeuclidean tiled", "sqeuclidean", 1024),
        ]
        for label, metric, bs in cases:
            fn = jax.jit(
                lambda x, metric=metric, bs=bs: pairwise_distances(x, metric=metric, block_size=bs)
            )
            rows.append(_row(label, n, d, fn, x, repeats, base[metric], peak, kind, metric))
        nn = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(xh)
        base_knn = time_call(lambda: nn.kneighbors(xh), repeats=base_reps)
        knn = jax.jit(lambda x: knn_search(x, 10, block_size=1024))
        label, base_name = "knn k=10 tiled", "sklearn brute kNN (f64)"
        rows.append(
            _row(
                label,
                n,
                d,
                knn,
                x,
                repeats,
                base_knn,
                peak,
                kind,
                "sqeuclidean",
                output=False,
                baseline=base_name,
            )
        )
        if jax.device_count() > 1:
            from geomtax.parallel import make_mesh, sharded_pairwise_distances

            mesh = make_mesh()
            sharded = jax.jit(
                lambda x: sharded_pairwise_distances(x, mesh=mesh, metric="sqeuclidean")
            )
            t = time_jitted(sharded, x, repeats=repeats)
            rows.append(
                _finish(
                    f"sharded sqeuclidean x{mesh.size}",
                    n,
                    d,
                    t,
                    base["sqeuclidean"],
                    peak,
                    kind,
                    "sqeuclidean",
                    True,
                )
            )
    return rows


def _row(label, n, d, fn, x, repeats, base, peak, kind, metric, output=True, baseline=None):
    t = time_jitted(fn, x, repeats=repeats)
    return _finish(label, n, d, t, base, peak, kind, metric, output, baseline)


def _finish(label, n, d, t, base, peak, kind, metric, output, baseline=None):
    flops = n * n * (2 * d + 3 + (metric == "euclidean"))
    nbytes = 4 * (2 * n * d + (n * n if output else n * 10 * 2))
    row = {
        "kernel": label,
        "n": n,
        "d": d,
        "device": kind,
        "compile_s": t.compile_s,
        "median_s": t.median_s,
        "iqr_s": t.iqr_s,
        "min_s": t.min_s,
        "peak_rss_mb": t.peak_rss_mb,
        "gflops": flops / t.median_s / 1e9,
        "gbps": nbytes / t.median_s / 1e9,
        "frac_flops": None if peak is None else flops / t.median_s / peak[0],
        "frac_bw": None if peak is None else nbytes / t.median_s / peak[1],
        "baseline": baseline or f"scipy cdist {metric} (f64)",
        "baseline_s": base.median_s,
        "speedup": base.median_s / t.median_s,
    }
    return row


COLUMNS = [
    "kernel",
    "n",
    "d",
    "compile_s",
    "median_s",
    "iqr_s",
    "gflops",
    "gbps",
    "frac_flops",
    "frac_bw",
    "baseline_s",
    "speedup",
    "peak_rss_mb",
]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/kernels.json")
    args = parser.parse_args()
    result = run(size=args.size, repeats=args.repeats)
    print(format_table(result, COLUMNS))
    print(f"wrote {write_results(args.out, 'kernels', result)}")
