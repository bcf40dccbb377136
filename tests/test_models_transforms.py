"""Transform table for geomtax.models / geomtax.experiments: jit vs eager, vmap, grad, retracing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import geomtax.experiments as gx
import geomtax.models as gm
from geomtax.models import EncoderConfig, embed, init_model, sequence_loss

L = 6
CFG = dict(d_model=8, num_layers=1, num_heads=2, d_ff=16, max_len=L, vocab_size=7, d_state=4)


def _model(arch="bert", head="mse"):
    return init_model(
        EncoderConfig(arch, dropout=0.0, attention_layers=(0,), **CFG), head=head, seed=0
    )


@pytest.mark.parametrize("arch", ["lstm", pytest.param("striped_hyena", marks=pytest.mark.slow)])
def test_embed_jit_matches_eager_and_vmaps(arch, getkey):
    model = _model(arch)
    graphdef, state = nnx.split(model)
    tokens = jax.random.randint(getkey(), (3, 4, L), 0, 7)

    def f(state, t):
        return embed(nnx.merge(graphdef, state), t)

    with jax.disable_jit():
        eager = np.asarray(f(state, tokens[0]))
    np.testing.assert_allclose(jax.jit(f)(state, tokens[0]), eager, rtol=1e-5, atol=1e-6)
    batched = jax.vmap(f, in_axes=(None, 0))(state, tokens)
    for i in range(3):
        np.testing.assert_allclose(batched[i], f(state, tokens[i]), rtol=1e-5, atol=1e-6)


def test_loss_grad_matches_finite_differences(getkey, x64):
    """Directional derivative of the MSE loss against a central finite difference (float64)."""
    model = _model("lstm")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    tokens = jax.random.randint(getkey(), (2, L), 0, 7)
    values = jax.random.uniform(getkey(), (2, L), dtype=jnp.float64)

    def loss(p):
        return sequence_loss(nnx.merge(graphdef, p, rest), tokens, values)

    direction = jax.tree.map(lambda p: jax.random.normal(getkey(), p.shape, p.dtype), params)
    grad = jax.grad(loss)(params)
    analytic = sum(float(jnp.sum(g * d)) for g, d in zip(*map(jax.tree.leaves, (grad, direction))))
    eps = 1e-5
    plus = loss(jax.tree.map(lambda p, d: p + eps * d, params, direction))
    minus = loss(jax.tree.map(lambda p, d: p - eps * d, params, direction))
    # some Flax layers compute in float32 even with float64 parameters, hence rtol 1e-2 (a wrong
    # gradient is off by O(1))
    np.testing.assert_allclose(analytic, float(plus - minus) / (2 * eps), rtol=1e-2)


def test_embed_does_not_retrace_for_new_values(getkey):
    model = _model("mamba")
    graphdef, state = nnx.split(model)

    @eqx.debug.assert_max_traces(max_traces=1)
    def f(state, t):
        return embed(nnx.merge(graphdef, state), t)

    jf = jax.jit(f)
    jf(state, jax.random.randint(getkey(), (2, L), 0, 7))
    jf(state, jax.random.randint(getkey(), (2, L), 0, 7))


def test_jacobian_penalty_transforms(getkey):
    w = jax.random.normal(getkey(), (3, 3))
    x = jax.random.normal(getkey(), (4, 3))
    key = getkey()

    def pen(x):
        return gx.jacobian_penalty_fro(lambda z: jnp.tanh(z @ w), x, key=key)

    np.testing.assert_allclose(jax.jit(pen)(x), pen(x), rtol=1e-5)
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_allclose(jax.vmap(pen)(xs)[1], pen(2 * x), rtol=1e-5)
    g = jax.grad(pen)(x)  # double backward
    assert bool(jnp.all(jnp.isfinite(g)))


def test_every_public_callable_has_a_row():
    """Public callables of both namespaces are exercised somewhere in the model/experiment tests."""
    covered = {
        "EncoderConfig",
        "SmallBERT",
        "SmallMamba",
        "SmallStripedHyena",
        "SmallLSTM",
        "make_encoder",
        "SequenceModel",
        "FixedCode",
        "init_model",
        "sequence_loss",
        "embed",
        "random_code_table",
        "TrainConfig",
        "TrainLog",
        "train",
        "make_optimizer",
        "make_train_step",
        "jacobian_penalty_mean",
        "jacobian_penalty_fro",
        "AblationConfig",
        "preset_config",
        "Cell",
        "plan_cells",
        "run_cell",
        "run_ablation",
        "summarize",
        "shattering_epoch",
        "config_fingerprint",
        "write_outputs",
        "markdown_table",
        "format_summary",
        "Experiment",
        "register_experiment",
        "registered_experiments",
        "get_experiment",
        "load_system_data",
    }
    public = {n for ns in (gm, gx) for n in ns.__all__ if callable(getattr(ns, n))}
    assert public <= covered, public - covered
