"""Golden outputs of funbat's public API, frozen so that a restructuring can be checked.

This script defines small synthetic cases (tables, estimator and parameters) and records
what the code gives for each through the public API only: the ELBO history, the
predictive mean, std and 50% / 95% intervals at fixed query rows (seen coordinates,
unseen ones and some beyond the training range), ``noise_variance_``, ``dof_``,
``lengthscales_``, ``core_`` and seeded ``sample_y`` draws. ``tests/test_golden.py``
imports the cases from here, refits them with the current code and compares.

Regenerate from the repository root with

    PYTHONPATH=src python tests/golden/make_golden.py                  # golden.json
    PYTHONPATH=src python tests/golden/make_golden.py --legacy-models  # legacy_models/

Regenerating is a deliberate change of the numbers: commit it on its own, with the
reason, never together with the code change it would hide.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import funbat

HERE = Path(__file__).resolve().parent
GOLDEN_PATH = HERE / "golden.json"
LEGACY_DIR = HERE / "legacy_models"
LEGACY_EXPECTED = LEGACY_DIR / "expected.json"
TARGET = "value"


# -- tables: training rows (with the target) and query rows -------------------------


def _dates(days) -> pd.Series:
    return pd.Timestamp("2021-03-01") + pd.to_timedelta(np.asarray(days, float), unit="D")


# Every table has 480 rows and 12 unique values in each continuous mode, and its query
# rows add 4 unseen values to each: the fits and draws then share compiled shapes,
# which keeps the golden test fast.
N_ROWS, N_UNIQUE = 480, 12


def continuous_table(seed=0):
    """Three continuous modes on grids."""
    rng = np.random.default_rng(seed)
    a = rng.choice(np.linspace(0.0, 4.0, N_UNIQUE), N_ROWS)
    b = rng.choice(np.linspace(-1.0, 1.0, N_UNIQUE), N_ROWS)
    c = rng.choice(np.linspace(0.0, 10.0, N_UNIQUE), N_ROWS)
    y = np.sin(a) * np.cos(2.0 * b) + 0.05 * c + 0.1 * rng.normal(size=N_ROWS)
    train = pd.DataFrame({"a": a, "b": b, "c": c, TARGET: y})
    unseen = pd.DataFrame(  # inside the training range, then beyond it
        {
            "a": [0.1, 2.05, 4.6, -0.5],
            "b": [0.1, -0.95, 1.4, -1.3],
            "c": [3.3, 9.5, 12.0, -2.0],
        }
    )
    return train, pd.concat([train.iloc[:3, :3], unseen], ignore_index=True)


def dates_table(seed=1):
    """A float mode, a date mode (noisier every fourth day, heavy tails), a float mode."""
    rng = np.random.default_rng(seed)
    a = rng.choice(np.linspace(0.0, 5.0, N_UNIQUE), N_ROWS)
    days = rng.integers(0, N_UNIQUE, N_ROWS)
    b = rng.choice(np.linspace(-1.0, 1.0, N_UNIQUE), N_ROWS)
    scale = np.where(days % 4 == 0, 0.3, 0.05)
    y = (
        np.sin(a) * np.cos(3.0 * b)
        + 0.5 * np.cos(days / 4.0)
        + scale * rng.standard_t(4.0, size=N_ROWS)
    )
    train = pd.DataFrame({"a": a, "t": _dates(days), "b": b, TARGET: y})
    unseen = pd.DataFrame(
        {
            "a": [0.2, 2.6, 5.5, -0.4],
            "t": _dates([4.5, 9.25, 15.0, -6.0]),
            "b": [0.05, -0.95, 1.2, -1.5],
        }
    )
    return train, pd.concat([train.iloc[:3, :3], unseen], ignore_index=True)


def kinds_table(seed=2):
    """Stations (lat, lon), dates, a text category ``g``, an integer category ``d`` and
    a float ``x``: spatial, date, discrete and continuous modes."""
    rng = np.random.default_rng(seed)
    stations = rng.uniform([40.0, -5.0], [45.0, 3.0], size=(10, 2)).round(2)
    s = rng.integers(0, 10, N_ROWS)
    lat, lon = stations[s].T
    days = rng.integers(0, N_UNIQUE, N_ROWS)
    g = rng.choice(np.array(["east", "north", "south"]), N_ROWS)
    d = rng.integers(0, 4, N_ROWS)
    x = rng.choice(np.linspace(0.0, 1.0, N_UNIQUE), N_ROWS)
    offset = pd.Series({"east": 0.0, "north": 0.4, "south": -0.3})[g].to_numpy()
    y = (
        np.sin(lat - 42.0) * np.cos(lon) * (1.0 + 0.3 * np.cos(days / 3.0))
        + offset
        + 0.2 * d
        + 0.5 * x
        + 0.1 * (1.0 + s % 3) * rng.normal(size=N_ROWS)
    )
    train = pd.DataFrame(
        {"lat": lat, "lon": lon, "t": _dates(days), "g": g, "d": d, "x": x, TARGET: y}
    )
    unseen = pd.DataFrame(
        {
            "lat": [42.5, 43.1, 47.0, 39.0],
            "lon": [0.0, -2.2, 5.0, -6.0],
            "t": _dates([2.5, 7.5, 15.0, -3.0]),
            "g": ["north", "south", "east", "north"],
            "d": [3, 0, 2, 1],
            "x": [0.3, 0.55, 1.2, -0.2],
        }
    )
    return train, pd.concat([train.iloc[:3, :6], unseen], ignore_index=True)


TABLES = {"continuous": continuous_table, "dates": dates_table, "kinds": kinds_table}


# -- cases --------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    estimator: str  # "FunBaT" or "FunBaTCP"
    table: str  # a key of TABLES
    params: dict
    dask: bool = False  # fit on a Dask cluster from Parquet parts (a path glob)


# the golden numbers are the JAX reference solver's (tests/test_golden.py also checks
# the native solver against them)
_FIT = dict(max_iter=12, tol=0.0, random_state=0, chain_solver="sequential")

CASES = [
    Case("tucker_continuous", "FunBaT", "continuous", dict(rank=2, **_FIT)),
    Case(
        "tucker_continuous_no_recalibrate",
        "FunBaT",
        "continuous",
        dict(rank=2, recalibrate=False, **_FIT),
    ),
    Case(
        "tucker_fixed_hyperparameters",
        "FunBaT",
        "continuous",
        dict(
            rank=2,
            lengthscale=[0.8, 0.5, 3.0],
            variance=[1.0, 0.5, 2.0],
            learn_hyperparameters=False,
            core_prior_variance=2.0,
            **_FIT,
        ),
    ),
    Case("tucker_student_t", "FunBaT", "dates", dict(rank=2, likelihood="student_t", **_FIT)),
    Case("tucker_noise_mode_gaussian", "FunBaT", "dates", dict(rank=2, noise_mode="t", **_FIT)),
    Case(
        "tucker_noise_mode_student_t",
        "FunBaT",
        "dates",
        dict(rank=2, likelihood="student_t", noise_mode="t", **_FIT),
    ),
    Case(
        "tucker_spatial_date_discrete_multilinear_rank",
        "FunBaT",
        "kinds",
        dict(rank=(2, 2, 3), modes=[("lat", "lon"), "t", "g"], **_FIT),
    ),
    Case("cp_continuous", "FunBaTCP", "continuous", dict(rank=2, **_FIT)),
    Case("cp_student_t", "FunBaTCP", "dates", dict(rank=2, likelihood="student_t", **_FIT)),
    Case(
        "cp_spatial_declared_discrete_noise_mode_student_t",
        "FunBaTCP",
        "kinds",
        dict(
            rank=2,
            modes=[("lat", "lon"), "t", "d"],
            discrete=["d"],
            likelihood="student_t",
            noise_mode=("lat", "lon"),
            **_FIT,
        ),
    ),
    Case("dask_tucker", "FunBaT", "continuous", dict(rank=2, **_FIT), dask=True),
    Case(
        "dask_cp_noise_mode_student_t",
        "FunBaTCP",
        "dates",
        dict(rank=2, likelihood="student_t", noise_mode="t", **_FIT),
        dask=True,
    ),
]

#: Small fitted models saved as legacy model files: file name -> case.
LEGACY_MODELS = {
    "tucker.funbat": Case("legacy_tucker", "FunBaT", "continuous", dict(rank=2, **_FIT)),
    "cp.funbat": Case("legacy_cp", "FunBaTCP", "continuous", dict(rank=2, **_FIT)),
    "noise_mode.funbat": Case(
        "legacy_noise_mode", "FunBaT", "dates", dict(rank=2, noise_mode="t", **_FIT)
    ),
    "spatial_discrete.funbat": Case(
        "legacy_spatial_discrete",
        "FunBaT",
        "kinds",
        dict(rank=2, modes=[("lat", "lon"), "t", "g", "d"], discrete=["d"], **_FIT),
    ),
}


def write_parts(train: pd.DataFrame, root: Path, n_parts: int = 2) -> str:
    """Write ``train`` as Parquet parts under ``root``; return their path glob."""
    root.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(train)), n_parts)):
        train.iloc[rows].to_parquet(root / f"part-{i}.parquet", index=False)
    return str(root / "*.parquet")


def fit_case(case: Case, parts_dir: Path | None = None):
    """Fit ``case`` (on Dask from Parquet parts written under ``parts_dir`` when
    ``case.dask``: a Dask client must be active). Returns the model and the query rows."""
    train, query = TABLES[case.table]()
    model = getattr(funbat, case.estimator)(**case.params)
    if case.dask:
        model.fit(write_parts(train, parts_dir / case.name), y=TARGET, callback=None)
    else:
        model.fit(train.drop(columns=TARGET), train[TARGET].to_numpy(), callback=None)
    return model, query


def predictions(model, query) -> dict:
    mean, std = model.predict(query, return_std=True)
    out = {"mean": mean, "std": std}
    for level in (0.5, 0.95):
        out[f"lower{round(100 * level)}"], out[f"upper{round(100 * level)}"] = (
            model.predict_interval(query, level)
        )
    return out


def record(model, query) -> dict:
    """Everything compared for one fitted model, as a JSON-ready tree."""
    out = {
        "elbo_history": model.elbo_history_,
        "n_iter": model.n_iter_,
        "ranks": list(model.ranks_),
        "noise_variance": model.noise_variance_,
        "dof": model.dof_,
        "lengthscales": list(model.lengthscales_),
        "core": model.core_,
        "sample_y": model.sample_y(query, n_samples=3, random_state=12345),
        **predictions(model, query),
    }
    return to_json(out)


def run_case(case: Case, parts_dir: Path | None = None) -> dict:
    return record(*fit_case(case, parts_dir))


# -- JSON: plain trees, floats at repr precision, non-finite floats as strings -------

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_json(x):
    """Arrays, numpy scalars, tuples -> lists and Python numbers; inf/nan -> strings."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_json(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"cannot record a {type(x).__name__}")


