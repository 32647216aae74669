"""``funbat evaluate``: test metrics over random 80/20 splits of a table."""

from __future__ import annotations

import json
import warnings
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
    load_training_table,
    make_estimator,
    parse_coords,
    parse_list,
)


def evaluate(
    data: Annotated[Path, TRAINING_DATA],
    target: Annotated[str, TARGET],
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
    splits: Annotated[
        int, typer.Option("--splits", "-s", help="Number of random 80/20 splits.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: Annotated[bool, QUIET] = False,
):
    """Random 80/20 splits (the paper's protocol): test RMSE, MAE, NLPD, 95% coverage."""
    from funbat.evaluation import METRICS, evaluate_splits, summarise

    if splits < 1:
        raise InputError(f"--splits must be a positive integer; got {splits}")
    _, modes = parse_coords(coords)
    disc = parse_list(discrete, "--discrete")

    def make():
        return make_estimator(
            model, rank, kernel, max_iter, seed, modes, disc, likelihood, noise_mode, recalibrate,
            keep_duplicates, max_rank, n_init, learn_intercept,
        )

    make()  # validate before reading data
    X, y = load_training_table(data, target, coords, dropna, quiet, disc)
    mode_names = (
        list(X.columns)
        if modes is None
        else ["+".join(m) if isinstance(m, tuple) else m for m in modes]
    )
    header = f"{'split':>5} {'n_train':>8} {'n_test':>7} " + " ".join(f"{m:>10}" for m in METRICS)

    def row(label, values):
        return f"{label:>5} {'':>8} {'':>7} " + " ".join(f"{v:>10.4f}" for v in values)

    if not as_json:
        typer.echo(f"{data.name}: target {target}, modes {', '.join(mode_names)}, {len(X)} rows")
        typer.echo(header)

    def on_split(res):
        if not as_json:
            typer.echo(
                f"{res['split']:>5} {res['n_train']:>8} {res['n_test']:>7} "
                + " ".join(f"{res[m]:>10.4f}" for m in METRICS)
            )

    with warnings.catch_warnings(record=True) as held:  # shown after the table
        results = evaluate_splits(make, X, y.to_numpy(), n_splits=splits, on_split=on_split)
    summary = summarise(results)
    if as_json:
        payload = {
            "data": str(data),
            "target": target,
            "modes": mode_names,
            "discrete": disc or [],
            "model": model,
            "rank": rank,
            "kernel": kernel,
            "max_iter": max_iter,
            "seed": seed,
            "splits": results,
            "summary": summary,
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(row("mean", [summary[m]["mean"] for m in METRICS]))
        typer.echo(row("std", [summary[m]["std"] for m in METRICS]))
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
