"""``funbat fit``: fit a model to a table and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from funbat import InputError

from ._common import (
    COORDS,
    DISCRETE,
    DROPNA,
    KEEP_DUPLICATES,
    KERNEL,
    LEARN_INTERCEPT,
    LIKELIHOOD,
    MAX_ITER,
    MAX_RANK,
    MODEL,
    N_INIT,
    NOISE_MODE,
    QUIET,
    RANK,
    RECALIBRATE,
    SEED,
    TARGET,
    TRAINING_DATA,
    Progress,
    check_output,
    dask_training_data,
    describe_modes,
    fmt_rank,
    load_training_table,
    make_estimator,
    parse_coords,
    parse_list,
    say,
)


def fit(
    data: Annotated[Path, TRAINING_DATA],
    target: Annotated[str, TARGET],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the model.")],
    coords: Annotated[str | None, COORDS] = None,
    discrete: Annotated[str | None, DISCRETE] = None,
    model: Annotated[str, MODEL] = "tucker",
    rank: Annotated[str, RANK] = "3",
    max_rank: Annotated[int | None, MAX_RANK] = None,
    n_init: Annotated[int, N_INIT] = 1,
    kernel: Annotated[str, KERNEL] = "matern32",
    max_iter: Annotated[int, MAX_ITER] = 100,
    seed: Annotated[int, SEED] = 0,
    likelihood: Annotated[str, LIKELIHOOD] = "gaussian",
    noise_mode: Annotated[str | None, NOISE_MODE] = None,
    recalibrate: Annotated[bool, RECALIBRATE] = True,
    learn_intercept: Annotated[bool, LEARN_INTERCEPT] = False,
    keep_duplicates: Annotated[bool, KEEP_DUPLICATES] = False,
    dropna: Annotated[bool, DROPNA] = False,
    quiet: Annotated[bool, QUIET] = False,
    dask: Annotated[
        bool,
        typer.Option(
            "--dask", help="DATA is Parquet (a path or quoted glob): fit on a Dask cluster."
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="With --dask: the scheduler's address [default: local]."),
    ] = None,
):
    """Fit a model to a table and save it (a zip of JSON + .npy arrays, no pickle)."""
    from funbat import save

    check_output(output, "model")
    _, modes = parse_coords(coords)
    disc = parse_list(discrete, "--discrete")
    est = make_estimator(
        model, rank, kernel, max_iter, seed, modes, disc, likelihood, noise_mode, recalibrate,
        keep_duplicates, max_rank, n_init, learn_intercept,
    )
    if dask:
        X, y, client = dask_training_data(data, target, coords, dropna, scheduler)
    elif scheduler is not None:
        raise InputError("--scheduler needs --dask")
    else:
        X, y = load_training_table(data, target, coords, dropna, quiet, disc)
        y, client = y.to_numpy(), None
    bar = Progress(max_iter * n_init, quiet)
    try:
        est.fit(X, y, callback=bar)
    finally:
        bar.close()
        if client is not None:
            client.close()
    save(est, output)
    status = "converged" if est.converged_ else "stopped at --max-iter"
    say(
        f"fitted {type(est).__name__} rank {fmt_rank(est.ranks_)} on {est.n_train_} rows, "
        f"modes {describe_modes(est)}: ELBO {est.elbo_:.6g} after {est.n_iter_} sweeps "
        f"({status}) in {est.fit_time_:.1f} s; saved {output}",
        quiet,
    )
