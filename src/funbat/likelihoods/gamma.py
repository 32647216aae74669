"""Gamma scale mixtures of the noise precision: the mathematics of Student-t noise and
of a noise level per coordinate (the likelihoods in :mod:`funbat.likelihoods` use it).

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

Noise that varies along one mode (``noise_mode=``): the noise precision of entry ``n``
is further scaled by a multiplier ``s_g`` of its group ``g`` (its unique coordinate in
that mode, a date say), ``s_g ~ Gamma(c/2, rate=c/2)`` (mean 1; ``c`` learned like
``nu``). With ``q(s_g) = Gamma(alpha_g, beta_g)`` the exact block update is

    alpha_g = c / 2 + n_g / 2,   beta_g = c / 2 + E[tau] sum_{n in g} E[w_n] E[(y_n - f_n)^2] / 2,

entry ``n`` is weighted by ``E[w_n] E[s_g]`` everywhere else (``E[w_n] = 1`` for
Gaussian noise), the weights' update sees ``E[s_g] E[(y_n - f_n)^2]``, and the ELBO
gains ``sum_g (n_g E[log s_g] / 2 - KL(q(s_g) || p(s_g | c)))``. The predictive noise
precision of a point in group ``g`` is ``tau w s_g``; its multiplier ``w s_g`` is
matched by one Gamma (same mean and mean log, exact for Gaussian noise), so the noise
is Student-t with a dof and scale per group (:func:`predictive_noise`). A coordinate
not seen in training has the prior ``s ~ Gamma(c/2, c/2)``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln
from scipy.special import digamma as np_digamma

__all__ = [
    "DOF_BOUNDS",
    "DOF_START",
    "gamma_log_moments",
    "prior_term",
    "best_dof",
    "best_group_dof",
    "entry_weights",
    "group_posterior",
    "group_sums",
    "match_gamma_shape",
    "predictive_noise",
    "weight_posterior",
    "weights_elbo",
]

#: Range searched for the degrees of freedom (1: Cauchy; 200: practically Gaussian).
DOF_BOUNDS = (1.0, 200.0)

#: Starting degrees of freedom: heavy tails allowed, moderately.
DOF_START = 10.0

_DOF_GRID = np.geomspace(DOF_BOUNDS[0], DOF_BOUNDS[1], 96)


def gamma_log_moments(a, b):
    """``E[log v]`` and the entropy of ``v ~ Gamma(a, rate b)`` (elementwise)."""
    mean_log = digamma(a) - jnp.log(b)
    return mean_log, a - jnp.log(b) + gammaln(a) + (1.0 - a) * digamma(a)


def prior_term(dof, n, sum_mean_w, sum_mean_log_w):
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
    mean_log_w, entropy = gamma_log_moments(a, b)
    sums = jnp.stack(
        [jnp.sum(mask), jnp.sum(mask * mean_w), jnp.sum(mask * mean_log_w), jnp.sum(mask * entropy)]
    )
    return mask * mean_w, sums


@jax.jit
def best_dof(sums, dof):
    """The ``nu`` on a grid (or the current one) that maximises the ELBO given ``q(w)``."""
    cands = jnp.concatenate([jnp.atleast_1d(dof), jnp.asarray(_DOF_GRID)])
    scores = jax.vmap(lambda v: prior_term(v, sums[0], sums[1], sums[2]))(cands)
    return cands[jnp.argmax(scores)]


@jax.jit
def weights_elbo(sums, dof):
    """``sum_n (E[log w_n] / 2 - KL(q(w_n) || Gamma(nu/2, nu/2)))`` from the sums."""
    return 0.5 * sums[2] + sums[3] + prior_term(dof, sums[0], sums[1], sums[2])


@partial(jax.jit, static_argnames=("n_groups", "robust"))
def group_sums(sq_err, group, mask, mean_s, tau_mean, dof, *, n_groups, robust):
    """What ``q(s_g)``'s update needs from the entries, given the current ``E[s_g]``.

    ``q(w_n)`` is refreshed first (Student-t noise; ``E[w_n] = 1`` for Gaussian), then
    summed per group: the entries ``n_g`` and ``r_g = sum_{n in g} E[w_n] E[(y_n -
    f_n)^2]``, (G,) each. Sums over parts of the data add up (a cluster's partitions).
    """
    if robust:
        mean_w, _ = weight_posterior(sq_err * mean_s[group], tau_mean, dof, mask)
    else:
        mean_w = mask
    n_g = jax.ops.segment_sum(mask, group, n_groups)
    r_g = jax.ops.segment_sum(mask * mean_w * sq_err, group, n_groups)
    return n_g, r_g


@jax.jit
def group_posterior(n_g, r_g, tau_mean, group_dof):
    """``q(s_g) = Gamma(alpha_g, beta_g)``: ``alpha`` and ``beta`` (G,) each."""
    return 0.5 * group_dof + 0.5 * n_g, 0.5 * group_dof + 0.5 * tau_mean * r_g


@jax.jit
def best_group_dof(n_g, r_g, tau_mean, group_dof):
    """The prior's ``c`` on a grid (the current one included), ``q(s)`` for it, its ELBO term.

    Returns ``c``, ``alpha``, ``beta`` and ``sum_g (n_g E[log s_g] / 2 - KL(q(s_g) ||
    p(s_g | c)))``.
    """
    alpha, beta = group_posterior(n_g, r_g, tau_mean, group_dof)
    mean_log_s, _ = gamma_log_moments(alpha, beta)
    s_sums = jnp.stack([jnp.asarray(n_g.shape[0], n_g.dtype), jnp.sum(alpha / beta),
                        jnp.sum(mean_log_s)])  # fmt: skip
    group_dof = best_dof(s_sums, group_dof)
    # q(s) was updated for the old c; refresh it so that c and q(s) agree (exact again)
    alpha, beta = group_posterior(n_g, r_g, tau_mean, group_dof)
    mean_s = alpha / beta
    mean_log_s, entropy = gamma_log_moments(alpha, beta)
    term = (
        0.5 * jnp.sum(n_g * mean_log_s)
        + jnp.sum(entropy)
        + prior_term(group_dof, n_g.shape[0], jnp.sum(mean_s), jnp.sum(mean_log_s))
    )
    return group_dof, alpha, beta, term


@partial(jax.jit, static_argnames=("robust",))
def entry_weights(sq_err, group, mask, mean_s, tau_mean, dof, *, robust):
    """Each entry's weight ``E[w_n] E[s_g]`` (N,) and the sums of ``q(w)``.

    ``q(w_n)`` is refreshed for the given ``E[s_g]`` (Student-t noise); the sums are
    those of :func:`weight_posterior` (zeros for Gaussian noise) and add up over parts.
    """
    s_n = mean_s[group]
    if robust:
        mean_w, w_sums = weight_posterior(sq_err * s_n, tau_mean, dof, mask)
    else:
        mean_w, w_sums = mask, jnp.zeros(4, sq_err.dtype)
    return mean_w * s_n, w_sums


def match_gamma_shape(log_gap):
    """Shape ``k`` of the Gamma whose ``E[log v] - log E[v]`` is ``log_gap`` (< 0).

    Solves ``digamma(k) - log(k) = log_gap`` elementwise (NumPy arrays, any shape) by
    bisection in ``log k``; the left side increases from ``-inf`` to 0 with ``k``.
    """
    gap = np.asarray(log_gap, float)
    lo, hi = np.full(gap.shape, -12.0), np.full(gap.shape, 25.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        k = np.exp(mid)
        below = np_digamma(k) - mid < gap
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.exp(0.5 * (lo + hi))


def predictive_noise(alpha, beta, dof):
    """Per-group Student-t noise of a prediction: ``(dof_g, scale factor_g)`` (G,) each.

    The noise precision is ``tau w s``, ``s ~ Gamma(alpha, beta)`` (a group's posterior,
    or the prior for an unseen coordinate) and ``w ~ Gamma(nu/2, nu/2)`` (``nu = dof``,
    ``inf`` for Gaussian noise). ``w s`` is replaced by the Gamma with its mean and mean
    log (exact when ``nu = inf``); that Gamma, ``Gamma(k, k / E[s])``, makes the noise
    Student-t with ``2 k`` degrees of freedom and the scale ``sqrt(1 / E[s])`` times the
    global one.
    """
    alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
    if math.isfinite(dof):
        h = 0.5 * dof
        gap = np_digamma(alpha) - np.log(alpha) + np_digamma(h) - math.log(h)
        k = match_gamma_shape(gap)
    else:
        k = alpha
    return 2.0 * k, np.sqrt(beta / alpha)
