"""Tolerances in one place; dtype-aware defaults for array comparisons."""

import jax
import numpy as np

RTOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-10}
ATOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-10}


def assert_tree_close(actual, expected, *, rtol=None, atol=None):
    """Assert two pytrees of arrays are elementwise close, with dtype-dependent defaults."""
    leaves_a, tree_a = jax.tree_util.tree_flatten(actual)
    leaves_e, tree_e = jax.tree_util.tree_flatten(expected)
    assert tree_a == tree_e, f"tree structures differ: {tree_a} vs {tree_e}"
    for a, e in zip(leaves_a, leaves_e, strict=True):
        a = np.asarray(a)
        e = np.asarray(e)
        dt = a.dtype if a.dtype in RTOL else np.dtype("float32")
        np.testing.assert_allclose(
            a, e, rtol=RTOL[dt] if rtol is None else rtol, atol=ATOL[dt] if atol is None else atol
        )
