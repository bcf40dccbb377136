"""Documentation checks.

* Every public name has a docstring and a ``:::`` directive in docs/api/*.md.
* The ```python snippets of the README, the guides and a few other pages run as pasted (see
  ``NO_RUN`` below for the one marker that exempts a long-running block).
* The docs are self-contained: nothing points to the internal ``REFERENCE.md``, and the table
  mapping its section numbers to the reference pages names anchors that exist.
"""

import importlib
import inspect
import os
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


# ----------------------------------------------------------------------------- snippets
#
# Every ```python block of the pages below is run as pasted: the blocks of one page in order, in
# one fresh interpreter (like a reader pasting them into one session), in an empty temporary
# folder. A block that must not run (long-running only, e.g. a multi-minute audit) is marked by
# an HTML comment on the line just before its fence:
#
#     <!-- no-run -->
#     ```python
#
# The marker is invisible on the rendered site; use it sparingly.

NO_RUN = "<!-- no-run -->"
SNIPPET_PAGES = [
    "README.md",
    "docs/getting-started.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "guides").glob("*.md")),
    "docs/concepts/status.md",
    "docs/api/results.md",
]
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, runnable)`` for every ```python block of a Markdown text."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == NO_RUN
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), not marked))
    return out


_DRIVER = r"""
import sys, traceback
blocks = {blocks!r}
ns = {{"__name__": "__main__"}}
for line, code in blocks:
    try:
        exec(compile(code, f"{page}:{{line}}", "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"SNIPPET FAILED: the block at {page}:{{line}}", file=sys.stderr)
        sys.exit(1)
"""


def test_python_blocks_parser():
    text = "x\n```python\na = 1\n```\n\n<!-- no-run -->\n```python\nb = 2\n```\n```bash\nc\n```\n"
    assert python_blocks(text) == [(2, "a = 1\n", True), (7, "b = 2\n", False)]


@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_snippets_run_as_pasted(page, tmp_path):
    """Every ```python block of ``page`` runs, in order, in a fresh interpreter."""
    blocks = [(line, code) for line, code, run in python_blocks((ROOT / page).read_text()) if run]
    if not blocks:
        pytest.skip(f"{page} has no runnable python blocks")
    script = tmp_path / "snippets.py"
    script.write_text(_DRIVER.format(blocks=blocks, page=page))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "JAX_", "XLA_FLAGS"))}
    env.update(MPLBACKEND="Agg", XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONPATH=str(ROOT))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:] + proc.stderr[-6000:]).strip()


# ----------------------------------------------------------------------------- self-contained

_REFERENCE_POINTER = re.compile(r"REFERENCE(\.md)?[ \t]*(§|section|sections)?[ \t]*\d")
_ANCHOR = re.compile(r"^#+ .*\{#([\w-]+)\}[ \t]*$", re.MULTILINE)
_MAP_ROW = re.compile(
    r"^\| ([\d.]+) \| \[[^\]]*\]\(([\w.-]+\.md)(?:#([\w-]+))?\) \|$", re.MULTILINE
)
_SOURCE_POINTER = re.compile(r"\bREFERENCE\b")


def _user_facing_texts():
    yield "README.md", (ROOT / "README.md").read_text()
    for p in sorted((ROOT / "docs").rglob("*.md")):
        if p.relative_to(ROOT / "docs") != Path("reference/index.md"):
            yield str(p.relative_to(ROOT)), p.read_text()


def test_docs_point_to_no_internal_reference():
    """README and docs point to the docs' own reference pages, never to a missing REFERENCE.md."""
    bad = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in _user_facing_texts()
        for m in _REFERENCE_POINTER.finditer(text)
    ]
    assert not bad, "pointers to REFERENCE.md (not shipped): " + "; ".join(bad)


def test_source_points_to_no_internal_reference():
    """Docstrings, comments and CLI help of the package point to the docs, not to REFERENCE.md."""
    bad = []
    for p in sorted((ROOT / "geomtax").rglob("*.py")):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if _SOURCE_POINTER.search(line):
                bad.append(f"{p.relative_to(ROOT)}:{i}")
    assert not bad, f"{len(bad)} pointers to REFERENCE.md in geomtax/: " + ", ".join(bad)


def test_reference_section_map_targets_exist():
    """Every row of the "REFERENCE §N" table in docs/reference/index.md names a real anchor."""
    ref = ROOT / "docs" / "reference"
    rows = _MAP_ROW.findall((ref / "index.md").read_text())
    assert len(rows) >= 40
    sections = [r[0] for r in rows]
    assert len(set(sections)) == len(sections), "a section number appears twice"
    for section, page, anchor in rows:
        assert (ref / page).is_file(), (section, page)
        if anchor:
            assert anchor in _ANCHOR.findall((ref / page).read_text()), (section, page, anchor)
