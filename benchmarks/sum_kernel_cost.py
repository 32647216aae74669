"""What a sum kernel on the time mode costs per sweep, on each chain solver.

beijing_pm25, the training part of protocol split 0, FunBaT at rank 3, a fixed number
of sweeps (``tol=0``), defaults except the date mode's kernel and the chain solver.
Each (kernel, solver) is fitted once to compile, then ``--repeats`` times, the
configurations taking turns so that they share the machine's load; reported: the
median seconds per sweep and its ratio to the default Matérn-3/2 on the native solver
(the CPU default). A sum kernel's chains have a larger state (``d`` per component: 2
for Matérn-3/2, 3 with a constant, 4 with a trend, 14 with ``periodic(365.25) +
constant`` at its default accuracy), and a Kalman step costs about ``(R d)^3``.

    python benchmarks/sum_kernel_cost.py --json benchmarks/results/sum_kernel_cost.json
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

KERNELS = ("matern32", "matern32 + constant", "matern32 + trend",
           "matern32 + periodic(365.25) + constant")  # fmt: skip
SOLVERS = ("native", "sequential")


def main():
    from funbat import FunBaT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS))
    ap.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=list(SOLVERS))
    ap.add_argument("--data-dir", default=str(HERE.parent / ".." / "shared" / "data"))
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args()
    origin = provenance()
    ds = load_dataset("beijing_pm25", Path(args.data_dir))
    train, _ = split_indices(len(ds), 0)
    X, y = ds.X_df.iloc[train], ds.y[train]
    configs = [(k, s) for k in args.kernels for s in args.solvers]

    def fit(kernel, solver):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            m = FunBaT(rank=args.rank, kernel={"date": kernel}, chain_solver=solver,
                       max_iter=args.sweeps, tol=0.0, random_state=0).fit(X, y)  # fmt: skip
            return (time.perf_counter() - t0) / m.n_iter_, m

    times = {c: [] for c in configs}
    for c in configs:  # compile
        fit(*c)
    for _ in range(args.repeats):
        for c in configs:
            times[c].append(fit(*c)[0])
    base = float(np.median(times[("matern32", "native")])) if ("matern32", "native") in times else None
    rows = []
    for (kernel, solver), ts in times.items():
        ms = 1e3 * float(np.median(ts))
        rows.append({"kernel": kernel, "solver": solver, "ms_per_sweep": ms,
                     "ratio_to_default_native": None if base is None else ms / (1e3 * base),
                     "repeats_ms": [1e3 * t for t in ts]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), n_train=int(len(y)), rows=rows), f,
                      indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
