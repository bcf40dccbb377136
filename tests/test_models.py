"""geomtax.models: shapes, causality, overfitting, identical encoders, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from geomtax.experiments import TrainConfig, make_optimizer, make_train_step
from geomtax.models import (
    ARCHITECTURES,
    EncoderConfig,
    SequenceModel,
    embed,
    init_model,
    random_code_table,
    sequence_loss,
)

L = 8


def jitted(model, method=None):
    """``tokens -> method(model, tokens)`` compiled once (eager NNX calls compile op by op)."""
    graphdef, state = nnx.split(model)
    method = method or (lambda m, t: m(t))
    fn = jax.jit(lambda s, *a: method(nnx.merge(graphdef, s), *a))
    return lambda *a: fn(state, *a)


def tiny(arch: str, **kw) -> EncoderConfig:
    base = dict(
        d_model=16,
        num_layers=1,
        num_heads=2,
        d_ff=32,
        max_len=L,
        vocab_size=12,
        dropout=0.0,
        attention_layers=(),
        d_state=4,
    )
    base.update(kw)
    return EncoderConfig(arch, **base)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_shapes_and_causality(arch, getkey):
    """A future token cannot change an earlier position's output (every architecture)."""
    cfg = tiny(arch, num_layers=2, attention_layers=(1,))
    model = init_model(cfg, head="ce", seed=1)
    tokens = jax.random.randint(getkey(), (3, L), 0, 12)
    forward = jitted(model)
    out = forward(tokens)
    assert out.shape == (3, L, 12)
    assert jax.eval_shape(model.encoder, tokens).shape == (3, L, 16)
    assert jax.eval_shape(lambda t: embed(model, t), tokens).shape == (3, 16)
    for k in (2, 5, L - 1):
        changed = tokens.at[:, k].set((tokens[:, k] + 5) % 12)
        out2 = forward(changed)
        # positions before k: identical (up to FFT round-off for the Hyena long convolution)
        np.testing.assert_allclose(out2[:, :k], out[:, :k], atol=2e-5, rtol=0)
        # position k itself does change (the model is not constant)
        assert float(jnp.max(jnp.abs(out2[:, k] - out[:, k]))) > 1e-6


def test_embed_is_mean_of_final_hidden_states(getkey):
    """embed = position mean of the final (LayerNormed) hidden states, with or without blocks."""
    model = init_model(tiny("bert"), head="mse", seed=2)
    tokens = jax.random.randint(getkey(), (5, L), 0, 12)
    hidden = np.asarray(jitted(model, lambda m, t: m.encoder(t))(tokens))
    expected = hidden.mean(axis=1)
    pooled = jitted(model, lambda m, t: embed(m, t))(tokens)
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    chunked = jitted(model, lambda m, t: embed(m, t, chunk_size=2))(tokens)
    np.testing.assert_allclose(chunked, expected, rtol=1e-5, atol=1e-6)
    # batch_size= is chunk_size's deprecated 0.1 name: a warning, the same array
    with pytest.warns(DeprecationWarning, match=r"embed\(batch_size=...\) is deprecated"):
        old = jitted(model, lambda m, t: embed(m, t, batch_size=2))(tokens)
    np.testing.assert_array_equal(old, chunked)
    # final LayerNorm: every position has zero mean and unit variance before the affine (init 1/0)
    np.testing.assert_allclose(hidden.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(hidden.var(-1), 1.0, rtol=1e-3)


@pytest.mark.parametrize(
    "arch",
    [
        "lstm",
        *(pytest.param(a, marks=pytest.mark.slow) for a in ("bert", "mamba", "striped_hyena")),
    ],
)
def test_each_model_overfits_a_tiny_batch(arch, getkey):
    """30 AdamW steps on one fixed batch drive the CE loss far below its initial value."""
    model = init_model(tiny(arch), head="ce", seed=3)
    tokens = jax.random.randint(getkey(), (4, L), 0, 12)
    values = jnp.zeros(tokens.shape)
    cfg = TrainConfig(learning_rate=1e-2, weight_decay=0.0, num_epochs=1, batch_size=4)
    opt = make_optimizer(cfg, 10_000)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = opt.init(params)
    step = make_train_step(graphdef, cfg, opt)
    key = getkey()
    losses = []
    for i in range(31):  # the loss returned by step i is that of the parameters before it
        params, state, loss = step(params, rest, state, tokens, values, key, jnp.asarray(i))
        losses.append(float(loss))
    first, final = losses[0], losses[-1]
    assert first > 2.0  # ~ log(12) at initialisation
    assert final < 0.25 * first, (first, final)


def test_ce_and_mse_heads_share_the_identical_encoder():
    cfg = tiny("lstm")
    ce = init_model(cfg, head="ce", seed=7)
    mse = init_model(cfg, head="mse", seed=7)
    assert ce.encoder_config == mse.encoder_config
    enc_ce = nnx.state(ce.encoder, nnx.Param)
    enc_mse = nnx.state(mse.encoder, nnx.Param)
    assert jax.tree.structure(enc_ce) == jax.tree.structure(enc_mse)
    for a, b in zip(jax.tree.leaves(enc_ce), jax.tree.leaves(enc_mse), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ce.head.kernel.shape == (16, 12)
    assert mse.head.kernel.shape == (16, 1)


def test_losses_against_numpy(getkey):
    """Next-token CE and next-value MSE computed independently with NumPy."""
    tokens = jax.random.randint(getkey(), (3, L), 0, 12)
    values = jax.random.uniform(getkey(), (3, L))
    ce = init_model(tiny("lstm"), head="ce", seed=0)
    logits = np.asarray(jitted(ce)(tokens[:, :-1]), np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    tgt = np.asarray(tokens[:, 1:])
    expected = -np.take_along_axis(logp, tgt[..., None], -1).mean()
    np.testing.assert_allclose(jitted(ce, sequence_loss)(tokens), expected, rtol=1e-5)
    mse = init_model(tiny("lstm"), head="mse", seed=0)
    pred = np.asarray(jitted(mse)(tokens[:, :-1]))[..., 0]
    expected = ((pred - np.asarray(values)[:, 1:]) ** 2).mean()
    np.testing.assert_allclose(jitted(mse, sequence_loss)(tokens, values), expected, rtol=1e-5)
    table = random_code_table(12, 5, key=getkey())
    code = init_model(tiny("lstm"), head="code", code_table=table, seed=0)
    pred = np.asarray(jitted(code)(tokens[:, :-1]))
    expected = ((pred - np.asarray(table)[tgt]) ** 2).mean()
    np.testing.assert_allclose(jitted(code, sequence_loss)(tokens), expected, rtol=1e-5)
    # the code table is not a trainable parameter
    assert all(x.shape != table.shape for x in jax.tree.leaves(nnx.state(code, nnx.Param)))


def test_random_code_table_orthonormal(getkey):
    t = np.asarray(random_code_table(6, 8, key=getkey()))
    np.testing.assert_allclose(t @ t.T, np.eye(6), atol=1e-5)
    t = np.asarray(random_code_table(10, 3, key=getkey()))
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)


def test_reference_parameter_counts():
    """SmallBERT and SmallMamba match the PyTorch reference counts (docs/reference/models.md)."""
    counts = {}
    for arch in ("bert", "mamba"):
        abstract = nnx.eval_shape(lambda a=arch: SequenceModel(EncoderConfig(a), rngs=nnx.Rngs(0)))
        counts[arch] = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract)))
    assert counts == {"bert": 3_422_978, "mamba": 2_017_026}


