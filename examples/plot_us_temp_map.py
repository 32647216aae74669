"""
A spatial mode: US temperatures on a map
========================================

Fit yearly mean temperatures of US cities with a *spatial* mode (latitude and
longitude together) and a year mode, draw the spatial latent functions as maps, and
predict the temperature of one year on a whole latitude-longitude grid, with its
uncertainty.

Latitude and longitude could be two separate modes, but then every latent function
would be a product of a function of latitude and a function of longitude. A spatial
mode instead treats each location as a point in the plane with a GP prior on the
Euclidean distance (one lengthscale per column): its functions can be any smooth
surface. The year mode is an ordinary continuous mode.
"""

# %%
# The data
# --------
# Each row is one city-year: the latitude and longitude (min-max scaled to [0, 1] by
# the source, so the map below is in those units), the calendar year, and the yearly
# mean temperature in degrees Fahrenheit. Nearby cities share a binned location, so a
# location-year can hold several entries.

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from funbat import FunBaT
from funbat.datasets import shared_data_dir
from funbat.plot import plot_latent_functions, spatial_map

df = pd.read_csv(shared_data_dir() / "us_temp.csv")
X, y = df[["lat01", "lon01", "year"]], df["temp_f"].to_numpy()
locations = df[["lat01", "lon01"]].drop_duplicates()
print(f"{len(df)} entries, {len(locations)} locations, "
      f"years {df['year'].min()}-{df['year'].max()}")

# %%
# Fitting with a spatial mode
# ---------------------------
# ``modes=[("lat01", "lon01"), "year"]`` makes the two columns one spatial mode (named
# ``"lat01+lon01"``) and ``year`` a second mode. The split is the paper's protocol
# (split 0: a random fifth of the entries held out).
#
# To keep this example quick, the fit stops after 50 sweeps (``max_iter=50``, half
# the default). The ELBO is then still creeping up (``converged_`` is printed
# False), but the predictions have settled: with the default 100 sweeps the ELBO
# ends a little higher and the test RMSE hardly moves.

