"""``funbat plot``: draw a saved model's latent functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import MODEL_PATH, QUIET, check_output, say


def plot(
    model_path: Annotated[Path, MODEL_PATH],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file (.png, .pdf, .svg).")],
    points: Annotated[
        int | None,
        typer.Option(
            "--points",
            help="Evaluation points per mode [default: 2 per training coordinate, 300-4000].",
        ),
    ] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of raster images.")] = 120,
    quiet: Annotated[bool, QUIET] = False,
):
    """Draw each mode's latent functions with 95% bands, training coordinates marked."""
    from funbat import load
    from funbat.plot import plot_latent_functions, save_figure

    check_output(output, "image")
    est = load(model_path)
    fig = plot_latent_functions(est, n_points=points)
    save_figure(fig, output, dpi=dpi)
    say(f"wrote {output}", quiet)
