"""Observation models: Gaussian noise, or Student-t noise as a scale mixture.

Student-t noise (``likelihood="student_t"``) writes each observation as
``y_n = f_n + e_n``, ``e_n ~ N(0, 1 / (tau w_n))`` with a per-entry weight
``w_n ~ Gamma(nu/2, rate=nu/2)`` and the shared precision ``tau`` as before. Under the
mean-field posterior ``q(w_n) = Gamma(a_n, b_n)`` the exact block update is

    a_n = (nu + 1) / 2,   b_n = nu / 2 + E[tau] E[(y_n - f_n)^2] / 2,

and every other update is the Gaussian one with entry ``n`` weighted by ``E[w_n]``
(the grouped statistics and the sum of squared targets), so an entry far from the
fit pulls on the functions less. The ELBO gains
``sum_n (E[log w_n] / 2 - KL(q(w_n) || p(w_n | nu)))``; the degrees of freedom ``nu``
maximise it (a 1-D search over a grid that includes the current value, so the ELBO
never decreases). Predictions are Student-t (see :class:`funbat.calibration.Predictive`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

from .updates import NoiseMoments, gamma_kl

__all__ = ["DOF_BOUNDS", "DOF_START", "LIKELIHOODS", "student_t_weights"]

#: Observation models accepted by the estimators' ``likelihood`` parameter.
LIKELIHOODS = ("gaussian", "student_t")

#: Range searched for the degrees of freedom (1: Cauchy; 200: practically Gaussian).
DOF_BOUNDS = (1.0, 200.0)

#: Starting degrees of freedom: heavy tails allowed, moderately.
DOF_START = 10.0

_DOF_GRID = np.geomspace(DOF_BOUNDS[0], DOF_BOUNDS[1], 96)


def _prior_term(dof, sum_mean_w, sum_mean_log_w, n):
    """``sum_n E_q[log Gamma(w_n | nu/2, nu/2)]`` as a function of ``nu``."""
    h = 0.5 * dof
    return n * (h * jnp.log(h) - gammaln(h)) + (h - 1.0) * sum_mean_log_w - h * sum_mean_w


@jax.jit
def student_t_weights(sq_err, tau_mean, dof, mask):
    """Weight posteriors, then ``nu``, then the weights' ELBO terms.

    Parameters
    ----------
    sq_err : (N,) expected squared errors ``E[(y_n - f_n)^2]`` (standardised units).
    tau_mean : ``E[tau]``; dof : current ``nu``; mask : (N,) 1 for entries, 0 for padding.

    Returns
    -------
    mean_w : (N,) ``E[w_n]`` (0 for padding), the new ``nu``, and the ELBO term
    ``sum_n (E[log w_n] / 2 - KL(q(w_n) || Gamma(nu/2, nu/2)))``.
    """
    a = 0.5 * (dof + 1.0)
    b = 0.5 * dof + 0.5 * tau_mean * sq_err
    mean_w = a / b
    mean_log_w = digamma(a) - jnp.log(b)
    n = jnp.sum(mask)
    sums = (jnp.sum(mask * mean_w), jnp.sum(mask * mean_log_w), n)
    cands = jnp.concatenate([jnp.atleast_1d(dof), jnp.asarray(_DOF_GRID)])
    scores = jax.vmap(lambda v: _prior_term(v, *sums))(cands)
    dof = cands[jnp.argmax(scores)]
    kl = gamma_kl(NoiseMoments(a * jnp.ones_like(b), b), 0.5 * dof, 0.5 * dof)
    term = jnp.sum(mask * (0.5 * mean_log_w - kl))
    return mask * mean_w, dof, term
