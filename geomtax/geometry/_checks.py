"""Input preparation shared by the geometry metrics (static checks first, then value checks)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import (
    check_choice,
    check_finite,
    check_min_rows,
    check_paired,
    check_rank,
    check_real_array,
    finite_mask,
    is_traced,
)

ZERO_NORM_POLICIES = ("raise", "fill_one")


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


def check_k(k: int, n: int, *, shape, strict_half: bool = True):
    """``1 <= k < n / 2`` (trustworthiness/continuity validity range, scikit-learn #18567)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"k must be a Python int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if strict_half and not k < n / 2:
        raise ValueError(
            f"k must satisfy k < n / 2 for this metric (its normaliser is only valid there); "
            f"got k={k} with n={n} rows (shape {tuple(shape)})"
        )
    if not k < n:
        raise ValueError(f"k must be < n; got k={k} with shape {tuple(shape)}")


def check_block_size(block_size):
    """``None`` or a positive Python int."""
    if block_size is None:
        return
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool):
        raise TypeError(f"block_size must be None or a positive int, got {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size}")
