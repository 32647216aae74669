"""Model choice: fit a small grid of ranks, kernels (and noise models), keep the best.

The ELBO is a lower bound on the log marginal likelihood of the same data under each
candidate model, so candidates fitted to the same data are compared by ``elbo_``
(higher is better). Cross-validated NLPD (lower is better) judges held-out predictive
densities instead; it costs ``cv`` fits per candidate.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold

from .data import InputError

__all__ = ["select_model"]


def _rows(X, idx):
    return X.iloc[idx] if hasattr(X, "iloc") else np.asarray(X)[idx]


def select_model(
    estimator,
    X,
    y,
    *,
    ranks=(2, 3),
    kernels=("matern32",),
    likelihoods=None,
    noise_modes=None,
    criterion="elbo",
    cv=3,
    random_state=0,
):
    """Fit ``estimator`` for every (rank, kernel) and return the best, and what was tried.

    Parameters
    ----------
    estimator : an unfitted :class:`funbat.FunBaT` or :class:`funbat.FunBaTCP`; its other
        parameters (modes, lengthscales...) are kept.
    X, y : training data.
    ranks : ranks to try (ints, per-mode tuples for Tucker, or ``"auto"``: the rank
        learned, ``docs/guide/rank.md``; its ELBO compares with those of fixed ranks).
    kernels : kernel names to try (``"matern12"``, ``"matern32"``, ``"matern52"``).
    likelihoods : noise models to try (``"gaussian"``, ``"student_t"``); None keeps the
        estimator's. Both ELBOs bound the log marginal likelihood of the same data, so
        they compare; with ``"nlpd"`` each candidate is scored by its own predictive.
    noise_modes : ``noise_mode`` values to try (None for one noise level, or a mode's
        name or position, see :class:`funbat.FunBaT`); None keeps the estimator's.
    criterion : ``"elbo"`` (fit once on all data; higher wins) or ``"nlpd"`` (``cv``-fold
        cross-validated negative log predictive density; lower wins).
    cv : folds for ``"nlpd"``.
    random_state : seed of the folds.

    Returns
    -------
    best : the winning estimator, fitted on all of ``X, y``.
    table : DataFrame, one row per candidate: rank, kernel, likelihood, noise_mode, elbo,
        cv_nlpd (for ``"nlpd"``), n_iter, fit_time; sorted best first.
    """
    if criterion not in ("elbo", "nlpd"):
        raise InputError(f"criterion must be 'elbo' or 'nlpd'; got {criterion!r}")
    if likelihoods is None:
        likelihoods = (estimator.likelihood,)
    if noise_modes is None:
        noise_modes = (estimator.noise_mode,)
    y = np.asarray(y, float)
    rows, fitted = [], []
    for rank, kern, lik, nm in itertools.product(ranks, kernels, likelihoods, noise_modes):
        model = clone(estimator).set_params(rank=rank, kernel=kern, likelihood=lik, noise_mode=nm)
        row = {"rank": rank, "kernel": kern, "likelihood": lik, "noise_mode": nm}
        if criterion == "nlpd":
            scores = []
            folds = KFold(cv, shuffle=True, random_state=random_state).split(np.arange(y.size))
            for tr, te in folds:
                m = clone(model).fit(_rows(X, tr), y[tr])
                scores.append(m.predictive(_rows(X, te)).nlpd(y[te]))
            row["cv_nlpd"] = float(np.mean(scores))
        t0 = time.perf_counter()
        model.fit(X, y)
        row.update(elbo=model.elbo_, n_iter=model.n_iter_, fit_time=time.perf_counter() - t0)
        rows.append(row)
        fitted.append(model)
    table = pd.DataFrame(rows)
    key = table["elbo"].to_numpy() if criterion == "elbo" else -table["cv_nlpd"].to_numpy()
    order = np.argsort(-key, kind="stable")
    best = fitted[int(order[0])]
    return best, table.iloc[order].reset_index(drop=True)
