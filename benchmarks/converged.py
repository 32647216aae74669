"""Fits run to their own convergence against the default cut at ``max_iter=100``.

For each dataset, model and protocol split, rank 3 by default, the default model
(every row counted, ``duplicates="keep"``, as in the paper's protocol) is fitted twice
in the same process: with the defaults (100 sweeps, tolerance ``1e-5``) and with
``max_iter`` raised (``--max-iter``, default 3,000) so that the tolerance ends the fit.
Reported per fit: sweeps run, whether it converged, test RMSE, the coverage of the
central 50% and 95% predictive intervals, and the fit time (the first fit of each
model in the process pays the compilation). ``--core-prior-variance`` sets the prior
variance of the Tucker core's entries for every fit of the run, or ``auto`` learns it
(FunBaT-CP's core is fixed and ignores it); each row records the fit's
``core_prior_variance_``. ``--no-learn`` keeps every lengthscale at its data-derived
starting value.

    python benchmarks/converged.py --json benchmarks/results/converged.json
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
from _protocol import DATASETS, load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402


def _fit_and_score(cls, ds, tr, te, *, rank, max_iter, seed, core_prior_variance, learn):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "stopped at max_iter" is what is measured
        m = cls(rank=rank, max_iter=max_iter, random_state=seed, duplicates="keep",
                core_prior_variance=core_prior_variance,
                learn_hyperparameters=learn).fit(ds.X_df.iloc[tr], ds.y[tr])
    fit_s = time.perf_counter() - t0
    X_te, y_te = ds.X_df.iloc[te], ds.y[te]
    row = dict(
        n_iter=int(m.n_iter_),
        converged=bool(m.converged_),
        rmse=float(np.sqrt(np.mean((m.predict(X_te) - y_te) ** 2))),
        elbo=float(m.elbo_history_[-1]),
        core_prior_variance_=m.core_prior_variance_,
        fit_s=fit_s,
    )
    for level in (0.5, 0.95):
        lo, hi = m.predict_interval(X_te, level)
        row[f"coverage_{int(level * 100)}"] = float(np.mean((y_te >= lo) & (y_te <= hi)))
    return row


def _variance(text: str) -> float | str:
    return text if text == "auto" else float(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--models", nargs="+", default=["tucker", "cp"], choices=["tucker", "cp"])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--max-iter", type=int, default=3000,
                    help="the sweeps allowed to the fits that run to convergence")  # fmt: skip
    ap.add_argument("--core-prior-variance", type=_variance, default=1.0,
                    help="prior variance of each core entry, or 'auto' to learn it "
                    "(the estimators' default: 1)")
    ap.add_argument("--no-learn", dest="learn", action="store_false",
                    help="keep the lengthscales at their data-derived starting values")
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args(argv)

    from funbat import FunBaT, FunBaTCP

    origin = provenance()
    rows = []
    print("| dataset | model | split | max_iter | sweeps | converged | RMSE | cov50 | cov95 "
          "| time (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for name in args.datasets:
        ds = load_dataset(name, Path(args.data))
        for model in args.models:
            cls = FunBaT if model == "tucker" else FunBaTCP
            for split in args.splits:
                tr, te = split_indices(len(ds), split)
                for max_iter in (cls().max_iter, args.max_iter):
                    r = _fit_and_score(cls, ds, tr, te, rank=args.rank, max_iter=max_iter,
                                       seed=split,
                                       core_prior_variance=args.core_prior_variance,
                                       learn=args.learn)  # fmt: skip
                    rows.append(dict(dataset=name, model=model, rank=args.rank, split=split,
                                     max_iter=max_iter,
                                     core_prior_variance=args.core_prior_variance,
                                     learn_hyperparameters=args.learn, **r))  # fmt: skip
                    print(f"| {name} | {model} | {split} | {max_iter} | {r['n_iter']} | "
                          f"{r['converged']} | {r['rmse']:.4f} | {r['coverage_50']:.3f} | "
                          f"{r['coverage_95']:.3f} | {r['fit_s']:.1f} |", flush=True)  # fmt: skip
    summary = []
    for name in args.datasets:
        for model in args.models:
            for max_iter in sorted({r["max_iter"] for r in rows}):
                sel = [r for r in rows if (r["dataset"], r["model"], r["max_iter"])
                       == (name, model, max_iter)]  # fmt: skip
                rm = np.array([r["rmse"] for r in sel])

                def mean(key):
                    return float(np.mean([r[key] for r in sel]))  # noqa: B023

                summary.append(dict(
                    dataset=name, model=model, max_iter=max_iter,
                    core_prior_variance=args.core_prior_variance,
                    learn_hyperparameters=args.learn, rmse_mean=float(rm.mean()),
                    rmse_std=float(rm.std(ddof=1)) if rm.size > 1 else 0.0,
                    converged=sum(r["converged"] for r in sel), splits=len(sel),
                    sweeps_mean=mean("n_iter"), coverage_50=mean("coverage_50"),
                    coverage_95=mean("coverage_95"), fit_s_mean=mean("fit_s"),
                ))  # fmt: skip
                s = summary[-1]
                print(f"{name} {model} max_iter={max_iter}: RMSE {s['rmse_mean']:.4f} ± "
                      f"{s['rmse_std']:.4f}, converged {s['converged']}/{s['splits']}, "
                      f"sweeps {s['sweeps_mean']:.0f}, cov50 {s['coverage_50']:.3f}, "
                      f"cov95 {s['coverage_95']:.3f}")  # fmt: skip
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=rows, summary=summary),
                      f, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
