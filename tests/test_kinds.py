"""Spatial and discrete modes through the estimator; sampling; model selection."""

import numpy as np
import pandas as pd
import pytest

from funbat import FunBaT, FunBaTCP, InputError
from funbat.selection import select_model


def _spatial_data(seed=0, n_points=25, n_times=30):
    rng = np.random.default_rng(seed)
    P = rng.uniform(size=(n_points, 2)) * [10.0, 4.0]  # anisotropic units
    t = np.linspace(0.0, 1.0, n_times)
    f = np.sin(P[:, 0] / 3.0)[:, None] * np.cos(3 * t)[None] + (P[:, 1] / 4.0)[:, None]
    ii, tt = np.meshgrid(np.arange(n_points), np.arange(n_times), indexing="ij")
    keep = rng.uniform(size=ii.size) < 0.7
    ii, tt = ii.reshape(-1)[keep], tt.reshape(-1)[keep]
    X = pd.DataFrame({"a": P[ii, 0], "b": P[ii, 1], "t": t[tt]})
    y = f[ii, tt] + 0.05 * rng.normal(size=ii.size)
    return X, y, P


def test_spatial_mode_fits_and_predicts_at_training_points():
    X, y, P = _spatial_data()
    m = FunBaT(rank=2, modes=[("a", "b"), "t"], max_iter=30, random_state=0).fit(X, y)
    assert m.modes_ == ["a+b", "t"] and m.mode_kinds_ == ["spatial", "continuous"]
    assert m.lengthscales_[0].shape == (2,) and isinstance(m.lengthscales_[1], float)
    pred = m.predict(X)
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.15
    # a training point's prediction is its posterior marginal (the "smoothed" value)
    pts = m.result_.encodings[0].unscaled(m.result_.encodings[0].unique)
    mean, std = m.latent_functions("a+b", pts)
    fit = m.result_.modes[0]
    np.testing.assert_allclose(mean, np.asarray(fit.means), atol=1e-5)
    var = np.diagonal(np.asarray(fit.seconds), axis1=1, axis2=2) - np.asarray(fit.means) ** 2
    np.testing.assert_allclose(std, np.sqrt(np.maximum(var, 0)), atol=1e-5)
    # new points are fine; wrongly shaped points are a clear error
    assert np.all(np.isfinite(m.latent_functions("a+b", [[5.0, 2.0], [20.0, 0.0]])[1]))
    with pytest.raises(InputError, match="spatial"):
        m.latent_functions(0, [1.0, 2.0])


def test_predict_grid_over_spatial_points_and_categories():
    xr = pytest.importorskip("xarray")  # noqa: F841 - predict_grid returns a Dataset
    X, y, P = _spatial_data(n_points=12, n_times=12)
    X = X.assign(site=np.where(X["t"] > 0.5, "late", "early"))
    m = FunBaT(rank=2, modes=[("a", "b"), "t", "site"], max_iter=6, random_state=0).fit(X, y)
    grid = m.predict_grid(t=[0.2, 0.7])  # the training points and both categories
    assert grid["mean"].dims == ("a+b", "t", "site")
    assert grid.sizes["a+b"] == m.result_.encodings[0].unique.shape[0]
    assert list(grid["site"].values) == ["early", "late"]
    pts = np.array([[1.0, 2.0], [5.0, 0.5], [9.0, 3.0]])
    grid = m.predict_grid({"a+b": pts, "t": [0.3], "site": ["late"]})
    np.testing.assert_allclose(grid["a"].values, pts[:, 0])
    flat = pd.DataFrame({"a": pts[:, 0], "b": pts[:, 1], "t": 0.3, "site": "late"})
    np.testing.assert_allclose(grid["mean"].values.reshape(-1), m.predict(flat), rtol=1e-12)
    with pytest.raises(InputError, match="spatial"):
        m.predict_grid({"a+b": [1.0, 2.0]})


def test_spatial_mode_from_arrays_by_position():
    X, y, _ = _spatial_data(n_points=10, n_times=10)
    m = FunBaTCP(rank=2, modes=[(0, 1), 2], max_iter=5, random_state=0).fit(X.to_numpy(), y)
    assert m.modes_ == ["x0+x1", "x2"]
    assert m.predict(X.to_numpy()[:5]).shape == (5,)


def test_discrete_modes_strings_and_declared():
    rng = np.random.default_rng(1)
    n = 400
    station = rng.choice(["north", "south", "east"], size=n)
    day = rng.uniform(0, 30, size=n)
    level = {"north": 1.0, "south": -1.0, "east": 0.3}
    y = np.array([level[s] for s in station]) * np.sin(day / 5) + 0.05 * rng.normal(size=n)
    X = pd.DataFrame({"station": station, "day": day})
    m = FunBaT(rank=2, max_iter=40, random_state=0).fit(X, y)
    assert m.mode_kinds_ == ["discrete", "continuous"] and m.lengthscales_[0] is None
    assert np.sqrt(np.mean((m.predict(X) - y) ** 2)) < 0.2
    with pytest.raises(InputError, match="not seen in training"):
        m.predict(pd.DataFrame({"station": ["west"], "day": [3.0]}))
    codes = pd.DataFrame({"station": pd.factorize(station)[0], "day": day})
    m2 = FunBaT(rank=2, discrete=["station"], max_iter=5).fit(codes, y)
    assert m2.mode_kinds_[0] == "discrete"
    with pytest.raises(InputError, match="not seen"):
        m2.predict(pd.DataFrame({"station": [7], "day": [1.0]}))
    mean, std = m.latent_functions("station", ["east", "north"])
    assert mean.shape == std.shape == (2, 2)


def test_sample_y_matches_predictive_moments():
    X, y, _ = _spatial_data(n_points=12, n_times=15)
    m = FunBaT(rank=2, modes=[("a", "b"), "t"], max_iter=10, random_state=0).fit(X, y)
    Q = pd.concat([X.iloc[:4], pd.DataFrame({"a": [3.0], "b": [1.0], "t": [0.55]})])
    mean, std = m.predict(Q, return_std=True)
    s = m.sample_y(Q, n_samples=4000, random_state=0)
    assert s.shape == (5, 4000)
    np.testing.assert_allclose(s.mean(1), mean, atol=4 * std.max() / np.sqrt(4000) + 1e-3)
    # the draws follow the predictive: 50% inside its 50% interval, 68.27% within the
    # one-sigma spread of return_std (a Student-t when recalibrated: not its std)
    lo, hi = m.predict_interval(Q, 0.5)
    np.testing.assert_allclose(np.mean((s >= lo[:, None]) & (s <= hi[:, None]), 1), 0.5,
                               atol=0.03)  # fmt: skip
    within = np.abs(s - mean[:, None]) <= std[:, None]
    np.testing.assert_allclose(np.mean(within, 1), 0.6827, atol=0.03)
    np.testing.assert_array_equal(s, m.sample_y(Q, n_samples=4000, random_state=0))


def test_select_model_returns_best_by_elbo_with_table():
    X, y, _ = _spatial_data(n_points=10, n_times=12)
    base = FunBaT(modes=[("a", "b"), "t"], max_iter=4, random_state=0)
    best, table = select_model(base, X, y, ranks=(1, 2), kernels=("matern12", "matern32"))
    assert len(table) == 4
    assert list(table.columns[:5]) == ["rank", "kernel", "likelihood", "noise_mode", "elbo"]
    assert table["elbo"].is_monotonic_decreasing
    assert best.elbo_ == table["elbo"].iloc[0]
    with pytest.raises(InputError):
        select_model(base, X, y, criterion="aic")
