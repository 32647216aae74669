"""Does ``rank="auto"`` find the rank of data drawn from the model?

Per seed: three modes of Matérn-3/2 GP draws (``funbat.datasets.make_synthetic_ranked``),
``--n`` entries, noise 0.1 against a signal of unit standard deviation, CP rank 3 and
Tucker multilinear rank (2, 3, 4); both fitted from an upper bound of ``--max-rank``.
A pure-noise set (no signal) checks that the learned rank falls to 1 and the
predictions to the mean. Reports the learned ranks, the RMSE against the noiseless
``f``, and how many seeds recovered the planted rank exactly. ``--learn-intercept``
fits the intercept instead of fixing it at the targets' mean (the planted models have
none, and their centred version is one rank higher).

    python benchmarks/rank_recovery.py --seeds 10 --json rank_recovery.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance  # noqa: E402

from funbat import FunBaT, FunBaTCP  # noqa: E402
from funbat.datasets import make_synthetic_ranked  # noqa: E402
from funbat.files import atomic_write  # noqa: E402

CASES = {"cp": (FunBaTCP, (3, 3, 3)), "tucker": (FunBaT, (2, 3, 4)), "noise": (FunBaTCP, (0, 0, 0))}


def run_case(name: str, seed: int, args) -> dict:
    cls, ranks = CASES[name]
    structure = "tucker" if cls is FunBaT else "cp"
    d = make_synthetic_ranked(args.n, ranks=ranks, structure=structure,
                              n_unique=args.n_unique, seed=seed)  # fmt: skip
    t0 = time.perf_counter()
    common = dict(max_iter=args.max_iter, random_state=seed, learn_intercept=args.learn_intercept)
    m = cls(rank="auto", max_rank=args.max_rank, **common)
    m.fit(d.X, d.y)
    pred = m.predict(d.X)
    learned = [int(r) for r in m.ranks_]
    want = [1, 1, 1] if name == "noise" else list(ranks)
    row = {
        "case": name, "seed": seed, "planted": list(ranks), "learned": learned,
        "exact": learned == want, "rmse_f": float(np.sqrt(np.mean((pred - d.f) ** 2))),
        "pred_std": float(np.std(pred)), "n_iter": int(m.n_iter_), "converged": m.converged_,
        "fit_time_s": time.perf_counter() - t0, "elbo": float(m.elbo_),
    }  # fmt: skip
    if args.compare_fixed and name != "noise":
        # the planted rank, fixed, same start and budget: is the learned one worse?
        fixed_rank = ranks[0] if cls is FunBaTCP else ranks
        f = cls(rank=fixed_rank, **common).fit(d.X, d.y)
        row["fixed"] = {"rank": [int(r) for r in np.atleast_1d(fixed_rank)], "elbo": float(f.elbo_),
                        "rmse_f": float(np.sqrt(np.mean((f.predict(d.X) - d.f) ** 2))),
                        "n_iter": int(f.n_iter_), "converged": f.converged_}  # fmt: skip
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N - 1")
    p.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--n-unique", type=int, default=50)
    p.add_argument("--max-rank", type=int, default=8)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument(
        "--compare-fixed",
        action="store_true",
        help="also fit the planted rank, fixed (same start and sweeps): ELBO and error of both",
    )
    p.add_argument("--learn-intercept", action="store_true",
                   help="learn the intercept (learn_intercept=True) in every fit")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []

    def summary():
        return {
            name: f"{sum(r['exact'] for r in rows if r['case'] == name)}/"
            f"{sum(r['case'] == name for r in rows)}"
            for name in args.cases
        }

    def write():
        if args.json is not None:
            out = {"provenance": provenance(), "args": vars(args) | {"json": str(args.json)},
                   "summary": summary(), "rows": rows}  # fmt: skip
            with atomic_write(args.json, "w") as f:
                json.dump(out, f, indent=1, default=str)

    for name in args.cases:
        for seed in args.seed_list or range(args.seeds):
            row = run_case(name, seed, args)
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
            write()  # after every fit: a run cut short keeps what it measured
            # every compiled program keeps a few memory maps for the life of the process;
            # a Tucker rank="auto" fit compiles one set per pruned shape, and ten of them
            # in one process ran into vm.max_map_count (65530 here): free them
            jax.clear_caches()
    print("exact recoveries:", summary())
    write()

if __name__ == "__main__":
    main()
