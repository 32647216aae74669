"""The immutable records of a fit: what is fixed (:class:`ModelSpec`), what a sweep
changes (:class:`SweepState`), and what a fit returns (:class:`FitResult`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from ..calibration import Recalibration
from ..likelihoods import EntryWeights, Likelihood
from ..modes import ModeKind, ModeState
from ..updates import CoreMoments, NoiseMoments

__all__ = ["FitResult", "ModelSpec", "SweepState"]


class ModelSpec(NamedTuple):
    """What stays fixed during a fit.

    Attributes
    ----------
    structure : str
        ``"tucker"`` or ``"cp"``.
    ranks : tuple of int, (K,)
        Rank per mode.
    kinds : tuple, (K,)
        The :class:`~funbat.modes.ModeKind` of each mode.
    likelihood : Likelihood
        The noise model (:class:`~funbat.likelihoods.Likelihood`).
    core_prior_variance : float or "auto"
        Prior variance of each core entry (Tucker); ``"auto"`` learns it (after the
        warm-up, the exact maximiser of the ELBO given ``q(W)``: ``E[|W|^2] / P``).
    learn_hyperparameters : bool
        Learn lengthscales after the warm-up.
    max_iter : int
        Most sweeps.
    tol : float
        Stop when a sweep changes the ELBO by at most ``tol * |ELBO|`` (after the
        warm-up).
    recalibrate : bool
        Recalibrate the predictive after the fit, where the likelihood allows.
    noise_prior : tuple of float
        ``(a0, b0)`` of the noise precision's Gamma prior.
    warmup : int
        Sweeps that hold the noise and lengthscales at their start.
    transform_moves : bool
        Before each mode update (Tucker) or each sweep (CP), the transformation move of
        :mod:`funbat.inference.moves`: an exact ELBO increase along the directions the
        data cannot see (scale and rotation of a mode against the core).
    rank_learning : bool
        Learn the rank by automatic relevance determination
        (:mod:`funbat.inference.rank`): component precisions with Gamma priors, and
        components whose power dies are pruned during the fit (``ranks`` is then the
        upper bound the fit starts from).
    learn_intercept : bool
        Learn the intercept ``b`` of ``y = b + f + noise`` (standardised units, ``q(b)``
        Gaussian, prior ``N(0, 1)``) instead of fixing it at the targets' mean, so that
        data whose mean is not part of the low-rank structure keep their rank
        (:class:`funbat.updates.OffsetMoments`). Gaussian noise only.
    """

    structure: str
    ranks: tuple[int, ...]
    kinds: tuple[ModeKind, ...]
    likelihood: Likelihood
    core_prior_variance: float | str = 1.0
    learn_hyperparameters: bool = True
    max_iter: int = 100
    tol: float = 1e-5
    recalibrate: bool = True
    noise_prior: tuple[float, float] = (1e-3, 1e-3)
    warmup: int = 10
    transform_moves: bool = False
    rank_learning: bool = False
    learn_intercept: bool = False


class SweepState(NamedTuple):
    """The variational posterior between two block updates.

    modes : (K,) :class:`funbat.modes.ModeState`; core : ``CoreMoments`` (None for CP);
    noise : ``NoiseMoments`` of ``q(tau)``; likelihood : the likelihood's own state;
    weights : :class:`funbat.likelihoods.EntryWeights`; mode_kls : (K,) KL terms;
    elbo : the ELBO after the last update (scalar); sweeps : sweeps done;
    rank : :class:`funbat.inference.rank.RankState` when the rank is learned, else None.
    core_var : the learned prior variance of the core's entries (scalar) when
    ``core_prior_variance="auto"``, else None (the spec's value holds).
    offset : ``OffsetMoments`` of ``q(b)`` when the intercept is learned, else None.
    """

    modes: tuple[ModeState, ...]
    core: CoreMoments | None
    noise: NoiseMoments
    likelihood: Any
    weights: EntryWeights
    mode_kls: tuple[jax.Array, ...]
    elbo: jax.Array
    sweeps: int
    rank: Any = None
    core_var: Any = None
    offset: Any = None


class FitResult(NamedTuple):
    """A fitted posterior: everything prediction, reporting and the model file need.

    structure, ranks, kinds, likelihood : as in :class:`ModelSpec`.
    encodings : (K,) :class:`funbat.data.ModeEncoding`, user units <-> scaled ones.
    modes : (K,) fitted :class:`funbat.modes.ModeState`.
    core : ``CoreMoments`` (None for CP); noise : ``NoiseMoments``.
    likelihood_state : the likelihood's fitted state.
    y_mean, y_scale : the targets' standardisation (``y = y_mean + y_scale * y_std``).
    n_train : training entries.
    elbo_history : (n_iter,) the ELBO after each sweep (nats).
    converged : whether the ELBO met ``tol`` before ``max_iter``.
    recalibration : :class:`funbat.calibration.Recalibration` or None.
    rank : :class:`funbat.inference.rank.RankState` of a fit that learned its rank
    (``ranks`` are then the learned ones), else None.
    core_variance : the learned prior variance of the core's entries of a Tucker fit
    with ``core_prior_variance="auto"``, else None.
    offset : ``OffsetMoments`` of the learned intercept (standardised units: the
    targets' intercept is ``y_mean + y_scale * offset.mean``), else None (the intercept
    is ``y_mean``).
    """

    structure: str
    ranks: tuple[int, ...]
    kinds: tuple[ModeKind, ...]
    likelihood: Likelihood
    encodings: tuple
    modes: tuple[ModeState, ...]
    core: CoreMoments | None
    noise: NoiseMoments
    likelihood_state: Any
    y_mean: float
    y_scale: float
    n_train: int
    elbo_history: np.ndarray
    converged: bool
    recalibration: Recalibration | None
    rank: Any = None
    core_variance: float | None = None
    offset: Any = None

    @property
    def noise_variance(self) -> float:
        """``E[1/tau]`` in standardised units (the noise scale^2 for Student-t noise)."""
        return float(self.noise.rate) / (float(self.noise.shape) - 1.0)
