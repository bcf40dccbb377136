r"""Procrustes distortion and its scale-fitted variants (REFERENCE sections 2.1-2.3).

Pairing: *paired* (row ``i`` of ``x`` and ``y`` is the same item). With centred, Frobenius-
normalised :math:`X_n, Y_n`, everything follows from the nuclear norm
:math:`\nu = \lVert X_n^\top Y_n \rVert_*` (sum of singular values):

* ``procrustes_distortion`` (the paper's "Procrustes D", rotation only):
  :math:`D = \min_{R^\top R = I} \lVert X_n R - Y_n \rVert_F / \sqrt 2 = \sqrt{1 - \nu}`;
* ``procrustes_disparity`` (``scipy.spatial.procrustes``, rotation + scale):
  :math:`1 - \nu^2 = 2D^2 - D^4`;
* ``procrustes_similarity`` (shesha): :math:`\nu = 1 - D^2`.

Different column counts are allowed (identical to zero-padding the narrower one). A zero
centred norm (n = 1 or constant rows) gives D = 1 by the reference convention (disparity 1,
similarity 0) and sets the ``degenerate`` flag.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._custom_types import Samples
from .._errors import check_choice
from ._checks import prepare_paired

VARIANTS = ("rotation", "similarity")
#: centred Frobenius norms below this are treated as zero (reference convention).
NORM_EPS = 1e-10


def _nuclear(x, y):
    """Nuclear norm of Xn^T Yn and the degenerate flag (zero centred norm)."""
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    yc = y - jnp.mean(y, axis=0, keepdims=True)
    nx = jnp.sqrt(jnp.sum(xc * xc))
    ny = jnp.sqrt(jnp.sum(yc * yc))
    degenerate = (nx < NORM_EPS) | (ny < NORM_EPS)
    xn = xc / jnp.where(degenerate, 1.0, nx)
    yn = yc / jnp.where(degenerate, 1.0, ny)
    m = xn.T @ yn
    # the smaller Gram side keeps the SVD cheap; singular values are all we need
    nu = jnp.sum(jnp.linalg.svd(m, compute_uv=False))
    nu = jnp.where(degenerate, 0.0, jnp.clip(nu, 0.0, 1.0))
    return nu, degenerate


def _safe_sqrt(v):
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def procrustes_distortion(x: Samples, y: Samples, *, variant: str = "rotation") -> Float[Array, ""]:
    r"""Procrustes distortion between two paired embeddings, in [0, 1] (paired).

    ``variant="rotation"`` (default; the paper's D): centre both, divide by the Frobenius norm,
    fit the optimal orthogonal map (reflections allowed, no scale) and divide the residual by
    :math:`\sqrt 2`:

    .. math:: D = \tfrac{1}{\sqrt 2}\min_{R^\top R = I}\lVert X_n R - Y_n\rVert_F
              = \sqrt{1 - \lVert X_n^\top Y_n\rVert_*}.

    ``variant="similarity"``: the ``scipy.spatial.procrustes`` disparity (rotation and scale
    fitted), :math:`1 - \lVert X_n^\top Y_n\rVert_*^2`. Both are 0 iff
    :math:`y = c\,xQ + 1v^\top` (c > 0, Q orthogonal) and symmetric in ``x, y``; both are
    differentiable (zero-safe square root), so they can be used as loss terms.

    Args:
        x: shape (n, d_x), n >= 2.
        y: shape (n, d_y), paired row by row with ``x`` (d_y may differ from d_x).
        variant: ``"rotation"`` or ``"similarity"``.

    Returns:
        Scalar. A zero centred norm (constant rows) gives 1.0 by convention.

    Raises:
        ValueError: mismatched rows, rank other than 2, n < 2, non-finite values, unknown
            variant.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (20, 3))
        >>> q = jnp.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> round(float(procrustes_distortion(x, 2.5 * x @ q + 1.0)), 3)
        0.0
        >>> a = jnp.array([[1.0, 3], [1, 2], [1, 1], [2, 1]])
        >>> b = jnp.array([[4.0, -2], [4, -4], [4, -6], [2, -6]])
        >>> round(float(procrustes_distortion(a, b, variant="similarity")), 4)
        0.0
    """
    check_choice("variant", variant, VARIANTS)
    x, y = prepare_paired(x, y, min_rows=2, what="procrustes_distortion")
    return _procrustes_impl(x, y, variant=variant)


@eqx.filter_jit
def _procrustes_impl(x, y, *, variant):
    nu, degenerate = _nuclear(x, y)
    if variant == "rotation":
        return jnp.where(degenerate, 1.0, _safe_sqrt(1.0 - nu)).astype(x.dtype)
    return jnp.where(degenerate, 1.0, 1.0 - nu * nu).astype(x.dtype)


def procrustes_disparity(x: Samples, y: Samples) -> Float[Array, ""]:
    r"""``scipy.spatial.procrustes`` disparity :math:`1 - \lVert X_n^\top Y_n\rVert_*^2` (paired).

    Same as ``procrustes_distortion(x, y, variant="similarity")``; equals :math:`2D^2 - D^4`.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(1), (10, 2))
        >>> round(float(procrustes_disparity(x, -3.0 * x)), 4)
        0.0
    """
    return procrustes_distortion(x, y, variant="similarity")


def procrustes_similarity(x: Samples, y: Samples) -> Float[Array, ""]:
    r"""Shesha Procrustes similarity :math:`\lVert X_n^\top Y_n\rVert_* = 1 - D^2` in [0, 1].

    Paired. A zero centred norm gives 0.0.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(2), (10, 3))
        >>> round(float(procrustes_similarity(x, x + 5.0)), 4)
        1.0
    """
    x, y = prepare_paired(x, y, min_rows=2, what="procrustes_similarity")
    return _similarity_impl(x, y)


@eqx.filter_jit
def _similarity_impl(x, y):
    nu, _ = _nuclear(x, y)
    return nu.astype(x.dtype)


class ProcrustesRatioResult(eqx.Module):
    r"""Result of :func:`procrustes_ratio` (arrays only).

    Attributes:
        ratio: ``aligned / raw`` in [0, 1]; NaN when ``raw == 0`` (then ``undefined`` is True).
        raw: :math:`\lVert \tilde X_c - \tilde X_p\rVert_F / \sqrt n` (embedding units).
        aligned: residual after the best rotation and scale, same units.
        undefined: True when ``raw == 0`` (the ratio is undefined).
    """

    ratio: Float[Array, ""]
    raw: Float[Array, ""]
    aligned: Float[Array, ""]
    undefined: Bool[Array, ""]


def procrustes_ratio(x_clean: Samples, x_perturbed: Samples) -> ProcrustesRatioResult:
    r"""How much of a perturbation a rigid rotation plus scale can undo (paired).

    With column-centred :math:`\tilde X_c, \tilde X_p`:
    :math:`\mathrm{raw} = \lVert\tilde X_c - \tilde X_p\rVert_F/\sqrt n`; :math:`R` the optimal
    orthogonal map of the normalised :math:`\tilde X_p` onto :math:`\tilde X_c`,
    :math:`\tilde X_a = \tilde X_p R`, :math:`s = \mathrm{tr}(\tilde X_c^\top \tilde X_a) /
    \mathrm{tr}(\tilde X_a^\top \tilde X_a)`; :math:`\mathrm{aligned} = \lVert \tilde X_c -
    s\tilde X_a\rVert_F/\sqrt n` and ``ratio = aligned / raw`` in [0, 1]. Near 1: non-rigid
    damage ("brittle glass"); near 0.1-0.3: mostly rigid drift ("untethered gel"). Report
    ``raw`` too: tiny perturbations also give ratios near 1.

    Args:
        x_clean: shape (n, d).
        x_perturbed: shape (n, d), the same items perturbed (same d required).

    Returns:
        :class:`ProcrustesRatioResult`; ``raw == 0`` gives ``ratio = NaN`` with
        ``undefined = True``.

    Raises:
        ValueError: mismatched shapes, rank other than 2, n < 2, non-finite values.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (40, 2))
        >>> rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
        >>> r = procrustes_ratio(x, 2.0 * x @ rot)
        >>> round(float(r.ratio), 4), bool(r.undefined)
        (0.0, False)
    """
    x, y = prepare_paired(
        x_clean, x_perturbed, min_rows=2, what="procrustes_ratio", names=("x_clean", "x_perturbed")
    )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"procrustes_ratio needs equal column counts; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return _ratio_impl(x, y)


@eqx.filter_jit
def _ratio_impl(xc, xp):
    n = xc.shape[0]
    xc = xc - jnp.mean(xc, axis=0, keepdims=True)
    xp = xp - jnp.mean(xp, axis=0, keepdims=True)
    root_n = jnp.sqrt(jnp.asarray(n, xc.dtype))
    raw = jnp.sqrt(jnp.sum((xc - xp) ** 2)) / root_n
    nc = jnp.sqrt(jnp.sum(xc * xc))
    np_ = jnp.sqrt(jnp.sum(xp * xp))
    m = (xp / jnp.where(np_ > 0, np_, 1.0)).T @ (xc / jnp.where(nc > 0, nc, 1.0))
    u, _, vt = jnp.linalg.svd(m, full_matrices=False)
    xa = xp @ (u @ vt)
    den = jnp.sum(xa * xa)
    s = jnp.where(den > 0, jnp.sum(xc * xa) / jnp.where(den > 0, den, 1.0), 0.0)
    aligned = jnp.sqrt(jnp.sum((xc - s * xa) ** 2)) / root_n
    undefined = raw <= 0
    ratio = jnp.where(undefined, jnp.nan, aligned / jnp.where(undefined, 1.0, raw))
    return ProcrustesRatioResult(ratio, raw, aligned, undefined)
