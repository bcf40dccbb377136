"""Blahut–Arimoto and R(D) curves against analytic rate–distortion functions.

Definitions: docs/reference/rate-distortion.md.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from geomtax import Status, StatusError
from geomtax.rd import (
    blahut_arimoto,
    quantize_for_rd,
    rd_curve,
    rd_curve_from_samples,
    shannon_lower_bound,
)

LN2 = np.log(2.0)
HAMMING = np.array([[0.0, 1.0], [1.0, 0.0]])


def _h2(p):
    """Binary entropy in bits."""
    return -p * np.log2(p) - (1 - p) * np.log2(1 - p)


def _grid_gaussian(var, n, half=6.0):
    s = np.sqrt(var)
    xs = np.linspace(-half * s, half * s, n)
    p = np.exp(-(xs**2) / (2 * var))
    return jnp.asarray(p / p.sum()), jnp.asarray((xs[:, None] - xs[None, :]) ** 2)


@pytest.mark.parametrize(("p1", "dist", "bits"), [(0.5, 0.11, 0.500084), (0.2, 0.1, 0.252933)])
def test_bernoulli_hamming(x64, p1, dist, bits):
    # On the curve D(beta) = 1 / (1 + e^beta) for D <= min(p, 1 - p), so beta = ln((1-D)/D).
    beta = np.log((1 - dist) / dist)
    sol = blahut_arimoto(jnp.array([1 - p1, p1]), jnp.asarray(HAMMING), beta)
    assert float(sol.distortion) == pytest.approx(dist, abs=1e-8)
    assert float(sol.rate) / LN2 == pytest.approx(bits, abs=1e-6)
    assert float(sol.rate) / LN2 == pytest.approx(_h2(p1) - _h2(dist), abs=1e-8)
    assert float(sol.rate_lower) <= float(sol.rate) + 1e-12 <= float(sol.rate_upper) + 2e-12
    np.testing.assert_allclose(np.asarray(sol.q_y_given_x).sum(1), 1.0, rtol=1e-12)


def test_bounds_bracket_the_truth_at_every_iterate(x64):
    p = jnp.array([0.7, 0.3])
    for steps in (1, 2, 5, 20):
        sol = blahut_arimoto(
            p, jnp.asarray(HAMMING), 2.5, max_steps=steps, min_steps=steps, throw=False
        )
        truth = (_h2(0.3) - _h2(float(sol.distortion))) * LN2
        assert float(sol.rate_lower) - 1e-12 <= truth <= float(sol.rate_upper) + 1e-12
        assert float(sol.gap) >= 0


def test_fair_coin_small_beta_gives_half_distortion(x64):
    sol = blahut_arimoto(jnp.array([0.5, 0.5]), jnp.asarray(HAMMING), 1e-6)
    assert float(sol.distortion) == pytest.approx(0.5, abs=1e-6)
    assert float(sol.rate) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n", [25, 49])
def test_discretized_gaussian(x64, n):
    # sigma^2 = 1, D = 0.25 at slope beta = 1 / (2 D) = 2: R = 1/2 ln 4 = ln 2 nats.
    p, d = _grid_gaussian(1.0, n)
    sol = blahut_arimoto(p, d, 2.0, max_steps=1500, throw=False)
    assert float(sol.distortion) == pytest.approx(0.25, abs=2e-3)
    assert float(sol.rate) == pytest.approx(0.693147, abs=2e-3)
    # The Shannon lower bound is tight for a Gaussian: h = 1/2 ln(2 pi e sigma^2).
    slb = shannon_lower_bound(0.5 * np.log(2 * np.pi * np.e), sol.distortion)
    assert float(sol.rate) == pytest.approx(float(slb), abs=2e-3)


@pytest.mark.slow
def test_discretized_gaussian_refines(x64):
    errors = []
    for n in (9, 13, 65):
        p, d = _grid_gaussian(1.0, n)
        sol = blahut_arimoto(p, d, 2.0, max_steps=4000, throw=False)
        errors.append(abs(float(sol.rate) - 0.5 * np.log(1.0 / float(sol.distortion))))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5


def test_reverse_water_filling(x64):
    # sigma^2 = (4, 1, 0.25), D = 1 -> lambda = 0.375, R = 1.673976 nats. Independent
    # components decouple at a common slope beta = 1 / (2 lambda); solve each and sum.
    lam = 0.375
    rate = dist = 0.0
    for var in (4.0, 1.0, 0.25):
        p, d = _grid_gaussian(var, 41)  # odd: a code at the mean
        sol = blahut_arimoto(p, d, 1 / (2 * lam), max_steps=2000, throw=False)
        rate += float(sol.rate)
        dist += float(sol.distortion)
    assert dist == pytest.approx(1.0, abs=1e-5)
    assert rate == pytest.approx(1.673976, abs=1e-5)


def _random_problem(seed, n=6, m=5):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n))
    d = rng.uniform(0.0, 2.0, size=(n, m))
    return jnp.asarray(p), jnp.asarray(d)


def test_slope_is_minus_beta(x64):
    p, d = _random_problem(0)
    beta, eps = 3.0, 1e-3
    lo = blahut_arimoto(p, d, beta - eps, tol=1e-13, max_steps=50_000)
    hi = blahut_arimoto(p, d, beta + eps, tol=1e-13, max_steps=50_000)
    slope = (float(hi.rate) - float(lo.rate)) / (float(hi.distortion) - float(lo.distortion))
    assert slope == pytest.approx(-beta, rel=1e-4)


def test_uniform_start_reaches_independent_optimum(x64):
    # Oracle: min over the simplex of the convex dual G(q) = -sum_x p(x) log sum_m q(m) e^{-beta d}
    # equals min (I + beta D) = R(D_beta) + beta D_beta; solved by scipy SLSQP.
    p, d = _random_problem(1, n=7, m=4)
    beta = 2.0
    kern = np.exp(-beta * np.asarray(d))
    pn = np.asarray(p)

    def objective(q):
        return -np.sum(pn * np.log(kern @ q))

    m = kern.shape[1]
    res = scipy.optimize.minimize(
        objective,
        np.full(m, 1.0 / m),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1.0}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    sol = blahut_arimoto(p, d, beta, tol=1e-12, max_steps=100_000)
    assert float(sol.rate + beta * sol.distortion) == pytest.approx(res.fun, abs=1e-7)
    assert float(sol.rate_upper - sol.rate) == pytest.approx(0.0, abs=1e-9)


def test_curve_equals_pointwise_loop_and_is_monotone_convex(x64):
    p, d = _random_problem(2)
    betas = jnp.geomspace(0.2, 20.0, 9)
    for batch in (3,):  # None (full vmap) is covered in test_rd_transforms.py
        curve = rd_curve(p, d, betas=betas, tol=1e-10, max_steps=50_000, beta_batch_size=batch)
        loop = [blahut_arimoto(p, d, b, tol=1e-10, max_steps=50_000) for b in betas]
        np.testing.assert_allclose(curve.rate, [float(s.rate) for s in loop], atol=1e-9)
        np.testing.assert_allclose(curve.distortion, [float(s.distortion) for s in loop], atol=1e-9)
        assert bool(curve.monotone) and bool(curve.convex) and bool(jnp.all(curve.converged))
    # Independent structure check: rate increases and distortion decreases with beta.
    assert np.all(np.diff(np.asarray(curve.rate)) > 0)
    assert np.all(np.diff(np.asarray(curve.distortion)) < 0)


def test_vmap_over_stacked_problems(x64):
    probs = [_random_problem(s) for s in (3, 4)]
    p = jnp.stack([a for a, _ in probs])
    d = jnp.stack([b for _, b in probs])
    out = jax.vmap(lambda pp, dd: blahut_arimoto(pp, dd, 1.5, throw=False))(p, d)
    for i, (pp, dd) in enumerate(probs):
        ref = blahut_arimoto(pp, dd, 1.5)
        assert float(out.rate[i]) == pytest.approx(float(ref.rate), abs=1e-9)


def test_large_beta_float32_stays_finite():
    p, d = _random_problem(5, n=8, m=6)
    p = p.astype(jnp.float32)
    d = d.astype(jnp.float32)
    sol = blahut_arimoto(p, d, 1e4, throw=False)
    assert np.isfinite(float(sol.rate)) and np.isfinite(float(sol.distortion))
    # beta -> infinity: every source symbol goes to its nearest code(s).
    dmin = float(jnp.sum(p * jnp.min(d, axis=1)))
    assert float(sol.distortion) == pytest.approx(dmin, abs=1e-3)
    assert bool(jnp.all(jnp.isfinite(sol.q_y_given_x)))


def test_degenerate_single_symbol_source_has_zero_rate():
    sol = blahut_arimoto(jnp.array([1.0]), jnp.array([[0.5, 0.0, 2.0]]), 3.0)
    assert float(sol.rate) == pytest.approx(0.0, abs=1e-7)
    assert float(sol.distortion) == pytest.approx(0.0, abs=1e-3)


def test_bad_inputs():
    d = jnp.asarray(HAMMING, jnp.float32)
    with pytest.raises(ValueError, match="non-negative"):
        blahut_arimoto(jnp.array([1.5, -0.5]), d, 1.0)
    with pytest.raises(ValueError, match="sum to 1"):
        blahut_arimoto(jnp.array([0.5, 0.6]), d, 1.0)
    with pytest.raises(ValueError, match="shape"):
        blahut_arimoto(jnp.array([0.2, 0.3, 0.5]), d, 1.0)
    with pytest.raises(ValueError, match="rank 1"):
        blahut_arimoto(jnp.ones((2, 1)) / 2, d, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        blahut_arimoto(jnp.array([0.5, 0.5]), -d, 1.0)
    with pytest.raises(StatusError, match="nonfinite_input"):
        blahut_arimoto(jnp.array([0.5, 0.5]), d.at[0, 1].set(jnp.inf), 1.0)
    for beta in (0.0, -1.0):
        with pytest.raises(ValueError, match="beta"):
            blahut_arimoto(jnp.array([0.5, 0.5]), d, beta)
    with pytest.raises(ValueError, match="betas"):
        rd_curve(jnp.array([0.5, 0.5]), d, betas=jnp.array([1.0, -1.0]))
    with pytest.raises(TypeError, match="real numbers"):
        blahut_arimoto(jnp.array([0.5, 0.5]), jnp.asarray(HAMMING, jnp.complex64), 1.0)
    # Traced bad values: a status (degenerate_input), raised at run time with throw=True.
    with pytest.raises(Exception, match="probability vector"):
        jax.jit(lambda p: blahut_arimoto(p, d, 1.0).rate)(jnp.array([0.9, 0.9]))
    with pytest.raises(Exception, match="beta <= 0"):
        jax.jit(lambda b: blahut_arimoto(jnp.array([0.5, 0.5]), d, b).rate)(-1.0)
    sol = jax.jit(lambda b: blahut_arimoto(jnp.array([0.5, 0.5]), d, b, throw=False))(-1.0)
    assert sol.status == Status.degenerate_input and np.isnan(float(sol.rate))


def test_non_convergence_raises_or_flags():
    p, d = _grid_gaussian(1.0, 16)
    p, d = p.astype(jnp.float32), d.astype(jnp.float32)
    with pytest.raises(StatusError, match="blahut_arimoto: not_converged") as info:
        blahut_arimoto(p, d, 2.0, max_steps=10, tol=1e-9)
    assert "\n" not in str(info.value)
    sol = blahut_arimoto(p, d, 2.0, max_steps=10, tol=1e-9, throw=False)
    assert not bool(sol.converged) and int(sol.num_steps) == 10
    assert sol.status == Status.not_converged and np.isfinite(float(sol.rate))


def test_curve_from_samples_matches_numpy_construction(getkey, x64):
    # Independent construction of the discrete problem (docs/reference/rate-distortion.md):
    # uniform p over rows,
    # d = squared distance to the codes / tr Cov(x) (population covariance), built in NumPy.
    x = jax.random.normal(getkey(), (120, 2), dtype=jnp.float64)
    codes = x[:10]
    betas = jnp.array([0.01, 1.0, 3.0])
    curve = rd_curve_from_samples(
        x, key=getkey(), num_codes=10, codes=codes, betas=betas, tol=1e-8, max_steps=50_000
    )
    xn, cn = np.asarray(x), np.asarray(codes)
    d = ((xn[:, None, :] - cn[None]) ** 2).sum(-1) / np.trace(np.cov(xn.T, bias=True))
    ref = rd_curve(jnp.full(120, 1 / 120), jnp.asarray(d), betas=betas, tol=1e-8, max_steps=50_000)
    np.testing.assert_allclose(curve.rate, ref.rate, atol=1e-8)
    np.testing.assert_allclose(curve.distortion, ref.distortion, atol=1e-8)
    # Near R = 0 the distortion approaches that of the best single code, which is >= 1 because
    # the mean is the best single point and d is normalized by the total variance.
    assert float(curve.distortion[0]) >= 1.0 - 1e-6
    assert float(curve.distortion[0]) == pytest.approx(d.mean(0).min(), rel=1e-3)
    assert float(curve.rate[2]) <= np.log(10) + 1e-9


def test_quantize_for_rd_shapes_and_errors(getkey):
    x = jax.random.normal(getkey(), (50, 3))
    p, d, c = quantize_for_rd(x, key=getkey(), num_codes=5, num_cells=10)
    assert p.shape == (10,) and d.shape == (10, 5) and c.shape == (5, 3)
    assert float(jnp.sum(p)) == pytest.approx(1.0, abs=1e-6)
    _, dc, _ = quantize_for_rd(x, key=getkey(), num_codes=5, codes=c, distortion="cosine")
    assert bool(jnp.all((dc >= 0) & (dc <= 2)))
    with pytest.raises(ValueError, match="too few samples"):
        quantize_for_rd(x[:4], key=getkey(), num_codes=5)
    with pytest.raises(ValueError, match="codes must have shape"):
        quantize_for_rd(x, key=getkey(), num_codes=5, codes=jnp.ones((5, 2)))
    with pytest.raises(ValueError, match="unknown distortion"):
        quantize_for_rd(x, key=getkey(), num_codes=5, distortion="l1")


def test_shannon_lower_bound_gaussian_closed_form():
    h = 0.5 * np.log(2 * np.pi * np.e * 2.0)  # N(0, 2)
    np.testing.assert_allclose(shannon_lower_bound(h, 0.5), 0.5 * np.log(2.0 / 0.5), rtol=1e-6)
    assert float(shannon_lower_bound(h, 5.0)) == 0.0


# --- the result contract (issue 13) -------------------------------------------------------------


def _bernoulli_rate(p1, dist):
    """R(D) = H(p) - H(D) in nats for D <= min(p, 1 - p) (Cover & Thomas, Thm. 10.3.1)."""
    return (_h2(p1) - _h2(dist)) * LN2


def test_not_converged_keeps_certified_bounds_and_is_a_status_under_jit():
    # rd_curve(throw=True) on a non-converged point used to abort under jit with a long
    # callback error; now throw=False returns the status per point and the bounds still
    # bracket the closed-form R(D_beta) (Bernoulli(0.3), Hamming).
    p = jnp.array([0.7, 0.3], jnp.float32)
    d = jnp.asarray(HAMMING, jnp.float32)
    betas = jnp.array([1.5, 2.5, 4.0], jnp.float32)

    def run(pp, dd):
        return rd_curve(pp, dd, betas=betas, max_steps=3, min_steps=3, tol=1e-7, throw=False)

    curve = eqx.filter_jit(run)(p, d)
    assert list(curve.status_name) == ["not_converged"] * 3
    assert not np.any(np.asarray(curve.converged))
    for i in range(3):
        truth = _bernoulli_rate(0.3, float(curve.distortion[i]))
        assert float(curve.rate_lower[i]) - 1e-5 <= truth <= float(curve.rate_upper[i]) + 1e-5
    with pytest.raises(StatusError, match="rd_curve: not_converged") as info:
        rd_curve(p, d, betas=betas, max_steps=3, min_steps=3, tol=1e-7)
    assert "3 of 3" in str(info.value) and "\n" not in str(info.value)


def test_curve_statuses_ok_and_match_closed_form(x64):
    p1 = 0.2
    dists = np.array([0.05, 0.1, 0.15])
    betas = jnp.asarray(np.log((1 - dists) / dists))
    curve = rd_curve(jnp.array([1 - p1, p1]), jnp.asarray(HAMMING), betas=betas)
    assert list(curve.status_name) == ["ok"] * 3
    np.testing.assert_allclose(curve.distortion, dists, atol=1e-8)
    np.testing.assert_allclose(curve.rate, _bernoulli_rate(p1, dists), atol=1e-8)


def test_float16_large_beta_is_computed_in_float32():
    # float16 used to give rate 0, distortion NaN and converged=True at beta = 1e6.
    rng = np.random.default_rng(0)
    p = jnp.asarray(rng.dirichlet(np.ones(6)), jnp.float16)
    d = jnp.asarray(rng.uniform(0, 2, (6, 5)), jnp.float16)
    curve = rd_curve(p, d, betas=jnp.array([1.0, 1e6]), throw=False)
    assert curve.rate.dtype == jnp.float32
    assert list(curve.status_name) == ["ok", "ok"]
    assert np.all(np.isfinite(np.asarray(curve.distortion)))
    # beta -> infinity: each source symbol goes to its nearest code (closed form).
    p32, d32 = np.asarray(p, np.float64), np.asarray(d, np.float64)
    dmin = float(np.sum(p32 / p32.sum() * d32.min(axis=1)))
    assert float(curve.distortion[1]) == pytest.approx(dmin, abs=1e-4)
    sol = blahut_arimoto(p, d, 1e6)
    assert sol.status_name == "ok" and float(sol.distortion) == pytest.approx(dmin, abs=1e-4)


def test_never_converged_with_nan():
    p = jnp.array([0.5, 0.5], jnp.float32)
    d = jnp.asarray(HAMMING, jnp.float32)
    for pp, dd in ((p.at[0].set(jnp.nan), d), (p, d.at[1, 0].set(jnp.inf))):
        sol = jax.jit(lambda a, b: blahut_arimoto(a, b, 2.0, throw=False))(pp, dd)
        assert sol.status_name == "nonfinite_input" and not bool(sol.converged)
        assert np.isnan(float(sol.rate)) and np.isnan(float(sol.distortion))
        c = rd_curve(pp, dd, betas=jnp.array([1.0, 2.0]), throw=False)
        assert list(c.status_name) == ["nonfinite_input"] * 2
    with pytest.raises(StatusError, match="blahut_arimoto: nonfinite_input"):
        blahut_arimoto(p.at[0].set(jnp.nan), d, 2.0)


def test_options_validated_before_compiling():
    p = jnp.array([0.5, 0.5])
    d = jnp.asarray(HAMMING, jnp.float32)
    for bad in (2.5, True, "10"):
        with pytest.raises(TypeError, match="max_steps"):
            blahut_arimoto(p, d, 1.0, max_steps=bad)
    with pytest.raises(ValueError, match="max_steps"):
        rd_curve(p, d, betas=jnp.array([1.0]), max_steps=0)
    for tol in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            blahut_arimoto(p, d, 1.0, tol=tol)
    for beta in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            blahut_arimoto(p, d, beta)
    with pytest.raises(ValueError, match="betas"):
        rd_curve(p, d, betas=jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="beta_batch_size"):
        rd_curve(p, d, betas=jnp.array([1.0]), beta_batch_size=0)
    with pytest.raises(TypeError, match="check_every"):
        rd_curve(p, d, betas=jnp.array([1.0]), check_every=1.5)
    with pytest.raises(TypeError, match="throw"):
        blahut_arimoto(p, d, 1.0, throw=None)
    sol = blahut_arimoto(p, d, 1.0, max_steps=np.int64(500))
    assert sol.status_name == "ok"


def test_curve_from_samples_statuses_under_jit(getkey):
    x = jax.random.normal(getkey(), (64, 3))
    betas = jnp.array([1.0, 4.0])

    def run(a):
        return rd_curve_from_samples(
            a, key=jax.random.key(0), num_codes=4, betas=betas, tol=1e-3, throw=False
        )

    run = eqx.filter_jit(run)
    assert list(run(x).status_name) == ["ok", "ok"]
    out = run(x.at[2, 0].set(jnp.nan))
    assert list(out.status_name) == ["nonfinite_input"] * 2
    assert np.all(np.isnan(np.asarray(out.rate)))
    const = run(jnp.ones_like(x))
    assert list(const.status_name) == ["degenerate_input"] * 2
    with pytest.raises(StatusError, match="rd_curve_from_samples: degenerate_input"):
        rd_curve_from_samples(jnp.ones_like(x), key=getkey(), num_codes=4, betas=betas)
    with pytest.raises(ValueError, match="non-finite"):
        quantize_for_rd(x.at[2, 0].set(jnp.nan), key=getkey(), num_codes=4)
    with pytest.raises(ValueError, match="zero total variance"):
        quantize_for_rd(jnp.ones_like(x), key=getkey(), num_codes=1)


@pytest.mark.parametrize(("scale", "offset"), [(1e3, 1e6), (1e-30, 0.0), (1e30, 0.0)])
def test_curve_from_samples_invariant_float32(scale, offset):
    # The trace-normalised squared distortion is invariant to translation and scale; it is
    # computed so in float32 (the old squared differences overflowed at 1e30, and the k-means
    # Gram form cancelled at offset 1e6). Oracle: the unshifted data, same key.
    x = np.random.default_rng(3).normal(size=(96, 2)).astype(np.float32)
    betas = jnp.array([0.5, 2.0, 8.0])
    opts = dict(key=jax.random.key(1), num_codes=6, betas=betas, tol=1e-4)
    base = rd_curve_from_samples(x, **opts)
    moved = (x.astype(np.float64) * scale + offset).astype(np.float32)
    got = rd_curve_from_samples(moved, **opts)
    assert list(got.status_name) == ["ok"] * 3
    np.testing.assert_allclose(got.rate, base.rate, rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(got.distortion, base.distortion, rtol=2e-2, atol=2e-3)
