"""Forecasts past the training range: funbat's default kernel against sums of
kernel parts (``funbat.kernel_parts``) and simple baselines.

* beijing_pm25: train on every row dated before 80% of the date range, test on the next
  7, 30 and 90 days.
* us_temp: train on years before 1984, test on years >= 1984 (the simple baseline is
  each location's 1954-1983 mean).
* seattle_weather (``vega_datasets``, which ships it offline: Seattle's daily highest
  and lowest temperatures, 2012-2015, °C) as a tensor of (date, measure): train on the
  days up to 80% of the date range, test on the next 7, 30 and 90 days (the simple
  baseline is each measure's mean over the last 30 training days). Skipped, with a
  message, where ``vega_datasets`` is not installed.

Reported: test RMSE (target units), the coverage of funbat's central 50% and 95%
predictive intervals, the median one-sigma spread of its predictive (half the width of
the central 68.27% interval, target units) and the predictive's degrees of freedom; the training mean, a per-location mean (us_temp) and
scikit-learn's HistGradientBoostingRegressor on the raw coordinates as baselines.

    PYTHONPATH=src python benchmarks/forecast.py --json benchmarks/results/forecast.json

``--backtest DAYS`` also measures a recalibration made off the data
(:func:`_backtest`): one more fit per kernel on the date-cut data sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _provenance import provenance  # noqa: E402

DATA = HERE.parents[0] / ".." / "shared" / "data"


def rmse(y, p):
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2)))


def _fitted(X, y, kernel, rank, args):
    """FunBaT with ``kernel``, ``rank`` and the command line's settings, fitted to
    ``X``, ``y`` (warnings silenced)."""
    from funbat import FunBaT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FunBaT(rank=rank, kernel=kernel, max_iter=args.max_iter, random_state=args.seed,
                      transform_moves=args.transform_moves).fit(X, y)  # fmt: skip


def _funbat(X_tr, y_tr, tests, kernel, rank, args):
    """The fit's forecast record, and the fitted model."""
    t0 = time.perf_counter()
    m = _fitted(X_tr, y_tr, kernel, rank, args)
    fit_s = time.perf_counter() - t0
    out = {}
    for name, (X_te, y_te) in tests.items():
        mean, spread = m.predict(X_te, return_std=True)
        cov = {"spread": float(np.median(spread))}
        for level in (0.5, 0.95):
            lo, hi = m.predict_interval(X_te, level)
            cov[f"coverage_{int(level * 100)}"] = float(np.mean((y_te >= lo) & (y_te <= hi)))
        out[name] = {"rmse": rmse(y_te, mean), **cov, "n_test": int(len(y_te))}
    return {"kernels": m.kernels_, "ranks": list(m.ranks_),
            "lengthscales": [None if v is None else np.asarray(v).tolist()
                             for v in m.lengthscales_],
            "part_variances": [d.get("part_variance") for d in m.summary()["modes"]],
            "periods": [d.get("period") for d in m.summary()["modes"]],
            "n_iter": int(m.n_iter_), "converged": bool(m.converged_), "fit_s": fit_s,
            "dof": float(m.dof_),
            "tests": out}, m  # fmt: skip


