"""Pictures of a fitted model: each mode's latent functions with 95% bands.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot: no
global state, no GUI backend needed, and saving renders with Agg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import InputError
from .files import atomic_write

__all__ = ["plot_latent_functions", "save_figure"]

_Z95 = 1.959963984540054
_NS_PER_DAY = 86_400 * 10**9


def _as_dates(days: np.ndarray) -> np.ndarray:
    return (np.round(np.asarray(days) * _NS_PER_DAY).astype(np.int64)).astype("datetime64[ns]")


def plot_latent_functions(model, *, n_points: int | None = None, modes=None, figsize=None):
    """One panel per mode: the posterior mean of each latent function ``u^k_r`` and its
    95% band over the mode's training range, with the training coordinates marked.

    Parameters
    ----------
    model : a fitted FunBaT or FunBaTCP.
    n_points : evaluation points per mode; default: twice the mode's unique training
        coordinates, between 300 and 4000 (enough to resolve short lengthscales).
    modes : optional list of mode names or indices to draw (default all).
    figsize : optional matplotlib figure size.

    Returns
    -------
    matplotlib Figure.
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

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
        ks = []
        for m in modes:
            if isinstance(m, str) and m not in names:
                raise InputError(f"mode {m!r} does not exist; the modes are {names}")
            ks.append(names.index(m) if isinstance(m, str) else int(m))
    figsize = figsize or (7.5, 2.6 * len(ks))
    fig = Figure(figsize=figsize)
    axes = fig.subplots(len(ks), 1, squeeze=False)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, k in zip(axes[:, 0], ks):
        enc = model._encodings[k]
        train = enc.unscaled(enc.unique)
        lo, hi = float(train.min()), float(train.max())
        pad = 0.0 if hi > lo else 1.0
        n = n_points or int(np.clip(2 * enc.unique.size, 300, 4000))
        grid = np.linspace(lo - pad, hi + pad, n)
        query = _as_dates(grid) if enc.is_datetime else grid
        mean, std = model.latent_functions(k, query)
        xs = query if enc.is_datetime else grid
        marks = _as_dates(train) if enc.is_datetime else train
        for r in range(mean.shape[1]):
            c = colors[r % len(colors)]
            ax.plot(xs, mean[:, r], color=c, lw=1.4, label=f"$u_{{{r + 1}}}$")
            ax.fill_between(
                xs, mean[:, r] - _Z95 * std[:, r], mean[:, r] + _Z95 * std[:, r], color=c, alpha=0.2
            )
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
            import matplotlib.dates as mdates

            loc = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(loc)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    handles, labels = max(
        (ax.get_legend_handles_labels() for ax in axes[:, 0]), key=lambda hl: len(hl[0])
    )
    fig.suptitle(f"{type(model).__name__} latent functions, 95% bands", fontsize=11)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.965),
        ncol=len(labels),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / figsize[1]))
    return fig


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
