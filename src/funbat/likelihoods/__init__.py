"""Likelihoods: Gaussian, Student-t, a noise level per coordinate over either, and
yes/no and count data by Polya-Gamma augmentation.

Each implements :class:`funbat.likelihoods.base.Likelihood`; :func:`make_likelihood`
builds the one an estimator's parameters ask for.
"""

from __future__ import annotations

from .base import EntryWeights, Likelihood
from .gamma import DOF_BOUNDS, DOF_START
from .gaussian import Gaussian
from .noise_mode import NoiseMode
from .polya_gamma import Bernoulli, NegativeBinomial, Poisson
from .student_t import StudentT

__all__ = ["DOF_BOUNDS", "DOF_START", "LIKELIHOODS", "Bernoulli", "EntryWeights", "Gaussian",
           "Likelihood", "NegativeBinomial", "NoiseMode", "Poisson", "StudentT",
           "make_likelihood"]  # fmt: skip

#: Likelihoods by the name the estimators' ``likelihood`` parameter takes.
LIKELIHOODS: dict[str, type[Likelihood]] = {
    "gaussian": Gaussian, "student_t": StudentT, "bernoulli": Bernoulli,
    "negative_binomial": NegativeBinomial, "poisson": Poisson,
}  # fmt: skip


def make_likelihood(name: str, noise_mode: int | None = None) -> Likelihood:
    """The likelihood called ``name``, with a noise level per coordinate of mode
    ``noise_mode`` (its position) when given."""
    base = LIKELIHOODS[name]()
    if noise_mode is not None and base.unit_noise:
        from ..data import InputError

        raise InputError(
            f"noise_mode= is for gaussian or student_t noise; likelihood={name!r} has no noise "
            "level to vary: drop noise_mode"
        )
    return base if noise_mode is None else NoiseMode(base, noise_mode)
