"""What the commands share: options, argument parsing, the estimator, tables, progress.

Only light modules are imported here; JAX, scikit-learn and the library's heavier parts
are imported inside the functions that need them, so ``funbat --help`` stays fast.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from funbat import InputError

#: The ``--model`` choices: FunBaT (Tucker) and FunBaT-CP.
MODELS = ("tucker", "cp")


# -- options shared by several commands ------------------------------------------------

TARGET = typer.Option("--target", "-t", help="Name of the column to model.")
COORDS = typer.Option(
    "--coords",
    "-c",
    help=(
        "Comma-separated mode columns; join columns with + for one spatial mode, e.g. "
        "lat+lon,year [default: all but the target, one mode each]."
    ),
)
MODEL = typer.Option("--model", "-m", help="tucker (FunBaT) or cp (FunBaT-CP).")
RANK = typer.Option(
    "--rank", "-r",
    help="Rank per mode: one integer, one per mode, or auto (learned from --max-rank down).",
)
MAX_RANK = typer.Option(
    "--max-rank",
    help="With --rank auto: the rank the fit starts from [default: min(8, fewest unique "
    "coordinates of a mode)].",
)
N_INIT = typer.Option(
    "--n-init",
    help="Fits from this many starting lengthscales (1 to 5); the one with the highest "
    "ELBO is kept.",
)
KERNEL = typer.Option(
    "--kernel",
    "-k",
    help="matern12, matern32, matern52 or a sum of parts, e.g. 'matern32 + periodic(365.25) "
    "+ constant'; one for all modes, one per mode (comma-separated), or MODE=KERNEL items "
    "for some modes (the others keep matern32).",
)
MAX_ITER = typer.Option("--max-iter", help="Maximum number of sweeps.")
SEED = typer.Option("--seed", help="Seed of the random initialisation.")
DISCRETE = typer.Option(
    "--discrete",
    "-d",
    help="Comma-separated columns to treat as categories (text columns are anyway).",
)
DROPNA = typer.Option(
    "--dropna", help="Drop rows with missing or infinite values (and say how many)."
)
QUIET = typer.Option("--quiet", "-q", help="No progress bar or messages.")
LIKELIHOOD = typer.Option(
    "--likelihood",
    help="Noise model: gaussian, student_t for heavy-tailed errors, bernoulli for 0/1 "
    "targets, poisson or negative_binomial for counts.",
)
NOISE_MODE = typer.Option(
    "--noise-mode",
    help="A mode whose every coordinate (a date, a station) gets its own noise level "
    "('lat+lon' for a spatial mode).",
)
RECALIBRATE = typer.Option(
    "--recalibrate/--no-recalibrate",
    help="Gaussian noise: give the predictive the Student-t shape of the leave-one-out "
    "errors (point predictions unchanged).",
)
LEARN_INTERCEPT = typer.Option(
    "--learn-intercept",
    help="Gaussian noise: learn the intercept of target = intercept + low-rank part "
    "instead of fixing it at the targets' mean (keeps the rank of data whose mean is not "
    "low-rank).",
)
KEEP_DUPLICATES = typer.Option(
    "--keep-duplicates",
    help="Fit rows that repeat another row exactly (default: drop them, with a warning; "
    "kept anyway for counts and yes/no likelihoods).",
)
MODEL_PATH = typer.Argument(metavar="MODEL", help="A model saved by funbat fit.")
TRAINING_DATA = typer.Argument(metavar="DATA", help="CSV or Parquet table, one row per observation.")


# -- messages --------------------------------------------------------------------------


def say(msg: str, quiet: bool = False) -> None:
    """A message on stderr, unless ``quiet``."""
    if not quiet:
        typer.echo(msg, err=True)


def fmt_rank(ranks) -> str:
    return "x".join(str(r) for r in ranks)


def describe_modes(est) -> str:
    """``lat, day (discrete), a+b (spatial)``: a fitted model's modes and their kinds."""
    kinds = getattr(est, "mode_kinds_", None) or ["continuous"] * len(est.modes_)
    return ", ".join(
        name if kind == "continuous" else f"{name} ({kind})"
        for name, kind in zip(est.modes_, kinds)
    )


class Progress:
    """tqdm bar with the ELBO on a terminal; elsewhere (a log, a pipe) one line every
    :attr:`EVERY` seconds once a fit runs that long, so a long fit is never silent."""

    #: Seconds between progress lines when stderr is not a terminal.
    EVERY = 30.0

    def __init__(self, total: int, quiet: bool, desc: str = "fit"):
        import time

        self.bar, self.total, self.desc, self.quiet = None, total, desc, quiet
        self.start = self.last = time.monotonic()
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="sweep", leave=False, file=sys.stderr)

    def __call__(self, it: int, elbo: float) -> None:
        import time

        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"ELBO {elbo:.6g}")
        elif not self.quiet and time.monotonic() - self.last >= self.EVERY:
            self.last = time.monotonic()
            say(f"{self.desc}: sweep {it} of at most {self.total}, ELBO {elbo:.6g}, "
                f"{self.last - self.start:.0f} s")  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- parsing ---------------------------------------------------------------------------


