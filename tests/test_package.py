"""Package-level checks: version, console script, import hygiene."""

import subprocess
import sys

import geomtax
from geomtax.cli._main import main


def test_version_string():
    assert isinstance(geomtax.__version__, str) and geomtax.__version__.count(".") == 2


def test_cli_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert geomtax.__version__ in capsys.readouterr().out


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "geomtax", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "usage: geomtax" in out


def test_core_never_imports_flax_or_creates_arrays():
    code = (
        "import sys, geomtax, geomtax.geometry, geomtax.info, geomtax.rd, geomtax.dynamics\n"
        "assert 'flax' not in sys.modules, 'core imported flax'\n"
        "import jax\n"
        "assert len(jax.live_arrays()) == 0, 'import created device arrays'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_have_docstrings():
    for name in geomtax.__all__:
        obj = getattr(geomtax, name)
        if callable(obj):
            assert obj.__doc__, f"geomtax.{name} has no docstring"
