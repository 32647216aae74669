"""Matérn kernels as linear stochastic differential equations.

A Matérn GP with smoothness ``nu = p + 1/2`` is the first coordinate of a linear SDE
``ds/dx = F s + L w(x)`` with state ``s`` of size ``d = p + 1`` (Hartikainen & Särkkä,
2010). Between two coordinates a gap ``D`` apart the state moves by
``s' = A s + q``, ``A = expm(F D)`` (in closed form, see
:meth:`Matern.transition`), ``q ~ N(0, Q)``, ``Q = Pinf - A Pinf A^T``, where
``Pinf`` is the stationary covariance. The symbols ``F``, ``Pinf``, ``A``, ``Q``, ``H``
follow the SDE literature; see ``docs/theory.md`` section 2.

Kernels are immutable pytrees: ``lengthscale`` and ``variance`` are leaves (so they can
be differentiated and traced), the smoothness ``nu`` is static.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["KERNELS", "Matern", "kernel_name", "make_kernel"]

#: Accepted kernel names and their smoothness ``nu``.
KERNELS: dict[str, float] = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class Matern:
    """Stationary Matérn kernel ``k(x, x')`` with its state-space form.

    Parameters
    ----------
    nu : float
        Smoothness, one of 0.5, 1.5, 2.5 (static).
    lengthscale : scalar array
        Lengthscale, in the units of the coordinates it is applied to.
    variance : scalar array
        Marginal variance ``k(x, x)``.
    """

    nu: float
    lengthscale: Any
    variance: Any

    def tree_flatten(self):
        return (self.lengthscale, self.variance), self.nu

    @classmethod
    def tree_unflatten(cls, nu, children):
        return cls(nu, *children)

    @property
    def state_dim(self) -> int:
        """Size ``d`` of the SDE state (``nu + 1/2``)."""
        return int(self.nu + 0.5)

    def covariance(self, tau):
        """Closed-form covariance ``k(tau)`` at lags ``tau`` (any shape)."""
        r = jnp.abs(tau) / self.lengthscale
        s2 = self.variance
        if self.nu == 0.5:
            return s2 * jnp.exp(-r)
        if self.nu == 1.5:
            a = jnp.sqrt(3.0) * r
            return s2 * (1.0 + a) * jnp.exp(-a)
        a = jnp.sqrt(5.0) * r
        return s2 * (1.0 + a + a**2 / 3.0) * jnp.exp(-a)

    def sde(self):
        """Feedback matrix ``F`` (d, d) and stationary covariance ``Pinf`` (d, d)."""
        ell, s2 = self.lengthscale, self.variance
        if self.nu == 0.5:
            return jnp.reshape(-1.0 / ell, (1, 1)), jnp.reshape(s2, (1, 1))
        if self.nu == 1.5:
            lam = jnp.sqrt(3.0) / ell
            F = jnp.array([[0.0, 1.0], [-(lam**2), -2.0 * lam]])
            Pinf = jnp.diag(jnp.stack([s2, lam**2 * s2]))
            return F, Pinf
        lam = jnp.sqrt(5.0) / ell
        F = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-(lam**3), -3.0 * lam**2, -3.0 * lam]])
        k = s2 * lam**2 / 3.0
        zero = jnp.zeros_like(k)
        Pinf = jnp.array([[s2, zero, -k], [zero, k, zero], [-k, zero, s2 * lam**4]])
        return F, Pinf

    def transition(self, gaps):
        """Transition ``A`` and process noise ``Q`` for gaps ``D`` (n,) -> (n, d, d) each.

        An infinite gap means "no information carried over": ``A = 0`` and
        ``Q = Pinf``. That is how a chain starts from the stationary prior, and how a
        query outside the training range is handled.
        """
        F, Pinf = self.sde()
        gaps = jnp.asarray(gaps)
        inf = jnp.isinf(gaps)
        safe = jnp.where(inf, 0.0, gaps)
        # The characteristic polynomial of F is (s + lam)^d, so N = F + lam I is
        # nilpotent (N^d = 0) and expm(F D) = exp(-lam D) sum_{i<d} (N D)^i / i!
        # exactly: cheaper to run and to compile than a general expm.
        d = self.state_dim
        lam = jnp.sqrt(2.0 * self.nu) / self.lengthscale
        N = F + lam * jnp.eye(d)
        term = jnp.broadcast_to(jnp.eye(d), (safe.shape[0], d, d))
        total = term
        for i in range(1, d):
            term = term @ (N * safe[:, None, None]) / i
            total = total + term
        A = jnp.exp(-lam * safe)[:, None, None] * total
        A = jnp.where(inf[:, None, None], 0.0, A)
        Q = Pinf - A @ Pinf @ jnp.swapaxes(A, -1, -2)
        Q = 0.5 * (Q + jnp.swapaxes(Q, -1, -2))
        return A, Q


def make_kernel(name: str, lengthscale, variance=1.0) -> Matern:
    """Build a :class:`Matern` kernel from its name (``"matern12"``, ``"matern32"``, ``"matern52"``)."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
    return Matern(KERNELS[name], jnp.asarray(lengthscale, float), jnp.asarray(variance, float))


def kernel_name(nu: float) -> str:
    """The name of the Matérn kernel of smoothness ``nu`` (a value of :data:`KERNELS`)."""
    return {v: k for k, v in KERNELS.items()}[float(nu)]
