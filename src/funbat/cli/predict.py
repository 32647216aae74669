"""``funbat predict``: a model's predictive mean, std and 95% interval for a table's rows
(for a ``bernoulli`` model the mean is the ``probability`` of 1; counts' intervals are
integers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from funbat import InputError

from ._common import DROPNA, MODEL_PATH, QUIET, check_output, say

#: The columns ``predict`` adds to the input rows.
PREDICTION_COLUMNS = ("mean", "std", "lower95", "upper95")

#: ... and for a ``bernoulli`` model, whose mean is the probability of 1.
PROBABILITY_COLUMNS = ("probability", "std", "lower95", "upper95")


def as_training_categories(est, X):
    """Discrete columns as text when the training categories were text: categories
    such as "1", "2" and "x" may read as numbers from another file."""
    import pandas as pd

    X = X.copy()
    for enc in est.result_.encodings:
        if enc.kind != "discrete" or enc.categories is None:
            continue
        s = X[enc.name]
        if all(isinstance(v, str) for v in enc.categories) and not pd.api.types.is_string_dtype(s):
            X[enc.name] = s.astype(str).astype(object)
    return X


def predict(
    model_path: Annotated[Path, MODEL_PATH],
    data: Annotated[
        Path,
        typer.Argument(metavar="DATA", help="CSV or Parquet table with the model's mode columns."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output table (.csv or .parquet).")
    ],
    dropna: Annotated[bool, DROPNA] = False,
    quiet: Annotated[bool, QUIET] = False,
):
    """Write the input rows plus mean (probability for a bernoulli model), std, lower95
    and upper95 columns."""
    from funbat import load
    from funbat.files import missing_rows, read_table, select_columns, write_table

    check_output(output, "table")
    est = load(model_path)
    df = read_table(data)
    columns = est.input_columns()
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise InputError(
            f"the data lacks the model's mode column(s) {', '.join(absent)}; the model's modes "
            f"are {', '.join(est.modes_)} and the data's columns are "
            f"{', '.join(map(str, df.columns))}"
        )
    names = PROBABILITY_COLUMNS if est.likelihood == "bernoulli" else PREDICTION_COLUMNS
    clash = [c for c in names if c in df.columns]
    if clash:
        raise InputError(f"the data already has a column {clash[0]!r}; rename it first")
    bad = missing_rows(df, columns)
    if bad.any() and dropna:
        say(f"dropped {int(bad.sum())} row(s) with missing or infinite values", quiet)
        df = df.loc[~bad]
    X, _, _ = select_columns(df, columns, None, action="predict")
    X = as_training_categories(est, X)
    pred = est.predictive(X)
    out = df.reset_index(drop=True).copy()
    out[names[0]], out["std"] = pred.mean, pred.spread
    out["lower95"], out["upper95"] = pred.interval(0.95)
    write_table(out, output)
    say(f"wrote {len(out)} predictions to {output}", quiet)
