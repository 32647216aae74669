"""The ``funbat`` command line: a thin layer over the library.

Every command parses its arguments, calls the library and prints. Bad input (a
:class:`~funbat.InputError` or a usage error) is reported as one line on stderr with
exit code 2 and no traceback; files are only ever written atomically, so a failed
command writes nothing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from .data import InputError


def _click_exceptions(name: str) -> tuple[type, ...]:
    """``name`` from click and from the click that newer typers vendor as typer._click."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_USAGE_ERRORS = _click_exceptions("UsageError")
_NO_ARGS = _click_exceptions("NoArgsIsHelpError")
_CLICK_ERRORS = _click_exceptions("ClickException")
_ABORT = _click_exceptions("Abort")

__all__ = ["app", "main"]

app = typer.Typer(
    name="funbat",
    help=(
        "Functional Bayesian Tucker decomposition of continuous-indexed tensor data.\n\n"
        "A table with one column per mode (numbers or ISO dates) and a target column is a "
        "tensor observed at continuous coordinates: fit it, predict anywhere with "
        "calibrated uncertainty, evaluate, and plot the latent functions."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_MODELS = ("tucker", "cp")


# -- shared helpers -----------------------------------------------------------------


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        typer.echo(msg, err=True)


def _parse_list(value: str | None, option: str = "--coords") -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise InputError(f"{option} must be comma-separated column names; got {value!r}")
    return items


def _parse_coords(value: str | None) -> tuple[list[str] | None, list | None]:
    """``--coords "lat+lon,year"`` -> the columns to read and the estimator's ``modes``.

    ``+`` joins columns into one spatial mode; ``modes`` is None (one mode per column)
    when there is none.
    """
    items = _parse_list(value)
    if items is None:
        return None, None
    groups = [[c.strip() for c in item.split("+")] for item in items]
    if not all(all(g) for g in groups):
        raise InputError(
            f"--coords must be comma-separated columns, with + joining the columns of a "
            f"spatial mode (e.g. lat+lon,year); got {value!r}"
        )
    columns = [c for g in groups for c in g]
    if all(len(g) == 1 for g in groups):
        return columns, None
    return columns, [tuple(g) if len(g) > 1 else g[0] for g in groups]


def _parse_rank(value: str):
    parts = [p.strip() for p in str(value).split(",")]
    ranks = []
    for p in parts:
        try:
            r = int(p)
        except ValueError:
            raise InputError(
                f"rank must be a positive integer (or one per mode, comma-separated); got {value!r}"
            ) from None
        if r < 1:
            raise InputError(f"rank must be a positive integer; got {r}")
        ranks.append(r)
    return ranks[0] if len(ranks) == 1 else ranks


def _make_estimator(
    model: str,
    rank: str,
    kernel: str,
    max_iter: int,
    seed: int | None,
    modes: list | None = None,
    discrete: list[str] | None = None,
    likelihood: str = "gaussian",
    noise_mode: str | None = None,
    recalibrate: bool = True,
):
    from .estimator import FunBaT, FunBaTCP
    from .kernels import KERNELS
    from .likelihood import LIKELIHOODS

    if model not in _MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(_MODELS)}")
    kernels = _parse_list(kernel) or []
    for k in kernels:
        if k not in KERNELS:
            raise InputError(f"unknown kernel {k!r}; choose one of {', '.join(sorted(KERNELS))}")
    if max_iter < 1:
        raise InputError(f"--max-iter must be a positive integer; got {max_iter}")
    if likelihood not in LIKELIHOODS:
        raise InputError(
            f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}"
        )
    kern = kernels[0] if len(kernels) == 1 else kernels
    cls = FunBaTCP if model == "cp" else FunBaT
    r = _parse_rank(rank)
    if model == "cp" and isinstance(r, list):
        raise InputError("the cp model takes one rank shared by all modes")
    return cls(
        rank=r,
        kernel=kern,
        max_iter=max_iter,
        random_state=seed,
        modes=modes,
        discrete=discrete,
        likelihood=likelihood,
        noise_mode=noise_mode,
        recalibrate=recalibrate,
    )


