"""ELBO against sweeps, with and without the transformation moves, on the paper's data.

For each dataset and structure, split 0 of the protocol, the default model with
``tol=0`` (every sweep runs; every row counts, exact repeats included, as in the
paper's protocol) is fitted twice in the same run, once with
``transform_moves=True`` and once without; the ELBO after given numbers of sweeps,
the test RMSE after the last one and the learned lengthscales are reported. Each fit
runs in its own process.

    PYTHONPATH=src python benchmarks/convergence.py --sweeps 25 50 100 200 \\
        --json benchmarks/results/convergence.json

``--rmse-at-each`` adds the test RMSE after each number of sweeps (one fit per number:
the fits are deterministic), and each row says after which sweep a fit with the default
tolerance would have stopped (``stops_at_default_tol``; null: not within the sweeps).
``fit_s`` is the time of the longest fit, compilation included only when it is the
process's first.
``--baseline-src`` adds fits of another version of funbat (its ``src`` folder, e.g. a
``git worktree`` of an older commit) in the same run, with or without the moves
(``--baseline-moves``); ``--moves on`` fits this code with the moves only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _provenance import provenance  # noqa: E402

_CHILD = r"""
import json, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["here"])
if cfg["src"]:
    sys.path.insert(0, cfg["src"])
from pathlib import Path
from _protocol import load_dataset, split_indices
from funbat import FunBaT, FunBaTCP
ds = load_dataset(cfg["dataset"], Path(cfg["data"]))
tr, te = split_indices(len(ds), cfg["split"])
cls = FunBaT if cfg["model"] == "tucker" else FunBaTCP


def fit(n):
    return cls(rank=cfg["rank"], max_iter=n, tol=0.0, random_state=cfg["split"],
               transform_moves=cfg["moves"], duplicates="keep").fit(ds.X_df.iloc[tr], ds.y[tr])


def rmse(m):
    return float(np.sqrt(np.mean((m.predict(ds.X_df.iloc[te]) - ds.y[te]) ** 2)))


# the fits are deterministic, so a fit of n sweeps is the first n sweeps of a longer one
rmse_at = {str(n): rmse(fit(n)) for n in sorted(cfg["sweeps"])[:-1]} if cfg["each"] else {}
t0 = time.perf_counter()
m = fit(max(cfg["sweeps"]))
fit_s = time.perf_counter() - t0
h = np.asarray(m.elbo_history_)
rmse_at[str(max(cfg["sweeps"]))] = rmse(m)
after = np.diff(h[10:])
# where a fit with the default tolerance would have stopped: inference.run's test,
# restated here because a --baseline-src version may predate any helper for it
from funbat.inference import ModelSpec
tol, warmup = cls().tol, ModelSpec._field_defaults["warmup"]
small = np.abs(np.diff(h)) <= tol * np.abs(h[1:])
stop = [i + 2 for i in np.flatnonzero(small) if i + 1 > warmup]
print(json.dumps(dict(
    elbo={str(n): float(h[n - 1]) for n in cfg["sweeps"]},
    rmse=rmse_at[str(max(cfg["sweeps"]))],
    rmse_at=rmse_at,
    stops_at_default_tol=int(stop[0]) if stop else None,
    never_decreased=bool(np.all(after >= -1e-8 * np.abs(h[11:]))),
    fit_s=fit_s,
    lengthscales=[np.atleast_1d(e).tolist() for e in m.lengthscales_],
)))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=["beijing_pm25", "us_temp"])
    ap.add_argument("--models", nargs="+", default=["tucker", "cp"], choices=["tucker", "cp"])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--sweeps", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--baseline-src", help="src folder of another version of funbat to compare")
    ap.add_argument("--baseline-sweeps", type=int, nargs="+", default=[50, 200, 800])
    ap.add_argument("--moves", choices=["both", "on", "off"], default="both",
                    help="fit this code with the transformation moves, without, or both")
    ap.add_argument("--baseline-moves", action="store_true",
                    help="fit the baseline with the transformation moves (default: without)")
    ap.add_argument("--rmse-at-each", action="store_true",
                    help="also the test RMSE after each number of sweeps (one more fit each)")
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args(argv)
    origin = provenance()
    rows = []
    moves = {"both": [False, True], "on": [True], "off": [False]}[args.moves]
    variants = [("this", None, m, args.sweeps) for m in moves]
    if args.baseline_src:
        variants.append(("baseline", str(Path(args.baseline_src).resolve()),
                         args.baseline_moves, args.baseline_sweeps))  # fmt: skip
    for dataset in args.datasets:
        for model in args.models:
            for code, src, moves, sweeps in variants:
                cfg = dict(here=str(HERE), data=args.data, dataset=dataset, model=model,
                           rank=args.rank, split=args.split, sweeps=sweeps, moves=moves,
                           src=src, each=args.rmse_at_each)  # fmt: skip
                out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                res = json.loads(out.stdout.strip().splitlines()[-1])
                row = dict(dataset=dataset, model=model, rank=args.rank, split=args.split,
                           code=code, transform_moves=moves, **res)  # fmt: skip
                rows.append(row)
                print(f"| {dataset} | {model} | {code} | {moves} | "
                      + " | ".join(f"@{n}: {res['elbo'][str(n)]:,.1f}" for n in sweeps)
                      + " | " + " ".join(f"@{n}: {v:.4f}" for n, v in res["rmse_at"].items())
                      + f" | stops at {res['stops_at_default_tol']} | {res['fit_s']:.1f} |",
                      flush=True)  # fmt: skip
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
