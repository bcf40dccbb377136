"""Neural MI fits: closed-form oracles, vmap over seeds/datasets, divergence flags, bad input.

Default tests use n <= 1,000, small critics and a few hundred steps with tolerances in line with
the reference's own sanity check (|err| < max(0.15, 0.3 MI), REFERENCE 6.1). The ``slow`` tests
use n = 5,000 and the bmi tolerance (0.1 nats absolute or 10 % relative, REFERENCE 10.1).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_info_oracles import bivariate, dense_gaussian, student_t, uniform_noise

import geomtax.info as gi

FAST = dict(num_steps=400, hidden=(64, 32), learning_rate=2e-3)


def _stack(cases):
    x = jnp.asarray(np.stack([c[0] for c in cases]), jnp.float32)
    y = jnp.asarray(np.stack([c[1] for c in cases]), jnp.float32)
    return x, y, np.array([c[2] for c in cases])


def test_bivariate_gaussians_in_one_vmapped_call():
    # rho = 0 / 0.3 / 0.6 / 0.9 (true 0, 0.047, 0.223, 0.830) stacked, one compiled call.
    rng = np.random.default_rng(0)
    x, y, true = _stack([bivariate(r, 1000, rng) for r in (0.0, 0.3, 0.6, 0.9)])
    res = jax.vmap(lambda a, b: gi.mutual_information(a, b, key=jax.random.key(1), **FAST))(x, y)
    assert res.value.shape == (4,) and res.curve.shape == (4, 400)
    assert not bool(jnp.any(res.diverged))
    err = np.abs(np.asarray(res.value) - true)
    assert np.all(err < np.maximum(0.15, 0.3 * true)), (np.asarray(res.value), true)
    assert np.all(np.asarray(res.tail_std) > 0)
    np.testing.assert_array_equal(res.value, res.tail_mean)  # train_tail is the default
    assert bool(jnp.all(jnp.isnan(res.heldout)))


@pytest.mark.parametrize(
    "estimator",
    [
        # DV and NWJ train like MINE (same critic, other objective): full accuracy runs are slow.
        pytest.param("dv", marks=pytest.mark.slow),
        pytest.param("nwj", marks=pytest.mark.slow),
        "smile",
        "infonce",
    ],
)
def test_other_bounds_gaussian(estimator):
    x, y, mi = bivariate(0.6, 1000, np.random.default_rng(1))
    res = gi.mutual_information(
        x.astype(np.float32),
        y.astype(np.float32),
        key=jax.random.key(2),
        estimator=estimator,
        **FAST,
    )
    assert abs(float(res.value) - mi) < max(0.15, 0.3 * mi)
    if estimator == "infonce":
        assert float(jnp.max(res.curve)) <= np.log(64) + 1e-5


def test_vmap_over_seeds_equals_separate_calls():
    x, y, _ = bivariate(0.6, 300, np.random.default_rng(3))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    keys = jax.random.split(jax.random.key(4), 3)
    opts = dict(num_steps=30, hidden=(16,), learning_rate=1e-3)
    batched = jax.vmap(lambda k: gi.mutual_information(x, y, key=k, **opts))(keys)
    for i in range(3):
        single = gi.mutual_information(x, y, key=keys[i], **opts)
        np.testing.assert_allclose(batched.curve[i], single.curve, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched.value[i], single.value, rtol=1e-4, atol=1e-5)
    # Different seeds give different fits.
    assert float(jnp.abs(batched.value[0] - batched.value[1])) > 0


def test_divergence_is_flagged_not_hidden(getkey):
    critic = gi.ConcatCritic(1, 1, hidden=(8,), key=getkey())
    critic = eqx.tree_at(lambda c: c.mlp.layers[0].bias, critic, jnp.full((8,), jnp.nan))
    x = jax.random.normal(getkey(), (200, 1))
    res = gi.mutual_information(x, x, key=getkey(), critic=critic, num_steps=20)
    assert bool(res.diverged)
    assert int(res.diverged_step) == 0
    assert bool(jnp.isnan(res.value))


def test_heldout_evaluation(getkey):
    x, y, mi = bivariate(0.9, 1000, np.random.default_rng(5))
    res = gi.mine_heldout(
        x.astype(np.float32), y.astype(np.float32), key=getkey(), bound="dv", **FAST
    )
    assert float(res.value) == float(res.heldout)
    assert abs(float(res.value) - mi) < max(0.15, 0.3 * mi)


def test_mine_step_in_user_loop(getkey):
    x, y, mi = bivariate(0.9, 512, np.random.default_rng(6))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    critic = gi.ConcatCritic(1, 1, hidden=(32,), key=getkey())
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(eqx.filter(critic, eqx.is_array))

    @eqx.filter_jit
    def train(critic, opt_state, key):
        def body(carry, k):
            c, o, s = carry
            idx = jax.random.choice(k, 512, (128,), replace=False)
            c, o, s, est = gi.mine_step(c, o, s, x[idx], y[idx], optimizer=optimizer)
            return (c, o, s), est

        keys = jax.random.split(key, 300)
        (c, o, s), ests = jax.lax.scan(body, (critic, opt_state, gi.init_mine_state()), keys)
        return c, s, ests

    critic, state, ests = train(critic, opt_state, getkey())
    assert int(state.count) == 300
    assert float(jnp.mean(ests[-30:])) > float(jnp.mean(ests[:30])) + 0.3
    assert abs(float(gi.dv_bound(critic, x, y)) - mi) < 0.3


def test_bad_input_raises_before_compiling(getkey):
    key = getkey()
    x = jnp.ones((100, 2))
    with pytest.raises(ValueError, match="row counts differ"):
        gi.mutual_information(x, jnp.ones((99, 1)), key=key)
    with pytest.raises(ValueError, match="batch_size=128 is larger"):
        gi.mutual_information(x, x, key=key, batch_size=128)
    with pytest.raises(ValueError, match="unknown estimator"):
        gi.mutual_information(x, x, key=key, estimator="mine-f")
    with pytest.raises(ValueError, match="unknown evaluation"):
        gi.mutual_information(x, x, key=key, evaluation="test")
    with pytest.raises(ValueError, match="non-finite"):
        gi.mutual_information(x.at[3, 1].set(jnp.inf), x, key=key)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        gi.mine_heldout(x, x, key=key, heldout_fraction=0.2)
    with pytest.raises(ValueError, match="num_steps"):
        gi.mutual_information(x, x, key=key, num_steps=0)
    with pytest.raises(ValueError, match="critic expects"):
        gi.mutual_information(x, x, key=key, critic=gi.ConcatCritic(1, 1, hidden=(2,), key=key))
    with pytest.raises(TypeError, match="floating"):
        gi.mutual_information(jnp.ones((100, 2), jnp.int32), x, key=key)
    with pytest.raises(ValueError, match="unknown bound"):
        gi.mine_step(
            gi.ConcatCritic(2, 2, hidden=(2,), key=key),
            None,
            gi.init_mine_state(),
            x,
            x,
            optimizer=optax.adam(1e-3),
            bound="jsd",
        )


def test_nonfinite_traced_data_errors_at_run_time(getkey):
    x = jnp.ones((100, 1)).at[0, 0].set(jnp.nan)
    f = jax.jit(
        lambda a: gi.mutual_information(a, a, key=jax.random.key(0), num_steps=2, hidden=(2,)).value
    )
    with pytest.raises(Exception, match="NaN or inf"):
        f(x)


# ----------------------------------------------------------------------------- slow, accurate
SLOW = dict(num_steps=3000, hidden=(128, 64), learning_rate=1e-3)


def _assert_bmi(values, true):
    # bmi tolerance for neural estimators at n = 5,000: 0.1 nats absolute or 10 % relative.
    err = np.abs(np.asarray(values) - true)
    assert np.all((err < 0.1) | (err < 0.1 * true)), (np.asarray(values), true)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["mine", "dv", "smile"])
def test_accuracy_oracles_n5000(estimator):
    rng = np.random.default_rng(10)
    n = 5000
    cases = [bivariate(r, n, rng) for r in (0.0, 0.3, 0.6, 0.9)]
    cases += [uniform_noise(0.75, n, rng), uniform_noise(0.1, n, rng)]
    x, y, true = _stack(cases)
    f = jax.vmap(
        lambda a, b: (
            gi.mutual_information(a, b, key=jax.random.key(0), estimator=estimator, **SLOW).value
        )
    )
    _assert_bmi(f(x, y), true)


@pytest.mark.slow
def test_accuracy_dense_gaussian_student_t_and_invariance_n5000():
    rng = np.random.default_rng(11)
    dense = dense_gaussian(3, 5000, rng)
    tx, ty, tmi = student_t(3, 3, 3.0, 5000, rng)
    # Raw Student-t (nu = 3) has heavy tails: the DV/MINE partition term can blow up on them
    # (seen: -584 nats with tail_std 509 at this seed), which is the documented DV variance
    # failure. SMILE's clipping is the remedy; MINE is checked on asinh-mapped data, which has
    # the same MI (invariance under invertible marginal maps).
    xs, ys, true = _stack([dense, (np.arcsinh(tx), np.arcsinh(ty), tmi)])
    vals = jax.vmap(lambda a, b: gi.mutual_information(a, b, key=jax.random.key(1), **SLOW).value)(
        xs, ys
    )
    _assert_bmi(vals, true)
    smile = gi.mutual_information(
        jnp.asarray(tx, jnp.float32),
        jnp.asarray(ty, jnp.float32),
        key=jax.random.key(1),
        estimator="smile",
        **SLOW,
    ).value
    _assert_bmi([smile], np.array([tmi]))
    x, y, mi = bivariate(0.75, 5000, rng)
    tx, ty = np.arcsinh(3 * x), np.cbrt(y) * 2.0
    xs, ys, true = _stack([(x, y, mi), (tx, ty, mi)])
    vals = jax.vmap(lambda a, b: gi.mutual_information(a, b, key=jax.random.key(2), **SLOW).value)(
        xs, ys
    )
    _assert_bmi(vals, true)
