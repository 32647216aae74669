"""Why forecast intervals are too wide: the time mode's components, inside the data and
past it, and the target's own variance in the forecast window.

For beijing_pm25 (cut at 80% of the date range, next 90 days) and us_temp (years before
1984, tested on 1984-2012), with ``matern32 + trend`` on the time mode (rank 3, 100
sweeps, seed 0), it records per component ``r`` of the time mode:

* ``level``: the mean over the training coordinates of the trend part (the
  component's level) and ``trend_range``: its range there;
* ``learned_sd_in_data``: the standard deviation over the training coordinates of the
  posterior mean of the Matérn part (the function minus its trend part);
* ``posterior_sd_past_data``: the mean posterior standard deviation of the component
  over the forecast coordinates;

and, shared by the components, ``prior_sd``: the square root of the learned Matérn
variance (one per mode). Where ``learned_sd_in_data`` is far below ``prior_sd`` for a
component, its forecast spread comes from the prior, not from the data. Also recorded:
the median latent standard deviation of the predictive at the test targets (the model's
own, before recalibration), the noise standard deviation, the test RMSE, and the
target's variance in the training rows, in the test rows and (beijing_pm25) in the same
calendar window of the earlier years, with the coverage of Gaussian intervals of that
window's spread (``climatology``: what a seasonal variance known in advance would give).

    python benchmarks/forecast_components.py --json benchmarks/results/forecast_components.json
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
from forecast import DATA, date_cut, gaussian_predictive, rmse  # noqa: E402


def _components(model, mode, x_train, x_future):
    """Per-component records of the time mode (module docstring)."""
    mean, _ = model.latent_functions(mode, x_train)
    trend = model.latent_parts(mode, x_train)["trend"]
    learned = mean - trend
    _, sd_future = model.latent_functions(mode, x_future)
    return [{"component": r, "level": float(trend[:, r].mean()),
             "trend_range": float(np.ptp(trend[:, r])),
             "learned_sd_in_data": float(learned[:, r].std()),
             "posterior_sd_past_data": float(sd_future[:, r].mean())}
            for r in range(mean.shape[1])]  # fmt: skip


def _record(name, model, mode, x_train, x_future, X_te, y_te, y_tr, fit_s):
    """The data set's record (module docstring) and funbat's predictive mean at ``X_te``."""
    mean, var = gaussian_predictive(model, X_te)
    latent = np.maximum(var - model.noise_variance_, 0.0)
    desc = next(d for d in model.summary()["modes"] if d["name"] == mode)
    return {"dataset": name, "mode": mode, "kernel": desc["kernel"],
            "prior_sd": float(np.sqrt(desc["part_variance"])),
            "components": _components(model, mode, x_train, x_future),
            "latent_sd_test": float(np.median(np.sqrt(latent))),
            "noise_sd": float(np.sqrt(model.noise_variance_)),
            "test_rmse": rmse(y_te, mean), "var_y_train": float(np.var(y_tr)),
            "var_y_test": float(np.var(y_te)), "fit_s": fit_s}, mean  # fmt: skip


def _climatology(y_window, y_te, mean):
    """Coverage of Gaussian intervals whose spread is the target's standard deviation in
    the same calendar window of the earlier years (a seasonal variance known in
    advance), around the window's earlier mean and around funbat's mean."""
    from scipy.stats import norm

    sd = float(np.std(y_window))
    out = {"sd": sd, "rmse_window_mean": rmse(y_te, np.full(len(y_te), y_window.mean()))}
    for name, centre in (("window_mean", np.full(len(y_te), y_window.mean())),
                         ("funbat_mean", mean)):  # fmt: skip
        for level in (0.5, 0.95):
            half = norm.ppf(0.5 + level / 2) * sd
            out[f"coverage_{int(level * 100)}_{name}"] = float(
                np.mean(np.abs(y_te - centre) <= half)
            )
    return out


def _fit(X, y, mode, args):
    from funbat import FunBaT

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FunBaT(rank=args.rank, kernel={mode: "matern32 + trend"},
                   max_iter=args.max_iter, random_state=args.seed,
                   transform_moves=args.transform_moves).fit(X, y)  # fmt: skip
    return m, time.perf_counter() - t0


def beijing(args):
    df = pd.read_csv(DATA / "beijing_pm25.csv", parse_dates=["date"])
    X, y = df[["temp_c", "pres_hpa", "date"]], df["pm25_z"].to_numpy()
    cut, tr, tests = date_cut(df["date"], X, y)
    X_te, y_te = tests["next_90_days"]
    m, fit_s = _fit(X[tr], y[tr], "date", args)
    days = np.sort(X[tr]["date"].unique())
    future = np.sort(X_te["date"].unique())
    rec, mean = _record("beijing_pm25", m, "date", days, future, X_te, y_te, y[tr], fit_s)
    # the same calendar days as the test window, in the training years
    doy = df["date"].dt.dayofyear.to_numpy()
    lo, hi = X_te["date"].min().dayofyear, X_te["date"].max().dayofyear
    same = tr & (doy >= lo) & (doy <= hi)
    rec["var_y_same_window_earlier_years"] = float(np.var(y[same]))
    rec["n_same_window_earlier_years"] = int(same.sum())
    rec["climatology"] = _climatology(y[same], y_te, mean)
    return rec


def us_temp(args):
    df = pd.read_csv(DATA / "us_temp.csv")
    X, y = df[["lat01", "lon01", "year"]], df["temp_f"].to_numpy()
    tr, te = (df["year"] < 1984).to_numpy(), (df["year"] >= 1984).to_numpy()
    m, fit_s = _fit(X[tr], y[tr], "year", args)
    years = np.sort(X[tr]["year"].unique()).astype(float)
    future = np.sort(X[te]["year"].unique()).astype(float)
    return _record("us_temp", m, "year", years, future, X[te], y[te], y[tr], fit_s)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transform-moves", action="store_true",
                    help="fit with transform_moves=True")
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args()
    origin = provenance()
    results = [beijing(args), us_temp(args)]
    rows = [{"dataset": r["dataset"], "prior_sd": r["prior_sd"], **c}
            for r in results for c in r["components"]]  # fmt: skip
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=results,
                           components=rows), f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
