"""``funbat demo``: fit built-in synthetic data and report accuracy and calibration."""

from __future__ import annotations

from typing import Annotated

import typer

from funbat import InputError

from ._common import MODEL, MODELS


def demo(
    n: Annotated[int, typer.Option("--n", help="Number of synthetic observations.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data and the fit.")] = 0,
    model: Annotated[str, MODEL] = "tucker",
    rank: Annotated[int, typer.Option("--rank", "-r", help="Rank per mode.")] = 3,
):
    """Fit a model to built-in synthetic data and report test accuracy and calibration."""
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if rank < 1:
        raise InputError(f"rank must be a positive integer; got {rank}")
    from funbat.demo import run_demo

    res = run_demo(n=n, seed=seed, model=model, rank=rank)
    typer.echo(
        f"funbat demo: {model} rank {rank} on {res['n_train']} synthetic training points "
        f"({res['n_test']} held out)\n"
        f"  test RMSE          {res['rmse']:.4f}  (true noise std {res['noise_std']:.4f})\n"
        f"  fitted noise std   {res['fitted_noise_std']:.4f}\n"
        f"  95% coverage       {res['coverage95']:.3f}\n"
        f"  test NLPD          {res['nlpd']:.3f}\n"
        f"  fit time           {res['fit_time_s']:.1f} s ({res['n_iter']} sweeps, compilation included)"
    )
