"""Training throughput of the ablation encoders (steps per second), compile time separate.

For each architecture and size, one jitted AdamW train step (CE head, batch 64) is compiled
(timed separately) and then timed over repeated calls on the same batch. Sizes: ``quick`` =
the ``geomtax ablation --preset quick`` encoder (d_model 64, 2 layers, seq_len 128); ``paper`` =
the reference (d_model 256, 4 layers, seq_len 512). ``--size small`` runs the quick size only.

Baseline: the same step eagerly dispatched op by op is impractically slow, so the comparison
reported is against a NumPy forward pass of an equal-FLOP dense stack (``baseline`` column):
the matmul-only lower bound of one step (forward + 2x backward) on this machine, timed in the
same run on the same batch shape. ``ratio = step time / matmul lower bound``.

Run: ``python benchmarks/training.py --size small --out results/bench/training.json``.
"""

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from geomtax.bench import format_table, time_call, time_jitted, write_results
from geomtax.experiments import TrainConfig, make_optimizer, make_train_step
from geomtax.models import ARCHITECTURES, EncoderConfig, init_model

SIZES = {
    "quick": dict(d_model=64, num_layers=2, num_heads=4, d_ff=256, seq_len=128, attn=(1,)),
    "paper": dict(d_model=256, num_layers=4, num_heads=4, d_ff=1024, seq_len=512, attn=None),
}


def _matmul_baseline(params: int, tokens: int, repeats: int):
    """NumPy float32 dense matmuls with ``params`` weights over ``tokens`` rows, x3 (fwd+bwd)."""
    width = 256
    rows = tokens
    layers = max(1, params // (width * width))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((width, width), dtype=np.float32) / 16
    x = rng.standard_normal((rows, width), dtype=np.float32)

    def run():
        h = x
        for _ in range(3 * layers):
            h = np.tanh(h @ w)
        return h

    return time_call(run, repeats=repeats)


def run(*, size: str = "small", repeats: int = 5, batch_size: int = 64) -> list[dict]:
    """Time one train step per architecture; ``size`` is ``small`` (quick only) or ``full``."""
    names = ["quick"] if size == "small" else ["quick", "paper"]
    rows = []
    for name in names:
        s = SIZES[name]
        for arch in ARCHITECTURES:
            cfg = EncoderConfig(
                arch,
                d_model=s["d_model"],
                num_layers=s["num_layers"],
                num_heads=s["num_heads"],
                d_ff=s["d_ff"],
                max_len=s["seq_len"],
                attention_layers=s["attn"],
            )
            model = init_model(cfg, head="ce", seed=0)
            graphdef, params, rest = nnx.split(model, nnx.Param, ...)
            tcfg = TrainConfig(num_epochs=1, batch_size=batch_size)
            opt = make_optimizer(tcfg, 1000)
            opt_state = opt.init(params)
            step = make_train_step(graphdef, tcfg, opt)
            key = jax.random.key(0)
            tokens = jax.random.randint(key, (batch_size, s["seq_len"]), 0, 256)
            values = jnp.zeros(tokens.shape, jnp.float32)
            args = (params, rest, opt_state, tokens, values, key, jnp.asarray(0, jnp.int32))
            t = time_jitted(step, *args, repeats=repeats)
            num_params = int(sum(x.size for x in jax.tree.leaves(params)))
            base = _matmul_baseline(num_params, batch_size * s["seq_len"], repeats)
            rows.append(
                {
                    "size": name,
                    "architecture": arch,
                    "num_params": num_params,
                    "batch": batch_size,
                    "seq_len": s["seq_len"],
                    "compile_s": t.compile_s,
                    "step_ms": 1e3 * t.median_s,
                    "steps_per_s": 1.0 / t.median_s,
                    "tokens_per_s": batch_size * s["seq_len"] / t.median_s,
                    "peak_rss_mb": t.peak_rss_mb,
                    "baseline_ms": 1e3 * base.median_s,
                    "ratio": t.median_s / base.median_s,
                    "timing": dataclasses.asdict(t),
                }
            )
    return rows


COLUMNS = [
    "size",
    "architecture",
    "num_params",
    "compile_s",
    "step_ms",
    "steps_per_s",
    "tokens_per_s",
    "peak_rss_mb",
    "baseline_ms",
    "ratio",
]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/training.json")
    args = parser.parse_args()
    result_rows = run(size=args.size, repeats=args.repeats)
    print(format_table(result_rows, COLUMNS))
    print("wrote", write_results(args.out, "training", result_rows))
