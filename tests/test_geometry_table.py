"""Property tests generated from the metric table (geomtax.geometry.METRICS).

For every metric and each of the five invariances (rotation, isotropic scale, translation,
feature permutation, monotone transform of the distances): a declared invariance leaves the
value unchanged; an undeclared one changes it on a counter-example, or the table says why no
counter-example exists (and the transform is then refused by the metric). Also: the value lies
in the declared range, a perfect match scores the declared ideal, ``smooth`` metrics have a
finite gradient and the others raise under ``jax.grad``; the distortion report equals the
standalone functions; and a toy metric added to the table gets all of this for free (the
"adding a metric" example of docs/api/geometry.md).
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import geomtax.geometry as gg
from geomtax._status import Estimate, Status, finish, nan_unless_ok, select
from geomtax.geometry import INVARIANCES, METRICS, MetricSpec
from geomtax.geometry import _table as table
from geomtax.geometry._checks import nondifferentiable, prepare_paired_flagged, zero_nonfinite
from geomtax.geometry._table import ReportEntry
from geomtax.geometry._tiles import Accumulator, stream_paired

#: D = N, so that the monotone transform (classical MDS, at most N - 1 coordinates, zero-padded
#: to D) keeps the shape and no metric compiles twice for it
N, D = 32, 32
KEY = jax.random.key(0)
_K = table._K  # the table's neighbourhood size
#: declared invariances hold to this (float64); undeclared ones must move the value by more
ATOL = 1e-6
MOVES = 1e-4


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D))
    y = np.tanh(x @ rng.normal(size=(D, D)) / np.sqrt(D)) + 0.3 * rng.normal(size=(N, D))
    return jnp.asarray(x), jnp.asarray(y)


def _mds_sqrt(z, width=None):
    """Points whose Euclidean distances are the square roots of those of ``z`` (classical MDS).

    ``sqrt`` of a Euclidean distance is again Euclidean (Schoenberg), so the Gram matrix
    ``-J D J / 2`` of the new points is positive semi-definite; a strictly increasing map of
    every pairwise distance that no map of R^d realises.
    """
    z = np.asarray(z, np.float64)
    d = np.sqrt(np.maximum(((z[:, None] - z[None]) ** 2).sum(-1), 0.0))
    n = len(z)
    j = np.eye(n) - 1.0 / n
    w, v = np.linalg.eigh(-0.5 * j @ d @ j)
    keep = w > 1e-9 * w.max()
    coords = v[:, keep] * np.sqrt(w[keep])
    if width is not None and coords.shape[1] <= width:  # zero columns change no distance
        coords = np.pad(coords, ((0, 0), (0, width - coords.shape[1])))
    return jnp.asarray(coords)


def _transform(name, z):
    rng = np.random.default_rng(1)
    d = z.shape[1]
    if name == "rotation":
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return z @ jnp.asarray(q)
    if name == "scale":
        return 3.7 * z
    if name == "translation":
        return z + jnp.asarray(5.0 * rng.normal(size=(1, d)))
    if name == "permutation":
        return z[:, rng.permutation(d)]
    assert name == "monotone"
    return _mds_sqrt(z, width=d)


def _apply(spec, name, x, y):
    """The inputs transformed as the spec's ``transform_target`` says."""
    if spec.transform_target == "second":
        return x, _transform(name, y)
    if spec.transform_target == "single":
        return _transform(name, x), y
    z = _transform(name, jnp.concatenate([x, y]))  # one transform of both inputs
    return z[: x.shape[0]], z[x.shape[0] :]


def check_invariances(spec: MetricSpec, x, y):
    """Every declared invariance holds; every other one fails or is explained by the table."""
    base = float(spec.evaluate(x, y, KEY))
    lo, hi = spec.range
    assert lo - 1e-6 <= base <= hi + 1e-6, f"{spec.name}: {base} outside {spec.range}"
    for name in INVARIANCES:
        if name in spec.no_counterexample:
            assert name not in spec.invariances
            with pytest.raises(ValueError):  # the transform does not apply to these inputs
                spec.evaluate(*_apply(spec, name, x, y), KEY)
            continue
        got = float(spec.evaluate(*_apply(spec, name, x, y), KEY))
        if name in spec.invariances:
            assert got == pytest.approx(base, abs=ATOL), f"{spec.name} not {name}-invariant"
        else:
            assert abs(got - base) > MOVES, (
                f"{spec.name}: {name} is not declared, but the counter-example does not move "
                f"the value ({base} -> {got}); declare it or explain it in no_counterexample"
            )


def check_gradient(spec: MetricSpec, x, y):
    """``smooth``: finite gradient; otherwise differentiating raises ``TypeError``."""
    if spec.pairing == "single":

        def f(a):
            return spec.evaluate(a, y, KEY)

        arg = x
    else:

        def f(b):
            return spec.evaluate(x, b, KEY)

        arg = y
    if spec.smooth:
        g = jax.grad(f)(arg)
        assert np.all(np.isfinite(np.asarray(g))), f"{spec.name}: non-finite gradient"
    else:
        with pytest.raises(TypeError):
            jax.grad(f)(arg)


#: paired metrics of the embedding under test whose perfect match is y = x (the composites
#: also average terms of x alone, so x against itself is not their ideal)
IDEAL_AT_IDENTITY = sorted(
    name
    for name, s in METRICS.items()
    if s.pairing == "paired" and s.transform_target == "second" and "composite" not in name
)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_declared_invariances(name, x64):
    x, y = _data()
    check_invariances(METRICS[name], x, y)


