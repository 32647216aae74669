"""Additive state-space kernel parts: constant, linear trend, periodic, quasi-periodic.

A latent function may be a sum of independent GPs, ``u = u_1 + ... + u_P``, each the
output ``h_p^T s_p`` of a linear SDE with a small state ``s_p``. The sum is one SDE
with the stacked state ``s = [s_1, ..., s_P]``, block-diagonal ``A``, ``Q``, ``Pinf``
and ``u = h^T s``, ``h = [h_1, ..., h_P]`` (``docs/theory.md``, "Kernel parts").

The chain code (:mod:`funbat.kalman`) reads a function as the *first* state
coordinate (``H = e_1``). :class:`Sum` therefore works in the basis ``z = T s`` in
which ``z_1 = h^T s`` (``T`` is the identity with its first row replaced by ``h^T``;
every part has ``h_1 = 1``, so ``T`` is invertible with
``T^{-1} = I - e_1 [0, h_2, ..., h_d]``): ``A_z = T A T^{-1}``, ``Q_z = T Q T^T``,
``Pinf_z = T Pinf T^T``. This is an exact change of variables, so the filter, the
smoother, interpolation and sampling run unchanged.

Parts (coordinates ``x`` in the scaled units of the mode, gaps ``D``):

* :class:`Constant`: ``k = v``; state 1, ``A = 1``, ``Q = 0``, ``Pinf = v``.
* :class:`Trend`: ``k(x, x') = v_0 + v_1 (x - x_0)(x' - x_0)``, level and slope, with
  ``x_0`` the mode's first (training) coordinate; state 2, ``A = [[1, D], [0, 1]]``,
  ``Q = 0``, ``Pinf = diag(v_0, v_1)``. Not stationary: the prior at ``x_0`` is ``Pinf``.
* :class:`Periodic`: ``k(tau) = v exp(-2 sin^2(pi tau / p) / l^2)`` (MacKay), written
  as ``v sum_j w_j cos(j w0 tau)``, ``w0 = 2 pi / p``, ``w_0 = I_0(l^-2) e^{-l^-2}``,
  ``w_j = 2 I_j(l^-2) e^{-l^-2}`` (Solin & Särkkä, AISTATS 2014), truncated after
  ``J`` harmonics: harmonic 0 is a constant state, harmonic ``j`` a resonator with
  ``A = rot(j w0 D)``, ``Q = 0``, ``Pinf = v w_j I_2``. Since ``sum_j w_j = 1``, the
  truncated covariance is below the exact one by at most ``v sum_{j>J} w_j`` at every
  lag (with equality at ``tau = 0``); ``J`` is the smallest for which that tail is at
  most ``tol`` (relative, default ``1e-4``).
* :class:`QuasiPeriodic`: periodic times a Matérn-3/2 envelope of lengthscale ``l_m``,
  state ``s_p kron s_m``, ``A = A_p kron A_m``, ``Pinf = Pinf_p kron Pinf_m``,
  ``Q = Pinf_p kron Q_m`` (the resonators preserve ``Pinf_p``).
* :class:`funbat.kernels.Matern` as it is.

The deterministic parts (constant, trend, periodic) have a singular ``Q`` (``A`` is
exact and ``Q = 0`` for finite gaps; an infinite gap means, as for Matérn, "no
information carried": ``A = 0``, ``Q = Pinf``).

Learned hyperparameters: the lengthscale of the first Matérn part (else of the first
quasi-periodic part's envelope) and, in a sum of two or more parts, that part's variance
are learned by the mode's line search (:mod:`funbat.hyper`). The variance of the learned
part against the others' is what a forecast needs: it sets how far the function may
stray from its level, trend or season between observations and so how fast the
predictive intervals widen past the data. A period written with ``learn_period=True``
is learned by the same search; other periods, periodic lengthscales and the other
parts' variances stay at their given values (the core and the learned variance absorb
their scale).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import KERNELS, Matern

__all__ = [
    "PART_NAMES",
    "Constant",
    "Periodic",
    "QuasiPeriodic",
    "Sum",
    "Trend",
    "deterministic_means",
    "has_lengthscale",
    "learns_period",
    "learns_variance",
    "parse_kernel",
    "periodic_weights",
    "scale_lengthscale",
    "with_lengthscale",
]

#: Default relative accuracy of the truncated periodic series (max error / variance).
PERIODIC_TOL = 1e-4


def _infinite(gaps):
    gaps = jnp.asarray(gaps)
    inf = jnp.isinf(gaps)
    return inf, jnp.where(inf, 0.0, gaps)


def _deterministic(A, Pinf, inf):
    """``A`` (n, d, d) with an infinite gap's ``A = 0``, ``Q = Pinf``, else ``Q = 0``."""
    A = jnp.where(inf[:, None, None], 0.0, A)
    Q = jnp.where(inf[:, None, None], Pinf, jnp.zeros_like(Pinf))
    return A, Q