def parse_kernels(value: str | None) -> list[str] | dict[str, str]:
    """``--kernel``: comma-separated kernels (commas inside parentheses belong to a part's
    arguments), or ``MODE=KERNEL`` items -> a dict by mode name."""
    if value is None:
        return []
    items, depth, cur = [], 0, ""
    for ch in value:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    if not all(items):
        raise InputError(f"--kernel must be comma-separated kernels; got {value!r}")
    named = [re.match(r"^([^()=]+?)\s*=\s*(.+)$", it) for it in items]
    if any(named):
        if not all(named):
            raise InputError(f"--kernel: give MODE=KERNEL for every item or for none; got {value!r}")
        return {m.group(1).strip(): m.group(2).strip() for m in named}
    return items


def parse_list(value: str | None, option: str = "--coords") -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise InputError(f"{option} must be comma-separated column names; got {value!r}")
    return items


def parse_coords(value: str | None) -> tuple[list[str] | None, list | None]:
    """``--coords "lat+lon,year"`` -> the columns to read and the estimator's ``modes``.

    ``+`` joins columns into one spatial mode; ``modes`` is None (one mode per column)
    when there is none.
    """
    items = parse_list(value)
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


def parse_rank(value: str):
    """``"3"`` -> 3, ``"2,3"`` -> [2, 3] (one per mode), ``"auto"`` -> ``"auto"``."""
    if str(value).strip().lower() == "auto":
        return "auto"
    parts = [p.strip() for p in str(value).split(",")]
    ranks = []
    for p in parts:
        try:
            r = int(p)
        except ValueError:
            raise InputError(
                "rank must be a positive integer (or one per mode, comma-separated, or auto); "
                f"got {value!r}"
            ) from None
        if r < 1:
            raise InputError(f"rank must be a positive integer; got {r}")
        ranks.append(r)
    return ranks[0] if len(ranks) == 1 else ranks


def make_estimator(
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
    keep_duplicates: bool = False,
    max_rank: int | None = None,
    n_init: int = 1,
    learn_intercept: bool = False,
):
    """The estimator the options describe, its parameters checked (before any data is read).

    The estimator checks its own parameters (:meth:`~funbat.FunBaT.check_params`); the
    command line only turns its comma-separated strings into lists and numbers. Ranks
    are parsed here because the estimator checks them against the data, at fit time.
    """
    from funbat import FunBaT, FunBaTCP

    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    kernels = parse_kernels(kernel)
    r = parse_rank(rank)
    if model == "cp" and isinstance(r, list):
        raise InputError("the cp model takes one rank shared by all modes")
    if max_rank is not None and r != "auto":
        raise InputError("--max-rank needs --rank auto")
    cls = FunBaTCP if model == "cp" else FunBaT
    est = cls(
        rank=r,
        max_rank=max_rank,
        kernel=kernels[0] if isinstance(kernels, list) and len(kernels) == 1 else kernels,
        max_iter=max_iter,
        random_state=seed,
        modes=modes,
        discrete=discrete,
        likelihood=likelihood,
        noise_mode=noise_mode,
        recalibrate=recalibrate,
        duplicates="keep" if keep_duplicates else "auto",
        n_init=n_init,
        learn_intercept=learn_intercept,
    )
    est.check_params()
    return est


# -- files -----------------------------------------------------------------------------


def check_output(path: Path, kind: str) -> None:
    """Fail before any work when the output cannot be written."""
    from funbat.files import TABLE_SUFFIXES

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


def check_text_columns(X, discrete) -> None:
    """Text columns are discrete modes, but one that is mostly numbers or ISO dates with
    a few bad cells is more likely a numeric or date column with typos: refuse it, naming
    the cells by their line in the file, unless declared ``--discrete``."""
    from funbat.data import check_text_column

    for c in X.columns:
        if c not in discrete:
            check_text_column(X[c], c, f"--discrete {c}", first_row=2, row_name="line")


def load_training_table(
    data: Path, target: str, coords: str | None, dropna: bool, quiet: bool, discrete=None
):
    """The mode columns ``X`` and the target ``y`` of a table, checked for fitting."""
    from funbat.files import read_table, select_columns

    df = read_table(data)
    columns, _ = parse_coords(coords)
    mode_columns = [c for c in (columns or df.columns) if c != target and c in df.columns]
    for c in discrete or ():
        if c not in mode_columns:
            raise InputError(
                f"--discrete column {c!r} is not a mode column; the mode columns are "
                f"{', '.join(map(str, mode_columns))}"
            )
    # a column of numbers with a few words in it is named for what it is before its
    # missing cells are counted (--dropna would only lead to this error next)
    check_text_columns(df[mode_columns], discrete or ())
    X, y, dropped = select_columns(df, columns, target, dropna=dropna)
    if len(X) < 2:
        after = f" after dropping {dropped} with missing or infinite values" if dropped else ""
        raise InputError(
            f"need at least 2 rows to fit; {str(data)!r} has {len(X)} usable row(s){after}"
        )
    if dropped:
        say(f"dropped {dropped} row(s) with missing or infinite values", quiet)
    return X, y


def dask_training_data(data: Path, target: str, coords: str | None, dropna: bool, scheduler):
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
    cols, _ = parse_coords(coords)
    X = dd.read_parquet(str(data), columns=None if cols is None else [*cols, target])
    return X, target, client
