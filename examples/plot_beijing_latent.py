"""
Latent functions of Beijing air quality
=======================================

Fit FunBaT to daily PM2.5 concentrations in Beijing indexed by air temperature, air
pressure and date, score it on held-out entries, and read the learned functions of
each mode with their uncertainty.

Each observation is one station-day: its coordinates are that day's temperature (°C),
pressure (hPa) and date, its target the PM2.5 concentration standardised by the
source (``pm25_z``, a z-score). The three coordinates are real numbers, not indices
into a grid: a temperature or a date that no training entry has can still be
predicted, because every latent function has a Gaussian-process prior.
"""

# %%
# The data
# --------
# ``parse_dates`` makes ``date`` a datetime column, which funbat reads as continuous
# time in days. Several rows can share all three coordinates (stations on the same day
# in the same weather bin): repeated coordinates are normal input.

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from funbat import FunBaT
from funbat.datasets import shared_data_dir
from funbat.plot import plot_latent_functions

df = pd.read_csv(shared_data_dir() / "beijing_pm25.csv", parse_dates=["date"])
X, y = df[["temp_c", "pres_hpa", "date"]], df["pm25_z"].to_numpy()
print(f"{len(df)} entries; unique coordinates per mode: {X.nunique().to_dict()}")

# %%
# A held-out split
# ----------------
# The paper's protocol: a random fifth of the entries for testing, the rest for
# training (split 0 of the five; ``np.random.default_rng(s)`` gives split ``s``).

N = len(df)
perm = np.random.default_rng(0).permutation(N)
test, train = perm[: N // 5], perm[N // 5 :]

# %%
# Fitting a Tucker model of rank 3
# --------------------------------
# Rank 3 gives each mode three latent functions, combined by a 3 x 3 x 3 Tucker core.
# Each function's lengthscale is learned (reported in the mode's units: °C, hPa, days).

model = FunBaT(rank=3, random_state=0).fit(X.iloc[train], y[train])
print(f"{model.n_iter_} sweeps in {model.fit_time_:.1f} s (converged: {model.converged_})")
for name, ell in zip(model.modes_, model.lengthscales_):
    print(f"lengthscale of {name}: {float(ell):.3g}")

mean = model.predict(X.iloc[test])
lower, upper = model.predict_interval(X.iloc[test], level=0.95)
rmse = np.sqrt(np.mean((mean - y[test]) ** 2))
print(f"test RMSE: {rmse:.4f} (the target's std on the test entries: {y[test].std():.4f})")
print(f"coverage of the 95% intervals: {np.mean((y[test] >= lower) & (y[test] <= upper)):.1%}")

# %%
# The target is a z-score, so predicting its mean everywhere would give an RMSE close
# to 1 (the printed std); the model's printed RMSE is a fraction of that.
#
# The latent functions
# --------------------
# Each panel shows one mode's three functions, posterior mean and 95% band, over the
# range of its training coordinates (ticks at the bottom). The functions are in the
# model's standardised units and are identified only up to a linear mixing within each
# mode (the core absorbs it), so read their shapes, not their signs or levels:
#
# * **temperature** and **pressure**: the functions change slowly, with a few
#   marked transitions; the bands widen at the extremes, where few days were that
#   cold, hot, low or high;
# * **date**: the functions vary from day to day. The printed lengthscale of the date
#   mode is a few days, the time scale of the weather episodes in which pollution
#   builds up and is cleared by a change of wind.

fig = plot_latent_functions(model)

# %%
# One winter up close
# -------------------
# Over a single heating season: the daily mean of the observed ``pm25_z`` over the
# stations (grey, right axis) rises and collapses within a few days, again and again.
# What temperature and pressure do not explain of such an episode is carried by the
# date functions, whose largest excursions fall on the largest episodes.

days = pd.date_range("2015-11-01", "2016-02-29", freq="D")
u_mean, u_std = model.latent_functions("date", days)
observed = df[df["date"].between(days[0], days[-1])].groupby("date")["pm25_z"].mean()

fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
for r in range(u_mean.shape[1]):
    line, = ax.plot(days, u_mean[:, r], lw=1.3, label=f"$u_{{{r + 1}}}$(date)")
    ax.fill_between(days, u_mean[:, r] - 1.96 * u_std[:, r], u_mean[:, r] + 1.96 * u_std[:, r],
                    color=line.get_color(), alpha=0.2)
ax.set_ylabel("date function (standardised)")
ax.set_xlabel("date")
ax2 = ax.twinx()
ax2.plot(observed.index, observed.to_numpy(), color="0.4", lw=1.0, ls="--",
         label="observed daily mean")
ax2.set_ylabel("observed pm25_z, daily mean")
ax.set_title("date functions over the winter 2015/16, with 95% bands")
locator = mdates.AutoDateLocator()
ax.xaxis.set_major_locator(locator)
ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
fig.legend(handles=ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0],
           loc="outside lower center", fontsize=8, ncol=4, frameon=False)

# %%
# Seasonality in the date functions
# ---------------------------------
# How much the date functions vary within each calendar month, pooled over the four
# years: the standard deviation over the days of that month of each function's
# posterior mean (printed below). The largest values fall in winter, in the heating
# season (mid-November to mid-March), when the largest smog episodes come and go; the
# summer months are calmer.

all_days = pd.DatetimeIndex(np.unique(df["date"]))
u_all, _ = model.latent_functions("date", all_days)
by_month = pd.DataFrame(u_all, index=all_days).groupby(all_days.month).std()
by_month.columns = [f"u_{r + 1}" for r in range(u_all.shape[1])]
print("std of each date function within each calendar month:")
print(by_month.round(2).T.to_string())
print("month with the most variable date functions (summed variance):",
      by_month.pow(2).sum(axis=1).idxmax())

fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
width = 0.8 / by_month.shape[1]
for r, column in enumerate(by_month.columns):
    ax.bar(by_month.index + (r - 1) * width, by_month[column], width, label=f"${column}$")
ax.set_xticks(range(1, 13), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
ax.set_xlabel("calendar month")
ax.set_ylabel("std within the month")
ax.set_title("day-to-day variation of the date functions, by month")
ax.legend(fontsize=8)
plt.show()