def _register(cls=None, *, static: tuple[str, ...] = ()):
    """A frozen dataclass as a JAX pytree: its fields are the children, in order, except
    the ``static`` ones, which are the (hashable) auxiliary data."""
    if cls is None:
        return lambda c: _register(c, static=static)
    names = tuple(f.name for f in fields(cls) if f.name not in static)

    def tree_flatten(self):
        return tuple(getattr(self, n) for n in names), tuple(getattr(self, n) for n in static)

    def tree_unflatten(klass, aux, children):
        return klass(**dict(zip(names, children)), **dict(zip(static, aux)))

    cls.tree_flatten, cls.tree_unflatten = tree_flatten, classmethod(tree_unflatten)
    return jax.tree_util.register_pytree_node_class(cls)


@_register
@dataclass(frozen=True)
class Constant:
    """A static level: ``k(x, x') = variance``; state of size 1."""

    variance: Any

    state_dim = 1
    noise_rank = 0

    def observation(self):
        return np.ones(1)

    def sde(self):
        """``F`` (1, 1) and ``Pinf`` (1, 1)."""
        return jnp.zeros((1, 1)), jnp.reshape(self.variance, (1, 1))

    def transition(self, gaps):
        """``A``, ``Q`` (n, 1, 1) for gaps (n,)."""
        inf, safe = _infinite(gaps)
        A = jnp.ones((safe.shape[0], 1, 1))
        return _deterministic(A, self.sde()[1], inf)

    def covariance(self, tau):
        return jnp.broadcast_to(self.variance, jnp.shape(tau)) * 1.0

    def gram(self, x1, x2, origin):
        return self.covariance(x1[:, None] - x2[None, :])


@_register
@dataclass(frozen=True)
class Trend:
    """Level plus slope: ``k(x, x') = level + slope (x - x0)(x' - x0)``, ``x0`` the
    chain's first coordinate; state ``(u, du/dx)`` of size 2."""

    level: Any
    slope: Any

    state_dim = 2
    noise_rank = 0

    def observation(self):
        return np.array([1.0, 0.0])

    def sde(self):
        """``F`` (2, 2) and the prior covariance at ``x0``, ``Pinf`` (2, 2)."""
        return jnp.array([[0.0, 1.0], [0.0, 0.0]]), jnp.diag(jnp.stack([self.level, self.slope]))

    def transition(self, gaps):
        """``A = [[1, D], [0, 1]]``, ``Q = 0`` (n, 2, 2) for gaps ``D`` (n,)."""
        inf, safe = _infinite(gaps)
        one, zero = jnp.ones_like(safe), jnp.zeros_like(safe)
        A = jnp.stack([jnp.stack([one, safe], -1), jnp.stack([zero, one], -1)], -2)
        return _deterministic(A, self.sde()[1], inf)

    def gram(self, x1, x2, origin):
        """Prior covariance (n1, n2) between coordinates ``x1`` (n1,) and ``x2`` (n2,)."""
        return self.level + self.slope * (x1[:, None] - origin) * (x2[None, :] - origin)


def periodic_weights(lengthscale: float, tol: float = PERIODIC_TOL) -> tuple[float, ...]:
    """Weights ``w_0..w_J`` of the cosine series of the periodic kernel (unit variance).

    ``J`` is the smallest number of harmonics whose left-out tail ``sum_{j>J} w_j`` (the
    largest error of the truncated covariance at any lag, relative to the variance) is
    at most ``tol``.
    """
    from scipy.special import ive

    if not (np.isfinite(lengthscale) and lengthscale > 0):
        raise ValueError(f"periodic lengthscale must be positive; got {lengthscale!r}")
    if not (0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1); got {tol!r}")
    z = 1.0 / lengthscale**2
    j = np.arange(4000)
    w = ive(j, z) * np.where(j == 0, 1.0, 2.0)
    tail = np.cumsum(w[::-1])[::-1]  # tail[k] = sum_{j >= k} w_j
    J = int(np.argmax(tail[1:] <= tol))  # smallest J with sum_{j > J} w_j <= tol
    if tail[J + 1] > tol:
        raise ValueError(f"periodic lengthscale {lengthscale!r} needs too many harmonics")
    return tuple(float(v) for v in w[: J + 1])


