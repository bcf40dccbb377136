"""Strict mode, part two: jaxtyping's shape checks on during a run of every public estimator.

Rank promotion raises in every test (``conftest.py``). The array annotations
(``Float[Array, "n d"]``) are checked here: ``_shape_check.py`` imports geomtax under
jaxtyping's import hook with beartype, so every annotated function checks its arguments and
return value (dimension names shared across arguments must agree) on each call, and runs every
row of the realistic tier. The hook must be installed before geomtax is imported, hence the
subprocess. A wrong annotation (a shape, a dtype kind, a Python type) fails here by name.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def _run(*names):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, str(TESTS / "_shape_check.py"), *names],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=TESTS,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_annotations_hold_on_every_public_estimator():
    out = _run()
    assert out["checked"] >= 30
    assert not out["failures"], "\n".join(f"{k}: {v}" for k, v in out["failures"].items())


def test_the_checker_catches_a_wrong_shape():
    """The hook is live: rows that disagree across x and y (``n dx`` vs ``n dy``) are refused."""
    code = (
        "import jaxtyping, jax.numpy as jnp\n"
        "with jaxtyping.install_import_hook(['geomtax'], '_typecheck.check'):\n"
        "    import geomtax.info as gi\n"
        "try:\n"
        "    gi.ksg_mi(jnp.ones((10, 1)), jnp.ones((9, 1)))\n"
        "except jaxtyping.TypeCheckError:\n"
        "    print('caught')\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TESTS,
        env=env,
    )
    assert proc.stdout.strip().endswith("caught"), proc.stderr[-2000:]
