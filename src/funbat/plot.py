"""Pictures of a fitted model: each mode's latent functions with their uncertainty.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot: no
global state, no GUI backend needed, and saving renders with Agg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import InputError, mode_position
from .files import atomic_write

__all__ = ["plot_latent_functions", "save_figure", "spatial_map"]

_Z95 = 1.959963984540054
_NS_PER_DAY = 86_400 * 10**9


def _as_dates(days: np.ndarray) -> np.ndarray:
    return (np.round(np.asarray(days) * _NS_PER_DAY).astype(np.int64)).astype("datetime64[ns]")


def plot_latent_functions(model, *, n_points: int | None = None, modes=None, figsize=None):
    """One panel per mode: each latent function ``u^k_r`` with its posterior uncertainty.

    * continuous (and date) modes: the posterior mean and 95% band over the mode's
      training range, training coordinates marked;
    * spatial modes: maps (:func:`spatial_map`): the mode's unique
      training points coloured by each function's posterior mean (top row) and
      standard deviation (bottom row);
    * discrete modes: the posterior mean per category with 95% error bars;
    * with a ``noise_mode`` (and all modes drawn), a last panel: the noise scale at each
      training coordinate of that mode with its 95% interval
      (:meth:`funbat.FunBaT.noise_levels`).

    Parameters
    ----------
    model : a fitted FunBaT or FunBaTCP.
    n_points : evaluation points per continuous mode; default: twice the mode's unique
        training coordinates, between 300 and 4000 (enough to resolve short lengthscales).
    modes : optional list of mode names or indices to draw (default all).
    figsize : optional matplotlib figure size.

    Returns
    -------
    matplotlib Figure, made by pyplot (so ``plt.show()`` and notebooks display it;
    ``plt.close(fig)`` frees it).
    """
    import matplotlib.pyplot as plt

    if not hasattr(model, "elbo_"):
        raise InputError("the model is not fitted yet; call fit before plotting")
    if n_points is not None and (
        isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2
    ):
        raise InputError(f"n_points must be an integer >= 2; got {n_points!r}")
    names = list(model.modes_)
    if modes is None:
        ks = list(range(len(names)))
    else:
        ks = [mode_position(names, m) for m in modes]
    kinds = [model.mode_kinds_[k] for k in ks]
    # a grid: a continuous or discrete mode is one row spanning every column; a spatial
    # mode is two rows (mean, std) of one map per latent function
    rows = [_PANELS[kind][1] for kind in kinds]
    noise_panel = modes is None and getattr(model, "noise_mode_", None) is not None
    rows_all = sum(rows) + noise_panel
    n_cols = max([model.ranks_[k] for k, h in zip(ks, rows) if h > 1] or [1])
    figsize = figsize or (max(7.5, 3.2 * n_cols), 2.6 * rows_all + 0.4)
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(rows_all, n_cols)
    row = 0
    for k, kind, h in zip(ks, kinds, rows):
        _PANELS[kind][0](fig, grid, row, model, k, n_points)
        row += h
    if noise_panel:
        _draw_noise(fig.add_subplot(grid[row, :]), model)
    panels = [ax for ax in fig.axes if ax.get_legend_handles_labels()[0]]
    fig.suptitle(f"{type(model).__name__} latent functions, 95% bands", fontsize=11)
    if panels:
        handles, labels = max(
            (ax.get_legend_handles_labels() for ax in panels), key=lambda hl: len(hl[0])
        )
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncol=len(labels),
            fontsize=8,
            frameon=False,
        )
    return fig


def _colors():
    import matplotlib as mpl

    return mpl.rcParams["axes.prop_cycle"].by_key()["color"]


def _draw_continuous(fig, grid, row, model, k: int, n_points: int | None) -> None:
    """Mean and 95% band of a continuous mode's functions, training coordinates marked;
    a sum kernel's deterministic parts (level, trend, season) summed, dashed."""
    ax = fig.add_subplot(grid[row, :])
    enc = model.result_.encodings[k]
    colors = _colors()
    train = enc.unscaled(enc.unique)
    lo, hi = float(train.min()), float(train.max())
    pad = 0.0 if hi > lo else 1.0
    n = n_points or int(np.clip(2 * enc.unique.size, 300, 4000))
    grid = np.linspace(lo - pad, hi + pad, n)
    query = _as_dates(grid) if enc.is_datetime else grid
    mean, std = model.latent_functions(k, query)
    # a sum kernel's level, trend and season, summed: what each function reverts to
    parts = model.latent_parts(k, query)
    level = sum(parts.values()) if parts else None
    xs = query if enc.is_datetime else grid
    marks = _as_dates(train) if enc.is_datetime else train
    for r in range(mean.shape[1]):
        c = colors[r % len(colors)]
        ax.plot(xs, mean[:, r], color=c, lw=1.4, label=f"$u_{{{r + 1}}}$")
        ax.fill_between(
            xs, mean[:, r] - _Z95 * std[:, r], mean[:, r] + _Z95 * std[:, r], color=c, alpha=0.2
        )
        if level is not None:
            ax.plot(xs, level[:, r], color=c, lw=1.2, ls="--", zorder=3,
                    label=" + ".join(parts) if r == 0 else None)  # fmt: skip
    ax.plot(
        marks,
        np.zeros_like(train),
        "|",
        color="k",
        alpha=0.35,
        ms=6,
        transform=ax.get_xaxis_transform(),
        label="training coordinates",
    )
    ax.set_xlabel(enc.name)
    ax.set_ylabel(f"$u^{{{k + 1}}}$")
    ax.set_title(f"mode {k + 1}: {enc.name} (rank {mean.shape[1]})", fontsize=10)
    ax.grid(alpha=0.25)
    if enc.is_datetime:
        _date_axis(ax)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