def test_bad_inputs():
    with pytest.raises(ValueError, match="architecture"):
        EncoderConfig("gpt")
    with pytest.raises(ValueError, match="attention_layers"):
        EncoderConfig("striped_hyena", num_layers=2, attention_layers=(3,))
    with pytest.raises(ValueError, match="head"):
        SequenceModel(tiny("lstm"), head="softmax", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="code_table"):
        SequenceModel(tiny("lstm"), head="code", rngs=nnx.Rngs(0))
    model = nnx.eval_shape(lambda: SequenceModel(tiny("bert"), head="ce", rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="max_len"):
        jax.eval_shape(model, jnp.zeros((1, L + 1), jnp.int32))
    with pytest.raises(TypeError, match="integers"):
        jax.eval_shape(model, jnp.zeros((1, L)))
    mse = nnx.eval_shape(lambda: SequenceModel(tiny("lstm"), head="mse", rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="values"):
        jax.eval_shape(lambda t: sequence_loss(mse, t), jnp.zeros((2, L), jnp.int32))


@pytest.mark.parametrize("length,chunk", [(13, 4), (8, 64), (16, 8)])
def test_selective_scan_matches_sequential_recurrence(length, chunk, getkey):
    """Chunked, rematerialised scan == a step-by-step loop, values and gradients (float64)."""
    from geomtax.models._layers import selective_scan

    with jax.enable_x64(True):
        k = jax.random.split(getkey(), 5)
        bsz, d, n = 2, 3, 4
        delta = jax.nn.softplus(jax.random.normal(k[0], (bsz, length, d), jnp.float64))
        u = jax.random.normal(k[1], (bsz, length, d), jnp.float64)
        b = jax.random.normal(k[2], (bsz, length, n), jnp.float64)
        c = jax.random.normal(k[3], (bsz, length, n), jnp.float64)
        a = -jnp.exp(jax.random.normal(k[4], (d, n), jnp.float64))

        def reference(delta, u, b, c, a):
            s = jnp.zeros((bsz, d, n))
            ys = []
            for t in range(length):
                s = (
                    jnp.exp(delta[:, t, :, None] * a[None]) * s
                    + (delta[:, t] * u[:, t])[..., None] * b[:, t, None, :]
                )
                ys.append(jnp.einsum("bdn,bn->bd", s, c[:, t]))
            return jnp.stack(ys, axis=1)

        got = selective_scan(delta, u, b, c, a, chunk_size=chunk)
        np.testing.assert_allclose(got, reference(delta, u, b, c, a), rtol=1e-10, atol=1e-12)
        loss = lambda f: lambda *args: jnp.sum(jnp.sin(f(*args)))  # noqa: E731
        g1 = jax.grad(
            loss(lambda *v: selective_scan(*v, chunk_size=chunk)), argnums=(0, 1, 2, 3, 4)
        )
        g2 = jax.grad(loss(reference), argnums=(0, 1, 2, 3, 4))
        for x1, x2 in zip(g1(delta, u, b, c, a), g2(delta, u, b, c, a), strict=True):
            np.testing.assert_allclose(x1, x2, rtol=1e-9, atol=1e-11)
