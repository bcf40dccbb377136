"""Input preparation shared by the geometry metrics (static checks first, then value checks)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import (
    check_choice,
    check_finite,
    check_int,
    check_min_rows,
    check_paired,
    check_rank,
    check_real_array,
    finite_mask,
    is_traced,
    no_derivative,
)

ZERO_NORM_POLICIES = ("raise", "fill_one")


def check_same_columns(x, y, what: str, names=("x", "y")) -> None:
    """Static: ``x`` and ``y`` have the same number of columns (``ValueError`` naming both)."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{what} needs the same number of columns; got {names[0]} {tuple(x.shape)} and "
            f"{names[1]} {tuple(y.shape)}"
        )


def as_float(name: str, x):
    """Rank-agnostic conversion to a floating JAX array (integer inputs become float)."""
    if is_traced(x):
        arr = x
    else:
        arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def prepare_single(name: str, x, *, min_rows: int = 2, what: str = "this metric"):
    """Rank-2, at least ``min_rows`` rows, floating and finite."""
    check_rank(name, x)
    check_min_rows(name, x, min_rows, what=what)
    return check_finite(name, as_float(name, x))


def prepare_paired(x, y, *, min_rows: int = 2, what: str = "this metric", names=("x", "y")):
    """Paired rank-2 arrays with equal row counts, floating and finite."""
    check_paired(x, y, names=names)
    check_min_rows(names[0], x, min_rows, what=what)
    x = check_finite(names[0], as_float(names[0], x))
    y = check_finite(names[1], as_float(names[1], y))
    if x.dtype != y.dtype:
        dtype = jnp.promote_types(x.dtype, y.dtype)
        x, y = x.astype(dtype), y.astype(dtype)
    return x, y


def prepare_single_flagged(name: str, x, *, min_rows: int = 2, what: str = "this metric"):
    """Static checks (rank, rows, real dtype), then ``(x, finite)`` with no value check.

    ``finite`` is a scalar bool array; estimators turn ``~finite`` into
    ``Status.nonfinite_input`` so that ``throw=False`` never aborts (the result contract).
    """
    check_rank(name, x)
    check_real_array(name, x)
    check_min_rows(name, x, min_rows, what=what)
    x = as_float(name, x)
    return x, finite_mask(x)


def prepare_paired_flagged(x, y, *, min_rows: int = 2, what: str = "this metric", names=("x", "y")):
    """Paired static checks, common dtype, then ``(x, y, finite)`` with no value check."""
    check_paired(x, y, names=names)
    check_real_array(names[0], x)
    check_real_array(names[1], y)
    check_min_rows(names[0], x, min_rows, what=what)
    x, y = as_float(names[0], x), as_float(names[1], y)
    if x.dtype != y.dtype:
        dtype = jnp.promote_types(x.dtype, y.dtype)
        x, y = x.astype(dtype), y.astype(dtype)
    return x, y, finite_mask(x) & finite_mask(y)


def zero_nonfinite(x, finite):
    """``x`` where ``finite`` (from ``prepare_*_flagged``), else zeros.

    A non-finite input's result is NaN'd through its ``nonfinite_input`` status anyway; zeroing
    it keeps NaN out of the kernels (and out of gradients and ``EQX_ON_ERROR`` paths).
    """
    return jnp.where(finite, x, jnp.zeros_like(x))


def check_zero_norm(name: str, x, metric: str, policy: str):
    """Under ``cosine`` (or ``correlation``) zero-norm rows raise unless ``policy='fill_one'``."""
    check_choice("zero_norm", policy, ZERO_NORM_POLICIES)
    if metric not in ("cosine", "correlation") or policy == "fill_one":
        return x
    if metric == "correlation":
        xc = x - jnp.mean(x, axis=1, keepdims=True)
    else:
        xc = x
    if is_traced(x):
        bad = jnp.any(jnp.sum(xc * xc, axis=1) == 0)
        return eqx.error_if(
            x, bad, f"{name} has a zero-norm row: {metric} distance undefined (zero_norm='raise')"
        )
    norms = np.linalg.norm(np.asarray(xc), axis=1)
    bad = np.flatnonzero(norms == 0)
    if bad.size:
        raise ValueError(
            f"{name} of shape {tuple(x.shape)} has {bad.size} zero-norm row(s) (first: row "
            f"{int(bad[0])}); the {metric} distance is undefined there. Remove them, or pass "
            "zero_norm='fill_one' to define the distance to such rows as 1.0."
        )
    return x


