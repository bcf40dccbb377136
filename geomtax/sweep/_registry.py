"""The estimators a sweep config may name: geomtax's public functions, and nothing else by default.

A grid ``estimator`` (or an ``[estimators.NAME].function``) is looked up here first: a bare
public name (``"procrustes_distortion"``) or the same name qualified by its namespace
(``"geomtax.geometry:procrustes_distortion"``, ``"geomtax.info.mutual_information"``). Any other
import path (``"my_lab.metrics:score"``) runs code named by the config file, so it is refused
unless the caller opts in (``geomtax sweep --allow-import``, ``run_sweep(allow_import=True)``):
a config shared between colleagues is then executable code because someone said so.
"""

import difflib
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

#: The namespaces whose public functions (their ``__all__``) form the registry.
NAMESPACES = ("geomtax.geometry", "geomtax.info", "geomtax.rd")


class ImportNotAllowedError(ValueError):
    """A sweep config names an import path outside the registry without the opt-in."""


@functools.cache
def registry() -> dict[str, Callable[..., Any]]:
    """``{name: function}`` of every public function of ``geometry``, ``info`` and ``rd``.

    Examples:
        >>> registry()["procrustes_distortion"].__name__
        'procrustes_distortion'
    """
    out: dict[str, Callable[..., Any]] = {}
    for ns in NAMESPACES:
        module = importlib.import_module(ns)
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not inspect.isclass(obj):
                out.setdefault(name, obj)
    return out


def _registry_name(path: str) -> str | None:
    """The registry name that ``path`` spells, or ``None``."""
    reg = registry()
    if path in reg:
        return path
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    if module in (*NAMESPACES, "geomtax") and attr in reg:
        home = {ns for ns in NAMESPACES if attr in importlib.import_module(ns).__all__}
        if module == "geomtax" or module in home:
            return attr
    return None


def resolve_function(path: str, *, allow_import: bool = False) -> Callable[..., Any]:
    """The estimator a sweep config names.

    Args:
        path: a registry name (``"knn_overlap"``), a registry name qualified by its namespace
            (``"geomtax.geometry:knn_overlap"``), or, with ``allow_import``, any import path
            ``"package.module:function"`` / ``"package.module.function"``.
        allow_import: import paths outside the registry are allowed (they run arbitrary code).

    Raises:
        ImportNotAllowedError: an import path outside the registry without ``allow_import``.
        ValueError: an unknown name or a path that does not import or is not callable.

    Examples:
        >>> resolve_function("geomtax.geometry:pairwise_distances").__name__
        'pairwise_distances'
        >>> resolve_function("subprocess:check_output")
        Traceback (most recent call last):
        ...
        geomtax.sweep._registry.ImportNotAllowedError: estimator 'subprocess:check_output' is ...
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"an estimator must be a non-empty string; got {path!r}")
    name = _registry_name(path)
    if name is not None:
        return registry()[name]
    looks_like_path = ":" in path or "." in path
    if not looks_like_path:
        close = difflib.get_close_matches(path, sorted(registry()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown estimator {path!r}{hint} (a sweep names a public function of "
            "geomtax.geometry, geomtax.info or geomtax.rd, or an [estimators.NAME] table)"
        )
    if not allow_import:
        raise ImportNotAllowedError(
            f"estimator {path!r} is an import path outside geomtax's registry; running it "
            "executes code named by the config file. Pass --allow-import (run_sweep("
            "allow_import=True)) if you trust the config"
        )
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"estimator {path!r} is not an import path like 'package.module:function'")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"estimator {path!r} does not import ({type(err).__name__}: {err})"
        ) from err
    if not callable(obj):
        raise ValueError(f"estimator {path!r} is not callable")
    return obj
