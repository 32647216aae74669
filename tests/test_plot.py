"""Latent-function figures: one panel per mode, bands, training marks, date axes."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from funbat import FunBaT, InputError
from funbat.plot import plot_latent_functions, save_figure


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    n = 120
    lat = rng.uniform(0, 10, n).round(1)
    days = rng.integers(0, 90, n)
    X = pd.DataFrame({"lat": lat, "day": pd.Timestamp("2021-01-01") + pd.to_timedelta(days, "D")})
    y = np.sin(lat / 2) * np.cos(days / 20) + 0.1 * rng.normal(size=n)
    return FunBaT(rank=2, max_iter=8, random_state=0).fit(X, y)


def test_one_panel_per_mode_with_bands_and_marks(model):
    fig = plot_latent_functions(model, n_points=40)
    axes = fig.axes
    assert len(axes) == 2
    for ax, name in zip(axes, ["lat", "day"]):
        assert ax.get_xlabel() == name
        lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("$u")]
        assert len(lines) == 2 and all(len(ln.get_xdata()) == 40 for ln in lines)
        assert len(ax.collections) == 2  # one 95% band per latent function
        marks = [ln for ln in ax.get_lines() if ln.get_label() == "training coordinates"]
        assert len(marks) == 1
    # lat: the curve spans the training range and the marks sit at training coordinates.
    enc = model.result_.encodings[0]
    xs = axes[0].get_lines()[0].get_xdata()
    assert xs[0] == pytest.approx(enc.offset) and xs[-1] == pytest.approx(enc.offset + enc.scale)
    np.testing.assert_allclose(axes[0].get_lines()[-1].get_xdata(), enc.unscaled(enc.unique))
    # day: a real date axis.
    assert isinstance(axes[1].xaxis.get_major_locator(), mdates.AutoDateLocator)
    lo, hi = axes[1].get_xlim()
    assert mdates.num2date(lo).year == 2020 or mdates.num2date(lo).year == 2021
    assert mdates.num2date(hi) < mdates.num2date(lo + 120)


def test_bands_match_latent_functions(model):
    fig = plot_latent_functions(model, n_points=25, modes=["lat"])
    ax = fig.axes[0]
    xs = ax.get_lines()[0].get_xdata()
    mean, std = model.latent_functions("lat", xs)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), mean[:, 1])
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(np.max(mean[:, 0] + 1.959963984540054 * std[:, 0]))


def test_save_figure(model, tmp_path):
    save_figure(plot_latent_functions(model, n_points=20), tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    save_figure(plot_latent_functions(model, n_points=20), tmp_path / "f.svg")
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:500]
    with pytest.raises(InputError, match="cannot save a picture as .xyz"):
        save_figure(plot_latent_functions(model, n_points=20), tmp_path / "f.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_bad_arguments(model):
    with pytest.raises(InputError, match="not fitted"):
        plot_latent_functions(FunBaT())
    with pytest.raises(InputError, match="mode 'depth' does not exist"):
        plot_latent_functions(model, modes=["depth"])
    with pytest.raises(InputError, match="n_points"):
        plot_latent_functions(model, n_points=1)


def test_spatial_maps_and_discrete_error_bars(tmp_path):
    rng = np.random.default_rng(2)
    sites = rng.uniform(size=(7, 2)) * [10.0, 4.0]
    n = 80
    i = rng.integers(0, 7, n)
    X = pd.DataFrame({"a": sites[i, 0], "b": sites[i, 1], "s": rng.choice(["x", "y", "z"], n)})
    y = np.sin(X["a"] / 3).to_numpy() * (X["s"] == "x") + 0.1 * rng.normal(size=n)
    model = FunBaT(rank=2, modes=[("a", "b"), "s"], max_iter=5, random_state=0).fit(X, y)
    fig = plot_latent_functions(model)
    maps = [ax for ax in fig.axes if ax.get_title().startswith("a+b u_")]
    assert sorted(ax.get_title() for ax in maps) == [
        "a+b u_1 mean", "a+b u_1 std", "a+b u_2 mean", "a+b u_2 std"
    ]  # fmt: skip
    enc = model.result_.encodings[0]
    pts = enc.unscaled(enc.unique)
    mean, std = model.latent_functions("a+b", pts)
    for ax in maps:
        r = int(ax.get_title().split("u_")[1][0]) - 1
        (sc,) = ax.collections
        np.testing.assert_allclose(sc.get_offsets(), pts[:, ::-1])  # x: b, y: a
        want = mean if ax.get_title().endswith("mean") else std
        np.testing.assert_allclose(sc.get_array(), want[:, r])
    (disc,) = [ax for ax in fig.axes if "discrete" in ax.get_title()]
    assert [t.get_text() for t in disc.get_xticklabels()] == ["x", "y", "z"]
    m, s = model.latent_functions("s", ["x", "y", "z"])
    bars = disc.containers
    assert len(bars) == 2
    np.testing.assert_allclose(bars[1].lines[0].get_ydata(), m[:, 1])
    save_figure(fig, tmp_path / "k.png")
    assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"
