"""The package's layering: the core never imports the layers built on it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "geomtax"
CORE = ("geometry", "info", "rd", "dynamics")
UPPER = ("parallel", "audit", "experiments", "cli", "sweep", "bench")


def _imported_packages(source: str, parts: tuple[str, ...]) -> set[str]:
    """First-level geomtax subpackages that a module imports (relative or absolute, any depth).

    ``parts`` is the module's path inside geomtax, e.g. ``("geometry", "_distances.py")``.
    """
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(parts[:-1])
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [a.name] for a in node.names] if not node.module else [parts]
                for p in names:
                    if p:
                        found.add(p[0])
            elif node.module and node.module.startswith("geomtax."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("geomtax."):
                    found.add(a.name.split(".")[1])
    return found


@pytest.mark.parametrize("package", CORE)
def test_core_never_imports_upper_layers(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        hits = _imported_packages(path.read_text(), path.relative_to(ROOT).parts) & set(UPPER)
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad, f"core modules import upper layers (lazily or not): {bad}"


def test_checker_sees_a_lazy_import():
    # The checker must catch an import inside a function body (the old lazy cycle).
    src = "def f():\n    from ..parallel import shard_rows\n    return shard_rows\n"
    assert "parallel" in _imported_packages(src, ("geometry", "_x.py"))
    assert "parallel" in _imported_packages("import geomtax.parallel\n", ("rd", "_x.py"))
    core_only = _imported_packages("from .._sharding import shard_rows\n", ("rd", "_x.py"))
    assert not core_only & set(UPPER)