def _load_training_table(
    data: Path, target: str, coords: str | None, dropna: bool, quiet: bool, discrete=None
):
    from .files import read_table, select_columns

    df = read_table(data)
    columns, _ = _parse_coords(coords)
    X, y, dropped = select_columns(df, columns, target, dropna=dropna)
    for c in discrete or ():
        if c not in X.columns:
            raise InputError(
                f"--discrete column {c!r} is not a mode column; the mode columns are "
                f"{', '.join(map(str, X.columns))}"
            )
    _check_text_columns(X, discrete or ())
    if len(X) < 2:
        after = f" after dropping {dropped} with missing or infinite values" if dropped else ""
        raise InputError(
            f"need at least 2 rows to fit; {str(data)!r} has {len(X)} usable row(s){after}"
        )
    if dropped:
        _say(f"dropped {dropped} row(s) with missing or infinite values", quiet)
    return X, y


def _dask_training_data(data: Path, target: str, coords: str | None, dropna: bool, scheduler):
    """Parquet files read lazily with Dask; a client when a scheduler address is given."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise InputError("--dask needs Dask: pip install 'funbat[dask]'") from None
    if dropna:
        raise InputError("--dropna is not supported with --dask; drop those rows beforehand")
    client = None
    if scheduler is not None:
        from distributed import Client

        client = Client(scheduler)
    cols, _ = _parse_coords(coords)
    X = dd.read_parquet(str(data), columns=None if cols is None else [*cols, target])
    return X, target, client


def _check_text_columns(X, discrete) -> None:
    """Text columns are discrete modes, but one mixing numbers with a few words is more
    likely a numeric column with typos: refuse it unless declared ``--discrete``."""
    import pandas as pd

    for c in X.columns:
        s = X[c]
        if c in discrete or not (
            pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)
        ):
            continue
        values = s.dropna()
        numeric = pd.to_numeric(values, errors="coerce").notna()
        if numeric.any() and not numeric.all():
            raise InputError(
                f"column {c!r} is not numeric (e.g. {values[~numeric].iloc[0]!r}) though most "
                f"of it is numbers; fix those values, or pass --discrete {c} to read its "
                "values as categories"
            )


def _describe_modes(est) -> str:
    kinds = getattr(est, "mode_kinds_", None) or ["continuous"] * len(est.modes_)
    return ", ".join(
        name if kind == "continuous" else f"{name} ({kind})"
        for name, kind in zip(est.modes_, kinds)
    )


def _check_output(path: Path, kind: str) -> None:
    """Fail before any work when the output cannot be written."""
    from .files import TABLE_SUFFIXES

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {str(path)!r}: folder {str(parent)!r} does not exist")
    if path.is_dir():
        raise InputError(f"cannot write {str(path)!r}: it is a folder")
    if kind == "table" and path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(
            f"output {str(path)!r} has an unknown table extension {path.suffix!r}; "
            f"use one of {', '.join(sorted(TABLE_SUFFIXES))}"
        )


class _Progress:
    """tqdm bar with the ELBO on a terminal; silent otherwise."""

    def __init__(self, total: int, quiet: bool, desc: str = "fit"):
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="sweep", leave=False, file=sys.stderr)

    def __call__(self, it: int, elbo: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"ELBO {elbo:.6g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_rank(ranks) -> str:
    return "x".join(str(r) for r in ranks)


# -- commands -----------------------------------------------------------------------

_TARGET = typer.Option("--target", "-t", help="Name of the column to model.")
_COORDS = typer.Option(
    "--coords",
    "-c",
    help=(
        "Comma-separated mode columns; join columns with + for one spatial mode, e.g. "
        "lat+lon,year [default: all but the target, one mode each]."
    ),
)
_MODEL = typer.Option("--model", "-m", help="tucker (FunBaT) or cp (FunBaT-CP).")
_RANK = typer.Option("--rank", "-r", help="Rank per mode: one integer, or one per mode.")
_KERNEL = typer.Option("--kernel", "-k", help="matern12, matern32 or matern52 (or one per mode).")
_MAX_ITER = typer.Option("--max-iter", help="Maximum number of sweeps.")
_SEED = typer.Option("--seed", help="Seed of the random initialisation.")
_DISCRETE = typer.Option(
    "--discrete",
    "-d",
    help="Comma-separated columns to treat as categories (text columns are anyway).",
)
_DROPNA = typer.Option(
    "--dropna", help="Drop rows with missing or infinite values (and say how many)."
)
_QUIET = typer.Option("--quiet", "-q", help="No progress bar or messages.")
_LIKELIHOOD = typer.Option(
    "--likelihood",
    help="Noise model: gaussian, or student_t for heavy-tailed errors.",
)
_NOISE_MODE = typer.Option(
    "--noise-mode",
    help="A mode whose every coordinate (a date, a station) gets its own noise level "
    "('lat+lon' for a spatial mode).",
)
_RECALIBRATE = typer.Option(
    "--recalibrate/--no-recalibrate",
    help="Gaussian noise: give the predictive the Student-t shape of the leave-one-out "
    "errors (point predictions unchanged).",
)


@app.command()
def fit(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="CSV or Parquet table, one row per observation.")
    ],
    target: Annotated[str, _TARGET],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the model.")],
    coords: Annotated[str | None, _COORDS] = None,
    discrete: Annotated[str | None, _DISCRETE] = None,
    model: Annotated[str, _MODEL] = "tucker",
    rank: Annotated[str, _RANK] = "3",
    kernel: Annotated[str, _KERNEL] = "matern32",
    max_iter: Annotated[int, _MAX_ITER] = 100,
    seed: Annotated[int, _SEED] = 0,
    likelihood: Annotated[str, _LIKELIHOOD] = "gaussian",
    noise_mode: Annotated[str | None, _NOISE_MODE] = None,
    recalibrate: Annotated[bool, _RECALIBRATE] = True,
    dropna: Annotated[bool, _DROPNA] = False,
    quiet: Annotated[bool, _QUIET] = False,
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
    from .io import save

    _check_output(output, "model")
    _, modes = _parse_coords(coords)
    disc = _parse_list(discrete, "--discrete")
    est = _make_estimator(
        model, rank, kernel, max_iter, seed, modes, disc, likelihood, noise_mode, recalibrate
    )
    if dask:
        X, y, client = _dask_training_data(data, target, coords, dropna, scheduler)
    elif scheduler is not None:
        raise InputError("--scheduler needs --dask")
    else:
        X, y = _load_training_table(data, target, coords, dropna, quiet, disc)
        y, client = y.to_numpy(), None
    bar = _Progress(max_iter, quiet)
    try:
        est.fit(X, y, callback=bar)
    finally:
        bar.close()
        if client is not None:
            client.close()
    save(est, output)
    status = "converged" if est.converged_ else "stopped at --max-iter"
    _say(
        f"fitted {type(est).__name__} rank {_fmt_rank(est.ranks_)} on {est.n_train_} rows, "
        f"modes {_describe_modes(est)}: ELBO {est.elbo_:.6g} after {est.n_iter_} sweeps "
        f"({status}) in {est.fit_time_:.1f} s; saved {output}",
        quiet,
    )


def _as_training_categories(est, X):
    """Discrete columns as text when the training categories were text: categories
    such as "1", "2" and "x" may read as numbers from another file."""
    import pandas as pd

    X = X.copy()
    for enc in est._encodings:
        if enc.kind != "discrete" or enc.categories is None:
            continue
        s = X[enc.name]
        if all(isinstance(v, str) for v in enc.categories) and not pd.api.types.is_string_dtype(s):
            X[enc.name] = s.astype(str).astype(object)
    return X


@app.command()
def predict(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A model saved by funbat fit.")
    ],
    data: Annotated[
        Path,
        typer.Argument(metavar="DATA", help="CSV or Parquet table with the model's mode columns."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output table (.csv or .parquet).")
    ],
    dropna: Annotated[bool, _DROPNA] = False,
    quiet: Annotated[bool, _QUIET] = False,
):
    """Write the input rows plus mean, std, lower95 and upper95 columns."""
    from .files import missing_rows, read_table, select_columns, write_table
    from .io import load

    _check_output(output, "table")
    est = load(model_path)
    df = read_table(data)
    columns = est._input_columns()
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise InputError(
            f"the data lacks the model's mode column(s) {', '.join(absent)}; the model's modes "
            f"are {', '.join(est.modes_)} and the data's columns are "
            f"{', '.join(map(str, df.columns))}"
        )
    clash = [c for c in ("mean", "std", "lower95", "upper95") if c in df.columns]
    if clash:
        raise InputError(f"the data already has a column {clash[0]!r}; rename it first")
    bad = missing_rows(df, columns)
    if bad.any() and dropna:
        _say(f"dropped {int(bad.sum())} row(s) with missing or infinite values", quiet)
        df = df.loc[~bad]
    X, _, _ = select_columns(df, columns, None)
    X = _as_training_categories(est, X)
    pred = est.predictive(X)
    out = df.reset_index(drop=True).copy()
    out["mean"], out["std"] = pred.mean, pred.std
    out["lower95"], out["upper95"] = pred.interval(0.95)
    write_table(out, output)
    _say(f"wrote {len(out)} predictions to {output}", quiet)


@app.command()
def evaluate(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="CSV or Parquet table, one row per observation.")
    ],
    target: Annotated[str, _TARGET],
    coords: Annotated[str | None, _COORDS] = None,
    discrete: Annotated[str | None, _DISCRETE] = None,
    model: Annotated[str, _MODEL] = "tucker",
    rank: Annotated[str, _RANK] = "3",
    kernel: Annotated[str, _KERNEL] = "matern32",
    max_iter: Annotated[int, _MAX_ITER] = 100,
    seed: Annotated[int, _SEED] = 0,
    likelihood: Annotated[str, _LIKELIHOOD] = "gaussian",
    noise_mode: Annotated[str | None, _NOISE_MODE] = None,
    recalibrate: Annotated[bool, _RECALIBRATE] = True,
    dropna: Annotated[bool, _DROPNA] = False,
    splits: Annotated[
        int, typer.Option("--splits", "-s", help="Number of random 80/20 splits.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: Annotated[bool, _QUIET] = False,
):
    """Random 80/20 splits (the paper's protocol): test RMSE, MAE, NLPD, 95% coverage."""
    from .evaluation import METRICS, evaluate_splits, summarise

    if splits < 1:
        raise InputError(f"--splits must be a positive integer; got {splits}")
    _, modes = _parse_coords(coords)
    disc = _parse_list(discrete, "--discrete")

    def make():
        return _make_estimator(
            model, rank, kernel, max_iter, seed, modes, disc, likelihood, noise_mode, recalibrate
        )

    make()  # validate before reading data
    X, y = _load_training_table(data, target, coords, dropna, quiet, disc)
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

    results = evaluate_splits(
        make,
        X,
        y.to_numpy(),
        n_splits=splits,
        on_split=on_split,
    )
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
        return
    typer.echo(row("mean", [summary[m]["mean"] for m in METRICS]))
    typer.echo(row("std", [summary[m]["std"] for m in METRICS]))


@app.command()
def plot(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A model saved by funbat fit.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file (.png, .pdf, .svg).")],
    points: Annotated[
        int | None,
        typer.Option(
            "--points",
            help="Evaluation points per mode [default: 2 per training coordinate, 300-4000].",
        ),
    ] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of raster images.")] = 120,
    quiet: Annotated[bool, _QUIET] = False,
):
    """Draw each mode's latent functions with 95% bands, training coordinates marked."""
    from .io import load
    from .plot import plot_latent_functions, save_figure

    _check_output(output, "image")
    est = load(model_path)
    fig = plot_latent_functions(est, n_points=points)
    save_figure(fig, output, dpi=dpi)
    _say(f"wrote {output}", quiet)


def _json_scalar(v):
    """A category as JSON: numbers and booleans as they are, anything else as text."""
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return str(v)


def _info_dict(est, meta: dict) -> dict:
    import numpy as np

    modes = []
    for k, enc in enumerate(est._encodings):
        common = {"name": enc.name, "rank": int(est.ranks_[k]), "kernel": est.kernels_[k]}
        if enc.kind == "discrete":
            cats = [_json_scalar(v) for v in enc.categories]
            modes.append(
                {
                    **common,
                    "kind": "discrete",
                    "n_unique": len(cats),
                    "n_categories": len(cats),
                    "categories": cats,
                    "lengthscale": None,
                }
            )
            continue
        if enc.kind == "spatial":
            pts = enc.unscaled(enc.unique)
            ells = np.asarray(est.lengthscales_[k], float)
            modes.append(
                {
                    **common,
                    "kind": "spatial",
                    "columns": list(enc.columns),
                    "min": [float(v) for v in pts.min(axis=0)],
                    "max": [float(v) for v in pts.max(axis=0)],
                    "n_unique": int(pts.shape[0]),
                    "lengthscale": [float(v) for v in ells],
                    "lengthscale_unit": "coordinate units, per column",
                }
            )
            continue
        lo, hi = enc.unscaled(enc.unique[[0, -1]])
        if enc.is_datetime:
            lo, hi = (
                str(np.datetime64(int(round(v * 86400)), "s").astype("datetime64[D]"))
                for v in (lo, hi)
            )
        else:
            lo, hi = float(lo), float(hi)
        modes.append(
            {
                **common,
                "kind": "date" if enc.is_datetime else "continuous",
                "min": lo,
                "max": hi,
                "n_unique": int(enc.unique.size),
                "lengthscale": float(est.lengthscales_[k]),
                "lengthscale_unit": "days" if enc.is_datetime else "coordinate units",
            }
        )
    recal = getattr(est, "recalibration_", None)
    return {
        "model": meta["class"],
        "funbat_version": meta["funbat_version"],
        "format_version": meta["format_version"],
        "modes": modes,
        "n_train": int(est.n_train_),
        "noise_std": math.sqrt(est.noise_variance_),
        # Student-t degrees of freedom (null: Gaussian noise; then noise_std is a scale)
        "noise_dof": (
            float(est.dof_)
            if math.isfinite(getattr(est, "dof_", math.inf)) and recal is None
            else None
        ),
        # Gaussian noise with a Student-t predictive (null: not recalibrated)
        "recalibration": None if recal is None else recal._asdict(),
        # the mode whose coordinates each have a noise level (null: one level for all)
        "noise_mode": getattr(est, "noise_mode_", None),
        "noise_group_dof": getattr(est, "noise_group_dof_", None),
        # min / median / max over those coordinates of their noise scale / noise_std
        "noise_scale_factors": (
            None
            if getattr(est, "noise_mode_", None) is None
            else [float(q) for q in np.quantile(est.noise_multipliers_**-0.5, [0, 0.5, 1])]
        ),
        "elbo": float(est.elbo_),
        "n_iter": int(est.n_iter_),
        "converged": bool(est.converged_),
        "fit_time_s": float(getattr(est, "fit_time_", float("nan"))),
        "params": meta["params"],
    }


def _info_range(m: dict) -> str:
    if m["kind"] == "discrete":
        shown = ", ".join(map(str, m["categories"][:4]))
        more = ", ..." if m["n_categories"] > 4 else ""
        text = f"{m['n_categories']} categories: {shown}{more}"
        return text if len(text) <= 40 else text[:37] + "..."
    if m["kind"] == "spatial":
        return "; ".join(
            f"{c} {lo:.4g}..{hi:.4g}" for c, lo, hi in zip(m["columns"], m["min"], m["max"])
        )
    if m["kind"] == "date":
        return f"{m['min']} .. {m['max']}"
    return f"{m['min']:.6g} .. {m['max']:.6g}"


def _info_lengthscale(m: dict) -> str:
    if m["kind"] == "discrete":
        return "- (categories are independent)"
    if m["kind"] == "spatial":
        return ", ".join(f"{c} {v:.4g}" for c, v in zip(m["columns"], m["lengthscale"]))
    return f"{m['lengthscale']:.4g}" + (" days" if m["kind"] == "date" else "")


@app.command()
def info(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A model saved by funbat fit.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
):
    """Describe a saved model: modes, ranges, ranks, kernels, noise, ELBO, data size."""
    from .io import load, read_metadata

    est = load(model_path)
    d = _info_dict(est, read_metadata(model_path))
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    ranges = [_info_range(m) for m in d["modes"]]
    wn = max([12] + [len(m["name"]) for m in d["modes"]])
    wr = max([27] + [len(r) for r in ranges])
    lines = [
        f"{model_path}: {d['model']} model (saved by funbat {d['funbat_version']}, "
        f"format {d['format_version']})",
        f"  data      {d['n_train']} rows, {len(d['modes'])} modes",
        f"  {'mode':<{wn}} {'kind':<10} {'range':<{wr}} {'unique':>6} {'rank':>4}  "
        f"{'kernel':<8} lengthscale",
    ]
    for m, rng in zip(d["modes"], ranges):
        lines.append(
            f"  {m['name']:<{wn}} {m['kind']:<10} {rng:<{wr}} {m['n_unique']:>6} "
            f"{m['rank']:>4}  {m['kernel']:<8} {_info_lengthscale(m)}"
        )
    status = "converged" if d["converged"] else "stopped at max_iter"
    lines += [
        (
            f"  noise std {d['noise_std']:.6g} (target units)"
            if d["noise_dof"] is None
            else f"  noise     Student-t, scale {d['noise_std']:.6g} (target units), "
            f"{d['noise_dof']:.3g} degrees of freedom"
        ),
    ]
    if d["recalibration"] is not None:
        r = d["recalibration"]
        lines.append(
            f"  predicts  Student-t, {r['dof']:.3g} degrees of freedom, spread x {r['scale']:.3g} "
            f"(recalibrated on {r['n']} leave-one-out residuals)"
        )
    if d["noise_mode"] is not None:
        lo, mid, hi = d["noise_scale_factors"]
        lines.append(
            f"  noise     varies along {d['noise_mode']!r}: x {lo:.3g} .. {hi:.3g} "
            f"(median {mid:.3g}) per coordinate, prior dof {d['noise_group_dof']:.3g}"
        )
    lines += [
        f"  ELBO      {d['elbo']:.6g} after {d['n_iter']} sweeps ({status}), "
        f"fit in {d['fit_time_s']:.1f} s",
    ]
    typer.echo("\n".join(lines))


@app.command()
def demo(
    n: Annotated[int, typer.Option("--n", help="Number of synthetic observations.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data and the fit.")] = 0,
    model: Annotated[str, _MODEL] = "tucker",
    rank: Annotated[int, typer.Option("--rank", "-r", help="Rank per mode.")] = 3,
):
    """Fit a model to built-in synthetic data and report test accuracy and calibration."""
    if model not in _MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(_MODELS)}")
    if rank < 1:
        raise InputError(f"rank must be a positive integer; got {rank}")
    from .demo import run_demo

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


def _version_callback(value: bool):
    if value:
        from . import __version__

        typer.echo(f"funbat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
):
    """Functional Bayesian Tucker decomposition of continuous-indexed tensor data."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"funbat: warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning bad input into one line on stderr and exit 2."""
    import warnings

    command = typer.main.get_command(app)
    try:
        with warnings.catch_warnings():
            # a warning is one plain line, like an error, not Python's file:line report
            warnings.showwarning = _show_warning
            rv = command.main(args=argv, prog_name="funbat", standalone_mode=False)
    except InputError as err:
        typer.echo(f"funbat: error: {err}", err=True)
        return 2
    except _NO_ARGS as err:
        typer.echo(err.format_message(), err=True)
        return 2
    except _USAGE_ERRORS as err:
        ctx = err.ctx
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"funbat: error: {err.format_message()}{hint}", err=True)
        return 2
    except _CLICK_ERRORS as err:
        typer.echo(f"funbat: error: {err.format_message()}", err=True)
        return err.exit_code
    except (*_ABORT, KeyboardInterrupt):
        typer.echo("funbat: interrupted; nothing was written", err=True)
        return 130
    except FloatingPointError as err:
        typer.echo(f"funbat: error: {err}", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
