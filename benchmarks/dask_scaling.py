"""Dask benchmark: fit FunBaT on Parquet partitions with a LocalCluster on this machine.

A synthetic K-mode Tucker tensor (``--uniques`` distinct random coordinates per mode,
``--n`` random entries, noise 0.1) is written as ``--partitions`` Parquet files by a
child process (so the client never holds the data), then fitted from the glob with
``FunBaT(...).fit('dir/*.parquet', y='y')`` on ``LocalCluster(n_workers=--workers,
threads_per_worker=1, processes=True)`` for ``--sweeps`` sweeps with ``tol=0``.
Reported (JSON with ``--json``):

* ``fit_s``: the whole ``fit``, reading the files included;
* ``until_first_sweep_end_s``: reading, unique coordinates, encoding and persisting the
  entries on the workers, the SVD initialisation (one shuffle per mode), and the first
  sweep (which includes JAX compilation on the workers);
* ``sweep_s``: median time of the later sweeps;
* ``client_peak_rss_mb`` and ``worker_peak_rss_mb`` (``ru_maxrss`` of each process);
* with ``--compare``: the same fit in memory (pandas) in a child process, its sweep time
  and peak RSS, and the largest relative difference of the predictions at 10^5 entries.

Examples::

    PYTHONPATH=src python benchmarks/dask_scaling.py --n 1e7 --partitions 40 --json out.json
    PYTHONPATH=src python benchmarks/dask_scaling.py --n 1e6 --compare
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402

_MAKE = r"""
import sys, json, numpy as np, pandas as pd
cfg = json.loads(sys.argv[1])
rng = np.random.default_rng(cfg["seed"])
K, I, N, R = cfg["modes"], cfg["uniques"], cfg["n"], cfg["rank"]
coords = [np.sort(rng.uniform(0.0, 1.0, I)) for _ in range(K)]
freqs = rng.uniform(1, 6, size=(K, R))
core = rng.normal(size=(R,) * K)
bounds = np.linspace(0, N, cfg["partitions"] + 1).astype(int)
for p in range(cfg["partitions"]):
    n = bounds[p + 1] - bounds[p]
    prng = np.random.default_rng([cfg["seed"], p])
    idx = prng.integers(0, I, size=(n, K))
    x = [coords[k][idx[:, k]] for k in range(K)]
    U = [np.sin(np.pi * freqs[k][None, :] * x[k][:, None]) for k in range(K)]
    f = np.einsum("abc,na,nb,nc->n", core, *U)
    y = f + 0.1 * prng.normal(size=n)
    df = pd.DataFrame({f"x{k}": x[k] for k in range(K)} | {"y": y})
    df.to_parquet(f"{cfg['dir']}/part-{p:04d}.parquet", index=False)
"""

_IN_MEMORY = r"""
import sys, json, resource, time, numpy as np, pandas as pd
from funbat import FunBaT
cfg = json.loads(sys.argv[1])
df = pd.read_parquet(cfg["dir"])
X = df[[c for c in df.columns if c != "y"]]
times = []
t0 = time.perf_counter()
m = FunBaT(rank=cfg["rank"], max_iter=cfg["sweeps"], tol=0.0, random_state=0)
m.fit(X, df["y"].to_numpy(), callback=lambda it, e: times.append(time.perf_counter()))
sweeps = np.diff([t0] + times)
np.save(cfg["out"], m.predict(X.iloc[: cfg["n_check"]]))
print(json.dumps({"fit_s": m.fit_time_, "until_first_sweep_end_s": float(sweeps[0]), "sweep_s": float(np.median(sweeps[1:])),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--partitions", type=int, default=40)
    ap.add_argument("--modes", type=int, default=3)
    ap.add_argument("--uniques", type=int, default=200)
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="8GiB")
    ap.add_argument("--data", help="existing folder of Parquet files to reuse (else a temp dir)")
    ap.add_argument("--compare", action="store_true", help="also fit in memory and compare")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.modes != 3:
        ap.error("the generator writes 3-mode data")

    import numpy as np
    import pandas as pd
    from distributed import Client, LocalCluster

    from funbat import FunBaT

    n = int(args.n)
    env = dict(os.environ)
    tmp = tempfile.TemporaryDirectory(prefix="funbat-dask-")
    folder = args.data or tmp.name
    cfg = dict(
        n=n, modes=args.modes, uniques=args.uniques, rank=args.rank, seed=0,
        partitions=args.partitions, dir=folder, sweeps=args.sweeps,
    )  # fmt: skip
    if not args.data or not os.listdir(folder):
        os.makedirs(folder, exist_ok=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", _MAKE, json.dumps(cfg)], check=True, env=env)
        print(
            f"wrote {n:,} entries in {args.partitions} Parquet files in {time.perf_counter() - t:.1f} s"
        )
    glob = os.path.join(folder, "*.parquet")

    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True,
        memory_limit=args.worker_memory, dashboard_address=None,
    )  # fmt: skip
    client = Client(cluster)
    times = []
    t0 = time.perf_counter()
    model = FunBaT(rank=args.rank, max_iter=args.sweeps, tol=0.0, random_state=0)
    model.fit(glob, y="y", callback=lambda it, e: times.append(time.perf_counter()))
    sweeps = np.diff([t0] + times)
    workers = client.run(_peak_rss_mb)
    result = {
        "n": n,
        "partitions": args.partitions,
        "modes": args.modes,
        "uniques": args.uniques,
        "rank": args.rank,
        "workers": args.workers,
        "sweeps": args.sweeps,
        "fit_s": model.fit_time_,
        "until_first_sweep_end_s": float(sweeps[0]),
        "sweep_s": float(np.median(sweeps[1:])) if len(sweeps) > 1 else float("nan"),
        "client_peak_rss_mb": _peak_rss_mb(),
        "worker_peak_rss_mb": sorted(workers.values()),
        "machine": f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }
    client.close()
    cluster.close()

    if args.compare:
        n_check = min(n, 100_000)
        scratch = tempfile.TemporaryDirectory(prefix="funbat-dask-pred-")
        out = os.path.join(scratch.name, "pred_mem.npy")
        c = dict(cfg, out=out, n_check=n_check)
        run = subprocess.run(
            [sys.executable, "-c", _IN_MEMORY, json.dumps(c)], check=True, env=env,
            capture_output=True, text=True,
        )  # fmt: skip
        mem = json.loads(run.stdout.strip().splitlines()[-1])
        X = pd.read_parquet(folder).iloc[:n_check].drop(columns="y")
        p_dask, p_mem = model.predict(X), np.load(out)
        result["in_memory"] = mem
        result["max_rel_diff_predictions"] = float(np.max(np.abs(p_dask - p_mem) / np.abs(p_mem)))
        result["max_diff_over_max_abs"] = float(
            np.max(np.abs(p_dask - p_mem)) / np.max(np.abs(p_mem))
        )
    print(json.dumps(result, indent=2))
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(dict(provenance=provenance(), **result), f, indent=2)


if __name__ == "__main__":
    main()
