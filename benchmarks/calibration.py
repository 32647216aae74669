"""Accuracy and calibration of funbat's predictive intervals on the paper's datasets.

For every split of the protocol (``shared/data/README.md``) fit a default model, then
report test RMSE, MAE, NLPD and the observed coverage of the central 50/80/90/95%
predictive intervals. us_temp uses a spatial mode (lat01, lon01) x year.

Then, pooled over the splits, two diagnostics of *why* intervals miss: the excess
kurtosis of the standardised test errors ``(y - mean) / std`` (0 for Gaussian errors)
and, per quintile of the predicted mean, the mean squared error against the mean
predicted variance with the 50% and 95% coverage (a constant noise level cannot follow
errors whose size changes with the level).

    PYTHONPATH=src python benchmarks/calibration.py --splits 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import load_dataset, split_indices  # noqa: E402

from funbat import FunBaT  # noqa: E402
from funbat.calibration import LEVELS, coverage_table, nlpd  # noqa: E402

CONFIGS = {
    "us_temp": dict(modes=[("lat01", "lon01"), "year"]),
    "beijing_pm25": dict(),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS))
    ap.add_argument("--splits", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--rank", type=int, default=3)
    args = ap.parse_args(argv)
    for name in args.datasets:
        ds = load_dataset(name, Path(args.data))
        X, y = ds.X_df, ds.y
        rows, pooled = [], []
        print(f"\n## {name}: FunBaT(rank={args.rank}, {CONFIGS[name]})\n")
        head = "| split | RMSE | MAE | NLPD | " + " | ".join(f"cov{int(p * 100)}" for p in LEVELS)
        print(head + " | sweeps | fit s | lengthscales |")
        print("|" + "---|" * (len(LEVELS) + 7))
        for s in args.splits:
            tr, te = split_indices(len(ds), s)
            t0 = time.perf_counter()
            m = FunBaT(rank=args.rank, random_state=s, **CONFIGS[name]).fit(X.iloc[tr], y[tr])
            fit_s = time.perf_counter() - t0
            mean, std = m.predict(X.iloc[te], return_std=True)
            err = y[te] - mean
            cov = coverage_table(y[te], mean, std)
            row = [
                float(np.sqrt(np.mean(err**2))),
                float(np.mean(np.abs(err))),
                nlpd(y[te], mean, std),
                *cov.values(),
            ]
            rows.append(row)
            pooled.append(np.stack([y[te], mean, std], axis=1))
            ells = "; ".join(
                np.array2string(np.atleast_1d(e), precision=3) for e in m.lengthscales_
            )
            print(
                f"| {s} | "
                + " | ".join(f"{v:.3f}" for v in row)
                + f" | {m.n_iter_} | {fit_s:.0f} | {ells} |",
                flush=True,
            )
        a = np.array(rows)
        print(
            "| mean ± sd | "
            + " | ".join(f"{mu:.3f} ± {sd:.3f}" for mu, sd in zip(a.mean(0), a.std(0)))
            + " | | | |"
        )
        print("\n| nominal | observed (mean over splits) |\n|---|---|")
        for i, p in enumerate(LEVELS):
            print(f"| {p:.0%} | {a[:, 3 + i].mean():.1%} |")
        _diagnostics(np.concatenate(pooled))


def _diagnostics(pooled: np.ndarray) -> None:
    """Kurtosis of standardised errors; error size and coverage by predicted level."""
    yt, mean, std = pooled.T
    z = (yt - mean) / std
    kurt = float(np.mean((z - z.mean()) ** 4) / np.var(z) ** 2 - 3.0)
    print(f"\nexcess kurtosis of (y - mean) / std over {z.size} test points: {kurt:.1f}")
    print("\n| predicted-mean quintile | MSE | mean predicted var | cov50 | cov95 |")
    print("|---|---|---|---|---|")
    edges = np.quantile(mean, [0.2, 0.4, 0.6, 0.8])
    q = np.searchsorted(edges, mean, side="right")
    for k in range(5):
        sel = q == k
        c = coverage_table(yt[sel], mean[sel], std[sel])
        print(
            f"| {k + 1} | {np.mean((yt[sel] - mean[sel]) ** 2):.4f} | "
            f"{np.mean(std[sel] ** 2):.4f} | {c[0.5]:.1%} | {c[0.95]:.1%} |"
        )


if __name__ == "__main__":
    main()
