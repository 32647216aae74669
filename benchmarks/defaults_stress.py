"""Do funbat's defaults hold up on data unlike the paper's? A table of awkward cases.

Each case is a small table with a known answer: synthetic data from the model at
several sizes, ranks, mode counts and noise levels, then coordinates in huge units, a
constant target, a mode binarised to two values (little signal left), clustered
coordinates, and an additive (not product-shaped) function; then inputs that fool a
naive fit: a file concatenated three times (exact duplicate rows), a date column with
one bad cell, and ten feature columns (by default one spatial mode; also as ten modes). Every case is
fitted with default settings on a random 80% and scored on the rest; a case funbat
refuses (an ``InputError``) is a row with its message. ``reference`` is the noise
standard deviation where it is known, else the test targets' standard deviation (the
RMSE of predicting their mean). Example::

    PYTHONPATH=src python benchmarks/defaults_stress.py [--json out.json] [--cases dup]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
from _provenance import provenance  # noqa: E402


def _cases():
    from funbat.datasets import make_synthetic

    for cfg in [
        dict(n=300, n_unique=20),
        dict(n=2000, n_unique=500),
        dict(n=20000, n_unique=5),
        dict(n=20000, n_modes=2, rank=3),
        dict(n=20000, n_modes=4, rank=2, n_unique=50),
        dict(n=20000, noise_std=1.0),
        dict(n=20000, noise_std=0.01),
    ]:
        d = make_synthetic(**cfg, seed=3)
        yield f"synthetic {cfg}", d.X, d.y, d.noise_std
    d = make_synthetic(5000, seed=4)
    yield "coordinates x1e6 + 1e9, y x1e-3 + 300", d.X * 1e6 + 1e9, d.y * 1e-3 + 300, 1e-4
    yield "constant target", d.X, np.full(len(d.y), 5.0), 0.0
    X = d.X.copy()
    X["x1"] = (X["x1"] > 0.5).astype(float)
    yield "x1 binarised to 2 values (weak signal)", X, d.y, None
    rng = np.random.default_rng(5)
    n = 8000
    a = np.concatenate([rng.uniform(0, 0.01, n // 2), rng.uniform(10, 100, n - n // 2)])
    b = rng.uniform(-5, 5, n)
    X = pd.DataFrame({"a": a, "b": b})
    yield "clustered coordinates", X, np.sin(a / 10) * np.cos(b) + 0.05 * rng.normal(size=n), 0.05
    y = np.sin(b) + np.log1p(a) / 3 + 0.05 * rng.normal(size=n)
    yield "additive function", X, y, 0.05
    # a 300-row file concatenated 3 times (the copies are dropped with a warning; kept,
    # they made the noise std 0.0045 and the intervals cover 3%). Most
    # test rows are copies of training rows here: compare the noise and the coverage
    # with "synthetic {'n': 300, ...}" above, not the RMSE
    d = make_synthetic(300, noise_std=0.1, seed=3)
    yield "duplicate rows (300 rows x 3)", pd.concat([d.X] * 3, ignore_index=True), np.tile(d.y, 3), 0.1
    # a date column with one bad cell, as read from a CSV: refused, naming the cell
    dates = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.round(d.X["x0"] * 1000), "D"))
    day = list(dates.dt.strftime("%Y-%m-%d"))
    day[7] = "not a date"
    yield "date column with one bad cell", d.X.assign(x0=day), d.y, 0.1
    # ten feature columns (scikit-learn's regression check): ten modes, or one GP
    from sklearn.datasets import make_regression

    Xr, yr = make_regression(n_samples=250, n_features=10, n_informative=1, bias=5.0,
                             noise=20, random_state=42)  # fmt: skip
    Xr = pd.DataFrame((Xr - Xr.mean(0)) / Xr.std(0), columns=[f"f{i}" for i in range(10)])
    yr = (yr - yr.mean()) / yr.std()
    yield "10 feature columns (default: one spatial mode)", Xr, yr, None
    yield "10 feature columns (as 10 modes)", Xr, yr, None, dict(modes=list(Xr.columns))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cases", nargs="+", default=None, metavar="TEXT",
                    help="run only the cases whose name contains one of these")  # fmt: skip
    args = ap.parse_args(argv)
    import warnings

    from funbat import FunBaT, FunBaTCP, InputError

    rows = []
    print(
        "| case | model | N | test RMSE | reference | 95% cov. | lengthscales (user units) | fit s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, X, y, noise, *extra in _cases():
        if args.cases and not any(c in name for c in args.cases):
            continue
        kwargs = extra[0] if extra else {}
        perm = np.random.default_rng(1).permutation(len(y))
        te, tr = perm[: len(y) // 5], perm[len(y) // 5 :]
        for cls in (FunBaT, FunBaTCP):
            if cls is FunBaTCP and "one spatial mode" in name:
                continue  # a single (spatial) mode: CP and Tucker are the same model
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    m = cls(rank=args.rank, random_state=0, **kwargs).fit(X.iloc[tr], y[tr])
            except InputError as err:
                rows.append({"case": name, "model": cls.__name__, "n": len(y), "refused": str(err)})
                print(f"| {name} | {cls.__name__} | {len(y)} | refused: {err} | | | | |", flush=True)
                continue
            fit_s = time.perf_counter() - t0
            mean, std = m.predict(X.iloc[te], return_std=True)
            err = y[te] - mean
            ref = noise if noise is not None else float(np.std(y[te]))
            row = {
                "case": name,
                "model": cls.__name__,
                "n": len(y),
                "rmse": float(np.sqrt(np.mean(err**2))),
                "reference": ref,
                "coverage95": float(np.mean(np.abs(err) <= 1.959964 * std)),
                "lengthscales": [float(np.atleast_1d(v)[0]) for v in m.lengthscales_],
                "fit_s": fit_s,
                "ranks": list(m.ranks_),
                "n_train": int(m.n_train_),
                "warnings": [str(w.message) for w in caught],
            }
            rows.append(row)
            ells = ", ".join(f"{v:.3g}" for v in row["lengthscales"])
            print(
                f"| {name} | {row['model']} | {row['n']} | {row['rmse']:.4g} | {ref:.3g} | "
                f"{row['coverage95']:.3f} | {ells} | {fit_s:.1f} |",
                flush=True,
            )
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as fh:
            json.dump({"provenance": provenance(), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
