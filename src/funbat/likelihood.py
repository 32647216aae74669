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

__all__ = [
    "DOF_BOUNDS",
    "DOF_START",
    "LIKELIHOODS",
    "best_dof",
    "student_t_weights",
    "weight_posterior",
    "weights_elbo",
]

#: Observation models accepted by the estimators' ``likelihood`` parameter.
LIKELIHOODS = ("gaussian", "student_t")

#: Range searched for the degrees of freedom (1: Cauchy; 200: practically Gaussian).
DOF_BOUNDS = (1.0, 200.0)

#: Starting degrees of freedom: heavy tails allowed, moderately.
DOF_START = 10.0

_DOF_GRID = np.geomspace(DOF_BOUNDS[0], DOF_BOUNDS[1], 96)


def _prior_term(dof, n, sum_mean_w, sum_mean_log_w):
    """``sum_n E_q[log Gamma(w_n | nu/2, nu/2)]`` as a function of ``nu``."""
    h = 0.5 * dof
    return n * (h * jnp.log(h) - gammaln(h)) + (h - 1.0) * sum_mean_log_w - h * sum_mean_w


@jax.jit
def weight_posterior(sq_err, tau_mean, dof, mask):
    """``q(w_n) = Gamma(a, b_n)`` given ``nu``: ``E[w_n]`` and the sums the rest needs.

    Parameters
    ----------
    sq_err : (N,) expected squared errors ``E[(y_n - f_n)^2]`` (standardised units).
    tau_mean : ``E[tau]``; dof : current ``nu``; mask : (N,) 1 for entries, 0 for padding.

    Returns
    -------
    mean_w : (N,) ``E[w_n]`` (0 for padding); sums : (4,) the number of entries and the
    sums of ``E[w_n]``, ``E[log w_n]`` and the entropies of ``q(w_n)``. Sums over parts
    of the data add up, so a cluster can compute them partition by partition.
    """
    a = 0.5 * (dof + 1.0)
    b = 0.5 * dof + 0.5 * tau_mean * sq_err
    mean_w = a / b
    mean_log_w = digamma(a) - jnp.log(b)
    entropy = a - jnp.log(b) + gammaln(a) + (1.0 - a) * digamma(a)
    sums = jnp.stack(
        [jnp.sum(mask), jnp.sum(mask * mean_w), jnp.sum(mask * mean_log_w), jnp.sum(mask * entropy)]
    )
    return mask * mean_w, sums


@jax.jit
def best_dof(sums, dof):
    """The ``nu`` on a grid (or the current one) that maximises the ELBO given ``q(w)``."""
    cands = jnp.concatenate([jnp.atleast_1d(dof), jnp.asarray(_DOF_GRID)])
    scores = jax.vmap(lambda v: _prior_term(v, sums[0], sums[1], sums[2]))(cands)
    return cands[jnp.argmax(scores)]


@jax.jit
def weights_elbo(sums, dof):
    """``sum_n (E[log w_n] / 2 - KL(q(w_n) || Gamma(nu/2, nu/2)))`` from the sums."""
    return 0.5 * sums[2] + sums[3] + _prior_term(dof, sums[0], sums[1], sums[2])


@jax.jit
def student_t_weights(sq_err, tau_mean, dof, mask):
    """Weight posteriors, then ``nu``, then the weights' ELBO terms (in-memory data).

    Returns ``E[w_n]`` (N,), the new ``nu`` and the ELBO term (see
    :func:`weight_posterior`, :func:`best_dof`, :func:`weights_elbo`).
    """
    mean_w, sums = weight_posterior(sq_err, tau_mean, dof, mask)
    dof = best_dof(sums, dof)
    return mean_w, dof, weights_elbo(sums, dof)
