"""Where a sweep's time goes: per-piece milliseconds per sweep of ``FunBaT.fit``.

Wraps the estimator's compiled pieces with blocking timers (``jax.block_until_ready``
after each call, so asynchronous dispatch does not hide work), fits once to compile,
then fits again and reports each piece's time per sweep:

* ``stats``: grouped sufficient statistics of one mode (the pass over the entries);
* ``update_mode``: messages, lengthscale search and Kalman smoothing of one mode;
* ``core_noise``: core, noise and ELBO refresh after each mode;
* ``unfold``: the core's unfolding for the next mode's messages.

The timers add a synchronisation per call, so the total is slightly above an untimed
sweep (``paper_size.py``). Example::

    python benchmarks/sweep_profile.py                      # beijing_pm25, Tucker R = 3
    python benchmarks/sweep_profile.py --no-learn --json profile.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _protocol import DATASETS, load_dataset, split_indices  # noqa: E402

PIECES = {
    "stats": "mode_statistics",
    "update_mode": "_update_mode",
    "core_noise": "_update_core_and_noise",
    "unfold": "_unfold_core",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beijing_pm25", choices=list(DATASETS))
    ap.add_argument("--data-dir", default=str(HERE.parent / ".." / "shared" / "data"))
    ap.add_argument("--model", default="tucker", choices=["tucker", "cp"])
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--no-learn", action="store_true", help="fixed lengthscales")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)

    import jax

    import funbat
    import funbat.estimator as E

    ds = load_dataset(args.dataset, Path(args.data_dir))
    tr, _ = split_indices(len(ds), 0)
    X, y = ds.X_df.iloc[tr], ds.y[tr]
    total = collections.defaultdict(float)
    calls = collections.Counter()

    def timed(name, f):
        def g(*a, **k):
            t = time.perf_counter()
            out = jax.block_until_ready(f(*a, **k))
            total[name] += time.perf_counter() - t
            calls[name] += 1
            return out

        return g

    for name, attr in PIECES.items():
        setattr(E, attr, timed(name, getattr(E, attr)))
    cls = funbat.FunBaT if args.model == "tucker" else funbat.FunBaTCP
    kw = dict(
        rank=args.rank,
        max_iter=args.sweeps,
        tol=0.0,
        random_state=0,
        learn_hyperparameters=not args.no_learn,
    )
    cls(**kw).fit(X, y)  # compile
    total.clear()
    calls.clear()
    t = time.perf_counter()
    m = cls(**kw).fit(X, y)
    fit_s = time.perf_counter() - t
    n = m.n_iter_
    rows = [
        {"piece": k, "ms_per_sweep": 1e3 * v / n, "calls_per_sweep": calls[k] / n}
        for k, v in total.items()
    ]
    rows.append({"piece": "whole fit / sweeps", "ms_per_sweep": 1e3 * fit_s / n})
    sizes = [int(X[c].nunique()) for c in X.columns]
    print(
        f"{args.dataset}, {args.model} R={args.rank}, {n} sweeps, "
        f"learn={not args.no_learn}, unique coordinates per mode {sizes}\n"
    )
    print("| piece | ms per sweep | calls per sweep |\n| --- | --- | --- |")
    for r in rows:
        c = r.get("calls_per_sweep")
        print(f"| {r['piece']} | {r['ms_per_sweep']:.1f} | {'' if c is None else f'{c:.0f}'} |")
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as fh:
            json.dump({"config": vars(args), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
