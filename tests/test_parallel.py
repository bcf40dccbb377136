"""Sharded execution: 8 simulated CPU devices (in a subprocess) against the single-device path."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance as ssd

from geomtax.parallel import (
    make_mesh,
    multihost_requested,
    shard_rows,
    shard_sweep,
    sharded_knn_search,
    sharded_pairwise_distances,
    sharded_rd_curve,
)
from geomtax.rd import rd_curve
from tests.tolerances import assert_tree_close


def _run_with_devices(code: str, num_devices: int = 8, timeout: int = 240) -> dict:
    """Run ``code`` in a fresh interpreter with ``num_devices`` simulated CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# A tiny Blahut-Arimoto (fixed iterations) used as the "estimator" of the beta sweep, so that the
# sharded sweep is checked against the Bernoulli(1/2)/Hamming closed form R(D) = ln 2 - H(D).
BA_SOURCE = """
import jax, jax.numpy as jnp
def tiny_ba(p_x, dist, beta):
    q = jnp.full((dist.shape[1],), 1.0 / dist.shape[1])
    def body(_, q):
        logc = jnp.log(q)[None, :] - beta * dist
        c = jax.nn.softmax(logc, axis=1)
        return p_x @ c
    q = jax.lax.fori_loop(0, 200, body, q)
    c = jax.nn.softmax(jnp.log(q)[None, :] - beta * dist, axis=1)
    rate = jnp.sum(p_x[:, None] * c * (jnp.log(c) - jnp.log(q)[None, :]))
    return {"rate": rate, "distortion": jnp.sum(p_x[:, None] * c * dist)}
"""

