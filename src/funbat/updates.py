"""Block updates of the variational posterior and the ELBO (``docs/theory.md`` section 3).

The posterior is ``q(W) q(tau) prod_k q(U^k)`` (times ``q(b)`` for a learned intercept,
:class:`OffsetMoments`). Each update below is the exact optimum
of the ELBO in its block with the others fixed, so a sweep never decreases the ELBO.

Vectorisation convention: the core ``W`` (R_1, ..., R_K) is vectorised in C order, so
``vec(W)^T (u^1 ⊗ ... ⊗ u^K) = sum W[r_1..r_K] u^1_{r_1} ... u^K_{r_K}`` with numpy's
``kron``; the mode-``k`` unfolding keeps the other modes in increasing order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

__all__ = [
    "CoreMoments",
    "NoiseMoments",
    "OFFSET_PRIOR_VARIANCE",
    "OffsetMoments",
    "core_from_statistics",
    "core_orders",
    "core_second_moment",
    "core_update",
    "expected_log_likelihood",
    "expected_sq_error",
    "gaussian_kl_to_isotropic",
    "gamma_kl",
    "mode_kl",
    "mode_messages",
    "noise_update",
    "offset_kl",
    "offset_sq_sum",
    "offset_update",
    "unfold_core",
]


class CoreMoments(NamedTuple):
    """``q(vec W) = N(mean, cov)``; mean (P,), cov (P, P), P = prod R_k."""

    mean: jax.Array
    cov: jax.Array


class NoiseMoments(NamedTuple):
    """``q(tau) = Gamma(shape, rate)`` for the noise precision of the standardised targets."""

    shape: jax.Array
    rate: jax.Array

    @property
    def mean(self):
        return self.shape / self.rate

    @property
    def mean_log(self):
        return digamma(self.shape) - jnp.log(self.rate)


#: Prior variance of a learned intercept ``b`` of the standardised targets (their
#: variance is 1, and ``b = 0`` is the sample mean): vague on that scale.
OFFSET_PRIOR_VARIANCE = 1.0


class OffsetMoments(NamedTuple):
    """``q(b) = N(mean, var)``: a learned intercept of the standardised targets,
    ``y_n = b + f_n + e_n`` with ``b ~ N(0, OFFSET_PRIOR_VARIANCE)``; scalars."""

    mean: jax.Array
    var: jax.Array


def core_second_moment(core: CoreMoments):
    """``E[w w^T] = cov + mean mean^T`` (P, P)."""
    return core.cov + jnp.outer(core.mean, core.mean)


def core_orders(ranks, mode):
    """Gather indices between the core's C-order ``vec`` and mode ``mode``'s layouts.

    Returns ``first`` and ``from_last``, (P,) int arrays each: ``w[first]`` lists the
    core in the mode-``k`` unfolding's order (``k`` first, the others in increasing
    order), and ``v[from_last]`` turns a vector in the layout (others..., ``k``) back to
    C order. As arrays (not static shapes) they let one compiled update serve every
    mode of equal rank.
    """
    a = np.arange(int(np.prod(ranks))).reshape(tuple(ranks))
    first = np.moveaxis(a, mode, 0).reshape(-1)
    from_last = np.argsort(np.moveaxis(a, mode, -1).reshape(-1))
    return first, from_last


def unfold_core(core: CoreMoments, rank, first):
    """Mode-``k`` views of the core moments: ``E[W_(k)]`` (``R_k, P_-k``) and
    ``E[w w^T]`` rearranged to (``R_k, P_-k, R_k, P_-k``); ``rank`` = ``R_k`` and
    ``first`` from :func:`core_orders`."""
    P = core.mean.shape[0]
    Mk = core.mean[first].reshape(rank, P // rank)
    Eww = core_second_moment(core)[first][:, first]
    return Mk, Eww.reshape(rank, P // rank, rank, P // rank)


def mode_messages(G, g, tau_mean, unfolded):
    """Grouped Gaussian messages ``(Lambda_j, eta_j)`` to one mode.

    ``Lambda_j = E[tau] E[W_(k) G_j W_(k)^T]`` including the core's covariance, and
    ``eta_j = E[tau] E[W_(k)] g_j``, with ``unfolded = unfold_core(core, R_k, first)``.
    For CP (``unfolded=None``) the core is the fixed super-diagonal, so
    ``Lambda_j = E[tau] G_j`` and ``eta_j = E[tau] g_j``.

    Returns Lams (I, R_k, R_k) and etas (I, R_k).
    """
    if unfolded is None:
        return tau_mean * G, tau_mean * g
    Mk, Eww = unfolded
    Lams = tau_mean * jnp.einsum("acbd,jcd->jab", Eww, G)
    etas = tau_mean * g @ Mk.T
    return 0.5 * (Lams + jnp.swapaxes(Lams, 1, 2)), etas


def core_from_statistics(G, g, mean, second, structure, from_last=None):
    """Data sums for the core from mode ``k``'s grouped statistics and its new moments.

    ``T = sum_n ⊗_i S^i_n = sum_j (S^k_j in slot k of G^k_j)`` and
    ``b = sum_n y_n E[z_n]``: no extra pass over the entries, so the core (and the noise)
    can be refreshed after every mode update. For CP the products are Hadamard and the
    sums are taken over the diagonal core: ``T = sum_n E[f_n^2]``, ``b = sum_n y_n E[f_n]``.
    For Tucker the sums come out in the layout (other modes..., ``k``); ``from_last``
    (:func:`core_orders`) puts them in the core's C order.
    """
    if structure == "cp":
        return jnp.sum(G * second), _linear_sum(g, mean, structure, from_last)
    P = G.shape[1] * mean.shape[1]
    T = jnp.einsum("jcd,jab->cadb", G, second).reshape(P, P)[from_last][:, from_last]
    return 0.5 * (T + T.T), _linear_sum(g, mean, structure, from_last)


def _linear_sum(g, mean, structure, from_last):
    """``b`` of :func:`core_from_statistics`: CP the scalar ``sum_j g_j . mean_j``,
    Tucker (P,) in the core's C order."""
    if structure == "cp":
        return jnp.sum(g * mean)
    return jnp.einsum("jc,ja->ca", g, mean).reshape(-1)[from_last]