@_register(static=("lengthscale", "weights", "learn_period"))
@dataclass(frozen=True)
class Periodic:
    """Periodic kernel ``v exp(-2 sin^2(pi tau / period) / l^2)``, truncated series.

    Parameters
    ----------
    period : scalar array, in the mode's scaled units.
    variance : scalar array ``v``.
    lengthscale : float ``l`` (static, dimensionless: relative to the period).
    weights : tuple of floats, :func:`periodic_weights` of ``lengthscale`` (static).
    learn_period : whether the mode's search learns ``period`` (static; the number
        of harmonics does not depend on it, so a learned period keeps the state size).
    """

    period: Any
    variance: Any
    lengthscale: float
    weights: tuple
    learn_period: bool = False

    @property
    def n_harmonics(self) -> int:
        return len(self.weights) - 1

    @property
    def state_dim(self) -> int:
        return 1 + 2 * self.n_harmonics

    noise_rank = 0

    def observation(self):
        return np.concatenate([[1.0], np.tile([1.0, 0.0], self.n_harmonics)])

    def _pinf(self, variance):
        w = np.concatenate([[self.weights[0]], np.repeat(self.weights[1:], 2)])
        return jnp.diag(variance * jnp.asarray(w))

    def sde(self):
        """``F`` (d, d): zero, then ``[[0, -j w0], [j w0, 0]]`` blocks; ``Pinf`` (d, d)."""
        w0 = 2.0 * jnp.pi / self.period
        d = self.state_dim
        F = jnp.zeros((d, d))
        for j in range(1, self.n_harmonics + 1):
            i = 2 * j - 1
            F = F.at[i, i + 1].set(-j * w0).at[i + 1, i].set(j * w0)
        return F, self._pinf(self.variance)

    def _rotations(self, safe):
        """Block-diagonal ``expm(F D)`` (n, d, d) for finite gaps ``safe`` (n,)."""
        n, d = safe.shape[0], self.state_dim
        w0 = 2.0 * jnp.pi / self.period
        A = jnp.zeros((n, d, d)).at[:, 0, 0].set(1.0)
        for j in range(1, self.n_harmonics + 1):
            i = 2 * j - 1
            c, s = jnp.cos(j * w0 * safe), jnp.sin(j * w0 * safe)
            A = A.at[:, i, i].set(c).at[:, i, i + 1].set(-s)
            A = A.at[:, i + 1, i].set(s).at[:, i + 1, i + 1].set(c)
        return A

    def transition(self, gaps):
        """Rotations ``A`` and ``Q = 0`` (n, d, d) for gaps (n,)."""
        inf, safe = _infinite(gaps)
        return _deterministic(self._rotations(safe), self.sde()[1], inf)

    def covariance(self, tau):
        """The truncated series ``v sum_{j<=J} w_j cos(j w0 tau)`` (what the SDE has)."""
        w0 = 2.0 * jnp.pi / self.period
        tau = jnp.asarray(tau)
        j = jnp.arange(len(self.weights))
        terms = jnp.asarray(self.weights) * jnp.cos(j * w0 * tau[..., None])
        return self.variance * jnp.sum(terms, axis=-1)

    def exact_covariance(self, tau):
        """The untruncated ``v exp(-2 sin^2(pi tau / period) / l^2)``."""
        s = jnp.sin(jnp.pi * jnp.asarray(tau) / self.period)
        return self.variance * jnp.exp(-2.0 * s**2 / self.lengthscale**2)

    def gram(self, x1, x2, origin):
        return self.covariance(x1[:, None] - x2[None, :])


