"""Synthetic-system generation vs a scipy ``solve_ivp`` loop (issue 5 performance target).

* Lorenz, t in [0, 25], 512 samples (endpoint included), float32: geomtax ``lorenz`` (diffrax
  Tsit5 + PID controller, vmapped over initial conditions, compile timed separately) versus a
  Python loop of ``scipy.integrate.solve_ivp`` (RK45, same ``rtol = atol = 1e-6``, same ``t_eval``)
  started from **the same initial conditions** (read back from ``Trajectories.params``).
  ``--size full``: 1,024 trajectories on both sides. ``--size small``: 256 geomtax trajectories;
  the scipy loop runs on the first 16 and its time is scaled per trajectory to 256 (said so in
  the ``note`` column). ``ratio = scipy_s / geomtax_s`` (> 1: geomtax faster; target >= 20 on a
  2-core CPU).
* Throughput (trajectories per second, median run time after compilation) of every built-in
  generator at the same n: ``waveform``, ``damped_oscillator`` (closed form and ``ode``),
  ``lorenz``, ``coupled_lorenz`` (N = 3, eps = 0.1).

Run: ``python benchmarks/dynamics.py --size small --out results/bench/dynamics.json``.
"""

import argparse
import time

import jax
import numpy as np
from scipy.integrate import solve_ivp

from geomtax.bench import format_table, measure_peak_rss, time_jitted, write_results
from geomtax.dynamics import coupled_lorenz, damped_oscillator, lorenz, waveform

SIZES = {"small": {"n": 256, "scipy_n": 16}, "full": {"n": 1024, "scipy_n": 1024}}
RTOL = ATOL = 1e-6
SEQ_LEN = 512
COLUMNS = [
    "system",
    "n",
    "geomtax_s",
    "compile_s",
    "traj_per_s",
    "peak_rss_mb",
    "baseline",
    "baseline_s",
    "ratio",
    "note",
]


def _lorenz_rhs(t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


def _scipy_loop(y0s, ts):
    out = np.empty((len(y0s), len(ts)))
    for i, y0 in enumerate(y0s):
        sol = solve_ivp(
            _lorenz_rhs, (ts[0], ts[-1]), y0, method="RK45", t_eval=ts, rtol=RTOL, atol=ATOL
        )
        out[i] = sol.y[0]
    return out


def _generators(n):
    return {
        "waveform": lambda k: waveform(key=k, num_sequences=n, seq_len=SEQ_LEN).observed,
        "damped_oscillator": lambda k: (
            damped_oscillator(key=k, num_sequences=n, seq_len=SEQ_LEN).observed
        ),
        "damped_oscillator (ode)": lambda k: (
            damped_oscillator(
                key=k, num_sequences=n, seq_len=SEQ_LEN, method="ode", rtol=RTOL, atol=ATOL
            ).observed
        ),
        "lorenz": lambda k: (
            lorenz(key=k, num_sequences=n, seq_len=SEQ_LEN, rtol=RTOL, atol=ATOL).observed
        ),
        "coupled_lorenz (N=3)": lambda k: (
            coupled_lorenz(
                key=k, num_sequences=n, seq_len=SEQ_LEN, num_oscillators=3, rtol=RTOL, atol=ATOL
            ).observed
        ),
    }


def run(*, size: str = "small", repeats: int = 5) -> list[dict]:
    cfg = SIZES[size]
    n, scipy_n = cfg["n"], cfg["scipy_n"]
    key = jax.random.key(0)
    rows = []
    for name, fn in _generators(n).items():
        jitted = jax.jit(fn)
        reps = repeats if "lorenz" not in name else max(2, repeats // 2)
        t = time_jitted(jitted, key, repeats=reps)
        row = {
            "system": name,
            "n": n,
            "geomtax_s": t.median_s,
            "compile_s": t.compile_s,
            "traj_per_s": n / t.median_s,
            "peak_rss_mb": t.peak_rss_mb,
            "baseline": None,
            "baseline_s": None,
            "ratio": None,
            "note": f"seq_len {SEQ_LEN}, float32, median of {reps}",
        }
        if name == "lorenz":
            tr = lorenz(key=key, num_sequences=n, seq_len=SEQ_LEN, rtol=RTOL, atol=ATOL)
            y0s = np.stack([np.asarray(tr.params[k], np.float64) for k in ("x0", "y0", "z0")], 1)
            ts = np.asarray(tr.ts, np.float64)
            t0 = time.perf_counter()
            ref, peak = measure_peak_rss(lambda: _scipy_loop(y0s[:scipy_n], ts))
            scipy_s = (time.perf_counter() - t0) * n / scipy_n
            # sanity: same trajectories over the short horizon before chaos separates them
            early = ts <= 2.0
            err = np.abs(np.asarray(tr.observed)[:scipy_n, early] - ref[:, early]).max()
            scaled = "" if scipy_n == n else f"scipy timed on {scipy_n}, scaled x{n / scipy_n:g}; "
            row.update(
                baseline="scipy solve_ivp RK45 loop",
                baseline_s=scipy_s,
                ratio=scipy_s / t.median_s,
                note=row["note"]
                + f"; {scaled}scipy {n / scipy_s:.1f} traj/s; max |x diff| on t<=2: {err:.1e}"
                + ("" if peak is None else f"; scipy peak RSS {peak:.0f} MB"),
            )
        rows.append(row)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/dynamics.json")
    args = parser.parse_args()
    result_rows = run(size=args.size, repeats=args.repeats)
    print(format_table(result_rows, COLUMNS))
    print(f"wrote {write_results(args.out, 'dynamics', result_rows)}")
