"""Run every realistic-tier row with jaxtyping's shape checks on (a subprocess of test_shapes.py).

The import hook decorates every function of geomtax with ``jaxtyping.jaxtyped`` and beartype
before geomtax is imported, so each ``Float[Array, "n d"]`` annotation is checked on every call,
including the shared dimension names across arguments and the return value. Prints one JSON
object: the rows whose annotations were violated, with the checker's first line.
"""

import json
import sys

import jax
import jaxtyping

jax.config.update("jax_numpy_rank_promotion", "raise")

with jaxtyping.install_import_hook(["geomtax"], "_typecheck.check"):
    import test_realistic as tr

    import geomtax  # noqa: F401
    import geomtax.audit  # noqa: F401
    import geomtax.geometry  # noqa: F401
    import geomtax.info  # noqa: F401
    import geomtax.rd  # noqa: F401

N, D = 256, 48
failures = {}
names = sys.argv[1:] or sorted({**tr.ALL_ROWS, **tr.PRIMITIVES})
for name in names:
    z, x, y = tr._data(1, N, D)
    fn = tr.ALL_ROWS[name][0] if name in tr.ALL_ROWS else tr.PRIMITIVES[name]
    try:
        jax.block_until_ready(fn(z, x, y))
    except Exception as e:  # report every failure; the test asserts there is none
        failures[name] = f"{type(e).__name__}: " + " ".join(str(e).split())[:600]
print(json.dumps({"checked": len(names), "failures": failures}))
