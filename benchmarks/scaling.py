"""Scaling benchmark: time per sweep, compile time and peak memory of ``FunBaT.fit``.

Each configuration runs in a fresh Python process (so compile time and peak RSS are
those a user sees); a synthetic K-mode Tucker tensor with ``--uniques`` distinct random
coordinates per mode and N random entries is fitted for ``--sweeps`` sweeps with
``tol=0``. Reported:

* ``first_fit_s``: the first ``fit`` in the process (JAX compilation included);
* ``compile_s``: first fit minus the same fit again (same shapes: no recompilation);
* ``sweep_ms``: median time between consecutive sweeps of the second fit (from the
  second sweep on; needs ``--sweeps`` >= 3);
* ``setup_s``: the second fit's time before its first sweep ends, minus one sweep:
  input checks, encoding, the SVD initialisation and the transfer to JAX;
* ``finish_s``: the second fit's time after its last sweep: the recalibration of the
  predictive (``recalibrate=True``, the default; ``--no-recalibrate`` leaves it out)
  and the fitted attributes;
* ``peak_rss_mb``: peak resident memory of the process (``ru_maxrss``) - data included.

Examples::

    PYTHONPATH=src python benchmarks/scaling.py --n 100000 300000 1000000 --json out.json
    PYTHONPATH=src python benchmarks/scaling.py --n 1000000 --uniques 1000 3000 10000
    PYTHONPATH=src python benchmarks/scaling.py --n 100000 --rank 2 3 5 --modes 2 3 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
import jax
import funbat

rng = np.random.default_rng(cfg["seed"])
K, I, N, R = cfg["modes"], cfg["uniques"], cfg["n"], cfg["rank"]
coords = [np.sort(rng.uniform(0.0, 1.0, I)) for _ in range(K)]
idx = rng.integers(0, I, size=(N, K))
X = np.column_stack([coords[k][idx[:, k]] for k in range(K)])
y = np.prod([np.sin(3 * (k + 1) * X[:, k]) for k in range(K)], axis=0)
y = y + 0.1 * rng.normal(size=N)
cls = funbat.FunBaT if cfg["model"] == "tucker" else funbat.FunBaTCP
kw = dict(rank=R, max_iter=cfg["sweeps"], tol=0.0, random_state=0,
          learn_hyperparameters=cfg["learn"], likelihood=cfg["likelihood"],
          noise_mode=cfg.get("noise_mode"), recalibrate=cfg.get("recalibrate", True),
          chain_solver=cfg.get("solver", "auto"))
if cfg["chunk"]:
    kw["chunk_size"] = cfg["chunk"]
t0 = time.perf_counter()
m = cls(**kw).fit(X, y)
first = time.perf_counter() - t0
stamps = []
t0 = time.perf_counter()
m = cls(**kw).fit(X, y, callback=lambda it, elbo: stamps.append(time.perf_counter()))
end = time.perf_counter()
second = end - t0
finish = end - stamps[-1]
sweep = float(np.median(np.diff(stamps))) if len(stamps) > 1 else second
setup = stamps[0] - t0 - sweep
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
dev = jax.devices()[0]
try:
    dev_peak = (dev.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
except Exception:
    dev_peak = 0.0
print(json.dumps(dict(solver=m.summary()["chain_solver"], first_fit_s=first, second_fit_s=second,
                      sweep_ms=1e3 * sweep, setup_s=setup, finish_s=finish,
                      compile_s=first - second,
                      peak_rss_mb=rss, device_peak_mb=dev_peak, elbo=float(m.elbo_),
                      device=f"{dev.platform}:{getattr(dev, 'device_kind', '')}")))
"""