SHARDED_SCRIPT = (
    BA_SOURCE
    + """
import json
import numpy as np
import jax, jax.numpy as jnp
from geomtax import knn_search, pairwise_distances
from geomtax.parallel import (make_mesh, shard_rows, shard_sweep, sharded_knn_search,
    sharded_mutual_information, sharded_pairwise_distances, sharded_rd_curve)

out = {"devices": jax.device_count()}
mesh = make_mesh()
x = jax.random.normal(jax.random.key(0), (45, 6))   # 45 rows: not a multiple of 8 (padding)
y = jax.random.normal(jax.random.key(1), (13, 6))
err = {}
out["diag_zero"] = True
for metric, bs, other in (("euclidean", None, None), ("sqeuclidean", 4, y), ("cosine", 4, None)):
    a = sharded_pairwise_distances(x, other, mesh=mesh, metric=metric, block_size=bs)
    b = pairwise_distances(x, other, metric=metric)
    err[f"{metric}-{bs}"] = float(jnp.abs(a - b).max())
    if other is None:
        out["diag_zero"] &= bool((jnp.diag(a) == 0).all())
    else:
        out["pairwise_shape"] = list(a.shape)
out["pairwise_err"] = err
knn = {}
for k, bs in ((1, None), (5, 3)):
    d1, i1 = sharded_knn_search(x, k, mesh=mesh, metric="euclidean", block_size=bs)
    d0, i0 = knn_search(x, k, metric="euclidean")
    knn[f"{k}-{bs}"] = [bool((i1 == i0).all()), float(jnp.abs(d1 - d0).max())]
out["knn"] = knn
# MI-style sweep over keys: stochastic per key, replicated data.
def est(x, y, *, key, scale):
    noise = jax.random.normal(key, x.shape)
    return {"mi": jnp.mean((x + scale * noise) * y), "n": jnp.asarray(x.shape[0])}
keys = jax.random.split(jax.random.key(2), 11)
s = sharded_mutual_information(x, x, keys=keys, mesh=mesh, fn=est, scale=0.5)
est_jit = jax.jit(est, static_argnames="scale")  # single-device reference, one compile
r = [est_jit(x, x, key=k, scale=0.5)["mi"] for k in keys]
out["mi_err"] = float(jnp.abs(s["mi"] - jnp.stack(r)).max())
out["mi_shape"] = list(s["mi"].shape)
# Beta sweep of Blahut-Arimoto, 8 devices vs a Python loop of single solves.
p = jnp.array([0.5, 0.5]); dist = jnp.array([[0.0, 1.0], [1.0, 0.0]])
betas = jnp.linspace(0.5, 6.0, 13)
curve = shard_sweep(lambda b, p, d: tiny_ba(p, d, b), betas, mesh=mesh, shared=(p, dist))
ba_jit = jax.jit(tiny_ba)
loop = [ba_jit(p, dist, b) for b in betas]
out["rd_err"] = float(jnp.abs(curve["rate"] - jnp.stack([l["rate"] for l in loop])).max())
out["rd_rate"] = np.asarray(curve["rate"]).tolist()
out["rd_dist"] = np.asarray(curve["distortion"]).tolist()
# The real Blahut-Arimoto of geomtax.rd: sharded betas vs its own single-device rd_curve.
import geomtax.rd as grd
sh = sharded_rd_curve(p, dist, betas, mesh=mesh, max_steps=2000)
ref = grd.rd_curve(p, dist, betas=betas, max_steps=2000)
out["rd_real_err"] = [
    float(jnp.max(jnp.abs(sh.rate - ref.rate))),
    float(jnp.max(jnp.abs(sh.distortion - ref.distortion))),
]
# The kernels' own mesh= keyword delegates to the sharded paths, with identical results.
dmesh = pairwise_distances(x, mesh=mesh)
out["mesh_kw_pairwise"] = float(jnp.abs(dmesh - pairwise_distances(x)).max())
dm, im = knn_search(x, 3, mesh=mesh)
d0, i0 = knn_search(x, 3)
out["mesh_kw_knn"] = [bool((im == i0).all()), float(jnp.abs(dm - d0).max())]
cm = grd.rd_curve(p, dist, betas=betas, max_steps=2000, throw=False, mesh=mesh)
c0 = grd.rd_curve(p, dist, betas=betas, max_steps=2000, throw=False)
out["mesh_kw_rd"] = float(jnp.abs(cm.rate - c0.rate).max())
# calibrated_mi(mesh=): the seeds of its three fits sharded, same keys as the vmap path.
from geomtax.info import calibrated_mi
t = jax.random.normal(jax.random.key(3), (60, 2))
e = t @ jax.random.normal(jax.random.key(4), (2, 5))
cal = [calibrated_mi(t, e, key=jax.random.key(5), num_seeds=3, estimator="ksg", mesh=m,
                     throw=False)
       for m in (mesh, None)]
def _nan_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    same_nan = bool((np.isnan(a) == np.isnan(b)).all())
    return float(np.nanmax(np.abs(a - b), initial=0.0)) if same_nan else float("inf")
out["calibrated_err"] = max(
    _nan_err(cal[0].mi, cal[1].mi), _nan_err(cal[0].ceiling, cal[1].ceiling),
    _nan_err(cal[0].random, cal[1].random))
out["calibrated_status"] = [str(c.status_name) for c in cal]
out["calibrated_shape"] = list(cal[0].mi.shape)
# The sweep axis really is split: each of the 8 devices holds 2 of the 16 (padded) points.
z = shard_sweep(lambda b: b * 2.0, jnp.arange(16.0), mesh=mesh)
out["shards"] = sorted(len(sh.data) for sh in z.addressable_shards)
# No recompilation on a second call with new values and the same shapes.
count = {"n": 0}
def traced(b, c):
    count["n"] += 1
    return b * c
shard_sweep(traced, jnp.arange(5.0), mesh=mesh, shared=(jnp.float32(1.0),))
shard_sweep(traced, jnp.arange(5.0) + 1, mesh=mesh, shared=(jnp.float32(3.0),))
out["traces"] = count["n"]
# The row kernel sees its global start index on each device.
starts = shard_rows(lambda r, s, v: jnp.broadcast_to(s, r.shape[:1]), jnp.zeros((20, 1)), mesh=mesh)
out["starts"] = np.asarray(starts).tolist()
print(json.dumps(out))
"""
)


@pytest.fixture(scope="module")
def sharded():
    return _run_with_devices(SHARDED_SCRIPT)