@_register
@dataclass(frozen=True)
class QuasiPeriodic:
    """Periodic (variance ``variance``) times a Matérn envelope (unit variance):
    ``k(tau) = k_p(tau) k_m(tau)``; state ``s_p kron s_m``."""

    periodic: Periodic
    envelope: Matern

    @property
    def state_dim(self) -> int:
        return self.periodic.state_dim * self.envelope.state_dim

    @property
    def noise_rank(self) -> int:
        return self.state_dim

    @property
    def lengthscale(self):
        return self.envelope.lengthscale

    def observation(self):
        e1 = np.eye(self.envelope.state_dim)[0]
        return np.kron(self.periodic.observation(), e1)

    def sde(self):
        Fp, Pp = self.periodic.sde()
        Fm, Pm = self.envelope.sde()
        dp, dm = Fp.shape[0], Fm.shape[0]
        F = jnp.kron(Fp, jnp.eye(dm)) + jnp.kron(jnp.eye(dp), Fm)
        return F, jnp.kron(Pp, Pm)

    def transition(self, gaps):
        inf, safe = _infinite(gaps)
        Ap = self.periodic._rotations(safe)
        Am, Qm = self.envelope.transition(safe)
        Pp = self.periodic.sde()[1]
        A = jax.vmap(jnp.kron)(Ap, Am)
        Q = jax.vmap(lambda q: jnp.kron(Pp, q))(Qm)
        Pinf = self.sde()[1]
        A = jnp.where(inf[:, None, None], 0.0, A)
        Q = jnp.where(inf[:, None, None], Pinf, Q)
        return A, Q

    def covariance(self, tau):
        return self.periodic.covariance(tau) * self.envelope.covariance(tau)

    def gram(self, x1, x2, origin):
        return self.covariance(x1[:, None] - x2[None, :])


def _periodic_of(part):
    """A periodic part itself, a quasi-periodic part's periodic factor, else the part."""
    return part.periodic if isinstance(part, QuasiPeriodic) else part


def _obs(part) -> np.ndarray:
    if isinstance(part, Matern):
        return np.eye(part.state_dim)[0]
    return part.observation()


def _noise_rank(part) -> int:
    return part.state_dim if isinstance(part, Matern) else part.noise_rank


def _gram(part, x1, x2, origin):
    if isinstance(part, Matern):
        return part.covariance(x1[:, None] - x2[None, :])
    return part.gram(x1, x2, origin)


def _block_diag(blocks):
    """Block-diagonal (n, D, D) from blocks (n, d_p, d_p) (or (D, D) from (d_p, d_p))."""
    D = sum(b.shape[-1] for b in blocks)
    out = jnp.zeros(blocks[0].shape[:-2] + (D, D))
    i = 0
    for b in blocks:
        d = b.shape[-1]
        out = out.at[..., i : i + d, i : i + d].set(b)
        i += d
    return out


