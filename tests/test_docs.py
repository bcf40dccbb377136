"""Every public name is documented: it has a docstring and a ``:::`` directive in docs/api/*.md."""

import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
NAMESPACES = [
    "geomtax",
    "geomtax.geometry",
    "geomtax.info",
    "geomtax.rd",
    "geomtax.dynamics",
    "geomtax.models",
    "geomtax.experiments",
    "geomtax.audit",
    "geomtax.parallel",
    "geomtax.sweep",
]
_DIRECTIVE = re.compile(r"^\s*:::\s+([A-Za-z_][\w.]*)", re.MULTILINE)


def directives() -> set[str]:
    """Targets of every ``::: target`` line in docs/api/*.md."""
    found: set[str] = set()
    for page in sorted(API_DIR.glob("*.md")):
        found.update(_DIRECTIVE.findall(page.read_text()))
    return found


def _own_docstring(obj) -> str | None:
    """The object's own docstring (not inherited, not a dataclass-generated signature)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not doc or not doc.strip():
        return None
    name = getattr(obj, "__name__", "")
    if inspect.isclass(obj) and name and doc.startswith(f"{name}("):
        return None  # dataclasses/equinox generate "Name(field: type, ...)" when none is written
    return doc


def _needs_docstring(obj) -> bool:
    return inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)


def _covered(namespace: str, name: str, obj, targets: set[str]) -> bool:
    if namespace in targets or f"{namespace}.{name}" in targets:
        return True
    if inspect.ismodule(obj):
        return obj.__name__ in targets
    # A top-level re-export is covered where its home namespace documents it.
    for ns in NAMESPACES[1:]:
        mod = sys.modules.get(ns) or importlib.import_module(ns)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name, None) is obj:
            if ns in targets or f"{ns}.{name}" in targets:
                return True
    return False


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_public_names_documented(namespace):
    module = importlib.import_module(namespace)
    assert _own_docstring(module), f"{namespace} has no module docstring"
    targets = directives()
    missing_doc, missing_page = [], []
    for name in getattr(module, "__all__", []):
        if name.startswith("__"):
            continue  # __version__ and friends
        obj = getattr(module, name)
        if _needs_docstring(obj) and not _own_docstring(obj):
            missing_doc.append(name)
        if not _covered(namespace, name, obj, targets):
            missing_page.append(name)
    assert not missing_doc, f"{namespace}: public names without a docstring: {missing_doc}"
    assert not missing_page, (
        f"{namespace}: public names not covered by a ':::' directive in docs/api/*.md "
        f"(add '::: {namespace}' or '::: {namespace}.NAME'): {missing_page}"
    )


def test_checker_catches_undocumented_names(tmp_path):
    """The checker itself fails on a missing docstring and on a missing directive."""

    class Documented:
        """Has one."""

    class Bare:
        pass

    def bare():
        pass

    assert _own_docstring(Documented) and not _own_docstring(Bare) and not _own_docstring(bare)
    import dataclasses

    @dataclasses.dataclass
    class Generated:
        a: int

    assert not _own_docstring(Generated)
    assert not _covered("geomtax.nowhere", "thing", bare, {"geomtax.other"})
    assert _covered("geomtax.nowhere", "thing", bare, {"geomtax.nowhere"})
    assert _covered("geomtax.nowhere", "thing", bare, {"geomtax.nowhere.thing"})


def test_own_pages_exist():
    for page in (
        "guides/sweeps.md",
        "benchmarks.md",
        "concepts/index.md",
        "api/parallel.md",
        "api/sweep.md",
    ):
        assert (ROOT / "docs" / page).is_file(), page


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict`` succeeds (network-free: MathJax is a script URL only)."""
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
