"""Likelihoods: Gaussian, Student-t, and a noise level per coordinate over either.

Each implements :class:`funbat.likelihoods.base.Likelihood`; :func:`make_likelihood`
builds the one an estimator's parameters ask for.
"""

from __future__ import annotations

from .base import EntryWeights, Likelihood
from .gamma import DOF_BOUNDS, DOF_START
from .gaussian import Gaussian
from .noise_mode import NoiseMode
from .student_t import StudentT

__all__ = ["DOF_BOUNDS", "DOF_START", "LIKELIHOODS", "EntryWeights", "Gaussian", "Likelihood",
           "NoiseMode", "StudentT", "make_likelihood"]  # fmt: skip

#: Likelihoods by the name the estimators' ``likelihood`` parameter takes.
LIKELIHOODS: dict[str, type[Likelihood]] = {"gaussian": Gaussian, "student_t": StudentT}


def make_likelihood(name: str, noise_mode: int | None = None) -> Likelihood:
    """The likelihood called ``name``, with a noise level per coordinate of mode
    ``noise_mode`` (its position) when given."""
    base = LIKELIHOODS[name]()
    return base if noise_mode is None else NoiseMode(base, noise_mode)