@_register(static=("label",))
@dataclass(frozen=True)
class Sum:
    """Sum of independent kernel parts; the state is theirs stacked, in the basis whose
    first coordinate is the function (module docstring).

    Parameters
    ----------
    parts : tuple of parts (:class:`funbat.kernels.Matern`, :class:`Constant`,
        :class:`Trend`, :class:`Periodic`, :class:`QuasiPeriodic`).
    label : the kernel as the user wrote it, periods in user units (static; for
        ``kernels_``, ``info`` and saved files).
    """

    parts: tuple
    label: str

    @property
    def state_dim(self) -> int:
        return sum(p.state_dim for p in self.parts)

    @property
    def noise_rank(self) -> int:
        """Rank of ``Q`` for a finite gap: the state's random dimensions per step."""
        return sum(_noise_rank(p) for p in self.parts)

    def _learned(self):
        for kind in (Matern, QuasiPeriodic):
            for i, p in enumerate(self.parts):
                if isinstance(p, kind):
                    return i
        return None

    def _part(self, i, missing: str):
        """Part ``i`` (an index from ``_learned`` or ``_periodic_learned``); ``missing``:
        the AttributeError's message when there is none."""
        if i is None:
            raise AttributeError(missing)
        return self.parts[i]

    def _with_part(self, i, change) -> Sum:
        """The sum with part ``i`` replaced by ``change(part)``."""
        return Sum(self.parts[:i] + (change(self.parts[i]),) + self.parts[i + 1 :], self.label)

    @property
    def lengthscale(self):
        """Lengthscale of the learned part (the first Matérn, else quasi-periodic)."""
        return self._part(self._learned(), "this kernel has no lengthscale to learn").lengthscale

    def _with_learned(self, change) -> Sum:
        """The sum with its learned part ``p`` replaced by ``change(p)``."""
        return self._with_part(self._learned(), change)

    def with_lengthscale(self, ell) -> Sum:
        return self._with_learned(lambda p: replace(p, lengthscale=ell) if isinstance(p, Matern)
                                  else replace(p, envelope=replace(p.envelope, lengthscale=ell)))  # fmt: skip

    @property
    def learns_variance(self) -> bool:
        """Whether the learned part's variance is learned too: when the sum has another
        part, the variance of the learned part against theirs sets how far the function
        may stray from them, which the data identify (a lone Matérn's variance is not:
        the core absorbs it)."""
        return self._learned() is not None and len(self.parts) > 1

    @property
    def variance(self):
        """Variance of the learned part (a quasi-periodic part's periodic variance)."""
        p = self._part(self._learned(), "this kernel has no learned part")
        return p.variance if isinstance(p, Matern) else p.periodic.variance

    def with_variance(self, v) -> Sum:
        """The sum with its learned part's variance set to ``v``."""
        return self._with_learned(lambda p: replace(p, variance=v) if isinstance(p, Matern)
                                  else replace(p, periodic=replace(p.periodic, variance=v)))  # fmt: skip

    def _periodic_learned(self):
        """Index of the part whose period is learned (periodic or quasi-periodic), or None."""
        for i, p in enumerate(self.parts):
            per = _periodic_of(p)
            if isinstance(per, Periodic) and per.learn_period:
                return i
        return None

    @property
    def learns_period(self) -> bool:
        """Whether the search also learns a period (a part written with
        ``learn_period=True``; the search needs a learned lengthscale beside it)."""
        return self._periodic_learned() is not None and self._learned() is not None

    @property
    def period(self):
        """The learned period (scaled units)."""
        return self._learned_periodic().period

    @property
    def n_harmonics(self) -> int:
        """Harmonics of the part whose period is learned."""
        return self._learned_periodic().n_harmonics

    def _learned_periodic(self) -> Periodic:
        part = self._part(self._periodic_learned(), "this kernel learns no period")
        return _periodic_of(part)

    def with_period(self, period) -> Sum:
        """The sum with its learned period set to ``period`` (scaled units)."""
        def change(p):
            if isinstance(p, QuasiPeriodic):
                return replace(p, periodic=replace(p.periodic, period=period))
            return replace(p, period=period)

        return self._with_part(self._periodic_learned(), change)

    def _basis(self):
        """``T`` and ``T^{-1}`` (D, D): ``z = T s`` has ``z_1 = h^T s``."""
        h = np.concatenate([_obs(p) for p in self.parts])
        T = np.eye(h.size)
        T[0] = h
        Ti = np.eye(h.size)
        Ti[0, 1:] = -h[1:]
        return jnp.asarray(T), jnp.asarray(Ti)

    def sde(self):
        """``F_z`` (D, D) and ``Pinf_z`` (D, D) in the function-first basis."""
        T, Ti = self._basis()
        Fs, Ps = zip(*(p.sde() for p in self.parts))
        return T @ _block_diag(Fs) @ Ti, T @ _block_diag(Ps) @ T.T

    def transition(self, gaps):
        """``A_z``, ``Q_z`` (n, D, D) for gaps (n,) (infinite: ``A = 0``, ``Q = Pinf``)."""
        T, Ti = self._basis()
        As, Qs = zip(*(p.transition(gaps) for p in self.parts))
        A = T @ _block_diag(As) @ Ti
        Q = T @ _block_diag(Qs) @ T.T
        return A, 0.5 * (Q + jnp.swapaxes(Q, -1, -2))

    def covariance(self, tau):
        """Sum of the parts' covariances at lags ``tau`` (stationary parts only)."""
        if any(isinstance(p, Trend) for p in self.parts):
            raise TypeError("a trend is not stationary: use gram(x1, x2, origin)")
        return sum(p.covariance(tau) for p in self.parts)

    def gram(self, x1, x2, origin):
        """Prior covariance (n1, n2) of the function between ``x1`` and ``x2``;
        ``origin``: the chain's first coordinate (where the trend's prior is ``Pinf``)."""
        x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
        return sum(_gram(p, x1, x2, origin) for p in self.parts)


