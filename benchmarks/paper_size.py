"""Paper-size benchmark: FunBaT on ``beijing_pm25`` (or ``us_temp``), 100 sweeps.

Every (rank, split) runs in a fresh Python process, as a user's script would:
``first_fit_s`` is the first ``fit`` (JAX compilation included), ``sweep_ms`` the same
fit repeated (compiled) divided by the sweeps, ``peak_rss_mb`` the process's peak
resident memory (``ru_maxrss``; Python, JAX and the data included), and the test RMSE
follows the paper's split protocol (``shared/data/README.md``). ``predict_s`` is the
first ``predict`` of the test rows (its compilation included); ``xla_compiles`` and
``xla_compile_s`` count and sum the XLA compilations of the first fit, as JAX logs
them with ``jax_log_compiles``.

Reference figures (the authors' PyTorch code, measured by the issue on this 2-core
machine, beijing_pm25, Tucker R = 3, 100 sweeps): 60.8 s per fit, about 840 MB peak.

``--solver`` (default: ``sequential native``) fits with each chain solver in turn, every
fit in a fresh process, so old and new are measured in the same run. The native
solver's numba compilation is cached on disk: the first process ever pays it (run once
before timing), later ones load it.

Example::

    PYTHONPATH=src python benchmarks/paper_size.py --rank 3 7 --splits 0 1 2 3 4 \\
        --json paper_size.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, resource, sys, time
t_start = time.perf_counter()
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["here"])
import numpy as np
from _protocol import load_dataset, metrics, split_indices
import logging, re
import jax
import funbat
jax.config.update("jax_log_compiles", True)
compiles = []
class _Compiles(logging.Handler):
    def emit(self, record):
        hit = re.search(r"Finished XLA compilation of .* in ([0-9.e-]+) s", record.getMessage())
        if hit:
            compiles.append(float(hit.group(1)))
logging.getLogger("jax").addHandler(_Compiles())
logging.getLogger("jax").setLevel(logging.WARNING)
if cfg["cache"]:
    funbat.enable_compilation_cache(cfg["cache"])
ds = load_dataset(cfg["dataset"], cfg["data_dir"])
tr, te = split_indices(len(ds), cfg["split"])
X, y = ds.X_df, ds.y
cls = funbat.FunBaT if cfg["model"] == "tucker" else funbat.FunBaTCP
kw = dict(rank=cfg["rank"], max_iter=cfg["sweeps"], tol=0.0, random_state=cfg["split"],
          chain_solver=cfg["solver"])
t0 = time.perf_counter()
m = cls(**kw).fit(X.iloc[tr], y[tr])
first = time.perf_counter() - t0
fit_compiles = list(compiles)
t0 = time.perf_counter()
mean, std = m.predict(X.iloc[te], return_std=True)
predict_s = time.perf_counter() - t0
res = metrics(y[te], mean, std)
t0 = time.perf_counter()
cls(**kw).fit(X.iloc[tr], y[tr])
second = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(first_fit_s=first, second_fit_s=second, sweep_ms=1e3 * second / m.n_iter_,
                      compile_s=first - second, peak_rss_mb=rss, n_train=len(tr),
                      predict_s=predict_s, xla_compiles=len(fit_compiles),
                      xla_compile_s=sum(fit_compiles),
                      process_s=time.perf_counter() - t_start, **res)))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="beijing_pm25", choices=["beijing_pm25", "us_temp"])
    p.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--model", choices=["tucker", "cp"], default="tucker")
    p.add_argument("--rank", type=int, nargs="+", default=[3])
    p.add_argument("--splits", type=int, nargs="+", default=[0])
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--cache", default="", help="opt-in persistent compilation cache directory")
    p.add_argument("--solver", nargs="+", default=["sequential", "native"],
                   help="chain solvers (funbat.solvers), each in its own fresh process")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)

    rows = []
    print(
        "| solver | rank | split | first fit (s) | compile (s) | XLA compiles (s) | sweep (ms) "
        "| first predict (s) | peak RSS (MB) | RMSE | MAE |"
    )
    print("|" + "---|" * 11, flush=True)
    for R, s, solver in [(R, s, v) for R in a.rank for s in a.splits for v in a.solver]:
        cfg = dict(
            here=str(HERE),
            dataset=a.dataset,
            data_dir=a.data_dir,
            model=a.model,
            rank=R,
            split=s,
            sweeps=a.sweeps,
            cache=a.cache,
            solver=solver,
        )
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True
        )
        if out.returncode != 0:
            print(f"| {solver} | {R} | {s} | error: {out.stderr.strip().splitlines()[-1:]} |", flush=True)
            rows.append({**cfg, "error": out.stderr[-2000:]})
            continue
        r = {**cfg, **json.loads(out.stdout.strip().splitlines()[-1])}
        rows.append(r)
        print(
            f"| {solver} | {R} | {s} | {r['first_fit_s']:.2f} | {r['compile_s']:.2f} | "
            f"{r['xla_compiles']} ({r['xla_compile_s']:.2f}) | {r['sweep_ms']:.1f} | "
            f"{r['predict_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['rmse']:.4f} | {r['mae']:.4f} |",
            flush=True,
        )
    meta = provenance()
    print(f"\n{meta}")
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()}")
    if a.json:
        from funbat.files import atomic_write

        with atomic_write(a.json, "w") as f:
            json.dump(dict(provenance=meta, args=vars(a), results=rows), f, indent=2)


if __name__ == "__main__":
    main()