#: Most category labels written under a discrete mode's panel.
_MAX_CATEGORY_LABELS = 30


def _draw_discrete(fig, grid, row, model, k: int, n_points=None) -> None:
    """Posterior mean of a discrete mode's functions per category, 95% error bars."""
    ax = fig.add_subplot(grid[row, :])
    enc = model.result_.encodings[k]
    colors = _colors()
    cats = enc.categories
    mean, std = model.latent_functions(k, cats)
    n_cat, R = mean.shape
    x = np.arange(n_cat)
    width = min(0.8 / R, 0.25)
    for r in range(R):
        c = colors[r % len(colors)]
        ax.errorbar(
            x + (r - (R - 1) / 2) * width,
            mean[:, r],
            yerr=_Z95 * std[:, r],
            fmt="o",
            ms=4,
            capsize=2,
            color=c,
            label=f"$u_{{{r + 1}}}$",
        )
    step = max(1, -(-n_cat // _MAX_CATEGORY_LABELS))
    ax.set_xticks(x[::step], [str(v) for v in cats[::step]])
    if max(len(str(v)) for v in cats[::step]) * min(n_cat, _MAX_CATEGORY_LABELS) > 60:
        ax.tick_params(axis="x", labelrotation=45)
    ax.axhline(0.0, color="k", lw=0.6, alpha=0.4)
    ax.set_xlim(-0.6, n_cat - 0.4)
    ax.set_xlabel(f"{enc.name} ({n_cat} categories)")
    ax.set_ylabel(f"$u^{{{k + 1}}}$")
    ax.set_title(f"mode {k + 1}: {enc.name} (discrete, rank {R})", fontsize=10)
    ax.grid(alpha=0.25, axis="y")


def _draw_noise(ax, model) -> None:
    """Noise scale at each training coordinate of the noise mode, with 95% intervals."""
    k = model.modes_.index(model.noise_mode_)
    enc, kind = model.result_.encodings[k], model.mode_kinds_[k]
    t = model.noise_levels(0.95)
    c = _colors()[0]
    err = np.vstack([t["noise_scale"] - t["lower"], t["upper"] - t["noise_scale"]])
    if kind == "spatial":
        x, y = t[enc.columns[0]], t[enc.columns[1]]
        pts = ax.scatter(x, y, c=t["noise_scale"], cmap="viridis", s=18)
        ax.figure.colorbar(pts, ax=ax, label="noise scale")
        ax.set_xlabel(enc.columns[0])
        ax.set_ylabel(enc.columns[1])
    elif kind == "discrete":
        x = np.arange(len(t))
        ax.errorbar(x, t["noise_scale"], yerr=err, fmt="o", ms=4, capsize=2, color=c)
        step = max(1, -(-len(t) // _MAX_CATEGORY_LABELS))
        ax.set_xticks(x[::step], [str(v) for v in t[enc.name][::step]])
        ax.set_xlabel(enc.name)
        ax.set_ylabel("noise scale")
    else:
        x = t[enc.name]
        ax.plot(x, t["noise_scale"], color=c, lw=1.0)
        ax.fill_between(x, t["lower"], t["upper"], color=c, alpha=0.2)
        ax.set_xlabel(enc.name)
        ax.set_ylabel("noise scale")
        if enc.is_datetime:
            _date_axis(ax)
    if kind != "spatial":
        ax.set_yscale("log")  # the levels often span orders of magnitude
    ax.set_title(
        f"noise scale along {enc.name} (target units, 95% intervals; global scale "
        f"{np.sqrt(model.noise_variance_):.3g})",
        fontsize=10,
    )
    ax.grid(alpha=0.25)


def _draw_spatial(fig, grid, row, model, k: int, n_points=None) -> None:
    R = model.ranks_[k]
    axes = np.array([[fig.add_subplot(grid[row + i, j]) for j in range(R)] for i in (0, 1)])
    spatial_map(model, k, ax=axes)


def spatial_map(model, mode, ax=None, cmap="viridis"):
    """Draw a fitted spatial mode's latent functions as maps (for ``funbat plot``).

    One column per latent function: top, the training points coloured by the
    posterior mean; bottom, by the posterior std. Returns the matplotlib figure.
    ``ax`` may be a (2, R) array of axes.
    """
    k = mode_position(model.modes_, mode)
    if model.mode_kinds_[k] != "spatial":
        raise InputError(f"mode {model.modes_[k]!r} is {model.mode_kinds_[k]}, not spatial")
    enc = model.result_.encodings[k]
    pts = enc.unscaled(enc.unique)
    mean, std = model.latent_functions(k, pts)
    R = mean.shape[1]
    own = ax is None
    if own:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(2, R, figsize=(3.2 * R, 5.6), squeeze=False)
    else:
        fig = np.asarray(ax).flat[0].figure
    for r in range(R):
        for row, (vals, what) in enumerate([(mean, "mean"), (std, "std")]):
            a = ax[row][r]
            sc = a.scatter(pts[:, 1], pts[:, 0], c=vals[:, r], cmap=cmap, s=18)
            fig.colorbar(sc, ax=a, shrink=0.8)
            a.set_title(f"{model.modes_[k]} u_{r + 1} {what}", fontsize=9)
            a.set_xlabel(enc.columns[1] if len(enc.columns) > 1 else "")
            a.set_ylabel(enc.columns[0])
    if own:  # a caller's figure keeps its own layout (funbat.plot uses constrained)
        fig.tight_layout()
    return fig


#: Per mode kind: the function drawing its panel(s) and the grid rows they take.
_PANELS = {
    "continuous": (_draw_continuous, 1),
    "spatial": (_draw_spatial, 2),
    "discrete": (_draw_discrete, 1),
}


def save_figure(fig, path, dpi: int = 120) -> None:
    """Save a figure atomically; the format follows the extension (png, pdf, svg...)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise InputError(
            f"cannot save a picture as {path.suffix or 'a file without extension'}; "
            f"use one of {', '.join('.' + s for s in sorted(supported))}"
        )
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi)
