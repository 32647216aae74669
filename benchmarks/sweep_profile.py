"""Where a sweep's time goes: per-stage milliseconds per sweep of a fit.

Runs the inference engine (:func:`funbat.inference.fit`) with its timer hook, which
blocks on each stage's result (``jax.block_until_ready``, so asynchronous dispatch does
not hide work); fits once to compile, then again, and reports each stage's time per
sweep:

* ``statistics``: grouped sufficient statistics of one mode (the pass over the entries);
* ``mode``: messages, lengthscale search and Kalman smoothing of one mode;
* ``core``: core, noise and ELBO refresh after each mode;
* ``likelihood``: the likelihood's own update (Student-t weights; none for Gaussian).

The timers add a synchronisation per stage, so the total is slightly above an untimed
sweep (``paper_size.py``). Example::

    python benchmarks/sweep_profile.py                      # beijing_pm25, Tucker R = 3
    python benchmarks/sweep_profile.py --no-learn --json profile.json
    python benchmarks/sweep_profile.py --solver native          # one chain solver only
    python benchmarks/sweep_profile.py --kernel "" --kernel "date=matern32 + trend"

By default the JAX (``sequential``) and the ``native`` chain solvers are profiled one
after the other in the same process, so the two tables share the machine's load; with
``--kernel`` given several times, each kernel configuration with each solver.
``solvers`` in the JSON holds the plain Matérn runs by solver, ``runs`` every run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _protocol import DATASETS, load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beijing_pm25", choices=list(DATASETS))
    ap.add_argument("--data-dir", default=str(HERE.parent / ".." / "shared" / "data"))
    ap.add_argument("--model", default="tucker", choices=["tucker", "cp"])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--no-learn", action="store_true", help="fixed lengthscales")
    ap.add_argument("--likelihood", default="gaussian", choices=["gaussian", "student_t"])
    ap.add_argument(
        "--solver", nargs="+", default=["sequential", "native"],
        help="chain solvers to profile, one after another in this process (funbat.solvers)",
    )  # fmt: skip
    ap.add_argument(
        "--kernel", action="append", default=None, metavar="MODE=KERNEL[;MODE=KERNEL]",
        help="kernels to profile, one configuration per use, one after another: e.g. "
        "'date=matern32 + periodic(365.25) + constant'; modes not named keep matern32, and "
        "'' is matern32 everywhere (the default)",
    )  # fmt: skip
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    configs = [
        dict(item.split("=", 1) for item in cfg.split(";") if item.strip())
        for cfg in (args.kernel or [""])
    ]  # fmt: skip

    import jax
    import numpy as np

    from funbat import inference
    from funbat.backends import entries_from_input
    from funbat.likelihoods import make_likelihood
    from funbat.modes import mode_kind
    from funbat.solvers import get_solver, resolve_solver_name

    ds = load_dataset(args.dataset, Path(args.data_dir))
    tr, _ = split_indices(len(ds), 0)
    X, y = ds.X_df.iloc[tr], ds.y[tr]
    total = collections.defaultdict(float)
    calls = collections.Counter()

    def timer(stage, seconds):
        total[stage] += seconds
        calls[stage] += 1

    entries = entries_from_input(X, y)
    with jax.enable_x64(True):
        entries = entries.with_chunk(
            inference.chunk_size(entries.n, (args.rank,) * len(entries.encodings), 65536)
        )
    sizes = [int(X[c].nunique()) for c in X.columns]
    tables, runs = {}, []
    for chosen, solver_name in ((c, s) for c in configs for s in args.solver):
        solver_name = resolve_solver_name(solver_name)
        kinds = tuple(mode_kind(e.kind) for e in entries.encodings)
        kinds = tuple(
            replace(k, solver=get_solver(solver_name)) if hasattr(k, "solver") else k
            for k in kinds
        )
        structure = "tucker" if args.model == "tucker" else "cp"
        ranks = (args.rank,) * len(kinds)
        spec = inference.ModelSpec(
            structure, ranks, kinds, make_likelihood(args.likelihood),
            learn_hyperparameters=not args.no_learn, max_iter=args.sweeps, tol=0.0,
            recalibrate=False,
        )  # fmt: skip
        with jax.enable_x64(True):
            kernels = [
                k.kernel(e, chosen.get(e.name, "matern32"), None, 1.0)
                for k, e in zip(kinds, entries.encodings)
            ]

        def run(spec=spec, kernels=kernels):
            return inference.fit(spec, entries, kernels, rng=np.random.default_rng(0), timer=timer)

        run()  # compile
        total.clear()
        calls.clear()
        t = time.perf_counter()
        result = run()
        fit_s = time.perf_counter() - t
        n = len(result.elbo_history)
        rows = [
            {"piece": k, "ms_per_sweep": 1e3 * v / n, "calls_per_sweep": calls[k] / n}
            for k, v in total.items()
        ]
        rows.append({"piece": "whole fit / sweeps", "ms_per_sweep": 1e3 * fit_s / n})
        record = {"rows": rows, "final_elbo": float(result.elbo_history[-1])}
        by_piece = {r["piece"]: r["ms_per_sweep"] for r in rows}
        runs.append({
            "kernels": chosen, "solver": solver_name, **record,
            # flat fields, for the documentation's tables
            "kernel": "; ".join(f"{m}: {k}" for m, k in chosen.items()) or "matern32",
            "state_dims": ", ".join(str(k.state_dim) for k in kernels),
            "ms_per_sweep": 1e3 * fit_s / n, "mode_ms": by_piece.get("mode"),
        })  # fmt: skip
        if not chosen:
            tables[solver_name] = record
        print(
            f"{args.dataset}, {args.model} R={args.rank}, {n} sweeps, "
            f"learn={not args.no_learn}, unique coordinates per mode {sizes}, kernels {chosen}, "
            f"chain solver {solver_name!r}, final ELBO {result.elbo_history[-1]:.10g}\n"
        )
        print("| piece | ms per sweep | calls per sweep |\n| --- | --- | --- |")
        for r in rows:
            c = r.get("calls_per_sweep")
            print(f"| {r['piece']} | {r['ms_per_sweep']:.1f} | {'' if c is None else f'{c:.0f}'} |")
        print()
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()}")
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as fh:
            json.dump(
                {"provenance": provenance(), "config": vars(args), "solvers": tables,
                 "runs": runs},
                fh, indent=1,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
