"""Dense-GP mode posteriors: spatial modes (points) and discrete modes (categories).

A spatial mode's coordinates are points ``x in R^D`` (latitude and longitude, say); each
of its ``R`` latent functions is an independent GP with a stationary Matérn kernel on the
Euclidean distance scaled per dimension, ``r = |(x - x') / ell|``. A discrete mode's
coordinates are categories with an iid ``N(0, s2 I)`` prior: a dense GP whose kernel is
``s2`` times the identity, so it is computed by the *same* function, applied to groups
of one point each (:mod:`funbat.modes.categories`).

Both receive the grouped Gaussian messages ``(Lambda_j, eta_j)`` that every mode gets
(``docs/theory.md`` section 3). With the prior ``u ~ N(0, K ⊗ I_R)`` (entries ordered
point-major, ``u[j R + r] = u_r(x_j)``) and ``K + jitter = L L^T``, we work in whitened
coordinates ``u = (L ⊗ I) v``, ``v ~ N(0, I)``:

``B = I + (L ⊗ I)^T Lambda (L ⊗ I)``, ``q(v) = N(B^{-1} b, B^{-1})``, ``b = (L ⊗ I)^T eta``,
``log Z = -1/2 log|B| + 1/2 b^T B^{-1} b``

which never inverts ``Lambda`` (often singular) and equals
``-1/2 log|I + K Lambda| + 1/2 eta^T Sigma eta`` with ``Sigma = K (I + Lambda K)^{-1}``.
Cost ``O(I^3 R^3)`` per update: fine for a few thousand points
(:data:`MAX_SPATIAL_POINTS`); beyond that :func:`check_size` raises.

Prediction at new points is the exact GP conditional
``u(x*) | u ~ N(k*^T K^{-1} u, k** - k*^T K^{-1} k*)`` averaged over ``q``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "MAX_SPATIAL_POINTS",
    "DensePosterior",
    "Identity",
    "PointMatern",
    "check_size",
    "conditional",
    "dense_posterior",
    "prior_quadratic",
    "transform_posterior",
    "sample_points",
]

#: Largest number of unique points of a spatial mode (its dense posterior has
#: ``(I R)^2`` entries and costs ``O(I^3 R^3)`` per sweep).
MAX_SPATIAL_POINTS = 4000

#: Relative diagonal jitter added to Gram matrices before the Cholesky factorisation.
_JITTER = 1e-8


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class PointMatern:
    """Matérn kernel on points with per-dimension lengthscales (ARD).

    ``k(x, x') = s2 m_nu(|(x - x') / ell|)``, ``m_nu`` the Matérn correlation.

    Parameters
    ----------
    nu : float, 0.5, 1.5 or 2.5 (static)
    lengthscales : (D,) array
    variance : scalar array
    """

    nu: float
    lengthscales: Any
    variance: Any

    def tree_flatten(self):
        return (self.lengthscales, self.variance), self.nu

    @classmethod
    def tree_unflatten(cls, nu, children):
        return cls(nu, *children)

    def gram(self, X1, X2):
        """Covariance matrix (n1, n2) between points X1 (n1, D) and X2 (n2, D)."""
        diff = (X1[:, None, :] - X2[None, :, :]) / self.lengthscales
        sq = jnp.sum(diff**2, axis=-1)
        # sqrt has an infinite gradient at 0: differentiate through a safe value
        pos = sq > 0
        r = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
        s2 = self.variance
        if self.nu == 0.5:
            return s2 * jnp.exp(-r)
        if self.nu == 1.5:
            a = jnp.sqrt(3.0) * r
            return s2 * (1.0 + a) * jnp.exp(-a)
        a = jnp.sqrt(5.0) * r
        return s2 * (1.0 + a + a**2 / 3.0) * jnp.exp(-a)


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class Identity:
    """Kernel of a discrete mode: ``k(i, j) = s2 [i == j]`` on category codes."""

    variance: Any

    def tree_flatten(self):
        return (self.variance,), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    def gram(self, X1, X2):
        return self.variance * (X1[:, None] == X2[None, :]).astype(jnp.result_type(float))


class DensePosterior(NamedTuple):
    """Posterior of ``B`` independent blocks of ``G`` points each (whitened).

    A spatial mode is one block of all its points; a discrete mode is ``I`` blocks of
    one point (the identity kernel makes categories independent).

    chol : (B, G, G) Cholesky factor ``L`` of each block's prior Gram matrix.
    white_mean : (B, G, R) mean of ``v``; white_cov : (B, G R, G R) its covariance.
    log_normaliser : scalar, ``sum log Z`` over blocks.
    """

    chol: jax.Array
    white_mean: jax.Array
    white_cov: jax.Array
    log_normaliser: jax.Array


def dense_posterior(gram, Lams, etas):
    """Posterior of one dense GP block from its messages.

    Parameters
    ----------
    gram : (G, G) prior covariance of the block's points (shared by the R components).
    Lams : (G, R, R) message precisions; etas : (G, R) message shifts.

    Returns
    -------
    chol (G, G), white_mean (G, R), white_cov (G R, G R), log_normaliser, and the
    marginal moments: means (G, R), seconds ``E[u u^T]`` (G, R, R).
    """
    G, R = etas.shape
    scale = jnp.maximum(jnp.max(jnp.diagonal(gram)), 1e-300)
    L = jnp.linalg.cholesky(gram + _JITTER * scale * jnp.eye(G))
    # (L ⊗ I)^T Lambda (L ⊗ I), point-major: [(a, r), (b, s)] = sum_j L_ja Lam_j,rs L_jb
    M = jnp.einsum("ja,jrs,jb->arbs", L, Lams, L).reshape(G * R, G * R)
    Bm = jnp.eye(G * R) + 0.5 * (M + M.T)
    Cb = jnp.linalg.cholesky(Bm)
    Sv = jax.scipy.linalg.cho_solve((Cb, True), jnp.eye(G * R))
    Sv = 0.5 * (Sv + Sv.T)
    b = (L.T @ etas).reshape(G * R)
    mv = Sv @ b
    logZ = -jnp.sum(jnp.log(jnp.diagonal(Cb))) + 0.5 * b @ mv
    mv = mv.reshape(G, R)
    means = L @ mv
    Sv4 = Sv.reshape(G, R, G, R)
    # marginal covariance of u_j: sum_ab L_ja L_jb Sv[a, :, b, :]
    covs = jnp.einsum("ja,arbs,jb->jrs", L, Sv4, L)
    seconds = covs + means[:, :, None] * means[:, None, :]
    return L, mv, Sv, logZ, means, seconds


def prior_quadratic(post: DensePosterior):
    """Expected prior quadratic forms ``E_q[u_r^T K^{-1} u_s]`` (R, R), summed over blocks.

    In whitened coordinates ``u_r = L v_r`` they are ``E[v_r^T v_s]``: the products of
    the whitened means plus the whitened covariances, summed over points and blocks.
    """
    B, G, R = post.white_mean.shape
    cov = post.white_cov.reshape(B, G, R, G, R)
    within = jnp.einsum("bgrgs->rs", cov)
    return jnp.einsum("bgr,bgs->rs", post.white_mean, post.white_mean) + within


def transform_posterior(post: DensePosterior, T) -> DensePosterior:
    """The blocks' posterior pushed through ``u -> T u`` (T: (R, R)) at every point: the
    whitened moments transform alike (``v = L^{-1} u`` acts on points, ``T`` on
    components). The log normaliser is kept (it belongs to the messages)."""
    B, G, R = post.white_mean.shape
    M = jnp.kron(jnp.eye(G), T)  # point-major (G R,) layout
    return DensePosterior(post.chol, post.white_mean @ T.T, M @ post.white_cov @ M.T,
                          post.log_normaliser)  # fmt: skip


def conditional(kernel, coords, post: DensePosterior, query):
    """Exact posterior marginals at query points of a *spatial* mode.

    Parameters
    ----------
    kernel : PointMatern; coords : (I, D) training points; query : (n, D).

    Returns
    -------
    mean (n, R) and second moment ``E[u u^T]`` (n, R, R).
    """
    L, mv, Sv = post.chol[0], post.white_mean[0], post.white_cov[0]
    I, R = mv.shape
    ks = kernel.gram(query, coords)  # (n, I)
    w = jax.scipy.linalg.solve_triangular(L, ks.T, lower=True)  # L^{-1} k*  (I, n)
    mean = w.T @ mv
    prior_left = kernel.variance - jnp.sum(w**2, axis=0)  # k** - k*^T K^{-1} k*
    cov = jnp.einsum("an,arbs,bn->nrs", w, Sv.reshape(I, R, I, R), w)
    cov = cov + jnp.maximum(prior_left, 0.0)[:, None, None] * jnp.eye(R)
    return mean, cov + mean[:, :, None] * mean[:, None, :]


def sample_points(kernel, coords, post: DensePosterior, query, key, n_samples):
    """Joint posterior samples of a spatial mode's functions at query points.

    Returns (n_samples, n, R): draws of ``u(query)`` from ``q``, jointly over the
    query points and components (the exact GP conditional given the training points).
    """
    L, mv, Sv = post.chol[0], post.white_mean[0], post.white_cov[0]
    I, R = mv.shape
    n = query.shape[0]
    k1, k2 = jax.random.split(key)
    Cv = jnp.linalg.cholesky(Sv + 1e-12 * jnp.eye(I * R))
    v = mv.reshape(-1) + jax.random.normal(k1, (n_samples, I * R)) @ Cv.T  # (S, I R)
    ks = kernel.gram(query, coords)
    w = jax.scipy.linalg.solve_triangular(L, ks.T, lower=True)  # (I, n)
    mean = jnp.einsum("an,sar->snr", w, v.reshape(n_samples, I, R))
    # conditional covariance of u(query) given the training points, shared by components
    Kqq = kernel.gram(query, query) - w.T @ w
    Kqq = 0.5 * (Kqq + Kqq.T) + 1e-9 * kernel.variance * jnp.eye(n)
    evals, evecs = jnp.linalg.eigh(Kqq)
    root = evecs * jnp.sqrt(jnp.maximum(evals, 0.0))
    eps = jax.random.normal(k2, (n_samples, n, R))
    return mean + jnp.einsum("nm,smr->snr", root, eps)


def check_size(n_points: int, name: str) -> None:
    """Raise a clear error when a spatial mode has too many unique points."""
    from .data import InputError

    if n_points > MAX_SPATIAL_POINTS:
        raise InputError(
            f"spatial mode {name!r} has {n_points} unique points; the dense GP posterior "
            f"supports at most {MAX_SPATIAL_POINTS} (its cost grows as points^3). Round the "
            "coordinates to a coarser grid, or split the mode into separate continuous modes"
        )


def default_lengthscales(points: np.ndarray) -> np.ndarray:
    """Initial per-dimension lengthscales (scaled units) for a spatial mode (I, D).

    Three median nearest-neighbour distances, at least a tenth of the (unit) range.
    """
    I, D = points.shape
    if I < 2:
        return np.ones(D)
    sample = points[: min(I, 2000)]
    d2 = np.sum((sample[:, None, :] - points[None, :, :]) ** 2, axis=-1)
    d2[d2 == 0] = np.inf
    nn = float(np.median(np.sqrt(d2.min(axis=1))))
    return np.full(D, max(0.1, 3.0 * nn))