def test_kernel_mesh_keyword_matches_single_device(sharded):
    assert sharded["mesh_kw_pairwise"] < 1e-5
    assert sharded["mesh_kw_knn"][0] and sharded["mesh_kw_knn"][1] < 1e-5
    assert sharded["mesh_kw_rd"] < 1e-6


def test_eight_simulated_devices(sharded):
    assert sharded["devices"] == 8


def test_sharded_pairwise_matches_single_device(sharded):
    assert sharded["pairwise_shape"] == [45, 13]
    assert sharded["diag_zero"]
    for name, err in sharded["pairwise_err"].items():
        assert err <= 1e-5, name  # float32 Gram-matrix distances of O(1) inputs


def test_sharded_knn_matches_single_device(sharded):
    for name, (same_idx, err) in sharded["knn"].items():
        assert same_idx, name
        assert err <= 1e-5, name


def test_sharded_key_sweep_matches_loop(sharded):
    assert sharded["mi_shape"] == [11]
    assert sharded["mi_err"] <= 1e-6


def test_sharded_beta_sweep_matches_loop_and_closed_form(sharded):
    assert sharded["rd_err"] <= 1e-6
    # Bernoulli(1/2) source, Hamming distortion: R(D) = ln 2 - H_b(D) nats for D < 1/2.
    dd = np.asarray(sharded["rd_dist"])
    hb = -(dd * np.log(dd) + (1 - dd) * np.log1p(-dd))
    np.testing.assert_allclose(sharded["rd_rate"], np.log(2) - hb, atol=1e-5)


def test_sharded_blahut_arimoto_matches_rd_curve(sharded):
    assert max(sharded["rd_real_err"]) <= 1e-6


REAL_MI_SCRIPT = """
import json
import jax, jax.numpy as jnp
import geomtax.info as gi
from geomtax.parallel import make_mesh, sharded_mutual_information
mesh = make_mesh()
kx, kn = jax.random.split(jax.random.key(0))
x = jax.random.normal(kx, (256, 1))
y = 0.8 * x + 0.6 * jax.random.normal(kn, (256, 1))
keys = jax.random.split(jax.random.key(1), 5)  # 5 seeds over 8 devices (padded)
opts = dict(estimator="dv", num_steps=50, batch_size=64, hidden=(16,))
s = sharded_mutual_information(x, y, keys=keys, mesh=mesh, throw=False, **opts)
r = [gi.mutual_information(x, y, key=k, throw=False, **opts) for k in keys]
ref = jnp.stack([ri.value for ri in r])
print(json.dumps({"n": int(s.value.shape[0]),
                  "err": float(jnp.nanmax(jnp.abs(s.value - ref))),
                  "same_nan": bool((jnp.isnan(s.value) == jnp.isnan(ref)).all()),
                  "status": [str(n) for n in s.status_name],
                  "status_ref": [str(ri.status_name) for ri in r]}))
"""


@pytest.mark.slow
def test_sharded_mutual_information_matches_single_fits():
    """geomtax.info.mutual_information: 5 seeds sharded over 8 devices == 5 single-device fits."""
    out = _run_with_devices(REAL_MI_SCRIPT, timeout=500)
    assert out["n"] == 5
    assert out["err"] <= 1e-5  # float32 training of 50 steps; observed ~2e-7
    assert out["same_nan"] and out["status"] == out["status_ref"]


def test_calibrated_mi_mesh_matches_single_device(sharded):
    assert sharded["calibrated_shape"] == [3]
    assert sharded["calibrated_err"] < 1e-5
    assert sharded["calibrated_status"][0] == sharded["calibrated_status"][1]


def test_sweep_axis_split_over_devices(sharded):
    assert sharded["shards"] == [2] * 8


def test_no_recompilation(sharded):
    assert sharded["traces"] == 1


