"""Transform table for geomtax.info: jit vs eager, vmap, grad (where smooth), no recompilation.

Every callable in ``geomtax.info.__all__`` has a row (or a documented exemption); a companion
test enforces it. Sizes are tiny: these rows test transforms, not accuracy.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from tolerances import assert_tree_close

import geomtax.info as gi

TINY = dict(num_steps=4, hidden=(4,), batch_size=8, throw=False)


def _data(key, n=32, dx=2, dy=1):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, dx))
    return x, x[:, :dy] + 0.5 * jax.random.normal(ky, (n, dy))


def _critic(key, dx=2, dy=1):
    return gi.ConcatCritic(dx, dy, hidden=(4,), key=key)


def _bound_fn(name):
    fns = {
        "dv_bound": lambda c, x, y: gi.dv_bound(c, x, y),
        "nwj_bound": lambda c, x, y: gi.nwj_bound(c, x, y, negatives="all"),
        "infonce_bound": lambda c, x, y: gi.infonce_bound(c, x, y),
        "smile_bound": lambda c, x, y: gi.smile_bound(c, x, y, tau=2.0),
        "mine_bound": lambda c, x, y: gi.mine_bound(c, x, y, gi.init_mine_state())[1][0],
    }
    return fns[name]


BOUND_ROWS = ["dv_bound", "nwj_bound", "infonce_bound", "smile_bound", "mine_bound"]


@pytest.mark.parametrize("name", BOUND_ROWS)
def test_bounds_jit_vmap_grad_no_recompile(name, getkey):
    f = _bound_fn(name)
    critic = _critic(getkey())
    x, y = _data(getkey(), n=8)
    with jax.disable_jit():
        ref = f(critic, x, y)
    assert_tree_close(eqx.filter_jit(f)(critic, x, y), ref, rtol=1e-5, atol=1e-6)
    # vmap over a batch of problems.
    xb = jnp.stack([x, 2 * x, -x])
    out = jax.vmap(lambda a: f(critic, a, y))(xb)
    for i in range(3):
        assert_tree_close(out[i], f(critic, xb[i], y), rtol=1e-5, atol=1e-6)
    # grad in the data against finite differences (float64 for a clean check). SMILE's gradient
    # is the Jensen-Shannon surrogate by design (its value is the clipped DV), so it is only
    # checked to be finite.
    with jax.enable_x64(True):
        c64 = gi.ConcatCritic(2, 1, hidden=(4,), dtype=jnp.float64, key=getkey())
        x64 = jnp.asarray(x, jnp.float64)
        y64 = jnp.asarray(y, jnp.float64)
        if name == "smile_bound":
            g = jax.grad(lambda a: f(c64, a, y64))(x64)
            assert bool(jnp.all(jnp.isfinite(g)))
        else:
            check_grads(
                lambda a: f(c64, a, y64), (x64,), order=1, modes=["rev"], atol=1e-4, rtol=1e-4
            )
    # No recompilation on new values.
    g = eqx.filter_jit(eqx.debug.assert_max_traces(f, max_traces=1))
    g(critic, x, y)
    g(_critic(getkey()), x + 1.0, y - 1.0)


def test_smile_tau_sweep_vmaps(getkey):
    critic = _critic(getkey())
    x, y = _data(getkey(), n=8)
    taus = jnp.array([0.5, 1.0, 5.0])
    out = jax.vmap(lambda t: gi.smile_bound(critic, x, y, tau=t))(taus)
    for i in range(3):
        np.testing.assert_allclose(
            out[i], gi.smile_bound(critic, x, y, tau=float(taus[i])), rtol=1e-5
        )


@pytest.mark.parametrize("cls", [gi.DV, gi.MINE, gi.NWJ, gi.InfoNCE, gi.SMILE])
def test_bound_objects_jit_vmap_no_recompile(cls, getkey):
    # A bound object is a pytree whose continuous hyperparameters are leaves: jit agrees with
    # eager, a new hyperparameter value does not recompile, and a sweep over it vmaps.
    critic = _critic(getkey())
    x, y = _data(getkey(), n=8)
    bound = cls()

    def f(b, c, a, v):
        surrogate, (estimate, state) = b.objective(b.scores(c, a, v), b.init_state())
        return surrogate, estimate, state

    with jax.disable_jit():
        ref = f(bound, critic, x, y)
    g = eqx.filter_jit(eqx.debug.assert_max_traces(f, max_traces=1))
    as_arrays = jax.tree_util.tree_map(jnp.asarray, bound)
    assert_tree_close(g(as_arrays, critic, x, y), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref[1], bound.evaluate(critic, x, y), rtol=1e-6)
    leaves = jax.tree_util.tree_leaves(bound)
    if leaves:  # SMILE.tau, MINE.ema_rate: a new value, then a vmapped sweep
        other = jax.tree_util.tree_map(lambda v: jnp.asarray(v * 0.5), bound)
        g(other, critic, x + 1.0, y)
        sweep = jax.vmap(lambda t: cls(t).evaluate(critic, x, y))(jnp.array([0.1, 0.5]))
        assert sweep.shape == (2,)
        np.testing.assert_allclose(sweep[1], cls(0.5).evaluate(critic, x, y), rtol=1e-5)
    # grad of the objective in the critic is finite.
    grads = eqx.filter_grad(lambda c: f(bound, c, x, y)[0])(critic)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(grads))


def test_bound_scores(getkey):
    critic = _critic(getkey())
    x, y = _data(getkey(), n=6)
    for negatives, shape in (("shift", (6,)), ("all", (6, 6))):
        s = eqx.filter_jit(lambda c, a, b: gi.DV().scores(c, a, b, negatives=negatives))(
            critic, x, y
        )
        assert s.negative.shape == shape and s.matrix == (negatives == "all")
        assert_tree_close(s.joint, critic.pairs(x, y), rtol=1e-5, atol=1e-6)
    sb = jax.vmap(lambda a: gi.DV().scores(critic, a, y).joint)(jnp.stack([x, -x]))
    assert sb.shape == (2, 6)


def test_mutual_information_bound_hyperparameter_no_recompile(getkey):
    # A bound's hyperparameter is traced through the fit: a tau sweep compiles once.
    x, y = _data(getkey())
    key = getkey()
    f = eqx.filter_jit(
        eqx.debug.assert_max_traces(
            lambda t: gi.mutual_information(x, y, key=key, estimator=gi.SMILE(tau=t), **TINY),
            max_traces=1,
        )
    )
    a = f(jnp.asarray(5.0))
    f(jnp.asarray(2.0))
    b = gi.mutual_information(x, y, key=key, **TINY)  # "smile" = SMILE(tau=5.0)
    assert_tree_close(a.curve, b.curve, rtol=1e-4, atol=1e-5)
    sweep = jax.vmap(
        lambda t: gi.mutual_information(x, y, key=key, estimator=gi.SMILE(tau=t), **TINY)
    )(jnp.array([1.0, 5.0]))
    assert_tree_close(sweep.curve[1], b.curve, rtol=1e-4, atol=1e-5)


def test_ksg_estimator_row(getkey):
    x, y = _data(getkey(), n=40)
    ref = gi.ksg_mi(x, y, k=3, block_size=16)
    f = eqx.filter_jit(
        lambda a, b: gi.mutual_information(
            a, b, key=jax.random.key(0), estimator=gi.KSG(block_size=16), preprocess="none"
        )
    )
    np.testing.assert_allclose(f(x, y).value, ref.value, rtol=1e-6)


def test_critics_jit_vmap_grad(getkey):
    for cls in (gi.ConcatCritic, gi.SeparableCritic):
        critic = cls(2, 1, hidden=(4,), key=getkey())
        x, y = _data(getkey(), n=5)
        ref = critic.all_pairs(x, y)
        assert_tree_close(
            eqx.filter_jit(lambda c: c.all_pairs(x, y))(critic), ref, rtol=1e-5, atol=1e-6
        )
        pts = jax.vmap(critic)(x, y)
        assert_tree_close(pts, jnp.diagonal(ref), rtol=1e-5, atol=1e-6)
        grads = eqx.filter_grad(lambda c: jnp.sum(c.pairs(x, y)))(critic)
        assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))


def test_init_mine_state_row():
    s = eqx.filter_jit(gi.init_mine_state)()
    assert int(s.count) == 0 and s.log_ema.dtype == jnp.float32


def test_mine_step_jit_vs_eager_and_no_recompile(getkey):
    critic = _critic(getkey())
    x, y = _data(getkey(), n=8)
    opt = optax.adam(1e-2)
    o = opt.init(eqx.filter(critic, eqx.is_array))
    s = gi.init_mine_state()
    with jax.disable_jit():
        ref = gi.mine_step(critic, o, s, x, y, optimizer=opt)
    step = eqx.filter_jit(eqx.debug.assert_max_traces(gi.mine_step, max_traces=1))
    out = step(critic, o, s, x, y, optimizer=opt)
    assert_tree_close(
        eqx.filter(out, eqx.is_array), eqx.filter(ref, eqx.is_array), rtol=1e-4, atol=1e-5
    )
    step(out[0], out[1], out[2], x + 1.0, y, optimizer=opt)


def test_mutual_information_jit_vmap_no_recompile(getkey):
    x, y = _data(getkey())
    key = getkey()
    eager = gi.mutual_information(x, y, key=key, **TINY)
    f = eqx.filter_jit(
        eqx.debug.assert_max_traces(
            lambda a, b, k, lr: gi.mutual_information(a, b, key=k, learning_rate=lr, **TINY),
            max_traces=1,
        )
    )
    jitted = f(x, y, key, jnp.asarray(5e-4))  # the default learning rate
    assert_tree_close(jitted.curve, eager.curve, rtol=1e-4, atol=1e-5)
    f(x + 1.0, y, getkey(), jnp.asarray(3e-4))  # new values, including the learning rate
    # vmap over stacked datasets and over keys (a 2 x 3 grid in one call).
    xs, ys = jnp.stack([x, -x]), jnp.stack([y, 2 * y])
    keys = jax.random.split(getkey(), 3)
    grid = jax.vmap(
        lambda a, b: jax.vmap(lambda k: gi.mutual_information(a, b, key=k, **TINY))(keys)
    )(xs, ys)
    assert grid.value.shape == (2, 3) and grid.curve.shape == (2, 3, 4)
    single = gi.mutual_information(xs[1], ys[1], key=keys[2], **TINY)
    assert_tree_close(grid.curve[1, 2], single.curve, rtol=1e-4, atol=1e-5)


def test_mine_train_tail_and_heldout_rows(getkey):
    x, y = _data(getkey(), n=48)
    keys = jax.random.split(getkey(), 2)
    tail = jax.vmap(lambda k: gi.mine_train_tail(x, y, key=k, **TINY))(keys)
    assert tail.value.shape == (2,) and bool(jnp.all(jnp.isfinite(tail.tail_mean)))
    opts = dict(TINY, heldout_fraction=0.5)
    res = jax.vmap(lambda k: gi.mine_heldout(x, y, key=k, **opts))(keys)
    one = gi.mine_heldout(x, y, key=keys[0], **opts)
    assert_tree_close(res.heldout[0], one.heldout, rtol=1e-4, atol=1e-5)
    assert int(res.status._value[0]) == int(one.status._value)


def test_ksg_jit_vmap_no_recompile(getkey):
    # KSG is piecewise constant in the data: no grad row (documented exemption).
    x, y = _data(getkey(), n=40)
    ref = gi.ksg_mi(x, y, k=3, block_size=16)
    f = eqx.filter_jit(
        eqx.debug.assert_max_traces(lambda a, b: gi.ksg_mi(a, b, k=3, block_size=16), max_traces=1)
    )
    out = f(x, y)
    np.testing.assert_allclose(out.value, ref.value, rtol=1e-6)
    assert out.status_name == ref.status_name == "ok"
    f(x * 2.0, y + 1.0)
    g = jax.vmap(lambda a: gi.ksg_mi(a, y, k=3, block_size=16, throw=False))
    out = g(jnp.stack([x, x**3]))
    one = gi.ksg_mi(x**3, y, k=3, block_size=16)
    np.testing.assert_allclose(out.value[1], one.value, rtol=1e-6)
    assert list(out.status_name) == ["ok", "ok"]


def test_pca_zscore_rows(getkey):
    x = jax.random.normal(getkey(), (20, 4)) * jnp.array([[3.0, 2.0, 1.0, 0.5]])
    for f in (
        lambda a: gi.pca(a, num_components=2, throw=False).scores,
        lambda a: gi.zscore(a, throw=False).values,
    ):
        ref = f(x)
        g = eqx.filter_jit(eqx.debug.assert_max_traces(f, max_traces=1))
        assert_tree_close(g(x), ref, rtol=1e-4, atol=1e-5)
        g(x + 1.0)
        out = jax.vmap(f)(jnp.stack([x, 2.0 * x]))
        assert_tree_close(out[1], f(2.0 * x), rtol=1e-4, atol=1e-4)
        with jax.enable_x64(True):
            x64 = jnp.asarray(x, jnp.float64)
            check_grads(
                lambda a, f=f: jnp.sum(f(a) ** 3),
                (x64,),
                order=1,
                modes=["rev"],
                atol=1e-4,
                rtol=1e-4,
            )


def test_copula_row(getkey):
    # Ranks are piecewise constant: no grad row (documented exemption), jit and vmap only.
    x = jax.random.normal(getkey(), (20, 3))
    ref = gi.copula(x).value
    g = eqx.filter_jit(
        eqx.debug.assert_max_traces(lambda a: gi.copula(a, throw=False).value, max_traces=1)
    )
    assert_tree_close(g(x), ref, rtol=1e-5, atol=1e-6)
    g(x * 3.0 + 1.0)
    out = jax.vmap(lambda a: gi.copula(a, throw=False).value)(jnp.stack([x, x**3]))
    assert_tree_close(out[1], ref, rtol=1e-5, atol=1e-6)  # monotone map: same ranks


def test_calibrated_mi_jit_row(getkey):
    truth, emb = _data(getkey(), n=40, dx=2, dy=2)
    opts = dict(num_seeds=2, estimator="ksg", random_dim=2, throw=False)
    key = getkey()
    ref = gi.calibrated_mi(truth, emb, key=key, **opts)
    f = eqx.filter_jit(
        eqx.debug.assert_max_traces(
            lambda a, b, k: gi.calibrated_mi(a, b, key=k, **opts), max_traces=1
        )
    )
    out = f(truth, emb, key)
    assert_tree_close(out.mi, ref.mi, rtol=1e-5, atol=1e-6)
    f(truth + 1.0, emb, getkey())


ROWS = {
    "AbstractBound": "base class",
    "AbstractCritic": "base class",
    "CriticScores": "score container (made by AbstractBound.scores: test_bound_scores)",
    "DV": test_bound_objects_jit_vmap_no_recompile,
    "MINE": test_bound_objects_jit_vmap_no_recompile,
    "NWJ": test_bound_objects_jit_vmap_no_recompile,
    "InfoNCE": test_bound_objects_jit_vmap_no_recompile,
    "SMILE": test_mutual_information_bound_hyperparameter_no_recompile,
    "KSG": test_ksg_estimator_row,
    "ConcatCritic": test_critics_jit_vmap_grad,
    "SeparableCritic": test_critics_jit_vmap_grad,
    "MIResult": "result container",
    "MineState": "state container",
    "ZScoreResult": "result container",
    "PCAResult": "result container",
    "copula": test_copula_row,
    "CalibratedMIResult": "result container",
    "KSGResult": "result container",
    "dv_bound": test_bounds_jit_vmap_grad_no_recompile,
    "nwj_bound": test_bounds_jit_vmap_grad_no_recompile,
    "infonce_bound": test_bounds_jit_vmap_grad_no_recompile,
    "smile_bound": test_bounds_jit_vmap_grad_no_recompile,
    "mine_bound": test_bounds_jit_vmap_grad_no_recompile,
    "init_mine_state": test_init_mine_state_row,
    "mine_step": test_mine_step_jit_vs_eager_and_no_recompile,
    "mutual_information": test_mutual_information_jit_vmap_no_recompile,
    "mine_train_tail": test_mine_train_tail_and_heldout_rows,
    "mine_heldout": test_mine_train_tail_and_heldout_rows,
    "ksg_mi": test_ksg_jit_vmap_no_recompile,
    "pca": test_pca_zscore_rows,
    "zscore": test_pca_zscore_rows,
    "calibrated_mi": test_calibrated_mi_jit_row,
}


def test_every_public_name_has_a_row():
    missing = [n for n in gi.__all__ if n not in ROWS]
    assert not missing, f"geomtax.info names without a transform row: {missing}"
