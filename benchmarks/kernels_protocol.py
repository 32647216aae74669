"""Sum kernels on the time mode under the paper's random-split protocol: does a kernel
that forecasts better (``benchmarks/forecast.py``) cost accuracy between the data?

For each data set, five protocol splits (``_protocol.split_indices``), FunBaT and
FunBaT-CP at rank 3, defaults except the time mode's kernel: the default Matérn-3/2,
``matern32 + constant`` and ``matern32 + trend``. Reported per fit: test RMSE, the
coverage of the central 50% and 95% predictive intervals, and the fit's wall time.

    PYTHONPATH=src python benchmarks/kernels_protocol.py \\
        --json benchmarks/results/kernels_protocol.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _protocol import load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402

#: data set -> its time mode's name
TIME_MODE = {"beijing_pm25": "date", "us_temp": "year"}
KERNELS = ("matern32", "matern32 + constant", "matern32 + trend")


def _fit(model_cls, ds, train, test, kernel, args):
    X, y = ds.X_df, ds.y
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = model_cls(rank=args.rank, kernel={TIME_MODE[ds.name]: kernel},
                      random_state=args.seed).fit(X.iloc[train], y[train])  # fmt: skip
    fit_s = time.perf_counter() - t0
    Xt, yt = X.iloc[test], y[test]
    row = {"rmse": float(np.sqrt(np.mean((m.predict(Xt) - yt) ** 2))), "fit_s": fit_s,
           "n_iter": int(m.n_iter_), "converged": bool(m.converged_)}  # fmt: skip
    for level in (0.5, 0.95):
        lo, hi = m.predict_interval(Xt, level)
        row[f"coverage_{int(level * 100)}"] = float(np.mean((yt >= lo) & (yt <= hi)))
    return row


def main():
    from funbat import FunBaT, FunBaTCP

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(TIME_MODE), choices=list(TIME_MODE))
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(HERE.parent / ".." / "shared" / "data"))
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args()
    origin = provenance()
    results = []
    for name in args.datasets:
        ds = load_dataset(name, Path(args.data_dir))
        for s in range(args.splits):
            train, test = split_indices(len(ds), s)
            for model_cls in (FunBaT, FunBaTCP):
                for kernel in KERNELS:
                    row = {"dataset": name, "split": s, "model": model_cls.__name__,
                           "kernel": kernel, **_fit(model_cls, ds, train, test, kernel, args)}  # fmt: skip
                    results.append(row)
                    print(json.dumps(row), flush=True)
    summary = {}
    for r in results:
        key = f"{r['dataset']} {r['model']} {r['kernel']}"
        summary.setdefault(key, []).append(r)
    # mean and std over the splits, one record per (data set, model, kernel)
    table = [{"dataset": rows[0]["dataset"], "model": rows[0]["model"],
              "kernel": rows[0]["kernel"], "converged": sum(r["converged"] for r in rows),
              **{m: {"mean": float(np.mean([r[m] for r in rows])),
                     "std": float(np.std([r[m] for r in rows]))}
                 for m in ("rmse", "coverage_50", "coverage_95", "fit_s")}}
             for rows in summary.values()]  # fmt: skip
    print(json.dumps(table, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=results, summary=table),
                      f, indent=1)


if __name__ == "__main__":
    main()