def test_row_starts(sharded):
    # 20 rows over 8 devices -> 3 rows per device (padded to 24).
    assert sharded["starts"] == [3 * (i // 3) for i in range(20)]


# --- single-process checks (one device) --------------------------------------------------------


def test_pairwise_against_scipy(x64, getkey):
    x = np.asarray(jax.random.normal(getkey(), (17, 3), dtype=jnp.float64))
    y = np.asarray(jax.random.normal(getkey(), (5, 3), dtype=jnp.float64))
    mesh = make_mesh(1)
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        got = sharded_pairwise_distances(x, y, mesh=mesh, metric=metric, block_size=4)
        np.testing.assert_allclose(got, ssd.cdist(x, y, metric=metric), atol=1e-10)


def test_knn_against_bruteforce(getkey):
    x = np.asarray(jax.random.normal(getkey(), (30, 4)))
    d, i = sharded_knn_search(x, 3, mesh=make_mesh(1), block_size=7)
    full = ssd.cdist(x, x)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_array_equal(np.asarray(i), np.argsort(full, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(np.asarray(d), np.sort(full, axis=1)[:, :3], atol=1e-5)


def test_shard_sweep_pytrees_and_keys(getkey):
    keys = jax.random.split(getkey(), 4)
    out = shard_sweep(
        lambda k, a: {"u": jax.random.uniform(k) * a["s"], "v": a["t"] + 1},
        keys,
        {"s": jnp.arange(4.0), "t": jnp.ones((4, 2))},
        mesh=make_mesh(1),
    )
    expect = jax.vmap(jax.random.uniform)(keys) * jnp.arange(4.0)
    assert_tree_close(out["u"], expect)
    assert out["v"].shape == (4, 2)


def test_shard_sweep_under_jit_and_grad():
    mesh = make_mesh(1)
    f = lambda c: jnp.sum(
        shard_sweep(lambda b, c: jnp.sin(b * c), jnp.arange(3.0), mesh=mesh, shared=(c,))
    )
    g = jax.grad(f)(1.5)
    expect = jnp.sum(jnp.arange(3.0) * jnp.cos(jnp.arange(3.0) * 1.5))
    assert_tree_close(g, expect)
    assert_tree_close(jax.jit(f)(1.5), f(1.5))


def test_sharded_rd_curve_is_rd_curve():
    # One sharding surface: the sharded entry point returns the core's own RDCurve.
    p, dist = jnp.array([0.5, 0.5]), jnp.array([[0.0, 1.0], [1.0, 0.0]])
    betas = jnp.array([1.0, 3.0])
    out = sharded_rd_curve(p, dist, betas, mesh=make_mesh(1), max_steps=500)
    ref = rd_curve(p, dist, betas=betas, max_steps=500)
    assert type(out) is type(ref)
    assert_tree_close(out.rate, ref.rate)


def test_static_errors():
    mesh = make_mesh(1)
    with pytest.raises(ValueError, match="num_devices"):
        make_mesh(10_000)
    with pytest.raises(ValueError, match="metric"):
        sharded_pairwise_distances(jnp.ones((3, 2)), mesh=mesh, metric="manhattan")
    with pytest.raises(ValueError, match="same number of columns"):
        sharded_pairwise_distances(jnp.ones((3, 2)), jnp.ones((3, 4)), mesh=mesh)
    with pytest.raises(ValueError, match="k must satisfy"):
        sharded_knn_search(jnp.ones((3, 2)), 3, mesh=mesh)
    with pytest.raises(ValueError, match="leading"):
        shard_sweep(lambda a, b: a + b, jnp.ones(3), jnp.ones(4), mesh=mesh)
    with pytest.raises(ValueError, match="axis_name"):
        shard_rows(lambda r, s, v: r, jnp.ones((3, 1)), mesh=mesh, axis_name="model")
    with pytest.raises(TypeError, match="Mesh"):
        shard_rows(lambda r, s, v: r, jnp.ones((3, 1)), mesh="cpu")


def test_multihost_detection():
    assert not multihost_requested({})
    assert not multihost_requested({"SLURM_STEP_NUM_TASKS": "1"})
    assert multihost_requested({"SLURM_STEP_NUM_TASKS": "2"})
    assert multihost_requested({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    assert not multihost_requested({"TPU_WORKER_HOSTNAMES": "localhost"})
    assert multihost_requested({"TPU_WORKER_HOSTNAMES": "a,b"})