def check_k(k, n: int, *, shape, strict_half: bool = True) -> int:
    """``1 <= k < n / 2`` (trustworthiness/continuity validity range, scikit-learn #18567).

    Accepts Python and NumPy integers and returns a Python int (pass the returned value on:
    a NumPy integer would otherwise become a traced array under ``jit``); rejects ``bool``,
    floats and strings.
    """
    k = check_int("k", k, minimum=1)
    if strict_half and not k < n / 2:
        raise ValueError(
            f"k must satisfy k < n / 2 for this metric (its normaliser is only valid there); "
            f"got k={k} with n={n} rows (shape {tuple(shape)})"
        )
    if not k < n:
        raise ValueError(f"k must be < n; got k={k} with shape {tuple(shape)}")
    return k


def check_block_size(block_size):
    """``"auto"``, ``None`` or a positive int (see :func:`geomtax._chunking.resolve_block_size`)."""
    if block_size is None or (isinstance(block_size, str) and block_size == "auto"):
        return block_size
    if isinstance(block_size, str):
        raise ValueError(f"block_size must be 'auto', None or a positive int, got {block_size!r}")
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool):
        raise TypeError(f"block_size must be 'auto', None or a positive int, got {block_size!r}")
    return check_int("block_size", block_size, minimum=1)


def zero_norm_mask(x, metric: str):
    """Scalar bool (traceable): under cosine/correlation some row of ``x`` has zero norm.

    The flagged counterpart of :func:`check_zero_norm` (``zero_norm="raise"``): estimators
    report such input as ``Status.degenerate_input`` instead of raising on the data.
    """
    if metric not in ("cosine", "correlation"):
        return jnp.zeros((), bool)
    xc = x - jnp.mean(x, axis=1, keepdims=True) if metric == "correlation" else x
    return jnp.any(jnp.all(xc == 0, axis=1))


def first_nonfinite_row(name: str, x, what: str) -> None:
    """Eager primitives: raise ``ValueError`` naming the first row of ``x`` with NaN or inf.

    Traced arrays are not checked here (the primitives propagate NaN instead).
    """
    if is_traced(x):
        return
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1) if arr.ndim else None
    if arr.ndim == 0:
        if not np.isfinite(arr):
            raise ValueError(f"{name} is not finite ({arr}); {what} is undefined")
        return
    rows = np.flatnonzero(bad)
    if rows.size:
        raise ValueError(
            f"{name} of shape {arr.shape} has NaN or inf in {rows.size} row(s) (first: row "
            f"{int(rows[0])}); {what} is undefined there. Remove or impute those rows."
        )


def nondifferentiable(x, function: str):
    """Identity on ``x`` whose derivative raises ``TypeError`` naming ``function``.

    Wrap the inputs of a metric that is piecewise constant in them (it sees the data only
    through ranks or k-NN sets): its true gradient is zero almost everywhere, so ``jax.grad``
    would silently return zeros. Under ``jit``/``vmap`` without differentiation it is free.
    """
    return no_derivative(
        x,
        f"{function} is piecewise constant in its inputs (it depends on them only through "
        "ranks or k-NN sets), so its gradient is zero almost everywhere and carries no "
        "training signal; do not differentiate it. For a differentiable loss use stress, "
        "procrustes_distortion, cka or rdm_similarity(method='pearson'); to evaluate it "
        "inside a differentiated function, pass jax.lax.stop_gradient(x)",
    )
