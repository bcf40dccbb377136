"""Shared test configuration: strict rank promotion, keys with printed seeds, float64 fixture."""

import os
import zlib

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

# Scripts the tests run in a subprocess, not test modules: importing _shape_check.py (as
# --doctest-modules would) installs jaxtyping's import hook in the worker and runs the check.
collect_ignore = ["_shape_check.py", "_typecheck.py"]

# Silent broadcasting between arrays of different rank is the commonest quiet bug.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every XLA:CPU executable holds a few memory mappings (~3 each); a worker that compiles some
    20,000 programs over the suite reaches the kernel's vm.max_map_count (65,530) and LLVM
    segfaults inside the next compile. Clearing the caches between modules keeps the count low.
    """
    yield
    jax.clear_caches()


@pytest.fixture
def getkey(request):
    """Return a function producing fresh PRNG keys; the base seed is printed on failure."""
    # crc32, not hash(): str hashes are salted per process, which made every run draw new keys.
    seed = zlib.crc32(request.node.nodeid.encode()) % (2**31)
    print(f"getkey seed: {seed}")
    key = jax.random.key(seed)
    counter = {"i": 0}

    def _next():
        counter["i"] += 1
        return jax.random.fold_in(key, counter["i"])

    return _next


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats (for comparisons against scipy/scikit-learn)."""
    with jax.enable_x64(True):
        yield
