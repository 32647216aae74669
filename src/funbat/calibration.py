"""Is the predictive uncertainty honest? Predictive distributions, coverage and NLPD.

A fitted model's predictive distribution at a point is ``y = f + e``: the latent value
``f ~ N(mean, var_f)`` (core and functions) plus noise ``e``, Gaussian with std
``noise_scale``, or Student-t with ``dof`` degrees of freedom and scale ``noise_scale``
(``likelihood="student_t"``). :class:`Predictive` holds it and gives central
intervals, log densities and the checks below; ``dof = inf`` is the Gaussian case.

A calibrated model's central interval of level ``p`` covers a fraction ``p`` of held-out
targets. The negative log predictive density (NLPD) rewards sharp *and* honest
predictions (lower is better). The module functions :func:`coverage`, :func:`nlpd` and
:func:`coverage_table` take a Gaussian ``(mean, std)``, as most baselines report.

The Student-t case has no closed form once ``var_f > 0``: with ``e = z / sqrt(w)``,
``w ~ Gamma(dof/2, rate=dof/2)``, it is a scale mixture of Gaussians
``N(mean, var_f + noise_scale^2 / w)``, integrated over ``w`` numerically: interval
probabilities by Gauss-Legendre in ``u = F(w)`` (bounded, smooth integrands), log
densities by the trapezoidal rule in ``log w`` with log-sum-exp (accurate far in the
tails, where the few smallest ``w`` dominate).

Recalibration (``FunBaT(recalibrate=True)``, the default for Gaussian noise): errors
of real data often have heavier tails than the Gaussian noise a model is fitted with,
and the latent variance of the mean-field posterior is too small, so Gaussian intervals
are too wide at 50% and too narrow at 95%. For a Gaussian model with noise variance
``s2`` and latent variance ``v_n`` at a training entry, the leave-one-out (LOO)
predictive of ``y_n`` has mean ``y_n - r_n / (1 - h_n)`` and variance ``s2 / (1 -
h_n)``, ``h_n = v_n / s2``, ``r_n = y_n - E[f_n]`` (exact for a GP with fixed
hyperparameters; Rasmussen & Williams 2006, section 5.4.2). Their standardised LOO
residuals :func:`loo_residuals` are ``N(0, 1)`` if the model is right. A Student-t
``z ~ scale * t_dof`` is fitted to them by maximum likelihood
(:func:`fit_recalibration`), and the predictive at ``x`` becomes
``E[f(x)] + scale * sqrt(var_f(x) + s2) * t_dof``: the model's own spread (so intervals
still widen away from the data), with the shape the held-out errors show.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, logsumexp, ndtr, ndtri
from scipy.stats import gamma as gamma_dist
from scipy.stats import t as student_t

__all__ = [
    "LEVELS",
    "Predictive",
    "Recalibration",
    "coverage",
    "coverage_table",
    "fit_recalibration",
    "loo_residuals",
    "nlpd",
]

#: Nominal levels reported by default.
LEVELS = (0.5, 0.8, 0.9, 0.95)

#: The probability of a Gaussian's central interval of +- one standard deviation.
ONE_SIGMA = 0.6826894921370859

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Quadrature sizes (tests/test_calibration.py checks them against exact t and Monte Carlo).
_N_LEGENDRE = 64
_LOG_W = np.linspace(-40.0, 12.0, 1041)  # step 0.05 in log w


class Predictive(NamedTuple):
    """Predictive distribution of ``n`` targets: ``N(mean, var_f)`` plus noise.

    Attributes
    ----------
    mean : array, (n,)
        Mean of the latent value, target units.
    var_f : array, (n,)
        Variance of the latent value, target units squared.
    noise_scale : array (n,) or float
        Standard deviation (Gaussian) or scale (Student-t) of the noise.
    dof : array (n,) or float
        Noise degrees of freedom; ``inf`` for Gaussian noise (a scalar ``inf``, or
        ``inf`` at single points).
    """

    mean: np.ndarray
    var_f: np.ndarray
    noise_scale: np.ndarray
    dof: float | np.ndarray = math.inf

    @classmethod
    def gaussian(cls, mean, std) -> Predictive:
        """A Gaussian predictive ``N(mean, std^2)``."""
        mean = np.asarray(mean, float)
        return cls(mean, np.zeros_like(mean), np.asarray(std, float), math.inf)

    @property
    def gaussian_noise(self) -> bool:
        """True when the noise is Gaussian at every point (``dof`` all ``inf``)."""
        return not np.any(np.isfinite(self.dof))

    def _dof(self) -> tuple[np.ndarray, np.ndarray]:
        """Degrees of freedom (n, 1) for the quadratures, and where the noise is Gaussian.

        At Gaussian points (``inf``) the quadratures run with a placeholder ``dof = 1``
        and the callers overwrite their results with the Gaussian formula.
        """
        dof = np.broadcast_to(np.asarray(self.dof, float), np.shape(self.mean))
        gauss = ~np.isfinite(dof)
        return np.where(gauss, 1.0, dof).reshape(-1, 1), gauss

    def _noise_var(self) -> np.ndarray:
        """``noise_scale^2`` (n,), a scalar scale broadcast to every point."""
        return np.broadcast_to(np.asarray(self.noise_scale, float) ** 2, np.shape(self.mean))

    def _gaussian_std(self) -> np.ndarray:
        """``sqrt(var_f + noise_scale^2)`` (n,): the std at points with Gaussian noise."""
        return np.maximum(np.sqrt(self.var_f + self._noise_var()), 1e-300)

    @property
    def std(self) -> np.ndarray:
        """Predictive standard deviation (n,); ``inf`` for Student-t noise with dof <= 2."""
        s2 = self._noise_var()
        if not self.gaussian_noise:
            dof = np.broadcast_to(np.asarray(self.dof, float), s2.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(np.isfinite(dof), dof / (dof - 2.0), 1.0)
            s2 = np.where(dof > 2.0, s2 * factor, np.inf)
        return np.sqrt(self.var_f + s2)

    @property
    def spread(self) -> np.ndarray:
        """One-sigma spread (n,): half the width of the central 68.27% interval.

        For a Gaussian predictive it is the standard deviation; for a Student-t one it
        is always finite (the standard deviation is infinite when ``dof <= 2``), and
        ``mean +- spread`` keeps its 68.27% probability. Heavy tails mean that
        ``mean +- 1.96 spread`` is *not* a 95% interval: :meth:`interval` is.
        """
        if self.gaussian_noise:
            return self.std
        lo, hi = self.interval(ONE_SIGMA)
        return 0.5 * (hi - lo)

    def _mixture(self, nodes):
        """Per-node variances (n, M) of the Gaussian scale mixture at noise weights ``w``.

        ``nodes``: (M,) weights shared by all points, or (n, M) per point.
        """
        s2 = self._noise_var()[:, None]
        return np.asarray(self.var_f, float)[:, None] + s2 / np.atleast_2d(nodes)

    def central_probability(self, half_width) -> np.ndarray:
        """``P(|y - mean| <= half_width)`` per point (n,)."""
        h = np.asarray(half_width, float)
        gaussian = 2.0 * ndtr(h / self._gaussian_std()) - 1.0
        if self.gaussian_noise:
            return gaussian
        x, wq = np.polynomial.legendre.leggauss(_N_LEGENDRE)
        dof, gauss = self._dof()
        # the Gamma quantiles once per distinct dof (one, or one per noise group)
        uniq, inverse = np.unique(dof, return_inverse=True)
        u = 0.5 * (x[None, :] + 1.0)
        w = gamma_dist.ppf(u, 0.5 * uniq[:, None], scale=2.0 / uniq[:, None])[inverse.ravel()]
        var = self._mixture(w)
        h = np.broadcast_to(h, np.shape(self.mean)).reshape(-1, 1)
        mixed = np.sum(0.5 * wq * (2.0 * ndtr(h / np.sqrt(var)) - 1.0), 1)
        # a point with no latent variance is a scaled Student-t: closed form there
        var_f = np.broadcast_to(np.asarray(self.var_f, float), np.shape(self.mean)).reshape(-1)
        pure = ~gauss & (var_f == 0.0)
        scale = np.broadcast_to(np.asarray(self.noise_scale, float), np.shape(self.mean))
        exact = 2.0 * student_t.cdf(h[:, 0] / scale.reshape(-1), dof[:, 0]) - 1.0
        return np.where(gauss, gaussian, np.where(pure, exact, mixed))

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Central interval of probability ``level``: (lower, upper), each (n,)."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be between 0 and 1; got {level!r}")
        if self.gaussian_noise:
            h = float(ndtri(0.5 + 0.5 * level)) * self.std
            return self.mean - h, self.mean + h
        # a point with no latent variance (a recalibrated predictive) is a scaled
        # Student-t: its quantile is closed-form, no quadrature needed
        dof = np.broadcast_to(np.asarray(self.dof, float), np.shape(self.mean))
        pure = (np.asarray(self.var_f) == 0.0) & np.isfinite(dof)
        if np.all(pure):
            h = self.noise_scale * student_t.ppf(0.5 + 0.5 * level, dof)
            return self.mean - h, self.mean + h
        # bisection on the half-width between 0 and a bound that covers at least `level`
        hi = np.sqrt(self.var_f) * 10.0 + np.broadcast_to(self.noise_scale, np.shape(self.mean))
        while np.any(short := self.central_probability(hi) < level):
            hi = np.where(short, 4.0 * hi, hi)
        lo = np.zeros_like(hi)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            inside = self.central_probability(mid) >= level
            hi, lo = np.where(inside, mid, hi), np.where(inside, lo, mid)
        return self.mean - hi, self.mean + hi

    def logpdf(self, y) -> np.ndarray:
        """Log predictive density of targets ``y`` (n,), in 1 / target units."""
        r2 = (np.asarray(y, float) - self.mean) ** 2
        var = self._gaussian_std() ** 2
        gaussian = -_HALF_LOG_2PI - 0.5 * np.log(var) - 0.5 * r2 / var
        if self.gaussian_noise:
            return gaussian
        dof, gauss = self._dof()
        a = 0.5 * dof  # Gamma(a, rate a) density of t = log w, times the step
        t = _LOG_W[None, :]
        log_p_t = a * np.log(a) - gammaln(a) + a * t - a * np.exp(t) + math.log(t[0, 1] - t[0, 0])
        var = self._mixture(np.exp(_LOG_W))
        log_n = -_HALF_LOG_2PI - 0.5 * np.log(var) - 0.5 * r2[:, None] / var
        return np.where(gauss, gaussian, logsumexp(log_n + log_p_t, axis=1))

    def coverage(self, y, level: float) -> float:
        """Fraction of ``y`` inside the central interval of probability ``level``."""
        lo, hi = self.interval(level)
        y = np.asarray(y, float)
        return float(np.mean((y >= lo) & (y <= hi)))

    def coverage_table(self, y, levels=LEVELS) -> dict[float, float]:
        """``{nominal level: observed coverage}`` for each level."""
        return {float(p): self.coverage(y, p) for p in levels}

    def nlpd(self, y) -> float:
        """Mean negative log predictive density of ``y``."""
        return float(-np.mean(self.logpdf(y)))


def coverage(y, mean, std, level: float) -> float:
    """Fraction of ``y`` inside the central ``level`` interval of ``N(mean, std^2)``."""
    return Predictive.gaussian(mean, std).coverage(y, level)


def nlpd(y, mean, std) -> float:
    """Mean negative log density of ``y`` under ``N(mean, std^2)``."""
    return Predictive.gaussian(mean, std).nlpd(y)


def coverage_table(y, mean, std, levels=LEVELS) -> dict[float, float]:
    """``{nominal level: observed coverage}`` of ``N(mean, std^2)`` for each level."""
    return Predictive.gaussian(mean, std).coverage_table(y, levels)


class Recalibration(NamedTuple):
    """Student-t shape of a model's standardised leave-one-out residuals.

    scale : ``z ~ scale * t_dof`` (1 and ``inf`` for a right Gaussian model).
    dof : degrees of freedom, within ``DOF_BOUNDS`` of :mod:`funbat.likelihood`.
    n : residuals it was fitted to.
    """

    scale: float
    dof: float
    n: int


def loo_residuals(resid, var_f, noise_var) -> np.ndarray:
    """Standardised leave-one-out residuals of a Gaussian model (see the module notes).

    Parameters
    ----------
    resid : (N,) ``y_n - E[f_n]`` at training entries; var_f : (N,) ``Var[f_n]`` there.
    noise_var : the noise variance ``s2`` (same units squared).

    Returns
    -------
    z : (M,) ``resid / sqrt(s2 (1 - h))``, ``h = var_f / s2``, over the entries with
    ``h < 1`` (a mean-field posterior can exceed the noise variance at a few entries,
    where the LOO formula does not hold; they are left out).
    """
    resid, var_f = np.asarray(resid, float), np.asarray(var_f, float)
    h = var_f / noise_var
    keep = h < 1.0
    return resid[keep] / np.sqrt(noise_var * (1.0 - h[keep]))


def fit_recalibration(z, dof_bounds=(1.0, 200.0)) -> Recalibration:
    """Maximum-likelihood ``z ~ scale * t_dof`` (location 0) of residuals ``z`` (M,).

    ``dof`` is bounded to ``dof_bounds`` (200: practically Gaussian). The optimum is
    found with the exact gradient to a tight tolerance, so it does not depend on the
    optimiser's defaults (or version) beyond round-off.
    """
    z = np.asarray(z, float)
    if z.size < 10 or not np.all(np.isfinite(z)):
        raise ValueError(f"need at least 10 finite residuals to recalibrate; got {z.size}")
    z2, M = z**2, z.size

    def nll_and_grad(p):
        log_s, log_v = p
        v, s2 = math.exp(log_v), math.exp(2.0 * log_s)
        a = z2 / (v * s2)
        const = gammaln(0.5 * (v + 1.0)) - gammaln(0.5 * v) - 0.5 * math.log(v * math.pi)
        value = -(M * (const - log_s) - 0.5 * (v + 1.0) * np.sum(np.log1p(a)))
        frac = float(np.sum(a / (1.0 + a)))
        d_const = 0.5 * (digamma(0.5 * (v + 1.0)) - digamma(0.5 * v)) - 0.5 / v
        d_log_s = M - (v + 1.0) * frac
        d_v = -(M * d_const - 0.5 * float(np.sum(np.log1p(a))) + 0.5 * (v + 1.0) * frac / v)
        return value, np.array([d_log_s, v * d_v])

    start = [math.log(max(float(np.median(np.abs(z))) / 0.6745, 1e-12)), math.log(5.0)]
    bounds = [(None, None), tuple(math.log(b) for b in dof_bounds)]
    res = minimize(nll_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(ftol=1e-15, gtol=1e-9 * M, maxiter=1000))  # fmt: skip
    return Recalibration(float(math.exp(res.x[0])), float(math.exp(res.x[1])), int(z.size))