def deterministic_means(kernel: Sum, z0, origin, x) -> list[tuple[str, jax.Array]]:
    """Posterior means of a sum's deterministic parts (constant, trend, periodic) at
    any scaled coordinates.

    Such a part has ``Q = 0``, so its state anywhere is its state at the chain's first
    coordinate carried by ``A``: exact at every coordinate, inside the data or past
    them. The rest of the function (the Matérn or quasi-periodic parts) is the mode's
    mean minus these.

    Parameters
    ----------
    kernel : the mode's :class:`Sum` (scaled units).
    z0 : (R, D) smoothed state means at the first coordinate, in the function-first
        basis (the chain's own), one row per component.
    origin : scalar, the first coordinate; x : (n,) scaled coordinates.

    Returns
    -------
    ``[(part name, means (n, R)), ...]`` in the order of the parts.
    """
    _, Ti = kernel._basis()
    s0 = jnp.asarray(z0) @ Ti.T  # (R, D) in the parts' own stacked basis
    out, offset = [], 0
    for part in kernel.parts:
        d = part.state_dim
        if _noise_rank(part) == 0:
            A, _ = part.transition(jnp.asarray(x) - origin)
            vals = jnp.einsum("i,nij,rj->nr", jnp.asarray(_obs(part)), A, s0[:, offset:offset + d])
            out.append((type(part).__name__.lower(), vals))
        offset += d
    return out


def with_lengthscale(kernel, ell):
    """``kernel`` with its learned lengthscale set to ``ell``."""
    if isinstance(kernel, Sum):
        return kernel.with_lengthscale(ell)
    return replace(kernel, lengthscale=ell)


def learns_variance(kernel) -> bool:
    """Whether the search also learns ``kernel``'s variance (:attr:`Sum.learns_variance`)."""
    return isinstance(kernel, Sum) and kernel.learns_variance


def learns_period(kernel) -> bool:
    """Whether the search also learns ``kernel``'s period (:attr:`Sum.learns_period`)."""
    return isinstance(kernel, Sum) and kernel.learns_period


def scale_lengthscale(kernel, factor: float):
    """``kernel`` with its learned lengthscale times ``factor``; a kernel with none (a
    constant or trend alone) is returned as it is."""
    if isinstance(kernel, Matern) or (isinstance(kernel, Sum) and has_lengthscale(kernel)):
        return with_lengthscale(kernel, kernel.lengthscale * factor)
    return kernel


def has_lengthscale(kernel) -> bool:
    """Whether ``kernel`` has a lengthscale for the search to learn."""
    return not isinstance(kernel, Sum) or kernel._learned() is not None


# -- the kernel syntax ---------------------------------------------------------------

#: Part names of the string syntax and their arguments (positional first).
PART_NAMES: dict[str, tuple[str, ...]] = {
    **{name: ("lengthscale", "variance") for name in KERNELS},
    "constant": ("variance",),
    "trend": ("level", "slope"),
    "periodic": ("period", "lengthscale", "variance", "tol", "learn_period"),
    "quasiperiodic": ("period", "lengthscale", "periodic_lengthscale", "variance", "tol",
                      "learn_period"),
}  # fmt: skip

#: Arguments that are flags (``True`` / ``False``) rather than positive numbers.
FLAGS = ("learn_period",)


class KernelSyntaxError(ValueError):
    """A kernel string that does not parse (the message is one line)."""