def run_one(cfg: dict, timeout: float) -> dict:
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if out.returncode != 0:
        return {**cfg, "error": out.stderr.strip().splitlines()[-1:]}
    return {**cfg, **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=float, nargs="+", default=[1e5, 3e5, 1e6], help="entries N")
    p.add_argument("--uniques", type=int, nargs="+", default=[10_000], help="coords per mode")
    p.add_argument("--rank", type=int, nargs="+", default=[3])
    p.add_argument("--modes", type=int, nargs="+", default=[3], help="K")
    p.add_argument("--model", choices=["tucker", "cp"], default="tucker")
    p.add_argument("--sweeps", type=int, default=5, help="sweeps per fit (at least 3)")
    p.add_argument("--chunk", type=int, default=0, help="chunk_size (0: estimator default)")
    p.add_argument("--no-learn", action="store_true", help="fixed lengthscales")
    p.add_argument(
        "--likelihood",
        choices=["gaussian", "student_t"],
        default="gaussian",
        help="noise model (Student-t weights start after the warm-up: use >= 30 sweeps)",
    )
    p.add_argument(
        "--noise-mode",
        type=int,
        default=None,
        help="let the noise level vary along this mode (position); starts after the warm-up",
    )
    p.add_argument(
        "--no-recalibrate",
        dest="recalibrate",
        action="store_false",
        help="keep the Gaussian predictive (no recalibration after the sweeps)",
    )
    p.add_argument(
        "--solver",
        choices=["auto", "native", "parallel", "sequential"],
        default="auto",
        help="chain solver (auto: the device's default)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)

    rows = []
    hdr = (
        "| N | uniques/mode | K | R | first fit (s) | compile (s) | setup (s) | sweep (ms) "
        "| finish (s) | peak RSS (MB) |"
    )
    print(hdr)
    print("|" + "---|" * 10, flush=True)
    for n, I, K, R in itertools.product(a.n, a.uniques, a.modes, a.rank):
        cfg = dict(
            n=int(n),
            uniques=I,
            modes=K,
            rank=R,
            model=a.model,
            sweeps=a.sweeps,
            chunk=a.chunk,
            learn=not a.no_learn,
            likelihood=a.likelihood,
            noise_mode=a.noise_mode,
            recalibrate=a.recalibrate,
            solver=a.solver,
            seed=a.seed,
        )
        r = run_one(cfg, a.timeout)
        rows.append(r)
        if "error" in r:
            print(f"| {int(n):,} | {I:,} | {K} | {R} | error: {r['error']} | | | | | |", flush=True)
            continue
        print(
            f"| {int(n):,} | {I:,} | {K} | {R} | {r['first_fit_s']:.2f} | {r['compile_s']:.2f} "
            f"| {r['setup_s']:.2f} | {r['sweep_ms']:.1f} | {r['finish_s']:.2f} "
            f"| {r['peak_rss_mb']:.0f} |",
            flush=True,
        )
        if a.json:  # after every row, so a run cut short keeps what it measured
            from funbat.files import atomic_write

            with atomic_write(a.json, "w") as f:
                json.dump(dict(provenance=provenance(), args=vars(a), results=rows), f, indent=2)
    ok = [r for r in rows if "error" not in r]
    ns = sorted({r["n"] for r in ok})
    if len(ns) >= 2:
        import math

        for (I, K, R), grp in itertools.groupby(
            sorted(ok, key=lambda r: (r["uniques"], r["modes"], r["rank"], r["n"])),
            key=lambda r: (r["uniques"], r["modes"], r["rank"]),
        ):
            g = list(grp)
            if len(g) >= 2:
                x = [math.log(r["n"]) for r in g]
                y = [math.log(r["sweep_ms"]) for r in g]
                mx, my = sum(x) / len(x), sum(y) / len(y)
                slope = sum((u - mx) * (v - my) for u, v in zip(x, y)) / sum(
                    (u - mx) ** 2 for u in x
                )
                print(
                    f"\nlog-log slope of sweep time in N (uniques={I}, K={K}, R={R}): {slope:.2f}"
                )
    meta = provenance()
    print(f"\n{meta}")
    if a.json:
        from funbat.files import atomic_write

        with atomic_write(a.json, "w") as f:
            json.dump(dict(provenance=meta, args=vars(a), results=rows), f, indent=2)


if __name__ == "__main__":
    main()
