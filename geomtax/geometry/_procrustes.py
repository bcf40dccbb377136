r"""Procrustes distortion and its scale-fitted variants (docs/reference/geometry.md).

Pairing: *paired* (row ``i`` of ``x`` and ``y`` is the same item). With centred, Frobenius-
normalised :math:`X_n, Y_n`, everything follows from the nuclear norm
:math:`\nu = \lVert X_n^\top Y_n \rVert_*` (sum of singular values):

* ``procrustes_distortion`` (the paper's "Procrustes D", rotation only):
  :math:`D = \min_{R^\top R = I} \lVert X_n R - Y_n \rVert_F / \sqrt 2 = \sqrt{1 - \nu}`;
* ``procrustes_disparity`` (``scipy.spatial.procrustes``, rotation + scale):
  :math:`1 - \nu^2 = 2D^2 - D^4`;
* ``procrustes_similarity`` (shesha): :math:`\nu = 1 - D^2`.

Different column counts are allowed (identical to zero-padding the narrower one). Every
quantity is invariant to translation and scale of either input, and is computed that way: each
input is centred (two-pass) and divided by its largest absolute entry before anything is
squared, so offsets of 1e6 and scales of 1e-30 or 1e30 in float32 give the unshifted value.

Status codes: ``nonfinite_input`` (an input holds NaN or inf) and ``degenerate_input`` (an
input has all rows identical, so its normalisation is 0/0); the value is NaN for both.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import Samples
from .._errors import check_bool, check_choice
from .._numerics import is_constant, safe_sqrt, standardize_cloud
from .._status import AbstractResult, Estimate, Status, finish, nan_unless_ok, select
from ._checks import check_same_columns, prepare_paired_flagged, zero_nonfinite

VARIANTS = ("rotation", "similarity")
_DEGENERATE = "an input has all rows identical (zero centred norm)"


def _unit_frobenius(x):
    """Centred, max-scaled, then Frobenius-normalised ``x`` (zero where ``x`` is constant)."""
    xs = standardize_cloud(x)
    nx = jnp.sqrt(jnp.sum(xs * xs))
    return xs / jnp.where(nx > 0, nx, jnp.ones_like(nx))


def _row_space(x):
    """(n, min(n, d)) coordinates of the rows of ``x`` in an orthonormal basis of their span.

    For wide data (d > n, every foundation-model embedding at n < d) the rows are replaced by
    R^T from the reduced QR of x^T: Gram matrix, norms and every quantity optimised over
    orthogonal maps (the nuclear norm of X^T Y, the aligned Procrustes residual) are unchanged,
    and the SVD is n x n instead of d x d (a 4096-column SVD takes ~20 s on CPU).
    """
    n, d = x.shape
    if d <= n:
        return x
    return jnp.linalg.qr(x.T, mode="reduced")[1].T


def _nuclear(x, y):
    """Nuclear norm of Xn^T Yn and the degenerate flag (an input with all rows identical).

    Translation and scale are removed before anything is squared (see the module docstring);
    the degenerate test is exact (``is_constant``), never an absolute threshold.
    """
    degenerate = is_constant(x) | is_constant(y)
    xn = _unit_frobenius(x)
    yn = _unit_frobenius(y)
    xn, yn = _row_space(xn), _row_space(yn)
    nu = jnp.sum(jnp.linalg.svd(xn.T @ yn, compute_uv=False))
    nu = jnp.where(degenerate, 0.0, jnp.clip(nu, 0.0, 1.0))
    return nu, degenerate


def _status(finite, degenerate):
    return select((~finite, Status.nonfinite_input), (degenerate, Status.degenerate_input))


def procrustes_distortion(
    x: Samples, y: Samples, *, variant: str = "rotation", throw: bool = True
) -> Estimate:
    r"""Procrustes distortion between two paired embeddings, in [0, 1] (paired).

    ``variant="rotation"`` (default; the paper's D): centre both, divide by the Frobenius norm,
    fit the optimal orthogonal map (reflections allowed, no scale) and divide the residual by
    :math:`\sqrt 2`:

    .. math:: D = \tfrac{1}{\sqrt 2}\min_{R^\top R = I}\lVert X_n R - Y_n\rVert_F
              = \sqrt{1 - \lVert X_n^\top Y_n\rVert_*}.

    ``variant="similarity"``: the ``scipy.spatial.procrustes`` disparity (rotation and scale
    fitted), :math:`1 - \lVert X_n^\top Y_n\rVert_*^2`. Both are 0 iff
    :math:`y = c\,xQ + 1v^\top` (c > 0, Q orthogonal) and symmetric in ``x, y``; both are
    differentiable (zero-safe square root), so ``.value`` can be used as a loss term.
    Definitions and sources: docs/reference/geometry.md.

    Args:
        x: shape (n, d_x), n >= 2.
        y: shape (n, d_y), paired row by row with ``x`` (d_y may differ from d_x).
        variant: ``"rotation"`` or ``"similarity"``.
        throw: raise :class:`~geomtax.StatusError` when the status is not ``ok`` (default);
            with ``False`` the result is returned with its status, under ``jit`` too.

    Returns:
        :class:`~geomtax.Estimate`. Status ``nonfinite_input`` (NaN or inf in an input) or
        ``degenerate_input`` (an input with all rows identical: the normalisation is 0/0); the
        value is NaN for both.

    Raises:
        ValueError: mismatched rows, rank other than 2, n < 2, unknown variant.
        TypeError: complex (or other non-real) input, a non-bool ``throw``.
        StatusError: with ``throw=True``, a non-``ok`` status (a ``ValueError``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> q = jnp.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> round(float(procrustes_distortion(x, 2.5 * x @ q + 1.0).value), 3)
        0.0
        >>> a = jnp.array([[1.0, 3], [1, 2], [1, 1], [2, 1]])
        >>> b = jnp.array([[4.0, -2], [4, -4], [4, -6], [2, -6]])
        >>> round(float(procrustes_distortion(a, b, variant="similarity").value), 4)
        0.0
        >>> procrustes_distortion(jnp.ones((4, 2)), b, throw=False).status_name
        'degenerate_input'
    """
    check_choice("variant", variant, VARIANTS)
    return _procrustes_public(x, y, variant, throw, "procrustes_distortion")


def _procrustes_public(x, y, variant, throw, function):
    throw = check_bool("throw", throw)
    x, y, finite = prepare_paired_flagged(x, y, min_rows=2, what=function)
    res = _procrustes_impl(x, y, finite, variant=variant)
    return finish(res, throw=throw, function=function, details={"degenerate_input": _DEGENERATE})


@eqx.filter_jit
def _procrustes_impl(x, y, finite, *, variant):
    nu, degenerate = _nuclear(zero_nonfinite(x, finite), zero_nonfinite(y, finite))
    status = _status(finite, degenerate)
    if variant == "rotation":
        value = safe_sqrt(1.0 - nu)
    elif variant == "similarity":
        value = 1.0 - nu * nu
    else:  # "nuclear": the shesha similarity
        value = nu
    return Estimate(nan_unless_ok(value.astype(x.dtype), status), status)


def procrustes_disparity(x: Samples, y: Samples, *, throw: bool = True) -> Estimate:
    r"""``scipy.spatial.procrustes`` disparity :math:`1 - \lVert X_n^\top Y_n\rVert_*^2` (paired).

    Same as ``procrustes_distortion(x, y, variant="similarity")`` (its arguments, status codes
    and errors); equals :math:`2D^2 - D^4`.

    Args:
        x: shape (n, d_x), n >= 2.
        y: shape (n, d_y), paired row by row with ``x``.
        throw: raise on a non-``ok`` status (see :func:`procrustes_distortion`).

    Returns:
        :class:`~geomtax.Estimate`: ``value`` in [0, 1], 0 iff ``y`` is a similarity transform
        of ``x``; NaN for ``nonfinite_input`` / ``degenerate_input``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(1), (10, 2))
        >>> round(float(procrustes_disparity(x, -3.0 * x).value), 4)
        0.0
    """
    return _procrustes_public(x, y, "similarity", throw, "procrustes_disparity")


def procrustes_similarity(x: Samples, y: Samples, *, throw: bool = True) -> Estimate:
    r"""Shesha Procrustes similarity :math:`\lVert X_n^\top Y_n\rVert_* = 1 - D^2` in [0, 1].

    Paired; arguments, status codes and errors as :func:`procrustes_distortion`.

    Args:
        x: shape (n, d_x), n >= 2.
        y: shape (n, d_y), paired row by row with ``x``.
        throw: raise on a non-``ok`` status (see :func:`procrustes_distortion`).

    Returns:
        :class:`~geomtax.Estimate`: ``value`` in [0, 1], 1 iff ``y`` is a similarity transform
        of ``x`` (the nuclear norm itself, no square root); NaN for ``nonfinite_input`` /
        ``degenerate_input``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(2), (10, 3))
        >>> round(float(procrustes_similarity(x, x + 5.0).value), 4)
        1.0
    """
    return _procrustes_public(x, y, "nuclear", throw, "procrustes_similarity")


class ProcrustesRatioResult(AbstractResult):
    r"""Result of :func:`procrustes_ratio` (arrays only).

    Attributes:
        ratio: ``aligned / raw`` in [0, 1]; NaN unless ``status`` is ``ok``.
        raw: :math:`\lVert \tilde X_c - \tilde X_p\rVert_F / \sqrt n` (embedding units); kept
            under ``degenerate_input``, NaN under ``nonfinite_input``.
        aligned: residual after the best rotation and scale, same units and rule as ``raw``.
        status: a :class:`~geomtax.Status`: ``ok``, ``nonfinite_input`` or
            ``degenerate_input`` (``raw`` is 0 up to float resolution, so the ratio is 0/0, or
            an input with all rows identical).
    """

    ratio: Float[Array, ""]
    raw: Float[Array, ""]
    aligned: Float[Array, ""]
    status: object


def procrustes_ratio(
    x_clean: Samples, x_perturbed: Samples, *, throw: bool = True
) -> ProcrustesRatioResult:
    r"""How much of a perturbation a rigid rotation plus scale can undo (paired).

    With column-centred :math:`\tilde X_c, \tilde X_p`:
    :math:`\mathrm{raw} = \lVert\tilde X_c - \tilde X_p\rVert_F/\sqrt n`; :math:`R` the optimal
    orthogonal map of the normalised :math:`\tilde X_p` onto :math:`\tilde X_c`,
    :math:`\tilde X_a = \tilde X_p R`, :math:`s = \mathrm{tr}(\tilde X_c^\top \tilde X_a) /
    \mathrm{tr}(\tilde X_a^\top \tilde X_a)`; :math:`\mathrm{aligned} = \lVert \tilde X_c -
    s\tilde X_a\rVert_F/\sqrt n` and ``ratio = aligned / raw`` in [0, 1]. Near 1: non-rigid
    damage ("brittle glass"); near 0.1-0.3: mostly rigid drift ("untethered gel"). Report
    ``raw`` too: tiny perturbations also give ratios near 1. The ratio is invariant to a common
    translation and scale of both inputs, ``raw`` and ``aligned`` scale with them; all three are
    computed on centred data divided by a common scale (no float32 overflow at 1e30).

    Args:
        x_clean: shape (n, d).
        x_perturbed: shape (n, d), the same items perturbed (same d required).
        throw: raise :class:`~geomtax.StatusError` on a non-``ok`` status (default); with
            ``False`` the result is returned with its status.

    Returns:
        :class:`ProcrustesRatioResult`. ``nonfinite_input``: everything NaN.
        ``degenerate_input`` (``raw`` is 0 up to the float resolution of the inputs, i.e.
        below ``64 * eps`` relative to the clouds' norm, or an input with all rows identical):
        ``ratio`` NaN, ``raw`` and ``aligned`` kept.

    Raises:
        ValueError: mismatched shapes, rank other than 2, n < 2.
        TypeError: complex (or other non-real) input.
        StatusError: with ``throw=True``, a non-``ok`` status.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (40, 2))
        >>> rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
        >>> r = procrustes_ratio(x, 2.0 * x @ rot)
        >>> round(float(r.ratio), 4), r.status_name
        (0.0, 'ok')
    """
    throw = check_bool("throw", throw)
    x, y, finite = prepare_paired_flagged(
        x_clean, x_perturbed, min_rows=2, what="procrustes_ratio", names=("x_clean", "x_perturbed")
    )
    check_same_columns(x, y, "procrustes_ratio", names=("x_clean", "x_perturbed"))
    res = _ratio_impl(x, y, finite)
    return finish(
        res,
        throw=throw,
        function="procrustes_ratio",
        details={
            "degenerate_input": "raw == 0 (the inputs agree up to translation) or an "
            "input has all rows identical"
        },
    )


@eqx.filter_jit
def _ratio_impl(xc, xp, finite):
    n = xc.shape[0]
    xc, xp = zero_nonfinite(xc, finite), zero_nonfinite(xp, finite)
    constant = is_constant(xc) | is_constant(xp)
    xc = standardize_cloud(xc, scale=False)
    xp = standardize_cloud(xp, scale=False)
    # one common scale for both (raw and aligned are in embedding units: multiply back at the end)
    scale = jnp.maximum(jnp.max(jnp.abs(xc)), jnp.max(jnp.abs(xp)))
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    xc, xp = xc / scale, xp / scale
    root_n = jnp.sqrt(jnp.asarray(n, xc.dtype))
    raw = jnp.sqrt(jnp.sum((xc - xp) ** 2)) / root_n
    nc = jnp.sqrt(jnp.sum(xc * xc))
    np_ = jnp.sqrt(jnp.sum(xp * xp))
    # the aligned residual is a minimum over orthogonal maps: each cloud may be taken in its own
    # row-space basis (n x n SVD for wide data); raw above used the shared coordinates
    xc, xp = _row_space(xc), _row_space(xp)
    m = (xp / jnp.where(np_ > 0, np_, 1.0)).T @ (xc / jnp.where(nc > 0, nc, 1.0))
    u, _, vt = jnp.linalg.svd(m, full_matrices=False)
    xa = xp @ (u @ vt)
    den = jnp.sum(xa * xa)
    s = jnp.where(den > 0, jnp.sum(xc * xa) / jnp.where(den > 0, den, 1.0), 0.0)
    aligned = jnp.sqrt(jnp.sum((xc - s * xa) ** 2)) / root_n
    # raw at the float resolution of the clouds (e.g. x vs x + 2.0 in float32, which differ only
    # by rounding): the ratio would be rounding noise over rounding noise, so it is 0/0.
    eps = jnp.finfo(xc.dtype).eps
    zero_raw = raw * root_n <= 64 * eps * jnp.maximum(nc, np_)
    status = _status(finite, zero_raw | constant)
    ratio = nan_unless_ok(aligned / jnp.where(zero_raw, 1.0, raw), status)
    keep = ("degenerate_input",)
    raw = nan_unless_ok(raw * scale, status, keep=keep)
    aligned = nan_unless_ok(aligned * scale, status, keep=keep)
    return ProcrustesRatioResult(ratio, raw, aligned, status)