def _numeric(X):
    """Dates as days and labels as their category codes, for gradient boosting."""
    def column(c):
        if pd.api.types.is_datetime64_any_dtype(X[c]):
            return (X[c] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(float)
        if pd.api.types.is_numeric_dtype(X[c]):
            return X[c].to_numpy(float)
        return pd.Categorical(X[c], categories=sorted(X[c].unique())).codes.astype(float)

    return np.column_stack([column(c) for c in X])


def _baselines(X_tr, y_tr, tests, seed, location=None):
    from sklearn.ensemble import HistGradientBoostingRegressor

    hgb = HistGradientBoostingRegressor(random_state=seed).fit(_numeric(X_tr), y_tr)
    out = {}
    for name, (X_te, y_te) in tests.items():
        row = {
            "training_mean": rmse(y_te, np.full(len(y_te), y_tr.mean())),
            "hist_gradient_boosting": rmse(y_te, hgb.predict(_numeric(X_te))),
        }
        if location is not None:
            row["per_location_mean"] = rmse(y_te, location(X_te))
        out[name] = row
    return out


def gaussian_predictive(model, X):
    """Mean and variance ``var_f + s2`` (n,) of ``model``'s own Gaussian predictive at
    ``X``. A recalibrated predictive is ``E[f] + scale * sqrt(var_f + s2) * t_dof``
    (``funbat.calibration``) and fitting does not depend on the recalibration, so the
    default fit serves: its scale divides back out."""
    pred = model.predictive(X)
    recal = model.recalibration_
    if recal is None:
        return pred.mean, pred.var_f + pred.noise_scale**2
    return pred.mean, (pred.noise_scale / recal.scale) ** 2


def _backtest(model, X_tr, y_tr, dates, tests, kernel, rank, args):
    """Recalibration measured off the data: fit without the last ``args.backtest`` days
    of the training range, fit the Student-t shape ``z ~ scale * t_dof`` to the
    standardised errors of that model's forecasts of them, and give the full training
    fit ``model``'s forecasts that shape instead of the in-sample one (the
    recalibration's formula, :func:`gaussian_predictive`)."""
    from funbat.calibration import Predictive, fit_recalibration

    inner = (dates <= dates.max() - pd.Timedelta(days=args.backtest)).to_numpy()
    held_out = _fitted(X_tr[inner], y_tr[inner], kernel, rank, args)
    mean, var = gaussian_predictive(held_out, X_tr[~inner])
    recal = fit_recalibration((y_tr[~inner] - mean) / np.sqrt(var))
    out = {"scale": recal.scale, "dof": recal.dof, "n_held_out": int((~inner).sum())}
    for name, (X_te, y_te) in tests.items():
        mean, var = gaussian_predictive(model, X_te)
        scale = recal.scale * np.sqrt(var)
        pred = Predictive(mean, np.zeros_like(scale), scale, recal.dof)
        latent_var = np.maximum(var - model.noise_variance_, 0.0)
        out[name] = {"latent_sd": float(np.median(np.sqrt(latent_var)))}
        for level in (0.5, 0.95):
            lo, hi = pred.interval(level)
            out[name][f"coverage_{int(level * 100)}"] = float(np.mean((y_te >= lo) & (y_te <= hi)))
    return out


def _funbat_variants(label, X_tr, y_tr, tests, variants, args, dates=None):
    """``_funbat`` for each kernel of ``variants`` (name -> kernel, or (kernel, rank)),
    printed as it ends; with ``args.backtest`` and the training rows' ``dates``, also
    :func:`_backtest`."""
    out = {}
    for name, kernel in variants.items():
        kernel, rank = kernel if isinstance(kernel, tuple) else (kernel, args.rank)
        out[name], model = _funbat(X_tr, y_tr, tests, kernel, rank, args)
        if args.backtest and dates is not None:
            out[name]["backtest"] = _backtest(model, X_tr, y_tr, dates, tests, kernel, rank,
                                              args)  # fmt: skip
        print(label, name, json.dumps(out[name]["tests"]), flush=True)
    return out


#: The date mode's kernels of the two data sets cut by date.
DATE_VARIANTS = {
    "default": "matern32",
    "date: matern32 + constant": {"date": "matern32 + constant"},
    "date: matern32 + trend": {"date": "matern32 + trend"},
    "date: matern32 + periodic(365.25) + constant": {
        "date": "matern32 + periodic(365.25) + constant"},
    "date: matern32 + periodic(365.25, learn_period=True) + constant": {
        "date": "matern32 + periodic(365.25, learn_period=True) + constant"},
}  # fmt: skip


def date_cut(dates, X, y):
    """The cut at 80% of the date range of ``dates`` (a datetime Series, one per row):
    the cut, the training rows (bool), and the tests of the next 7, 30 and 90 days."""
    lo, hi = dates.min(), dates.max()
    cut = lo + 0.8 * (hi - lo)
    tests = {}
    for h in (7, 30, 90):
        te = ((dates > cut) & (dates <= cut + pd.Timedelta(days=h))).to_numpy()
        tests[f"next_{h}_days"] = (X[te], y[te])
    return cut, (dates <= cut).to_numpy(), tests


def beijing(args):
    df = pd.read_csv(DATA / "beijing_pm25.csv", parse_dates=["date"])
    X, y = df[["temp_c", "pres_hpa", "date"]], df["pm25_z"].to_numpy()
    cut, tr, tests = date_cut(df["date"], X, y)
    res = {"cut": str(cut.date()), "n_train": int(tr.sum()),
           "baselines": _baselines(X[tr], y[tr], tests, args.seed)}  # fmt: skip
    res["funbat"] = _funbat_variants("beijing", X[tr], y[tr], tests, DATE_VARIANTS, args,
                                     df["date"][tr])  # fmt: skip
    return res


def us_temp(args):
    df = pd.read_csv(DATA / "us_temp.csv")
    X, y = df[["lat01", "lon01", "year"]], df["temp_f"].to_numpy()
    tr, te = (df["year"] < 1984).to_numpy(), (df["year"] >= 1984).to_numpy()
    recent = df[(df["year"] >= 1954) & (df["year"] < 1984)]
    loc_mean = recent.groupby(["lat01", "lon01"])["temp_f"].mean()

    def location(X_te):
        keys = pd.MultiIndex.from_frame(X_te[["lat01", "lon01"]])
        return loc_mean.reindex(keys).fillna(recent["temp_f"].mean()).to_numpy()

    tests = {"years_from_1984": (X[te], y[te])}
    variants = {
        "default": "matern32",
        "year: matern32 + constant": {"year": "matern32 + constant"},
        "year: matern32 + trend": {"year": "matern32 + trend"},
        # one kernel serves a mode's components: with one year component its learned
        # Matérn variance is that of the level's own departures
        "year: matern32 + trend, ranks (R, R, 1)": (
            {"year": "matern32 + trend"}, [args.rank, args.rank, 1]),
    }
    res = {"n_train": int(tr.sum()),
           "baselines": _baselines(X[tr], y[tr], tests, args.seed, location)}  # fmt: skip
    res["funbat"] = _funbat_variants("us_temp", X[tr], y[tr], tests, variants, args)
    return res


def seattle(args):
    try:
        from vega_datasets import data
    except ImportError:
        print("seattle_weather skipped: pip install vega_datasets (it ships the data offline)")
        return None
    raw = data.seattle_weather()
    long = raw.melt(id_vars="date", value_vars=["temp_max", "temp_min"], var_name="measure")
    X = pd.DataFrame({"date": pd.to_datetime(long["date"]).astype("datetime64[ns]"),
                      "measure": long["measure"].astype(str)})  # fmt: skip
    y = long["value"].to_numpy(float)
    cut, tr, tests = date_cut(X["date"], X, y)
    recent = (X["date"] > cut - pd.Timedelta(days=30)).to_numpy() & tr
    recent_mean = pd.Series(y[recent]).groupby(X["measure"].to_numpy()[recent]).mean()

    def location(X_te):
        return recent_mean.reindex(X_te["measure"].to_numpy()).to_numpy()

    res = {"cut": str(cut.date()), "n_train": int(tr.sum()),
           "baselines": _baselines(X[tr], y[tr], tests, args.seed, location)}  # fmt: skip
    res["funbat"] = _funbat_variants("seattle_weather", X[tr], y[tr], tests, DATE_VARIANTS,
                                     args, X["date"][tr])  # fmt: skip
    return res


def _backtest_fields(backtest, test):
    """The backtest's numbers for one test period, flat (none without a backtest)."""
    if backtest is None:
        return {}
    t = backtest[test]
    return {"latent_sd": t["latent_sd"], "backtest_scale": backtest["scale"],
            "backtest_dof": backtest["dof"], "backtest_coverage_50": t["coverage_50"],
            "backtest_coverage_95": t["coverage_95"]}  # fmt: skip


def _time_mode(values):
    """The time mode's entry of a per-mode list: the one mode with a sum kernel, wherever
    it stands (last in beijing_pm25 and us_temp, first in seattle_weather)."""
    return next((v for v in values if v is not None), None)


def _records(results):
    """One flat record per (data set, test period, method), for the docs' tables."""
    out = []
    for ds, res in results.items():
        for test in next(iter(res["funbat"].values()))["tests"]:
            for method, score in res["baselines"][test].items():
                out.append({"dataset": ds, "test": test, "method": method, "rmse": score})
            for name, fit in res["funbat"].items():
                t = fit["tests"][test]
                out.append({"dataset": ds, "test": test, "method": f"funbat {name}",
                            "rmse": t["rmse"], "coverage_50": t["coverage_50"],
                            "coverage_95": t["coverage_95"], "spread": t["spread"],
                            "dof": fit["dof"], "fit_s": fit["fit_s"],
                            "part_variance": _time_mode(fit["part_variances"]),
                            "period": _time_mode(fit["periods"]),
                            **_backtest_fields(fit.get("backtest"), test)})  # fmt: skip
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--backtest", type=int, default=0, metavar="DAYS",
        help="also recalibrate each date-cut forecast (beijing_pm25, seattle_weather) off "
        "the data: on a model's forecasts of the last DAYS training days (0: not)",
    )  # fmt: skip
    ap.add_argument("--transform-moves", action="store_true",
                    help="fit with transform_moves=True (the moves that balance the scales "
                    "of the modes against the core)")
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args()
    origin = provenance()
    t0 = time.perf_counter()
    results = {"beijing_pm25": beijing(args), "us_temp": us_temp(args)}
    third = seattle(args)
    if third is not None:
        results["seattle_weather"] = third
    records = _records(results)
    results["wall_s"] = time.perf_counter() - t0
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=results,
                           records=records), f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