def offset_update(h, mean, core: CoreMoments | None, tau_mean, structure, from_last=None,
                  prior_var=OFFSET_PRIOR_VARIANCE):  # fmt: skip
    """Exact update of ``q(b)`` given the rest, from mode ``k``'s offset sums ``h``
    (I_k, P + 2) (:func:`funbat.stats.mode_statistics`) and its new means (I_k, R_k):
    precision ``E[tau] sum_n w_n + 1 / prior_var``, mean ``E[tau] (sum_n w_n y_n -
    sum_n w_n E[f_n]) / precision``. Returns the new :class:`OffsetMoments` and the
    linear sum ``l`` with ``sum_n w_n E[f_n] = l`` (CP) or ``core.mean @ l`` (Tucker),
    which shifts the data sums ``b`` of :func:`core_from_statistics` by ``-l`` per unit
    of intercept."""
    lin = _linear_sum(h[:, :-2], mean, structure, from_last)
    sum_f = lin if core is None else core.mean @ lin
    prec = tau_mean * jnp.sum(h[:, -2]) + 1.0 / prior_var
    return OffsetMoments(tau_mean * (jnp.sum(h[:, -1]) - sum_f) / prec, 1.0 / prec), lin


def offset_sq_sum(q: OffsetMoments, h, sum_wy2):
    """``sum_n w_n E[(y_n - b)^2]`` from ``sum_n w_n y_n^2`` and the offset sums ``h``."""
    s_w, s_y = jnp.sum(h[:, -2]), jnp.sum(h[:, -1])
    return sum_wy2 - 2.0 * q.mean * s_y + (q.mean**2 + q.var) * s_w


def offset_kl(q: OffsetMoments, prior_var=OFFSET_PRIOR_VARIANCE):
    """``KL(N(mean, var) || N(0, prior_var))``."""
    return 0.5 * ((q.mean**2 + q.var) / prior_var - 1.0 - jnp.log(q.var / prior_var))


def core_update(T, b, tau_mean, prior_var) -> CoreMoments:
    """``Sigma^{-1} = I / sigma_w^2 + E[tau] T``, ``m = Sigma E[tau] b``."""
    P = b.shape[0]
    prec = jnp.eye(P) / prior_var + tau_mean * T
    L = jnp.linalg.cholesky(prec)
    cov = jax.scipy.linalg.cho_solve((L, True), jnp.eye(P))
    mean = cov @ (tau_mean * b)
    return CoreMoments(mean, 0.5 * (cov + cov.T))


def expected_sq_error(sum_y2, T, b, core: CoreMoments | None):
    """``sum_n E[(y_n - w^T z_n)^2]`` from the data sums."""
    if core is None:
        return sum_y2 - 2.0 * b + T
    return sum_y2 - 2.0 * core.mean @ b + jnp.sum(core_second_moment(core) * T)


def noise_update(n, esq, a0, b0) -> NoiseMoments:
    """``q(tau) = Gamma(a0 + N/2, b0 + E[sum of squared errors]/2)``."""
    return NoiseMoments(a0 + 0.5 * n, b0 + 0.5 * esq)


def gaussian_kl_to_isotropic(core: CoreMoments, prior_var):
    """``KL(N(m, S) || N(0, s2 I))``."""
    P = core.mean.shape[0]
    _, logdet = jnp.linalg.slogdet(core.cov)
    return 0.5 * (
        (jnp.trace(core.cov) + core.mean @ core.mean) / prior_var
        - P
        + P * jnp.log(prior_var)
        - logdet
    )


def gamma_kl(q: NoiseMoments, a0, b0):
    """``KL(Gamma(a, b) || Gamma(a0, b0))`` in the shape-rate parametrisation."""
    a, b = q.shape, q.rate
    return (
        (a - a0) * digamma(a)
        - gammaln(a)
        + gammaln(a0)
        + a0 * (jnp.log(b) - jnp.log(b0))
        + a * (b0 - b) / b
    )


def mode_kl(Lams, etas, means, seconds, log_normaliser):
    """``KL(q(U^k) || p(U^k)) = sum_j [eta_j^T mu_j - tr(Lambda_j S_j) / 2] - log Z``."""
    return jnp.sum(etas * means) - 0.5 * jnp.sum(Lams * seconds) - log_normaliser


def expected_log_likelihood(n, esq, noise: NoiseMoments):
    """``sum_n E[log N(y_n | w^T z_n, 1/tau)]``."""
    return 0.5 * n * (noise.mean_log - jnp.log(2.0 * jnp.pi)) - 0.5 * noise.mean * esq
