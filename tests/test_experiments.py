"""geomtax.experiments: training loop, resume, Jacobian penalty, ablation driver and CLI."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from geomtax.cli._ablation import main as cli_main
from geomtax.cli._ablation import register
from geomtax.experiments import (
    EXPERIMENTS,
    Cell,
    Experiment,
    TrainConfig,
    _registry,
    config_fingerprint,
    format_summary,
    get_experiment,
    jacobian_penalty_fro,
    jacobian_penalty_mean,
    load_system_data,
    make_optimizer,
    make_train_step,
    plan_cells,
    preset_config,
    register_experiment,
    registered_experiments,
    run_ablation,
    shattering_epoch,
    summarize,
    train,
)
from geomtax.experiments._evaluate import SUITE_METRICS
from geomtax.experiments._experiment import mean, select
from geomtax.experiments._records import sweep_figure
from geomtax.models import EncoderConfig, init_model

L = 8
TINY = EncoderConfig(
    "lstm", d_model=8, num_layers=1, vocab_size=10, max_len=L, dropout=0.1, d_state=4
)


def _data(key, n=24):
    values = jax.random.uniform(key, (n, L))
    tokens = jnp.minimum((values * 10).astype(jnp.int32), 9)
    return tokens, values


# ---------------------------------------------------------------------------------------------
# Jacobian penalty: closed forms for a linear map


def test_jacobian_penalties_match_frobenius_norm(getkey):
    """fn(x) = x W: J = I_b (x) W^T, so ||J||_F^2 = b ||W||_F^2 (unbiased in expectation)."""
    w = jax.random.normal(getkey(), (3, 4))
    x = jax.random.normal(getkey(), (5, 3))
    exact = 5 * float(jnp.sum(w**2))
    keys = jax.random.split(getkey(), 4000)
    fro = jax.vmap(lambda k: jacobian_penalty_fro(lambda z: z @ w, x, key=k))(keys)
    mean = jax.vmap(lambda k: jacobian_penalty_mean(lambda z: z @ w, x, key=k))(keys)
    # 4000 probes; the relative standard error of a Hutchinson estimate here is < 2 %
    np.testing.assert_allclose(float(fro.mean()), exact, rtol=0.06)
    np.testing.assert_allclose(float(mean.mean()), exact / x.size, rtol=0.06)
    np.testing.assert_allclose(np.asarray(mean) * x.size, np.asarray(fro), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# training step and loop


def test_train_step_compiles_once_and_penalty_branch(getkey):
    tokens, values = _data(getkey(), 8)
    for lam in (0.5,):  # steps 0 and 2 take the penalty branch of the lax.cond, step 1 not
        model = init_model(TINY, head="ce", seed=0)
        cfg = TrainConfig(batch_size=4, num_epochs=1, jacobian_lambda=lam, jacobian_every=2)
        opt = make_optimizer(cfg, 10)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        state = opt.init(params)
        step = make_train_step(graphdef, cfg, opt)
        for i in range(3):
            sl = slice(4 * (i % 2), 4 * (i % 2) + 4)
            params, state, loss = step(
                params, rest, state, tokens[sl], values[sl], getkey(), jnp.asarray(i)
            )
            assert np.isfinite(float(loss))
        assert step._cache_size() == 1  # no recompilation between steps


def test_train_keeps_best_validation_epoch(getkey):
    tokens, values = _data(getkey())
    model = init_model(TINY, head="mse", seed=1)
    cfg = TrainConfig(num_epochs=3, batch_size=8, learning_rate=1e-2)
    seen = []

    def callback(epoch, current):
        seen.append(epoch)
        return {"marker": float(epoch)}

    best, log, records = train(
        model, tokens, values, tokens[:8], values[:8], config=cfg, key=getkey(), callback=callback
    )
    assert seen == [0, 1, 2]
    assert [r["marker"] for r in records] == [0.0, 1.0, 2.0]
    assert int(log.best_epoch) == int(np.argmin(np.asarray(log.val_loss)))
    assert log.train_loss.shape == (3,) and np.all(np.asarray(log.steps_per_second) > 0)
    from geomtax.models import sequence_loss

    best_val = float(sequence_loss(best, tokens[:8], values[:8]))
    np.testing.assert_allclose(best_val, float(np.min(np.asarray(log.val_loss))), rtol=1e-5)


def test_train_rejects_too_small_dataset(getkey):
    tokens, values = _data(getkey(), 4)
    model = init_model(TINY, head="ce", seed=0)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train(
            model,
            tokens,
            values,
            tokens,
            values,
            config=TrainConfig(batch_size=8, num_epochs=1),
            key=getkey(),
        )


class _Interrupt(Exception):
    pass


def test_resume_reproduces_uninterrupted_run(getkey, tmp_path):
    tokens, values = _data(getkey())
    key = getkey()
    cfg = TrainConfig(num_epochs=3, batch_size=8)
    model = init_model(TINY, head="ce", seed=2)
    ref, ref_log, _ = train(model, tokens, values, tokens[:8], values[:8], config=cfg, key=key)

    def interrupt_at_2(epoch, current):
        if epoch == 2:
            raise _Interrupt
        return {}

    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        train(
            model,
            tokens,
            values,
            tokens[:8],
            values[:8],
            config=cfg,
            key=key,
            checkpoint_dir=ckpt,
            callback=interrupt_at_2,
        )
    resumed, log, _ = train(
        model, tokens, values, tokens[:8], values[:8], config=cfg, key=key, checkpoint_dir=ckpt
    )
    np.testing.assert_allclose(log.val_loss, ref_log.val_loss, rtol=1e-6)
    a = jax.tree.leaves(nnx.state(resumed, nnx.Param))
    b = jax.tree.leaves(nnx.state(ref, nnx.Param))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# shattering epoch (docs/reference/rate-distortion.md#scaling-law), against a direct NumPy
# transcription


def _shatter_oracle(d, skip=3, window=3):
    d = np.asarray(d, float)
    if len(d) < skip + window:
        return int(np.argmin(d))
    delta = np.r_[np.nan, d[1:] - d[:-1]]
    rolling = np.convolve(delta, np.ones(window) / window, mode="full")[: len(d)]
    rolling[: skip + window - 1] = -np.inf
    return int(np.nanargmax(rolling))


@pytest.mark.parametrize("seed", range(5))
def test_shattering_epoch_matches_oracle(seed):
    d = np.random.default_rng(seed).uniform(0, 1, size=12)
    assert shattering_epoch(d) == _shatter_oracle(d)
    assert shattering_epoch(d[:4]) == int(np.argmin(d[:4]))
    with pytest.raises(ValueError):
        shattering_epoch([])


# ---------------------------------------------------------------------------------------------
# ablation driver and CLI


def test_presets_and_bad_input():
    quick = preset_config("quick")
    assert quick.systems == ("lorenz",) and "head" in quick.experiments
    paper = preset_config("paper")
    assert paper.encoder.d_model == 256 and paper.train.num_epochs == 20
    with pytest.raises(ValueError, match="preset"):
        preset_config("huge")
    with pytest.raises(ValueError, match="system"):
        preset_config("quick", systems=("mars",))
    with pytest.raises(ValueError, match="architecture"):
        preset_config("quick", architectures=("gpt",))
    with pytest.raises(ValueError, match="experiment"):
        preset_config("quick", experiments=("everything",))
    import dataclasses

    with pytest.raises(ValueError, match="too small"):
        dataclasses.replace(quick, num_train=10)


def test_plan_covers_every_experiment_without_duplicates():
    cfg = preset_config(
        "tiny",
        experiments=("head", "architecture", "codebook", "jacobian", "attention", "hyena-order"),
    )
    plan = plan_cells(cfg)
    ids = [c.cell_id for c, _ in plan]
    assert len(ids) == len(set(ids))
    exps = {e for _, es in plan for e in es}
    assert exps == set(cfg.experiments)
    # head cells are shared with the architecture experiment (trained once)
    shared = [es for c, es in plan if c.cell_id == "lorenz_bert_ce_s320"][0]
    assert {"head", "architecture"} <= set(shared)


def test_summarize_ratios_and_spread():
    cfg = preset_config("tiny", architectures=("bert", "lstm"))
    recs = []
    for arch, dce, dmse in (("bert", 0.4, 0.1), ("lstm", 0.2, 0.08)):
        for head, d in (("ce", dce), ("mse", dmse)):
            recs.append(
                dict(
                    system="lorenz",
                    architecture=arch,
                    head=head,
                    distortion=d,
                    distortion_reversal=d,
                    experiments=["head", "architecture"],
                )
            )
    s = summarize(cfg, recs)
    ratios = {r["architecture"]: r["ratio_ce_over_mse"] for r in s["head"]}
    assert ratios == pytest.approx({"bert": 4.0, "lstm": 2.5})
    spread = {r["head"]: r["spread_max_over_min"] for r in s["architecture"]}
    assert spread == pytest.approx({"ce": 2.0, "mse": 1.25})
    assert "| lorenz |" in format_summary({"summary": s})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    # waveform: closed-form generator, no ODE solver to compile
    cfg = preset_config("tiny", architectures=("lstm",), systems=("waveform",))
    result = run_ablation(cfg, out, progress=False, log=None)
    return cfg, out, result


def test_tiny_ablation_end_to_end(tiny_run):
    cfg, out, result = tiny_run
    for name in ("config.json", "cells.jsonl", "results.json", "results.csv", "head_ablation.png"):
        assert (out / name).exists(), name
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["records"]) == 2
    for rec in saved["records"]:
        for field, value in rec.items():
            assert value is not None, field
            if isinstance(value, float):
                assert math.isfinite(value), field
        assert 0.0 <= rec["distortion"] <= 1.0
        assert len(rec["distortion_trajectory"]) == cfg.train.num_epochs
        # every stored number has its status next to it (all ok on this clean run)
        for field in ("distortion", *(f"suite_{m}" for m in SUITE_METRICS)):
            assert rec[f"{field}_status"] == "ok", (field, rec[f"{field}_status"])
    head = saved["summary"]["head"][0]
    assert head["architecture"] == "lstm" and math.isfinite(head["ratio_ce_over_mse"])
    assert not (out / "checkpoints" / "waveform_lstm_ce_s320").exists()


def _args(**kw):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["ablation", "--no-progress", "--no-figures"]
    for k, v in kw.items():
        argv += [f"--{k}", str(v)]
    return parser.parse_args(argv)


def test_cli_resumes_same_config_and_refuses_a_different_one(tiny_run, capsys):
    cfg, out, result = tiny_run
    before = (out / "cells.jsonl").read_text()
    # same configuration: every cell is already recorded, so nothing is retrained
    assert cli_main(_args(preset="tiny", architectures="lstm", system="waveform", out=out)) == 0
    assert (out / "cells.jsonl").read_text() == before
    assert "lstm" in capsys.readouterr().out
    # a different configuration into the same directory is refused
    assert cli_main(_args(preset="tiny", architectures="bert", system="waveform", out=out)) == 2
    assert "different configuration" in capsys.readouterr().err
    assert cli_main(_args(preset="nope", out=out)) == 2
    assert cli_main(_args(preset="tiny", system="venus", out=out)) == 2


@pytest.mark.slow
def test_tiny_ablation_every_experiment(tmp_path):
    """Codebook, Jacobian, attention-ratio and Hyena-order sweeps run end to end (tiny sizes)."""
    exps = ("codebook", "jacobian", "attention", "hyena-order")
    cfg = preset_config("tiny", systems=("waveform",), experiments=exps)
    result = run_ablation(cfg, tmp_path, progress=False, log=None)
    summary = result["summary"]
    assert set(summary) == set(exps)
    # every planned cell has a finite distortion and suite metrics in their ranges
    assert len(result["records"]) == len(plan_cells(cfg))
    for rec in result["records"]:
        assert 0.0 <= rec["distortion"] <= 1.0, rec["cell_id"]
        for m in ("rdm_similarity", "trustworthiness", "knn_overlap"):
            assert -1.0 <= rec[f"suite_{m}"] <= 1.0 + 1e-6, (rec["cell_id"], m)
    # codebook: the reconstruction error of a k-means codebook falls as K grows
    km = [r for r in summary["codebook"] if r["condition"] == "kmeans-ce"]
    assert [r["num_codes"] for r in km] == list(cfg.codebook_sizes)
    assert km[-1]["reconstruction_mse"] < km[0]["reconstruction_mse"]
    # each sweep has one finite row per setting
    assert len(summary["jacobian"]) == len(cfg.jacobian_architectures) * len(cfg.jacobian_lambdas)
    assert len(summary["attention"]) == len(cfg.attention_patterns) + 2
    assert [r["hyena_order"] for r in summary["hyena-order"]] == list(cfg.hyena_orders)
    for name in exps:
        assert all(math.isfinite(r["distortion"]) for r in summary[name]), name
    for png in ("codebook_sweep.png", "jacobian_sweep.png", "attention_sweep.png"):
        assert (tmp_path / png).exists(), png


# ---------------------------------------------------------------------------------------------
# adding an experiment (the contributor's example, docs/api/experiments.md#adding-an-experiment)


class Width(Experiment):
    """D against the encoder width: one LSTM CE cell per ``d_model`` (a new experiment)."""

    name = "width"
    widths: tuple[int, ...] = eqx.field(static=True, default=(8, 16))

    def cells(self, config, system, seed):
        return [Cell(system, "lstm", "ce", seed, overrides=(("d_model", w),)) for w in self.widths]

    def summarize(self, config, records, system):
        return [
            {"system": system, "d_model": w, "distortion": mean(select(records, d_model=w))}
            for w in self.widths
        ]

    def figures(self, out, rows, records):
        return [sweep_figure(out, self.name, rows, "d_model")]


@pytest.fixture
def width_experiment():
    experiment = register_experiment(Width())
    yield experiment
    _registry._REGISTRY.pop(experiment.name)


def test_add_an_experiment(width_experiment, tmp_path):
    assert registered_experiments()[-1] == "width" and "width" not in EXPERIMENTS
    cfg = preset_config("tiny", systems=("waveform",), experiments=("width",))
    plan = plan_cells(cfg)
    assert [c.cell_id for c, _ in plan] == [
        "waveform_lstm_ce_s320_d_model8",
        "waveform_lstm_ce_s320_d_model16",
    ]
    result = run_ablation(cfg, tmp_path, progress=False, log=None)
    rows = result["summary"]["width"]
    assert [r["d_model"] for r in rows] == [8, 16]
    assert all(0.0 <= r["distortion"] <= 1.0 for r in rows)
    assert [r["overrides"] for r in result["records"]] == [{"d_model": 8}, {"d_model": 16}]
    assert (tmp_path / "width_sweep.png").exists() and (tmp_path / "summary_width.csv").exists()
    # the experiment's own settings are part of the fingerprint (a changed grid is not mixed)
    other = register_experiment(Width(widths=(8,)), overwrite=True)
    assert config_fingerprint(cfg) != result["fingerprint"]
    assert len(plan_cells(cfg)) == len(other.widths)


def test_register_experiment_refuses_clashes(width_experiment):
    assert get_experiment("width") is width_experiment
    assert get_experiment("head").name == "head"
    with pytest.raises(ValueError, match="already registered"):
        register_experiment(Width())
    with pytest.raises(ValueError, match="built in"):
        register_experiment(type("Head2", (Width,), {"name": "head"})())
    with pytest.raises(TypeError, match="Experiment"):
        register_experiment("width")
    with pytest.raises(ValueError, match="unknown experiment"):
        preset_config("tiny", experiments=("depth",))


def test_system_data_is_build_dataset_with_the_reference_seeds():
    """Train + val rows come from key(seed), eval rows from key(seed + 1000)."""
    from geomtax.dynamics import generate

    cfg = preset_config("tiny", systems=("waveform",))
    data = load_system_data(cfg, "waveform", 5)
    n = cfg.num_train + cfg.num_val
    train = generate("waveform", key=jax.random.key(5), num_sequences=n, seq_len=cfg.seq_len)
    held = generate("waveform", key=jax.random.key(1005), num_sequences=16, seq_len=cfg.seq_len)
    np.testing.assert_array_equal(data.train_raw, train.observed[: cfg.num_train])
    np.testing.assert_array_equal(data.val_raw, train.observed[cfg.num_train :])
    np.testing.assert_array_equal(data.eval_raw, held.observed[: cfg.num_eval])


def test_init_model_needs_an_explicit_seed():
    with pytest.raises(TypeError, match="seed"):
        init_model(TINY, head="ce")
