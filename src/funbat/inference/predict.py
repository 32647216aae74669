"""Prediction from a :class:`~funbat.inference.state.FitResult` at any coordinates
(``docs/theory.md`` section 6): the latent value's moments, the predictive
distribution, and joint draws."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..calibration import Predictive
from ..latent import contract, latent_moments
from .rank import unit_prior_state
from .state import FitResult

__all__ = ["latent", "mode_marginals", "mode_part_means", "predictive", "sample"]


def mode_marginals(result: FitResult, k: int, x_user):
    """Posterior mean (n, R_k) and second moment (n, R_k, R_k) of mode ``k``'s
    functions at user coordinates ``x_user`` (float64 context required)."""
    kind = result.kinds[k]
    state, s = unit_prior_state(kind, result.modes[k], getattr(result, "rank", None), k)
    m, e2 = kind.marginals(state, result.encodings[k], x_user)
    if s is None:
        return m, e2
    # a learned precision scales the prior: u = s v with v under the kernel's prior
    return m * s, e2 * (s[:, None] * s[None, :])


def mode_part_means(result: FitResult, k: int, x_user) -> dict:
    """Posterior means (n, R_k) of mode ``k``'s deterministic kernel parts at user
    coordinates ``x_user``, by part name (:meth:`funbat.modes.ModeKind.part_means`;
    float64 context required)."""
    kind = result.kinds[k]
    state, s = unit_prior_state(kind, result.modes[k], getattr(result, "rank", None), k)
    parts = kind.part_means(state, result.encodings[k], x_user)
    return parts if s is None else {name: v * np.asarray(s) for name, v in parts.items()}


def _mode_samples(result: FitResult, k: int, x_user, key, n_samples: int):
    """Joint draws (n_samples, n, R_k) of mode ``k``'s functions at ``x_user``."""
    kind = result.kinds[k]
    state, s = unit_prior_state(kind, result.modes[k], getattr(result, "rank", None), k)
    u = kind.samples(state, result.encodings[k], x_user, key, n_samples)
    return u if s is None else u * s


def latent(result: FitResult, columns):
    """Mean and variance (n,) each of the standardised latent value at query columns
    (one array per mode, user units), computed in blocks of queries; with a learned
    intercept, that of ``b + f``."""
    n = columns[0].shape[0]
    mean, var = np.empty(n), np.empty(n)
    # queries per block: the largest intermediate is (block, P^2 / R_1^2) doubles
    inner = int(np.prod(result.ranks)) ** 2 // result.ranks[0] ** 2
    block = int(np.clip(2**22 // max(inner, 1), 256, 16384))
    with jax.enable_x64(True):
        for s in range(0, n, block):
            mom = [mode_marginals(result, k, c[s : s + block]) for k, c in enumerate(columns)]
            m, e2 = latent_moments(result.core, [a for a, _ in mom], [b for _, b in mom],
                                   structure=result.structure)  # fmt: skip
            mean[s : s + block] = np.asarray(m)
            var[s : s + block] = np.maximum(np.asarray(e2 - m**2), 0.0)
    offset = result.offset
    if offset is not None:  # q(b) is independent of the rest
        mean, var = mean + float(offset.mean), var + float(offset.var)
    return mean, var


def predictive(result: FitResult, columns) -> Predictive:
    """The posterior predictive at query columns, in the target's units (a
    :class:`funbat.likelihoods.polya_gamma.CountPredictive` for counts and yes/no).

    A recalibrated fit is Student-t as a whole: ``var_f`` 0 and ``noise_scale`` the
    recalibrated spread ``scale * sqrt(var_f + noise variance)``.
    """
    mean, var = latent(result, columns)
    own = result.likelihood.observation_predictive(result.likelihood_state, mean, var)
    if own is not None:  # counts or yes/no (funbat.likelihoods.polya_gamma)
        return own
    noise_var, ys = result.noise_variance, result.y_scale
    mean_y = mean * ys + result.y_mean
    recal = result.recalibration
    if recal is not None:  # the whole spread takes the Student-t shape of the LOO errors
        spread = recal.scale * np.sqrt(var + noise_var) * ys
        return Predictive(mean_y, np.zeros(mean.shape[0]), spread, recal.dof)
    scale, dof = result.likelihood.predictive_noise(
        result.likelihood_state, result.encodings, result.kinds, columns, math.sqrt(noise_var) * ys
    )
    return Predictive(mean_y, var * ys**2, scale, dof)


def sample(result: FitResult, columns, rng: np.random.Generator, n_samples: int):
    """Joint draws (n, n_samples) from the posterior predictive at query columns.

    Each draw samples the core, every mode's functions jointly over the queries, the
    noise precision (with the likelihood's multipliers) and the noise.
    """
    S, n = int(n_samples), columns[0].shape[0]
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        keys = jax.random.split(key, len(columns) + 1)
        factors = [_mode_samples(result, k, c, keys[k], S) for k, c in enumerate(columns)]
        core = result.core
        if core is None:
            f = jnp.prod(jnp.stack(factors), axis=0).sum(axis=-1)  # (S, n)
        else:
            C = jnp.linalg.cholesky(core.cov + 1e-12 * jnp.eye(core.cov.shape[0]))
            w = core.mean + jax.random.normal(keys[-1], (S, C.shape[0])) @ C.T
            f = jax.vmap(lambda wi, *fs: contract(wi, list(fs), second=False))(w, *factors)
        f = np.asarray(f)
    offset = result.offset
    if offset is not None:  # one intercept per draw
        f = f + float(offset.mean) + np.sqrt(float(offset.var)) * rng.normal(size=(S, 1))
    drawn = result.likelihood.draw_observations(result.likelihood_state, f, rng)
    if drawn is not None:  # counts or yes/no drawn given the latent draws
        return np.asarray(drawn, float).T
    noise = result.noise
    tau = rng.gamma(float(noise.shape), 1.0 / float(noise.rate), size=(S, 1))
    recal = result.recalibration
    if recal is not None:  # the latent deviation and the noise, scaled per point
        m = latent(result, columns)[0]
        eps = rng.normal(size=(S, n)) / np.sqrt(tau)
        w = rng.gamma(0.5 * recal.dof, 2.0 / recal.dof, size=(S, n))
        y = m + recal.scale * (f - m + eps) / np.sqrt(w)
    else:
        tau = tau * result.likelihood.precision_draws(
            result.likelihood_state, result.encodings, result.kinds, columns, rng, S, n
        )
        y = f + rng.normal(size=(S, n)) / np.sqrt(tau)
    return (y * result.y_scale + result.y_mean).T