@pytest.mark.parametrize("name", IDEAL_AT_IDENTITY)
def test_identity_scores_the_ideal(name, x64):
    x, _ = _data()
    spec = METRICS[name]
    assert float(spec.evaluate(x, x, KEY)) == pytest.approx(spec.ideal, abs=1e-6)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_gradient_matches_smooth(name, x64):
    x, y = _data()
    check_gradient(METRICS[name], x, y)


def test_table_is_consistent():
    for name, spec in METRICS.items():
        assert spec.name == name and spec.function is getattr(gg, name)
        assert set(spec.no_counterexample) <= set(INVARIANCES) - spec.invariances
        assert spec.range[0] < spec.range[1] and spec.ideal in spec.range
    assert gg.metric_spec("cka_linear") is METRICS["cka"]
    with pytest.raises(ValueError, match="did you mean trustworthiness"):
        gg.metric_spec("trustworthyness")
    # the report's fields follow the table's order
    fields = [s.report.field for s in table.report_specs()]
    assert fields == [f for f in gg.DistortionReport.__dataclass_fields__ if f in fields]


def test_report_equals_the_standalone_functions(x64):
    x, y = _data()
    y = y.at[7].set(y[8])  # a duplicate pair: exercises the bi-Lipschitz collapse rule
    key = jax.random.key(5)
    rep = gg.distortion_report(x, y, key=key, k=_K, num_splits=2, block_size=8)
    _, kf = jax.random.split(key)
    bil = gg.bilipschitz_distortion(x, y)
    want = {
        "procrustes_distortion": gg.procrustes_distortion(x, y).value,
        "procrustes_disparity": gg.procrustes_disparity(x, y).value,
        "cka_linear": gg.cka(x, y).value,
        "rdm_similarity": gg.rdm_similarity(x, y, metric="euclidean").value,
        "trustworthiness": gg.trustworthiness(x, y, k=_K).value,
        "continuity": gg.continuity(x, y, k=_K).value,
        "knn_overlap": gg.knn_overlap(x, y, k=_K).value,
        "knn_jaccard": gg.knn_jaccard(x, y, k=_K).value,
        "stress": gg.stress(x, y).value,
        "bilipschitz": bil.distortion,
        "feature_split_stability": gg.feature_split_stability(
            y, key=kf, num_splits=2, metric="cosine", max_samples=1000
        ).value,
    }
    for field, value in want.items():
        np.testing.assert_allclose(getattr(rep, field), value, rtol=1e-10, err_msg=field)
    assert bool(rep.bilipschitz_collapsed) == bool(bil.collapsed)
    assert list(rep.statuses) == list(want) and rep.status_name == "ok"


# ------------------------------------------------------------------- adding a metric (example)


@dataclass(frozen=True)
class NearestHits(Accumulator):
    """Streamed count of rows whose nearest neighbour is the same in both spaces."""

    metric: str = "euclidean"

    def init(self, acc):
        return jnp.zeros((), acc)

    def update(self, carry, t):
        bx = jnp.argmin(jnp.where(t.mask, t.dx, jnp.inf), axis=1)
        by = jnp.argmin(jnp.where(t.mask, t.dy, jnp.inf), axis=1)
        return carry + jnp.sum((bx == by) & t.valid)

    def finish(self, carry, x, y, finite, sx, sy):
        status = select((~finite, Status.nonfinite_input))
        value = nan_unless_ok((carry / x.shape[0]).astype(x.dtype), status)
        return {"nearest_hit": (value, status)}

    def row_bytes(self, n, itemsize):
        return 2 * n * itemsize


def nearest_hit(x, y, *, block_size=None, throw=True):
    """Fraction of rows whose nearest neighbour in ``y`` is their nearest in ``x`` (paired)."""
    x, y, finite = prepare_paired_flagged(x, y, min_rows=2, what="nearest_hit")
    x, y = nondifferentiable(x, "nearest_hit"), nondifferentiable(y, "nearest_hit")
    x, y = zero_nonfinite(x, finite), zero_nonfinite(y, finite)
    value, status = stream_paired([NearestHits()], x, y, finite=finite, block_size=block_size)[
        "nearest_hit"
    ]
    return finish(Estimate(value, status), throw=throw, function="nearest_hit")


TOY = MetricSpec(
    "nearest_hit",
    nearest_hit,
    "paired",
    frozenset(INVARIANCES),
    smooth=False,  # a k-NN set: piecewise constant, so nondifferentiable() guards the inputs
    range=(0.0, 1.0),
    better="higher",
    evaluate=lambda x, y, key: nearest_hit(x, y).value,
    report=ReportEntry(
        "nearest_hit",
        "nearest-neighbour hits",
        "1 = same nearest neighbours",
        accumulator=lambda o: NearestHits(),
    ),
)


def test_a_metric_added_to_the_table_gets_its_tests_and_report_row(monkeypatch, x64):
    monkeypatch.setitem(table._TABLE, "nearest_hit", TOY)
    assert gg.metric_spec("nearest_hit") is TOY and "nearest_hit" in METRICS
    x, y = _data()
    check_invariances(TOY, x, y)  # the generated property tests, on the new row
    check_gradient(TOY, x, y)
    assert float(TOY.evaluate(x, x, KEY)) == 1.0
    rep = gg.distortion_report(x, y, key=KEY, k=_K, num_splits=0, block_size=8)
    assert float(rep.extra["nearest_hit"]) == pytest.approx(float(nearest_hit(x, y).value))
    assert rep.to_dict()["nearest_hit"] == pytest.approx(float(nearest_hit(x, y).value))
    assert rep.to_dict()["statuses"]["nearest_hit"] == "ok"
    assert "nearest-neighbour hits" in str(rep)