N = len(df)
perm = np.random.default_rng(0).permutation(N)
test, train = perm[: N // 5], perm[N // 5 :]

model = FunBaT(rank=3, modes=[("lat01", "lon01"), "year"], max_iter=50, random_state=0)
model.fit(X.iloc[train], y[train])
print(f"modes {model.modes_}, kinds {model.mode_kinds_}")
print(f"{model.n_iter_} sweeps in {model.fit_time_:.1f} s (converged: {model.converged_})")
ell_space, ell_year = model.lengthscales_
print(f"spatial lengthscales: lat01 {ell_space[0]:.3f}, lon01 {ell_space[1]:.3f} "
      f"(scaled units); year {float(ell_year):.2f} years")

mean = model.predict(X.iloc[test])
lower, upper = model.predict_interval(X.iloc[test], level=0.95)
print(f"test RMSE: {np.sqrt(np.mean((mean - y[test]) ** 2)):.3f} °F "
      f"(the target's std: {y[test].std():.3f} °F)")
print(f"coverage of the 95% intervals: {np.mean((y[test] >= lower) & (y[test] <= upper)):.1%}")

# %%
# The spatial latent functions
# ----------------------------
# :func:`funbat.plot.spatial_map` colours each training location by the posterior
# mean (top row) and standard deviation (bottom row) of each of the three spatial
# functions. The functions are identified only up to a linear mixing (the Tucker core
# absorbs it), so read them together: the printed correlations of each function's
# mean with latitude and longitude show how the north-south and east-west gradients
# of temperature are shared among them. The standard deviation is largest at isolated
# locations, far from other cities; the one location far from all the others (top
# right) stretches the colour scales.

u_space, _ = model.latent_functions("lat01+lon01", locations.to_numpy())
for r in range(u_space.shape[1]):
    print(f"spatial u_{r + 1}: correlation with lat01 "
          f"{np.corrcoef(u_space[:, r], locations['lat01'])[0, 1]:+.2f}, with lon01 "
          f"{np.corrcoef(u_space[:, r], locations['lon01'])[0, 1]:+.2f}")

fig, axes = plt.subplots(2, model.ranks_[0], figsize=(11, 6), layout="constrained")
spatial_map(model, "lat01+lon01", ax=axes)
fig.suptitle("spatial latent functions: posterior mean (top) and std (bottom)")

# %%
# The year functions
# ------------------
# The three functions of ``year`` with 95% bands. The learned lengthscale (printed
# above) is short, so the functions follow the year-to-year ups and downs shared by
# the cities rather than a smooth trend; before about 1800 only a few cities have
# records, and there the functions swing widely and their bands are wide.

fig = plot_latent_functions(model, modes=["year"], figsize=(9, 3.4))

# %%
# A temperature map for one year
# ------------------------------
# The model predicts at any location, not only at the cities it was trained on: here
# on a 60 x 60 grid over the range of the data, for the year 2000 (black dots: the
# training locations). The spatial GP interpolates between the cities over a distance
# set by its lengthscales (printed above, one per column);
# far from every city the spatial functions fall back to their prior, the prediction
# to a featureless level, and the 95% interval widens (right). The printed range of
# the interval's width goes from near the cities to far from them.

year = 2000
lat = np.linspace(df["lat01"].min(), df["lat01"].max(), 60)
lon = np.linspace(df["lon01"].min(), df["lon01"].max(), 60)
LAT, LON = np.meshgrid(lat, lon, indexing="ij")
grid = pd.DataFrame({"lat01": LAT.ravel(), "lon01": LON.ravel(), "year": year})
grid_mean = model.predict(grid).reshape(LAT.shape)
grid_lo, grid_hi = model.predict_interval(grid, level=0.95)
grid_width = (grid_hi - grid_lo).reshape(LAT.shape)

at_cities = model.predict(locations.assign(year=year))
print(f"{year}: predicted temperature at the locations {at_cities.min():.1f} to "
      f"{at_cities.max():.1f} °F; 95% interval width on the grid "
      f"{grid_width.min():.2f} to {grid_width.max():.2f} °F")

fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
for ax, values, label, cmap in [
    (axes[0], grid_mean, "predicted temperature (°F)", "coolwarm"),
    (axes[1], grid_width, "width of the 95% interval (°F)", "viridis"),
]:
    im = ax.pcolormesh(LON, LAT, values, cmap=cmap, shading="auto")
    ax.scatter(locations["lon01"], locations["lat01"], s=6, c="k")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel("longitude (scaled to [0, 1])")
    ax.set_ylabel("latitude (scaled to [0, 1])")
    ax.set_aspect("equal")
axes[0].set_title(f"predicted yearly mean temperature, {year}")
axes[1].set_title("predictive uncertainty")

# %%
# The warming trend
# -----------------
# Averaging the predictions over the training locations, year by year, gives the
# model's mean US temperature, with its year-to-year variation and trend; the
# printed difference compares the mean of 1981-2010 with that of 1901-1930.

years = np.arange(1850, df["year"].max() + 1)
table = locations.merge(pd.DataFrame({"year": years}), how="cross")
national = pd.Series(model.predict(table), index=table["year"]).groupby(level=0).mean()
observed = df[df["year"] >= years[0]].groupby("year")["temp_f"].mean()
change = national.loc[1981:2010].mean() - national.loc[1901:1930].mean()
print(f"mean over the locations, 1981-2010 minus 1901-1930: {change:+.2f} °F")

fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
ax.plot(observed.index, observed.to_numpy(), color="0.6", lw=0.8,
        label="observed mean of the cities reporting that year")
ax.plot(national.index, national.to_numpy(), lw=1.4,
        label=f"model, mean over all {len(locations)} locations")
ax.plot(national.index, national.rolling(11, center=True).mean(), "k--", lw=1,
        label="model, 11-year running mean")
ax.set_xlabel("year")
ax.set_ylabel("temperature (°F)")
ax.set_title("mean temperature over the locations")
ax.legend(fontsize=8)
plt.show()
