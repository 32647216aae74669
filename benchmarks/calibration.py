"""Accuracy and calibration of funbat's predictive intervals on the paper's datasets.

For every split of the protocol (``shared/data/README.md``) fit a default model, then
report test RMSE, MAE, NLPD and the observed coverage of the central 50/80/90/95%
predictive intervals. us_temp uses a spatial mode (lat01, lon01) x year. The default
model is recalibrated (``FunBaT(recalibrate=True)``); ``--no-recalibrate`` reports its
Gaussian predictive instead.

Then, pooled over the splits, two diagnostics of *why* intervals miss: the excess
kurtosis of the standardised test errors ``(y - mean) / std`` (0 for Gaussian errors)
and, per quintile of the predicted mean, the mean squared error against the mean
predicted variance with the 50% and 95% coverage (a constant noise level cannot follow
errors whose size changes with the level).

    PYTHONPATH=src python benchmarks/calibration.py --splits 0 1 2 3 4
    PYTHONPATH=src python benchmarks/calibration.py --no-recalibrate
    PYTHONPATH=src python benchmarks/calibration.py --likelihood student_t
    PYTHONPATH=src python benchmarks/calibration.py --likelihood student_t \
        --noise-mode beijing_pm25=date
    PYTHONPATH=src python benchmarks/calibration.py --duplicate-train 3 --duplicates drop

``--duplicate-train N`` fits on the training rows concatenated ``N`` times (a copied
file): funbat drops the exact copies, so the figures should match ``N = 1``.

With ``--likelihood student_t`` the intervals and densities are the model's Student-t
predictive (``FunBaT.predictive``); the kurtosis needs a finite predictive std and is
left out when the learned degrees of freedom are <= 2. ``--noise-mode DATASET=MODE``
(repeatable) lets the noise level of that dataset vary along one mode
(``FunBaT(noise_mode=...)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402

from funbat import FunBaT  # noqa: E402
from funbat.calibration import LEVELS, Predictive  # noqa: E402
from funbat.files import atomic_write  # noqa: E402
from funbat.likelihoods import LIKELIHOODS  # noqa: E402

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
    ap.add_argument("--likelihood", choices=LIKELIHOODS, default="gaussian")
    ap.add_argument(
        "--noise-mode",
        action="append",
        default=[],
        metavar="DATASET=MODE",
        help="let DATASET's noise level vary along MODE (repeatable)",
    )
    ap.add_argument(
        "--no-recalibrate",
        dest="recalibrate",
        action="store_false",
        help="keep the Gaussian predictive of a Gaussian fit (FunBaT(recalibrate=False))",
    )
    ap.add_argument(
        "--duplicate-train",
        type=int,
        default=1,
        metavar="N",
        help="fit on the training rows repeated N times (exact duplicate rows)",
    )
    ap.add_argument("--markdown", help="also write the printed tables here")
    ap.add_argument("--json", help="also write the results here (with their provenance)")
    ap.add_argument(
        "--duplicates",
        choices=["keep", "drop"],
        default="keep",
        help="exact duplicate rows: keep them, as the paper's protocol counts every row "
        "(default), or drop them (funbat's default)",
    )
    args = ap.parse_args(argv)
    if any("=" not in item for item in args.noise_mode):
        ap.error("--noise-mode takes DATASET=MODE, e.g. beijing_pm25=date")
    noise_modes = dict(item.split("=", 1) for item in args.noise_mode)
    lines: list[str] = []
    results: list[dict] = []
    origin = provenance()  # the code as the run starts

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    for name in args.datasets:
        ds = load_dataset(name, Path(args.data))
        X, y = ds.X_df, ds.y
        rows, pooled = [], []
        config = dict(CONFIGS[name], likelihood=args.likelihood, recalibrate=args.recalibrate,
                      duplicates=args.duplicates)  # fmt: skip
        if name in noise_modes:
            config["noise_mode"] = noise_modes[name]
        dup = f", training rows x{args.duplicate_train}" if args.duplicate_train > 1 else ""
        emit(f"\n## {name}: FunBaT(rank={args.rank}, {config}){dup}\n")
        head = "| split | RMSE | MAE | NLPD | " + " | ".join(f"cov{int(p * 100)}" for p in LEVELS)
        emit(head + " | noise dof | sweeps | fit s | lengthscales |")
        emit("|" + "---|" * (len(LEVELS) + 8))
        for s in args.splits:
            tr, te = split_indices(len(ds), s)
            tr = np.tile(tr, args.duplicate_train)
            t0 = time.perf_counter()
            m = FunBaT(rank=args.rank, random_state=s, **config).fit(X.iloc[tr], y[tr])
            fit_s = time.perf_counter() - t0
            pred = m.predictive(X.iloc[te])
            err = y[te] - pred.mean
            row = [
                float(np.sqrt(np.mean(err**2))),
                float(np.mean(np.abs(err))),
                pred.nlpd(y[te]),
                *pred.coverage_table(y[te]).values(),
            ]
            rows.append(row)
            pooled.append((y[te], pred))
            results.append(
                dict(dataset=name, split=s, rmse=row[0], mae=row[1], nlpd=row[2],
                     coverage={f"{p:.0%}": c for p, c in zip(LEVELS, row[3:])},
                     dof=float(m.dof_), sweeps=int(m.n_iter_), fit_s=fit_s,
                     lengthscales=[np.atleast_1d(e).tolist() for e in m.lengthscales_])
            )  # fmt: skip
            ells = "; ".join(
                np.array2string(np.atleast_1d(e), precision=3) for e in m.lengthscales_
            )
            emit(
                f"| {s} | "
                + " | ".join(f"{v:.3f}" for v in row)
                + f" | {m.dof_:.3g} | {m.n_iter_} | {fit_s:.0f} | {ells} |"
            )
        a = np.array(rows)
        emit(
            "| mean ± sd | "
            + " | ".join(f"{mu:.3f} ± {sd:.3f}" for mu, sd in zip(a.mean(0), a.std(0)))
            + " | | | | |"
        )
        emit("\n| nominal | observed (mean over splits) |\n|---|---|")
        for i, p in enumerate(LEVELS):
            emit(f"| {p:.0%} | {a[:, 3 + i].mean():.1%} |")
        results.append(
            dict(dataset=name, split="mean ± sd", model=f"FunBaT(rank={args.rank}, {config})",
                 **{k: dict(mean=float(mu), std=float(sd))
                    for k, mu, sd in zip(["rmse", "mae", "nlpd"], a.mean(0), a.std(0))},
                 coverage={f"{p:.0%}": dict(mean=float(a[:, 3 + i].mean()),
                                            std=float(a[:, 3 + i].std()))
                           for i, p in enumerate(LEVELS)})
        )  # fmt: skip
        _diagnostics(pooled, emit)
    if args.markdown:
        with atomic_write(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        payload = dict(provenance=origin, levels=list(LEVELS), results=results)
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(payload, indent=1) + "\n")


def _diagnostics(pooled: list, emit) -> None:
    """Kurtosis of standardised errors; error size and coverage by predicted level."""
    yt = np.concatenate([y for y, _ in pooled])
    pred = Predictive(*(np.concatenate([np.broadcast_to(getattr(p, f), p.mean.shape)
                                        for _, p in pooled])
                        for f in ("mean", "var_f", "noise_scale", "dof")))  # fmt: skip
    std = pred.std
    if np.all(np.isfinite(std)):
        z = (yt - pred.mean) / std
        kurt = float(np.mean((z - z.mean()) ** 4) / np.var(z) ** 2 - 3.0)
        emit(f"\nexcess kurtosis of (y - mean) / std over {z.size} test points: {kurt:.1f}")
    emit("\n| predicted-mean quintile | MSE | mean predicted var | cov50 | cov95 |")
    emit("|---|---|---|---|---|")
    edges = np.quantile(pred.mean, [0.2, 0.4, 0.6, 0.8])
    q = np.searchsorted(edges, pred.mean, side="right")
    for k in range(5):
        sel = q == k
        part = Predictive(*(x[sel] for x in pred))
        c = part.coverage_table(yt[sel], (0.5, 0.95))
        emit(
            f"| {k + 1} | {np.mean((yt[sel] - part.mean) ** 2):.4f} | "
            f"{np.mean(part.std**2):.4f} | {c[0.5]:.1%} | {c[0.95]:.1%} |"
        )


if __name__ == "__main__":
    main()