def _parse_term(term: str):
    """``"name"`` or ``"name(args)"`` -> (name, {argument: float})."""
    text = term.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise KernelSyntaxError(f"cannot read kernel part {text!r}") from None
    if isinstance(node, ast.Name):
        name, args, kwargs = node.id, [], []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, args, kwargs = node.func.id, node.args, node.keywords
    else:
        raise KernelSyntaxError(f"cannot read kernel part {text!r}")
    name = name.lower()
    if name not in PART_NAMES:
        raise KernelSyntaxError(f"unknown kernel part {name!r}; choose among {sorted(PART_NAMES)}")
    allowed = PART_NAMES[name]
    if len(args) > len(allowed):
        raise KernelSyntaxError(f"{name} takes at most {len(allowed)} arguments {allowed}")
    values = {}
    for key, v in [*zip(allowed, args), *((k.arg, k.value) for k in kwargs)]:
        if key not in allowed:
            raise KernelSyntaxError(f"{name} has no argument {key!r}; it takes {allowed}")
        if key in FLAGS:
            flag = v.value if isinstance(v, ast.Constant) else None
            if not isinstance(flag, bool):
                raise KernelSyntaxError(f"argument {key!r} of {name} must be True or False")
            values[key] = flag
            continue
        try:
            x = float(ast.literal_eval(v))
        except (ValueError, TypeError, SyntaxError):
            raise KernelSyntaxError(f"argument {key!r} of {name} must be a number") from None
        if not (np.isfinite(x) and x > 0):
            raise KernelSyntaxError(f"argument {key!r} of {name} must be positive; got {x!r}")
        values[key] = x
    if name in ("periodic", "quasiperiodic") and "period" not in values:
        raise KernelSyntaxError(f"{name} needs a period, e.g. {name}(365.25)")
    return name, values


def _check_learned_period(parsed) -> None:
    """At most one learned period, next to a part whose lengthscale the search learns
    (the period moves with it in the same search)."""
    n = sum(bool(v.get("learn_period")) for _, v in parsed)
    if n > 1:
        raise KernelSyntaxError("only one part may learn its period (learn_period=True)")
    if n and not any(name in KERNELS or name == "quasiperiodic" for name, _ in parsed):
        raise KernelSyntaxError(
            "learn_period=True needs a Matérn or quasi-periodic part beside it "
            "(e.g. 'matern32 + periodic(365.25, learn_period=True)')"
        )


def parse_kernel(text: str) -> list[tuple[str, dict]]:
    """A kernel string such as ``"matern32 + periodic(365.25) + constant"`` -> its parts
    ``[(name, {argument: value}), ...]`` in user units (nothing converted yet)."""
    if not isinstance(text, str) or not text.strip():
        raise KernelSyntaxError(f"a kernel is a non-empty string; got {text!r}")
    parsed = [_parse_term(t) for t in text.split("+")]
    _check_learned_period(parsed)
    return parsed


def build_parts(parsed, scale: float, default_lengthscale: float, variance: float):
    """Parts in scaled units from :func:`parse_kernel`'s output.

    ``scale``: user units per scaled unit (periods and lengthscales are divided by it,
    a given trend slope variance multiplied by its square); ``default_lengthscale``
    (scaled) and ``variance``: a Matérn part's lengthscale and variance when not given.
    """
    parts = []
    for name, v in parsed:
        if name in KERNELS:
            ell = v["lengthscale"] / scale if "lengthscale" in v else default_lengthscale
            parts.append(Matern(KERNELS[name], jnp.asarray(ell, float),
                                jnp.asarray(v.get("variance", variance), float)))  # fmt: skip
        elif name == "constant":
            parts.append(Constant(jnp.asarray(v.get("variance", 1.0), float)))
        elif name == "trend":
            # given per user unit; the default, 1, is per scaled unit (the training range)
            slope = v["slope"] * scale**2 if "slope" in v else 1.0
            parts.append(Trend(jnp.asarray(v.get("level", 1.0), float), jnp.asarray(slope, float)))
        else:
            pl = v.get("lengthscale" if name == "periodic" else "periodic_lengthscale", 1.0)
            weights = periodic_weights(pl, v.get("tol", PERIODIC_TOL))
            per = Periodic(jnp.asarray(v["period"] / scale, float),
                           jnp.asarray(v.get("variance", 1.0), float), float(pl), weights,
                           bool(v.get("learn_period", False)))  # fmt: skip
            if name == "periodic":
                parts.append(per)
            else:
                ell = v["lengthscale"] / scale if "lengthscale" in v else default_lengthscale
                env = Matern(1.5, jnp.asarray(ell, float), jnp.asarray(1.0))
                parts.append(QuasiPeriodic(per, env))
    return tuple(parts)


def canonical_label(parsed) -> str:
    """The parsed kernel written back as one string (user units)."""
    terms = []
    for name, v in parsed:
        args = ", ".join(f"{x:g}" if k == "period" else f"{k}={x}" if k in FLAGS
                         else f"{k}={x:g}" for k, x in v.items())  # fmt: skip
        terms.append(f"{name}({args})" if args else name)
    return " + ".join(terms)
