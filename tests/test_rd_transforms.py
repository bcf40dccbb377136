"""Transform table for geomtax.rd: jit vs eager, vmap, grad and no recompilation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import geomtax.rd as grd

P = jnp.array([0.2, 0.5, 0.3])
D = jnp.array([[0.0, 1.0], [0.5, 0.2], [1.0, 0.0]])
X = jnp.asarray(np.random.default_rng(0).normal(size=(30, 3)), jnp.float32)
# Small iteration caps keep the eager (disable_jit) runs quick; accuracy is tested elsewhere.


def _ba(p, d, beta):
    return grd.blahut_arimoto(p, d, beta, throw=False, max_steps=100)


def _curve(p, d, betas):
    return grd.rd_curve(p, d, betas=betas, throw=False, beta_batch_size=None, max_steps=100)


def _kmeans(x, key):
    return grd.kmeans(x, 4, key=key, num_iters=5, throw=False)  # 5 steps: not_converged


def _fit(s, d):
    return grd.capacity_scaling_fit(s, d, intrinsic_dim=2.0)


def _idim(x):
    return grd.intrinsic_dimension(x, k_min=3, k_max=8)


def _slb(h, d):
    return grd.shannon_lower_bound(h, d, dim=2)


def _quant(x, key):
    return grd.quantize_for_rd(x, key=key, num_codes=4, num_cells=8, num_iters=5)


def _from_samples(x, key):
    return grd.rd_curve_from_samples(
        x,
        key=key,
        num_codes=4,
        num_cells=8,
        betas=jnp.array([1.0, 3.0]),
        throw=False,
        max_steps=100,
        num_iters=5,
    )


S = jnp.array([1e3, 1e4, 1e5, 1e6])
DS = jnp.array([0.5, 0.3, 0.12, 0.07])
KEY = jax.random.key(0)

# name -> (function, args, vmapped args, vmap in_axes)
ROWS = {
    "blahut_arimoto": (
        _ba,
        (P, D, jnp.asarray(2.0)),
        (P, D, jnp.array([0.5, 2.0, 8.0])),
        (None, None, 0),
    ),
    "rd_curve": (
        _curve,
        (P, D, jnp.array([1.0, 4.0])),
        (jnp.stack([P, P[::-1]]), jnp.stack([D, D[::-1]]), jnp.array([1.0, 4.0])),
        (0, 0, None),
    ),
    "kmeans": (_kmeans, (X, KEY), (X, jax.random.split(KEY, 3)), (None, 0)),
    "capacity_scaling_fit": (_fit, (S, DS), (S, jnp.stack([DS, DS**2])), (None, 0)),
    "intrinsic_dimension": (_idim, (X,), (jnp.stack([X, 2 * X]),), (0,)),
    "shannon_lower_bound": (_slb, (1.0, 0.5), (1.0, jnp.array([0.1, 0.5])), (None, 0)),
    "quantize_for_rd": (_quant, (X, KEY), (X, jax.random.split(KEY, 2)), (None, 0)),
    "rd_curve_from_samples": (
        _from_samples,
        (X, KEY),
        (X, jax.random.split(KEY, 2)),
        (None, 0),
    ),
}


def test_every_public_callable_has_a_row():
    callables = {
        n
        for n in grd.__all__
        if callable(getattr(grd, n)) and not isinstance(getattr(grd, n), type)
    }
    assert callables == set(ROWS), callables ^ set(ROWS)


def _close(a, b, tol=2e-4):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        u, v = np.asarray(u), np.asarray(v)
        if u.dtype.kind == "f":
            np.testing.assert_allclose(u, v, rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(u, v)


# Eager (disable_jit) runs of the composite estimators are slow op-by-op: those rows are slow.
_SLOW_EAGER = {
    "kmeans",
    "quantize_for_rd",
    "rd_curve",
    "rd_curve_from_samples",
    "intrinsic_dimension",
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_EAGER else n for n in sorted(ROWS)],
)
def test_jit_matches_eager(name):
    fn, args, _, _ = ROWS[name]
    jitted = eqx.filter_jit(fn)(*args)
    with jax.disable_jit():
        eager = fn(*args)
    _close(jitted, eager)


# vmap over keys of kmeans is also exercised in test_rd_kmeans.py; these composite rows are slow.
_SLOW_VMAP = {"kmeans", "quantize_for_rd", "rd_curve_from_samples"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_VMAP else n for n in sorted(ROWS)],
)
def test_vmap_matches_loop(name):
    fn, _, vargs, axes = ROWS[name]
    batched = jax.vmap(fn, in_axes=axes)(*vargs)
    size = next(np.shape(a)[0] for a, ax in zip(vargs, axes, strict=True) if ax == 0)
    for i in range(size):
        args_i = [a[i] if ax == 0 else a for a, ax in zip(vargs, axes, strict=True)]
        one = fn(*args_i)
        _close(jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], batched), one)


@pytest.mark.parametrize("name", ["blahut_arimoto", "capacity_scaling_fit", "kmeans"])
def test_no_recompilation(name):
    fn, args, _, _ = ROWS[name]

    @eqx.debug.assert_max_traces(max_traces=1)
    def traced(*a):
        return fn(*a)

    jitted = eqx.filter_jit(traced)
    jax.block_until_ready(jitted(*args))
    new = [a * 1.01 if isinstance(a, jax.Array) and a.dtype == jnp.float32 else a for a in args]
    if name == "blahut_arimoto":
        new = [args[0], args[1] * 1.01, jnp.asarray(3.0)]  # p_x must stay a pmf
    if name == "kmeans":
        new[1] = jax.random.key(1)
    jax.block_until_ready(jitted(*new))


def test_beta_sweep_compiles_once():
    @eqx.debug.assert_max_traces(max_traces=1)
    def f(beta):
        return grd.blahut_arimoto(P, D, beta, throw=False).rate

    g = eqx.filter_jit(f)
    for b in (0.5, 2.0, 9.0):
        jax.block_until_ready(g(jnp.asarray(b)))


def test_grad_of_lagrangian_fixed_steps(x64):
    # Fixed-step mode (min_steps == max_steps) runs under lax.scan: reverse-mode AD goes through.
    def lagrangian(d, beta):
        sol = grd.blahut_arimoto(
            P.astype(d.dtype), d, beta, max_steps=30, min_steps=30, throw=False
        )
        return sol.rate_upper + beta * sol.distortion

    check_grads(lagrangian, (D.astype(jnp.float64) + 0.1, 2.0), order=1, modes=["rev"])


def test_grad_of_lagrangian_at_fixed_point_is_envelope(x64):
    # Converged while_loop mode: d(R + beta D)/d d(x, m) = beta p(x) q*(m|x) (envelope theorem).
    d = D.astype(jnp.float64) + 0.1
    p = P.astype(jnp.float64)

    def lagrangian(dd):
        sol = grd.blahut_arimoto(p, dd, 2.0, tol=1e-12, max_steps=100_000)
        return sol.rate_upper + 2.0 * sol.distortion

    g = jax.grad(lagrangian)(d)
    sol = grd.blahut_arimoto(p, d, 2.0, tol=1e-12, max_steps=100_000)
    np.testing.assert_allclose(g, 2.0 * p[:, None] * sol.q_y_given_x, rtol=1e-7, atol=1e-10)


def test_grad_scaling_fit_and_slb(x64):
    check_grads(
        lambda d: grd.capacity_scaling_fit(S.astype(jnp.float64), d).slope,
        (DS.astype(jnp.float64),),
        order=1,
    )
    check_grads(lambda d: grd.shannon_lower_bound(2.0, d, dim=2), (jnp.asarray(0.3),), order=1)