def from_json(x):
    """Inverse of :func:`to_json` for the strings ``"inf"``, ``"-inf"`` and ``"nan"``."""
    if isinstance(x, dict):
        return {k: from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json(v) for v in x]
    return _NON_FINITE.get(x, x) if isinstance(x, str) else x


def dump(tree: dict, path: Path) -> None:
    """Write ``{name: record}`` as JSON with one entry per line (small, diffable)."""
    lines = [
        f"{json.dumps(k)}: {json.dumps(v, sort_keys=True, allow_nan=False)}"
        for k, v in sorted(tree.items())
    ]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def load_golden(path: Path = GOLDEN_PATH) -> dict:
    return from_json(json.loads(path.read_text()))


# -- regeneration -------------------------------------------------------------------


def dask_client():
    """A 2-process local Dask cluster and its client (the caller closes both)."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, distributed.Client(cluster)


def make_golden() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {c.name: run_case(c) for c in CASES if not c.dask}
        cluster, client = dask_client()
        with cluster, client:
            results |= {c.name: run_case(c, Path(tmp)) for c in CASES if c.dask}
    dump(results, GOLDEN_PATH)


def query_to_json(query: pd.DataFrame) -> dict:
    """Query rows as plain JSON columns (in order); dates as ISO strings."""
    dates = [c for c in query.columns if pd.api.types.is_datetime64_any_dtype(query[c])]
    values = {
        c: [t.isoformat() for t in query[c]] if c in dates else query[c].tolist()
        for c in query.columns
    }
    return {"columns": list(query.columns), "values": values, "dates": dates}


def query_from_json(tree: dict) -> pd.DataFrame:
    query = pd.DataFrame({c: tree["values"][c] for c in tree["columns"]})
    for c in tree["dates"]:
        query[c] = pd.to_datetime(query[c])
    return query


def legacy_predictions(model, query) -> dict:
    mean, std = model.predict(query, return_std=True)
    lower, upper = model.predict_interval(query, 0.95)
    return to_json({"mean": mean, "std": std, "lower95": lower, "upper95": upper})


def make_legacy_models() -> None:
    """Save the small legacy models and what the code predicts after loading them."""
    LEGACY_DIR.mkdir(exist_ok=True)
    expected = {}
    for filename, case in LEGACY_MODELS.items():
        model, query = fit_case(case)
        funbat.save(model, LEGACY_DIR / filename)
        loaded = funbat.load(LEGACY_DIR / filename)
        expected[filename] = {
            "query": query_to_json(query),
            **legacy_predictions(loaded, query_from_json(query_to_json(query))),
        }
    dump(expected, LEGACY_EXPECTED)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--legacy-models",
        action="store_true",
        help="write the legacy model files and their expected predictions instead",
    )
    args = parser.parse_args()
    make_legacy_models() if args.legacy_models else make_golden()
    print(f"wrote {LEGACY_DIR if args.legacy_models else GOLDEN_PATH} with {funbat.__file__}")
