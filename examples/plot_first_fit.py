"""
A first fit
===========

Fit FunBaT to synthetic data drawn from known functions, predict with intervals at
coordinates the model has never seen, and check the predictions against the truth.

Synthetic data are the place to start: the noiseless values and the noise level are
known, so we can tell how close the fit comes to the best any model could do, and
whether its 95% intervals hold 95% of new observations.
"""

# %%
# The data
# --------
# :func:`funbat.datasets.make_synthetic` draws ``y = f(x) + noise`` where ``f`` is a
# rank-2 Tucker model of three modes, each latent function a smooth sine; the first
# mode holds dates (one day per step), the other two numbers in [0, 1]. Each mode has
# 200 unique coordinates, shared by many of the 20,000 entries, and the noise is
# Gaussian with a known standard deviation. The columns of ``X`` are the modes.

import matplotlib.pyplot as plt
import numpy as np

from funbat import FunBaT
from funbat.datasets import make_synthetic
from funbat.plot import plot_latent_functions

data = make_synthetic(20_000, n_modes=3, rank=2, noise_std=0.1, dates=True, seed=0)
X, y = data.X, data.y
print(X.head())
print("unique coordinates per mode:", X.nunique().to_dict())
print(f"true noise std: {data.noise_std}")

# %%
# Holding out unseen coordinates
# ------------------------------
# A random split of the entries would leave almost every coordinate in the training
# set. To test the functional part of the model, hold out *every* entry at a random
# tenth of the unique values of ``x1``: the model never sees those values of ``x1``
# and must interpolate its latent functions of ``x1`` between its neighbours (the GP
# prior is what makes that possible).

rng = np.random.default_rng(0)
x1_values = np.unique(X["x1"])
unseen = rng.choice(x1_values, size=x1_values.size // 10, replace=False)
test = np.isin(X["x1"], unseen)
X_train, y_train = X[~test], y[~test]
X_test, y_test, f_test = X[test], y[test], data.f[test]
print(f"{(~test).sum()} training entries, {test.sum()} test entries "
      f"at {unseen.size} values of x1 never seen in training")

# %%
# Fitting
# -------
# ``rank`` is the number of latent functions per mode; the true model has rank 2.
# ``random_state`` fixes the random initialisation, so the fit is reproducible.
# The kernel (Matérn 3/2 by default), its lengthscale per mode and the noise level
# are learned from the data.

model = FunBaT(rank=2, random_state=0).fit(X_train, y_train)
print(f"{model.n_iter_} sweeps in {model.fit_time_:.1f} s (converged: {model.converged_})")
print(f"learned noise std: {np.sqrt(model.noise_variance_):.4f}")
print("learned lengthscales (days for the date mode):",
      [f"{float(ell):.3g}" for ell in model.lengthscales_])

# %%
# Each sweep of the fit updates every mode's functions, the core and the noise, and
# never decreases the evidence lower bound (ELBO). The first sweeps keep the noise
# level and the lengthscales at their starting values (a warm-up of
# ``min(10, max_iter // 2)`` sweeps); the jump that follows is the noise level being
# learned. The right panel shows how far each sweep's ELBO is below the last one, on a
# log scale: ``converged_`` is False when ``max_iter`` (100 by default) stopped the
# sweeps before the ELBO's change per sweep fell below ``tol`` times its size.

sweeps = np.arange(1, model.n_iter_ + 1)
print(f"ELBO {model.elbo_:.1f}; change in the last sweep: "
      f"{model.elbo_history_[-1] - model.elbo_history_[-2]:.3g} nats")
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
ax0.plot(sweeps, model.elbo_history_)
ax0.set_xlabel("sweep")
ax0.set_ylabel("ELBO (nats)")
ax0.set_title("ELBO after each sweep")
ax1.semilogy(sweeps[:-1], model.elbo_ - model.elbo_history_[:-1])
ax1.set_xlabel("sweep")
ax1.set_ylabel("final ELBO minus ELBO (nats)")
ax1.set_title("distance to the final ELBO")
for ax in (ax0, ax1):
    ax.grid(alpha=0.3)

# %%
# Predicting at unseen coordinates
# --------------------------------
# ``predict`` gives the predictive mean; ``predict_interval`` the model's own central
# interval (use it, rather than ``mean +- 1.96 std``: the predictive distribution need
# not be Gaussian). No model can predict the noise, so the test RMSE against the noisy
# ``y`` cannot go below the noise std; against the noiseless ``f`` it measures how well
# the functions were recovered.

mean = model.predict(X_test)
lower, upper = model.predict_interval(X_test, level=0.95)
rmse_y = np.sqrt(np.mean((mean - y_test) ** 2))
rmse_f = np.sqrt(np.mean((mean - f_test) ** 2))
coverage = np.mean((y_test >= lower) & (y_test <= upper))
print(f"test RMSE against y: {rmse_y:.4f} (true noise std {data.noise_std})")
print(f"test RMSE against the noiseless f: {rmse_f:.4f}")
print(f"coverage of the 95% intervals: {coverage:.1%}")

# %%
# The predictions against the truth for a random 300 of the test entries, with their
# 95% intervals: the points lie along the diagonal, and the intervals are about as
# wide as the noise (the latent functions are pinned down well, even at the unseen
# values of ``x1``).

show = rng.choice(test.sum(), size=300, replace=False)
fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
ax.errorbar(f_test[show], mean[show],
            yerr=[mean[show] - lower[show], upper[show] - mean[show]],
            fmt="o", ms=2.5, elinewidth=0.6, alpha=0.6, label="prediction, 95% interval")
lim = [f_test.min() - 0.3, f_test.max() + 0.3]
ax.plot(lim, lim, "k--", lw=1, label="prediction = truth")
ax.set_xlim(lim)
ax.set_ylim(lim)
ax.set_xlabel("true noiseless value f")
ax.set_ylabel("predicted value")
ax.set_title("held-out entries at unseen x1")
ax.legend(loc="upper left", fontsize=8)

# %%
# The learned latent functions
# ----------------------------
# :func:`funbat.plot.plot_latent_functions` draws each mode's functions with 95% bands
# over the mode's range; the ticks at the bottom of each panel mark its training
# coordinates. Tucker functions are identified only up to a rotation within each mode
# (the core absorbs it), so they need not match the true sines one by one; what is
# identified is their span. With 18,000 entries on 200 coordinates per mode the
# bands are narrow: each function is pinned down by many entries, and between two
# training coordinates by the smoothness of its GP prior.

fig = plot_latent_functions(model)
plt.show()
