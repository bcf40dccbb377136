"""Input validation in three tiers (see STYLE.md section 13).

* static problems (rank, shape, option names) raise ``ValueError``/``TypeError`` at trace time;
* value problems (non-finite data) raise eagerly when the array is concrete, and go through
  ``eqx.error_if`` when it is traced, so they still fail under ``jit``/``vmap``;
* degenerate results are reported through flags on result objects, never as silent NaN.
"""

import functools
import warnings
from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True if ``x`` is a JAX tracer (inside jit/vmap/grad), so its values are unknown."""
    return isinstance(x, jax.core.Tracer)


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise ``ValueError`` if ``value`` is not one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")


def check_rank(name: str, x, rank: int = 2) -> None:
    """Raise ``ValueError`` unless ``x`` has exactly ``rank`` dimensions."""
    ndim = np.ndim(x)
    if ndim != rank:
        raise ValueError(
            f"{name} must have rank {rank}, got shape {tuple(np.shape(x))} (rank {ndim})"
        )


def check_paired(x, y, *, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise ``ValueError`` unless ``x`` and ``y`` are rank-2 with the same number of rows."""
    check_rank(names[0], x)
    check_rank(names[1], y)
    if np.shape(x)[0] != np.shape(y)[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must be paired row by row; got shapes "
            f"{tuple(np.shape(x))} and {tuple(np.shape(y))} (row counts differ)"
        )


def check_min_rows(name: str, x, minimum: int, *, what: str = "this metric") -> None:
    """Raise ``ValueError`` if ``x`` has fewer than ``minimum`` rows."""
    n = np.shape(x)[0]
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} rows in {name}; got shape {np.shape(x)}")


def check_floating(name: str, x) -> None:
    """Raise ``TypeError`` if ``x`` does not have a floating dtype."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {dtype}")


def check_finite(name: str, x):
    """Fail on NaN or infinite entries.

    Concrete arrays are checked on the host and raise ``ValueError`` naming the first bad row;
    traced arrays are wrapped with ``eqx.error_if`` (an ``EquinoxRuntimeError`` at run time).

    Returns:
        ``x`` (possibly wrapped), to be used in place of the input.
    """
    if is_traced(x):
        return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} contains NaN or inf")
    arr = np.asarray(x)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} contains {int(bad.sum())} non-finite value(s); first at index "
                f"{tuple(int(i) for i in idx)} of shape {arr.shape}"
            )
    return x


# --- option validation (before any compilation; messages name the option and the value) -------


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Accepts Python and NumPy integers (``np.int64(3)`` is 3); rejects ``bool``, floats (even
    ``3.0``), strings and arrays.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {name}={value}")
    return value


def check_float(
    name: str,
    value,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_traced: bool = True,
):
    """Check a real scalar option: finite, and optionally positive / in a range.

    Python numbers and concrete 0-d arrays are checked on the host; a traced scalar (a value
    being swept under ``vmap``) passes through unchanged when ``allow_traced``. Returns the
    value (a Python float for Python and NumPy numbers).
    """
    if is_traced(value):
        if not allow_traced:
            raise TypeError(f"{name} must be a concrete number here, got a traced value")
        return value
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if np.ndim(value) != 0:
        raise TypeError(f"{name} must be a scalar, got shape {tuple(np.shape(value))}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number, got {value!r} (dtype {arr.dtype})")
    v = float(arr)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {name}={v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {name}={v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {name}={v}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {name}={v}")
    return v if isinstance(value, (int, float, np.number)) else value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a Python or NumPy bool, else raise naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_real_array(name: str, x) -> None:
    """Raise ``TypeError`` for complex, boolean, string or object arrays (static: the dtype)."""
    dtype = np.dtype(jnp.result_type(x)) if not isinstance(x, np.ndarray) else x.dtype
    if dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (float or int), got dtype {dtype}"
            + (
                "; pass the real part (x.real) or stack real and imaginary parts"
                if dtype.kind == "c"
                else ""
            )
        )


def finite_mask(x):
    """Scalar bool array: every entry of ``x`` is finite (traceable; no raising)."""
    return jnp.all(jnp.isfinite(x))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def no_derivative(x, message: str):
    """``x`` unchanged; differentiating through it raises ``TypeError(message)``.

    For estimators that are piecewise constant in their inputs (exact ranks, k-NN sets,
    neighbour counts): their derivative is zero almost everywhere, so ``jax.grad`` would
    silently return zeros. Only an input that actually carries a tangent triggers the error
    (symbolic-zero tangents do not); under ``jit``/``vmap`` without differentiation it is free.
    """
    return x


@no_derivative.defjvp
def _no_derivative_jvp(message, primals, tangents):
    raise TypeError(message)


def renamed_options(**renames: str):
    """Decorator: keep old option names working for one release, with a ``DeprecationWarning``.

    ``@renamed_options(n_splits="num_splits")`` maps ``n_splits=`` to ``num_splits=`` and warns
    (once per call, pointing at the caller); passing both spellings raises ``TypeError``. The
    wrapped function keeps its name, docstring and signature (``inspect.signature`` shows only
    the new names), so option checks against the signature see the new spelling.
    geomtax 0.2 renamed every count option to ``num_*`` and the memory-only ``batch_size`` of the
    generators to ``chunk_size``; the old names go in 0.3.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old in renames.keys() & kwargs.keys():
                new = renames[old]
                if new in kwargs:
                    raise TypeError(
                        f"{fn.__name__}() got both {old}= (deprecated) and {new}=; pass {new}= only"
                    )
                warnings.warn(
                    f"{fn.__name__}({old}=...) is deprecated since geomtax 0.2 and will be "
                    f"removed in 0.3; use {new}=",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
