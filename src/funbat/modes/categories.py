"""Discrete modes: categories, each with its own values under an iid Gaussian prior.

The prior is ``u_r(c) ~ N(0, s2)`` independently per category ``c`` (classic Bayesian
Tucker): a dense GP whose kernel is ``s2`` times the identity, so the posterior is that
of :mod:`funbat.dense` applied to blocks of one point each (``docs/theory.md``
section 2). Predicting an unseen category is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import dense as DN
from .. import updates as U
from .base import ModeKind, ModeState, check_variance, start_state, transform_moments

__all__ = ["CategoriesMode", "categories_posterior", "json_category"]


def categories_posterior(kernel, coords, Lams, etas):
    """Prior + messages -> each category's Gaussian posterior (a dense block of one
    point): the :class:`funbat.dense.DensePosterior`, means (I, R), seconds (I, R, R)."""
    gram = jnp.broadcast_to(kernel.variance, (coords.shape[0], 1, 1))
    L, mv, Sv, logZ, means, seconds = jax.vmap(DN.dense_posterior)(
        gram, Lams[:, None], etas[:, None]
    )
    return DN.DensePosterior(L, mv, Sv, jnp.sum(logZ)), means[:, 0], seconds[:, 0]


@jax.jit
def _categories_update(kernel, coords, G, g, tau_mean, unfolded, step, n_valid):
    """Messages, the posterior (:func:`categories_posterior`) and the mode's KL."""
    Lams, etas = U.mode_messages(G, g, tau_mean, unfolded)
    post, means, seconds = categories_posterior(kernel, coords, Lams, etas)
    kl = U.mode_kl(Lams, etas, means, seconds, post.log_normaliser)
    return ModeState(coords, kernel, post, means, seconds, n_valid, step), kl


def json_category(v):
    """A category as JSON: numbers and booleans as they are, anything else as text."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return str(v)


@dataclass(frozen=True)
class CategoriesMode(ModeKind):
    """A discrete mode: unordered categories (text, booleans, declared columns)."""

    name = "discrete"

    def kernel(self, enc, name, lengthscale, variance):
        return DN.Identity(jnp.asarray(check_variance(enc, variance)))

    def kernel_label(self, state):
        return "identity"

    def init(self, enc, rank, kernel, start, chain_length):
        I = enc.unique.shape[0]
        empty = DN.DensePosterior(
            jnp.zeros((I, 1, 1)), jnp.zeros((I, 1, rank)), jnp.zeros((I, rank, rank)),
            jnp.zeros(()),
        )  # fmt: skip
        return start_state(np.arange(I, dtype=float), kernel, empty, start, I)

    def _update(self, state, G, g, tau_mean, unfolded, *, learn):
        # the identity kernel has no lengthscale, and its variance trades off with the core's
        return _categories_update(
            state.kernel, state.coords, G, g, tau_mean, unfolded, state.step, state.n_valid
        )

    def prior_quadratic(self, state):
        return DN.prior_quadratic(state.posterior)

    def dimension(self, state):
        return state.means.shape[0]

    def transform(self, state, T):
        return transform_moments(state, T, DN.transform_posterior(state.posterior, T))

    def marginals(self, state, enc, x_user):
        codes = enc.codes(x_user)
        return state.means[codes], state.seconds[codes]

    def samples(self, state, enc, x_user, key, n_samples):
        # categories are independent under q
        uniq, inv = np.unique(enc.codes(x_user), return_inverse=True)
        m = state.means[uniq]
        cov = state.seconds[uniq] - m[:, :, None] * m[:, None, :]
        C = jnp.linalg.cholesky(cov + 1e-12 * jnp.eye(m.shape[1]))
        u = m + jnp.einsum("irs,nis->nir", C, jax.random.normal(key, (n_samples,) + m.shape))
        return u[:, inv]

    def groups(self, enc, x_user):
        return enc.codes(x_user), 0  # unseen categories are an error (as for the mean)

    def parse_coords(self, enc, coords):
        return np.asarray(coords, dtype=object).reshape(-1)

    def coordinate_table(self, enc):
        return {enc.name: enc.categories}

    def describe(self, state, enc):
        cats = [json_category(v) for v in enc.categories]
        return {
            "kind": "discrete",
            "n_unique": len(cats),
            "n_categories": len(cats),
            "categories": cats,
            "lengthscale": None,
        }
