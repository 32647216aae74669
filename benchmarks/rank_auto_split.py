"""``rank="auto"`` against fixed ranks on one protocol split of a real data set.

Fits the model (``--model cp`` or ``tucker``) with ``rank="auto"`` (default upper bound)
and with each fixed rank of ``--ranks`` on the training part of split ``--split``
(``_protocol.split_indices``; several with ``--split 1 2 3``) and prints one JSON line
per fit: the learned ranks, the test RMSE (standardised target units, as the paper's
table), the held-out coverage of the 95% predictive intervals, the fit's seconds and
the process's memory maps after it (Linux; compiled programs hold a few each).
Within a split the first fit (``auto``) pays most of the compilation the later fixed
ranks reuse; the compiled programs are dropped between splits (``jax.clear_caches``:
a process of several Tucker rank-learning fits otherwise runs out of memory maps).

    python benchmarks/rank_auto_split.py --data beijing_pm25 --model cp --split 0 --json out.json
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
from _protocol import load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402

from funbat import FunBaT, FunBaTCP  # noqa: E402
from funbat.datasets import shared_data_dir  # noqa: E402
from funbat.files import atomic_write  # noqa: E402


def _memory_maps() -> int | None:
    """Lines of ``/proc/self/maps``, or None where there is no such file."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="beijing_pm25")
    p.add_argument("--model", choices=["cp", "tucker"], default="cp")
    p.add_argument("--split", type=int, nargs="+", default=[0])
    p.add_argument("--ranks", nargs="+", default=["auto", "2", "3", "5", "7"])
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--json", type=Path, help="write the rows here (after every fit)")
    args = p.parse_args(argv)
    ds = load_dataset(args.data, shared_data_dir())
    X, y = ds.X_df, ds.y
    cls = FunBaTCP if args.model == "cp" else FunBaT
    print(json.dumps({"provenance": provenance()}, default=str))
    rows = []
    for split in args.split:
        train, test = split_indices(len(y), split)
        for rank in args.ranks:
            t0 = time.perf_counter()
            model = cls(rank=rank if rank == "auto" else int(rank), max_iter=args.max_iter,
                        random_state=0).fit(X.iloc[train], y[train])  # fmt: skip
            seconds = time.perf_counter() - t0
            rmse = float(np.sqrt(np.mean((model.predict(X.iloc[test]) - y[test]) ** 2)))
            lo, hi = model.predict_interval(X.iloc[test], 0.95)
            row = {"data": args.data, "model": args.model, "split": split, "rank": rank,
                   "learned": [int(r) for r in model.ranks_], "test_rmse": rmse,
                   "coverage95": float(np.mean((y[test] >= lo) & (y[test] <= hi))),
                   "n_iter": int(model.n_iter_), "fit_time_s": seconds,
                   "memory_maps": _memory_maps()}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.json is not None:
                out = {"provenance": provenance(), "args": vars(args) | {"json": str(args.json)},
                       "rows": rows}  # fmt: skip
                with atomic_write(args.json, "w") as f:
                    json.dump(out, f, indent=1)
        jax.clear_caches()


if __name__ == "__main__":
    main()
