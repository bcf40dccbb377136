"""Bounds against NumPy formulas and against the optimal (log density ratio) Gaussian critic."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from test_info_oracles import bivariate, gaussian_mi

import geomtax.info as gi


class GaussianRatioCritic(gi.AbstractCritic):
    """T(x, y) = log p(x, y) / (p(x) p(y)) for unit-variance Gaussians with correlation rho."""

    rho: jax.Array
    shift: jax.Array

    def __call__(self, x, y, *, key=None):
        r = self.rho
        q = (r**2 * x[0] ** 2 - 2 * r * x[0] * y[0] + r**2 * y[0] ** 2) / (2 * (1 - r**2))
        return -0.5 * jnp.log(1 - r**2) - q + self.shift


def _scores_numpy(critic, xs, ys):
    b = xs.shape[0]
    score = eqx.filter_jit(lambda c, u, v: c(u, v))
    return np.array([[float(score(critic, xs[i], ys[j])) for j in range(b)] for i in range(b)])


def _np_lme(a):
    return logsumexp(a) - np.log(a.size)


def test_bound_formulas_match_numpy(x64, getkey):
    critic = gi.ConcatCritic(2, 1, hidden=(6, 5), key=getkey())
    xs = np.asarray(jax.random.normal(getkey(), (7, 2)))
    ys = np.asarray(jax.random.normal(getkey(), (7, 1)))
    s = _scores_numpy(critic, xs, ys)
    diag = np.diag(s)
    off = s[~np.eye(7, dtype=bool)]
    shifted = np.array([s[i, (i - 1) % 7] for i in range(7)])
    np.testing.assert_allclose(gi.dv_bound(critic, xs, ys), diag.mean() - _np_lme(shifted))
    np.testing.assert_allclose(
        gi.dv_bound(critic, xs, ys, negatives="all"), diag.mean() - _np_lme(off)
    )
    np.testing.assert_allclose(
        gi.nwj_bound(critic, xs, ys, negatives="all"),
        diag.mean() - np.exp(-1) * np.mean(np.exp(off)),
    )
    nce = np.mean([s[i, i] - (logsumexp(s[i]) - np.log(7)) for i in range(7)])
    np.testing.assert_allclose(gi.infonce_bound(critic, xs, ys), nce)
    np.testing.assert_allclose(
        gi.smile_bound(critic, xs, ys, tau=0.05),
        diag.mean() - _np_lme(np.clip(shifted, -0.05, 0.05)),
    )
    np.testing.assert_allclose(gi.smile_bound(critic, xs, ys, tau=1e6), gi.dv_bound(critic, xs, ys))


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_optimal_critic_recovers_true_mi(rho):
    # With T = log density ratio, DV and NWJ (shifted by +1) equal the true MI in expectation;
    # n = 3,000 pairs give a Monte Carlo error of a few hundredths.
    x, y, mi = bivariate(rho, 3000, np.random.default_rng(0))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    critic = GaussianRatioCritic(jnp.asarray(rho), jnp.asarray(0.0))
    tol = 0.05 + 0.05 * mi
    assert abs(float(gi.dv_bound(critic, x, y)) - mi) < tol
    nwj_critic = GaussianRatioCritic(jnp.asarray(rho), jnp.asarray(1.0))
    assert abs(float(gi.nwj_bound(nwj_critic, x, y)) - mi) < tol
    assert abs(float(gi.smile_bound(critic, x, y, tau=20.0)) - mi) < tol
    # InfoNCE with the optimal critic approaches the MI from below, capped at log b.
    xb, yb = x[:256], y[:256]
    nce = float(gi.infonce_bound(critic, xb, yb))
    assert nce <= np.log(256) + 1e-5
    assert nce < mi + 0.1


def test_smile_gradient_is_jensen_shannon(getkey):
    critic = gi.ConcatCritic(1, 1, hidden=(8,), key=getkey())
    xs = jax.random.normal(getkey(), (16, 1))
    ys = xs + jax.random.normal(getkey(), (16, 1))

    def js(c):
        joint = c.pairs(xs, ys)
        neg = c.pairs(xs, jnp.roll(ys, 1, axis=0))
        return -jnp.mean(jax.nn.softplus(-joint)) - jnp.mean(jax.nn.softplus(neg))

    g_smile = eqx.filter_grad(lambda c: gi.smile_bound(c, xs, ys, tau=1.0))(critic)
    g_js = eqx.filter_grad(js)(critic)
    for a, b in zip(jax.tree.leaves(g_smile), jax.tree.leaves(g_js), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_infonce_capped_at_log_batch():
    # A near-copy has MI far above log b; InfoNCE saturates at log 16.
    x = jnp.linspace(-3, 3, 16)[:, None]
    critic = GaussianRatioCritic(jnp.asarray(0.99999), jnp.asarray(0.0))
    nce = float(gi.infonce_bound(critic, x, x))
    assert nce <= np.log(16) + 1e-5
    assert nce > np.log(16) - 0.01
    assert gaussian_mi(0.99999) > np.log(16)


def test_mine_gradient_correction(getkey):
    critic = gi.ConcatCritic(1, 1, hidden=(8,), key=getkey())
    xs = jax.random.normal(getkey(), (32, 1))
    ys = xs + jax.random.normal(getkey(), (32, 1))
    state = gi.init_mine_state()

    def surrogate(c, st):
        return gi.mine_bound(c, xs, ys, st)[0]

    # First step: the average is seeded with this batch, so the gradient equals DV's.
    g_mine = eqx.filter_grad(surrogate)(critic, state)
    g_dv = eqx.filter_grad(lambda c: gi.dv_bound(c, xs, ys))(critic)
    for a, b in zip(jax.tree.leaves(g_mine), jax.tree.leaves(g_dv), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Later steps: the partition gradient is rescaled by Zbar / EMA (joint term unchanged).
    _, (est, st1) = gi.mine_bound(critic, xs, ys, state)
    st_old = gi.MineState(log_ema=st1.log_ema + jnp.log(4.0), count=st1.count)
    _, (_, st2) = gi.mine_bound(critic, xs, ys, st_old, ema_rate=0.5)
    g2 = eqx.filter_grad(lambda c: gi.mine_bound(c, xs, ys, st_old, ema_rate=0.5)[0])(critic)
    g_joint = eqx.filter_grad(lambda c: jnp.mean(c.pairs(xs, ys)))(critic)
    lme = float(est) - float(jnp.mean(critic.pairs(xs, ys)))  # = -log Zbar
    zbar = np.exp(-lme)
    ema = 0.5 * 4.0 * zbar + 0.5 * zbar
    np.testing.assert_allclose(float(jnp.exp(st2.log_ema)), ema, rtol=1e-5)
    scale = zbar / ema
    for a, j, d in zip(
        jax.tree.leaves(g2), jax.tree.leaves(g_joint), jax.tree.leaves(g_dv), strict=True
    ):
        # grad DV = grad joint - grad log Zbar  =>  corrected = grad joint - scale * (j - d)
        np.testing.assert_allclose(a, j - scale * (j - d), rtol=1e-4, atol=1e-6)
    assert int(st2.count) == 2


def test_separable_critic_all_pairs_matches_pointwise(getkey):
    critic = gi.SeparableCritic(3, 2, hidden=(5,), embed_dim=4, key=getkey())
    xs = jax.random.normal(getkey(), (6, 3))
    ys = jax.random.normal(getkey(), (6, 2))
    dense = critic.all_pairs(xs, ys)
    loops = _scores_numpy(critic, np.asarray(xs), np.asarray(ys))
    np.testing.assert_allclose(dense, loops, rtol=1e-5, atol=1e-6)


def test_dropout_only_with_key(getkey):
    critic = gi.ConcatCritic(1, 1, hidden=(64,), dropout=0.5, key=getkey())
    x, y = jnp.ones(1), jnp.ones(1)
    assert float(critic(x, y)) == float(critic(x, y))
    k = getkey()
    assert float(critic(x, y, key=k)) == float(critic(x, y, key=k))
    vals = {float(critic(x, y, key=getkey())) for _ in range(5)}
    assert len(vals) > 1


def test_bound_bad_input(getkey):
    critic = gi.ConcatCritic(1, 1, hidden=(4,), key=getkey())
    with pytest.raises(ValueError, match="row counts differ"):
        gi.dv_bound(critic, jnp.ones((4, 1)), jnp.ones((5, 1)))
    with pytest.raises(ValueError, match="negatives"):
        gi.dv_bound(critic, jnp.ones((4, 1)), jnp.ones((4, 1)), negatives="perm")
    with pytest.raises(ValueError, match="at least 2 rows"):
        gi.nwj_bound(critic, jnp.ones((1, 1)), jnp.ones((1, 1)))
    with pytest.raises(ValueError, match="dropout"):
        gi.ConcatCritic(1, 1, dropout=1.0, key=getkey())
