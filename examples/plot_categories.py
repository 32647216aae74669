"""
A discrete mode: categories next to continuous coordinates
==========================================================

Mix a mode of categories (here: which sensor took the measurement) with continuous
modes, read the learned value of each category with its uncertainty, and check it
against the truth.

A discrete mode has no notion of distance between its values: sensor 3 is not
"between" sensors 2 and 4. Its latent functions are then just one vector per
category, with an independent ``N(0, I)`` prior each, as in the classic Bayesian
Tucker decomposition, while the continuous modes keep their GP priors.
"""

# %%
# The data
# --------
# Synthetic measurements ``y = g_c f(x0, x1) + noise`` of a smooth rank-2 field ``f``
# (:func:`funbat.datasets.make_synthetic`) by eight sensors, each with its own gain
# ``g_c``; some sensors took many more measurements than others. The sensors are
# coded as integers, so funbat would read the column as a coordinate: ``discrete=``
# declares it a column of categories (text, categorical and boolean columns are
# discrete anyway).

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from funbat import FunBaT, InputError
from funbat.datasets import make_synthetic
from funbat.plot import plot_latent_functions

data = make_synthetic(12_000, n_modes=2, rank=2, noise_std=0.1, seed=1)
rng = np.random.default_rng(1)
sensors = np.arange(101, 109)
gains = rng.uniform(0.3, 1.5, size=sensors.size)
share = rng.dirichlet(np.full(sensors.size, 1.0))
which = rng.choice(sensors.size, size=len(data.y), p=share)
X = data.X.assign(sensor=sensors[which])[["sensor", "x0", "x1"]]
y = gains[which] * data.f + data.noise_std * rng.normal(size=len(data.y))
print(X.head())
print("entries per sensor:", dict(zip(sensors.tolist(), np.bincount(which).tolist())))

# %%
# Fitting
# -------
# The gain makes ``y`` a product of a sensor factor and the field, so the sensor mode
# needs rank 1, the field's modes rank 2: ``rank`` takes one value per mode (a
# multilinear rank).

N = len(y)
perm = np.random.default_rng(0).permutation(N)
test, train = perm[: N // 5], perm[N // 5 :]
model = FunBaT(rank=[1, 2, 2], discrete=["sensor"], random_state=0)
model.fit(X.iloc[train], y[train])
print(f"mode kinds: {dict(zip(model.modes_, model.mode_kinds_))}")
print(f"{model.n_iter_} sweeps in {model.fit_time_:.1f} s (converged: {model.converged_})")
mean = model.predict(X.iloc[test])
lower, upper = model.predict_interval(X.iloc[test], level=0.95)
print(f"test RMSE: {np.sqrt(np.mean((mean - y[test]) ** 2)):.4f} "
      f"(true noise std {data.noise_std})")
print(f"coverage of the 95% intervals: {np.mean((y[test] >= lower) & (y[test] <= upper)):.1%}")

# %%
# The noise std is the floor for the test RMSE: no model predicts the noise.
#
# The latent values of the categories
# -----------------------------------
# ``latent_functions`` takes the categories themselves as coordinates. For a discrete
# mode :func:`funbat.plot.plot_latent_functions` draws the posterior mean per category
# with a 95% error bar.

fig = plot_latent_functions(model, modes=["sensor"], figsize=(7, 3))

# %%
# A Tucker model fixes a mode's functions only up to a scale (and, above rank 1, a
# mixing) that the core absorbs, so compare the learned values with the true gains
# up to one factor: a least-squares fit through the origin. The points fall on the
# line. The error bars are small because each sensor's one value is informed by all
# of its entries; the printed table shows them widening for the sensors with the
# fewest entries.

u, u_std = model.latent_functions("sensor", sensors)
u, u_std = u[:, 0], u_std[:, 0]
factor = (u @ gains) / (gains @ gains)
resid = u / factor - gains
counts = np.bincount(which[train], minlength=sensors.size)
print(pd.DataFrame({"sensor": sensors, "training entries": counts, "true gain": gains,
                    "learned value": u, "posterior std": u_std}).round(4).to_string(index=False))
print(f"learned value / true gain: {factor:.3f}; "
      f"largest deviation from the line, in units of the gain: {np.abs(resid).max():.4f}")

fig, ax = plt.subplots(figsize=(5, 4.4), layout="constrained")
ax.errorbar(gains, u, yerr=1.96 * u_std, fmt="o", capsize=3)
for g, v, s in zip(gains, u, sensors):
    ax.annotate(str(s), (g, v), textcoords="offset points", xytext=(5, -10), fontsize=8)
line = np.array([0, gains.max() * 1.05])
ax.plot(line, factor * line, "k--", lw=1, label="a fixed multiple of the gain")
ax.set_xlabel("true gain of the sensor")
ax.set_ylabel("learned latent value (standardised)")
ax.set_title("sensor values against the truth, 95% error bars")
ax.legend(fontsize=8)

# %%
# Unseen categories
# -----------------
# A continuous mode can predict between its training coordinates; a discrete mode
# cannot predict a category it has not seen: nothing in its prior relates a new
# sensor to the others. funbat refuses it with a clear error rather than guessing.

try:
    model.predict(X.iloc[:1].assign(sensor=999))
except InputError as err:
    print(f"InputError: {err}")
plt.show()
