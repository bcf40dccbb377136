"""Neural MI on the "Beyond normal" ground-truth tasks (Czyz et al. 2023 style), n = 5,000.

Every bound (dv, mine, nwj, infonce, smile) and KSG, under candidate settings, against the
closed-form truth. Writes one JSON line per fit to ``benchmarks/results/mi_groundtruth.jsonl``
(true value, raw held-out and tail numbers, status, flags, settings, seed, n, seconds); the table
in docs/api/info.md is made from it by ``--table [config]``. Small on purpose (a few seconds per
fit on 2 CPU cores): ``nice python benchmarks/mi_groundtruth.py [--only est,est] [config ...]``.
"""

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma, gammaln

import geomtax.info as gi

N = 5000
SEED = 0
OUT = Path(__file__).parent / "results" / "mi_groundtruth.jsonl"
ESTIMATORS = ("dv", "mine", "nwj", "infonce", "smile")
BASE = dict(preprocess="copula", learning_rate=5e-4, num_steps=2000, hidden=(128, 64))
CONFIGS = {
    "default": {},
    "none": dict(preprocess="none"),
    "zscore": dict(preprocess="zscore"),
    "lr1e-3": dict(learning_rate=1e-3),
    "lr1e-4": dict(learning_rate=1e-4),
}


def gaussian_mi(rho, d=1):
    return -0.5 * d * np.log(1.0 - rho**2)


def student_t_mi(dx, dy, nu):
    def h(k):
        return (
            -gammaln((nu + k) / 2)
            + gammaln(nu / 2)
            + (k / 2) * np.log(nu * np.pi)
            + ((nu + k) / 2) * (digamma((nu + k) / 2) - digamma(nu / 2))
        )

    return h(dx) + h(dy) - h(dx + dy)


def sparse_normal(d, rho, rng):
    x = rng.standard_normal((N, d))
    return x, rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((N, d)), gaussian_mi(rho, d)


def student(d, nu, rng):
    z = rng.standard_normal((N, 2 * d)) / np.sqrt(rng.chisquare(nu, (N, 1)) / nu)
    return z[:, :d], z[:, d:], student_t_mi(d, d, nu)


def additive(eps, rng):
    x = rng.uniform(0, 1, (N, 1))
    mi = 1 / (4 * eps) if eps > 0.5 else eps - np.log(2 * eps)
    return x, x + rng.uniform(-eps, eps, (N, 1)), mi


def half_cube(a):
    return np.sign(a) * np.abs(a) ** 1.5


def spiral(a, speed=0.5):
    t = speed * np.sum(a**2, axis=1)
    c, s = np.cos(t), np.sin(t)
    out = a.copy()
    out[:, 0], out[:, 1] = c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1]
    return out


def tasks():
    rng = np.random.default_rng(SEED)
    out = {
        "normal-1v1-0.75": sparse_normal(1, 0.75, rng),
        "normal-5v5-0.8": sparse_normal(5, 0.8, rng),
        "student-1v1-df1": student(1, 1.0, rng),
        "student-2v2-df3": student(2, 3.0, rng),
        "additive-0.75": additive(0.75, rng),
        "additive-0.1": additive(0.1, rng),
    }
    x, y, mi = sparse_normal(2, 0.75, rng)
    out["halfcube-2v2-0.75"] = (half_cube(x), half_cube(y), mi)
    x, y, mi = sparse_normal(3, 0.75, rng)
    out["spiral-3v3-0.75"] = (spiral(x), spiral(y), mi)
    return out


def run(configs, only=None):
    OUT.parent.mkdir(exist_ok=True)
    data = tasks()
    with OUT.open("a") as f:
        for cname in configs:
            opts = dict(BASE, **CONFIGS[cname])
            ests = ESTIMATORS + (("ksg",) if cname in ("default", "none") else ())
            ests = tuple(e for e in ests if only is None or e in only)
            for tname, (x, y, mi) in data.items():
                x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
                for est in ests:
                    o = (
                        dict(preprocess=opts["preprocess"])
                        if est == "ksg"
                        else {k: v for k, v in opts.items()}
                    )
                    t0 = time.time()
                    r = gi.mutual_information(
                        x, y, key=jax.random.key(SEED), estimator=est, throw=False, **o
                    )
                    jax.block_until_ready(r)
                    row = dict(
                        config=cname,
                        task=tname,
                        estimator=est,
                        true=float(mi),
                        heldout=float(r.heldout),
                        heldout_stderr=float(r.heldout_stderr),
                        tail_mean=float(r.tail_mean),
                        tail_std=float(r.tail_std),
                        value=float(r.value),
                        status=str(r.status_name),
                        flags=int(r.flags),
                        windows=[
                            round(float(w), 4) for w in np.asarray(r.curve).reshape(10, -1).mean(1)
                        ]
                        if est != "ksg"
                        else [],
                        settings={k: list(v) if isinstance(v, tuple) else v for k, v in o.items()},
                        seed=SEED,
                        n=N,
                        seconds=round(time.time() - t0, 2),
                    )
                    f.write(json.dumps(row) + "\n")
                    f.flush()
                    print(cname, tname, est, row["status"], round(row["heldout"], 3), mi)


def table(config="default"):
    """Print the markdown table of one configuration (the last row per task and estimator)."""
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    rows = {(r["task"], r["estimator"]): r for r in rows if r["config"] == config}
    tasks_ = list(dict.fromkeys(t for t, _ in rows))
    ests = list(dict.fromkeys(e for _, e in rows))
    print("| task | true | " + " | ".join(ests) + " |")
    print("|---|---|" + "---|" * len(ests))
    for t in tasks_:
        cells = []
        for e in ests:
            r = rows.get((t, e))
            if r is None:
                cells.append("")
                continue
            raw = r["tail_mean"] if e == "ksg" else r["heldout"]
            cells.append(f"{raw:.2f}" + ("" if r["status"] == "ok" else f" *{r['status']}*"))
        true = next(r["true"] for (tt, _), r in rows.items() if tt == t)
        print(f"| {t} | {true:.2f} | " + " | ".join(cells) + " |")


def _tol(t):
    return max(0.1, 0.15 * t)


def summary():
    """Per configuration and estimator: tasks ok and within tolerance / ok but outside / flagged."""
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    last = {(r["config"], r["task"], r["estimator"]): r for r in rows}
    configs = list(dict.fromkeys(c for c, _, _ in last))
    ests = list(dict.fromkeys(e for _, _, e in last))
    print("| settings | " + " | ".join(ests) + " |")
    print("|---|" + "---|" * len(ests))
    for c in configs:
        cells = []
        for e in ests:
            rs = [r for (cc, _, ee), r in last.items() if cc == c and ee == e]
            if not rs:
                cells.append("")
                continue
            good = wrong = flagged = 0
            worst = []
            for r in rs:
                raw = r["tail_mean"] if e == "ksg" else r["heldout"]
                if r["status"] != "ok":
                    flagged += 1
                elif abs(raw - r["true"]) <= _tol(r["true"]):
                    good += 1
                else:
                    wrong += 1
                    worst.append(f"{r['task'].split('-')[0]} {raw:.2f}/{r['true']:.2f}")
            cell = f"{good} / **{wrong}** / {flagged}" if wrong else f"{good} / 0 / {flagged}"
            if worst:
                cell += " (" + ", ".join(worst) + ")"
            cells.append(cell)
        print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--table"]:
        table(*args[1:2])
    elif args[:1] == ["--summary"]:
        summary()
    else:
        only = None
        if args[:1] == ["--only"]:
            only, args = tuple(args[1].split(",")), args[2:]
        run(args or list(CONFIGS), only)
