"""Closed-form MI oracles and samplers of the bmi ground-truth tasks, independent of geomtax.

Test helper module (not a test file): numpy/scipy only.
"""

import numpy as np
from scipy.special import digamma, gammaln


def gaussian_mi(rho: float) -> float:
    """I(X; Y) of a bivariate normal with correlation rho, in nats."""
    return -0.5 * np.log(1.0 - rho**2)


def dense_gaussian(d: int, n: int, rng, off: float = 0.5):
    """X, Y in R^d, joint covariance 1 on the diagonal and ``off`` elsewhere; returns (x, y, mi)."""
    cov = np.full((2 * d, 2 * d), off) + (1.0 - off) * np.eye(2 * d)
    z = rng.multivariate_normal(np.zeros(2 * d), cov, size=n)
    _, ld = np.linalg.slogdet(cov)
    _, ldx = np.linalg.slogdet(cov[:d, :d])
    mi = 0.5 * (2 * ldx - ld)
    return z[:, :d], z[:, d:], mi


def student_t_mi(dx: int, dy: int, nu: float) -> float:
    """MI of a multivariate Student-t with identity dispersion, in nats."""

    def h(k):
        return (
            -gammaln((nu + k) / 2)
            + gammaln(nu / 2)
            + (k / 2) * np.log(nu * np.pi)
            + ((nu + k) / 2) * (digamma((nu + k) / 2) - digamma(nu / 2))
        )

    return h(dx) + h(dy) - h(dx + dy)


def student_t(dx: int, dy: int, nu: float, n: int, rng):
    """Samples of a (dx + dy)-variate Student-t with identity dispersion."""
    g = rng.standard_normal((n, dx + dy))
    w = rng.chisquare(nu, size=(n, 1)) / nu
    z = g / np.sqrt(w)
    return z[:, :dx], z[:, dx:], student_t_mi(dx, dy, nu)


def uniform_noise(eps: float, n: int, rng):
    """X ~ U(0, 1), Y = X + U(-eps, eps); returns (x, y, mi)."""
    x = rng.uniform(0.0, 1.0, size=(n, 1))
    y = x + rng.uniform(-eps, eps, size=(n, 1))
    mi = 1.0 / (4.0 * eps) if eps > 0.5 else eps - np.log(2.0 * eps)
    return x, y, mi


def bivariate(rho: float, n: int, rng):
    """Correlated scalar Gaussians; returns (x, y, mi)."""
    x = rng.standard_normal((n, 1))
    y = rho * x + np.sqrt(1.0 - rho**2) * rng.standard_normal((n, 1))
    return x, y, gaussian_mi(rho)


def sparse_normal(d: int, rho: float, n: int, rng):
    """X, Y in R^d with corr(X_i, Y_i) = rho and no other dependence; returns (x, y, mi)."""
    x = rng.standard_normal((n, d))
    y = rho * x + np.sqrt(1.0 - rho**2) * rng.standard_normal((n, d))
    return x, y, d * gaussian_mi(rho)


def half_cube(a):
    """The bmi half-cube map sign(a) |a|^(3/2), applied elementwise (invertible: MI unchanged)."""
    return np.sign(a) * np.abs(a) ** 1.5


def spiral(a, speed: float = 0.5):
    """Rotate the first two coordinates by ``speed * |a|^2`` (invertible: the norm is kept)."""
    t = speed * np.sum(a**2, axis=1)
    c, s = np.cos(t), np.sin(t)
    out = a.copy()
    out[:, 0], out[:, 1] = c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1]
    return out


def pad_independent(x, y, d: int, rng):
    """Append independent N(0, 1) columns to x and y up to d columns each (MI unchanged)."""
    n = x.shape[0]
    px = rng.standard_normal((n, d - x.shape[1]))
    py = rng.standard_normal((n, d - y.shape[1]))
    return np.concatenate([x, px], axis=1), np.concatenate([y, py], axis=1)
