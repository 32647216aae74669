"""Time per sweep of several fit variants on the same synthetic data, in one process.

Built for a short session on an accelerator: the data of each size are drawn once and
every variant (chain solver, ``chunk_size``) is fitted to them in the same process,
so the comparison is between variants in the same run, not between runs. Each fit runs
``--sweeps`` sweeps with ``tol=0``; its sweep time is the median time between
consecutive sweeps after the first sweep with lengthscale learning (the sweep that
compiles it), so compilation is not counted. Also reported per fit: the time before
the first sweep ends (input checks, encoding, the SVD start, transfer and the first
sweep's compilation), the final ELBO and the device's peak memory.

Data as ``scaling.py``'s: a K-mode Tucker tensor with ``--uniques`` random
coordinates per mode and N random entries. Example (variants are
``solver[:chunk]``, chunk 0 for the estimator's default)::

    PYTHONPATH=src python benchmarks/device_sweeps.py --n 1000000 \\
        --variants parallel parallel:65536 sequential --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402


def _data(n: int, uniques: int, modes: int, seed: int):
    rng = np.random.default_rng(seed)
    coords = [np.sort(rng.uniform(0.0, 1.0, uniques)) for _ in range(modes)]
    idx = rng.integers(0, uniques, size=(n, modes))
    X = np.column_stack([coords[k][idx[:, k]] for k in range(modes)])
    y = np.prod([np.sin(3 * (k + 1) * X[:, k]) for k in range(modes)], axis=0)
    return X, y + 0.1 * rng.normal(size=n)


def _fit(X, y, *, rank, sweeps, solver, chunk):
    import jax

    import funbat

    kw = dict(rank=rank, max_iter=sweeps, tol=0.0, random_state=0, recalibrate=False,
              chain_solver=solver)  # fmt: skip
    if chunk:
        kw["chunk_size"] = chunk
    stamps = []
    t0 = time.perf_counter()
    m = funbat.FunBaT(**kw).fit(X, y, callback=lambda it, e: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    # stamps[w] ends the first sweep with learning (warm-up w = min(10, sweeps // 2),
    # ``funbat.inference.sweep.warmup_sweeps``): time the sweeps after it
    steady = np.diff(stamps[min(10, sweeps // 2) :])
    dev = jax.devices()[0]
    try:
        peak = (dev.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
    except Exception:
        peak = 0.0
    return dict(
        solver=m.summary()["chain_solver"],
        chunk=chunk or "auto",
        fit_s=total,
        to_first_sweep_s=stamps[0] - t0,
        sweep_ms=1e3 * float(np.median(steady)) if steady.size else None,
        sweep_ms_all=[1e3 * float(d) for d in np.diff(stamps)],
        elbo=float(m.elbo_),
        device_peak_mb=peak,
        device=f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=float, nargs="+", default=[1e6], help="entries N")
    p.add_argument("--uniques", type=int, default=10_000, help="coordinates per mode")
    p.add_argument("--modes", type=int, default=3)
    p.add_argument("--rank", type=int, default=3)
    p.add_argument("--sweeps", type=int, default=10, help="sweeps per fit (at least 8)")
    p.add_argument(
        "--variants", nargs="+", default=["auto"], help="solver[:chunk] per fit, e.g. parallel:65536"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here (after every fit)")
    a = p.parse_args(argv)

    import jax

    from funbat.files import atomic_write

    rows = []
    print("| N | solver | chunk | to first sweep (s) | sweep (ms) | ELBO | device peak (MB) |")
    print("|" + "---|" * 7, flush=True)
    for n in map(int, a.n):
        X, y = _data(n, a.uniques, a.modes, a.seed)
        for v in a.variants:
            solver, _, chunk = v.partition(":")
            cfg = dict(n=n, uniques=a.uniques, modes=a.modes, rank=a.rank, sweeps=a.sweeps)
            try:
                r = {**cfg, **_fit(X, y, rank=a.rank, sweeps=a.sweeps, solver=solver,
                                   chunk=int(chunk or 0))}  # fmt: skip
                print(f"| {n:,} | {r['solver']} | {r['chunk']} | {r['to_first_sweep_s']:.2f} "
                      f"| {r['sweep_ms']:.1f} | {r['elbo']:.6f} | {r['device_peak_mb']:.0f} |",
                      flush=True)  # fmt: skip
            except Exception as e:  # keep the other variants' numbers
                r = {**cfg, "variant": v, "error": f"{type(e).__name__}: {e}"}
                traceback.print_exc()
                print(f"| {n:,} | {v} | error: {r['error'][:200]} | | | | |", flush=True)
            rows.append(r)
            if a.json:
                with atomic_write(a.json, "w") as f:
                    json.dump(
                        dict(provenance=provenance(), jax=jax.__version__, args=vars(a),
                             results=rows), f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
