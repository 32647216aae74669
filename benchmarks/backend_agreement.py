"""Does a fit give the same numbers on the default JAX backend (a GPU) as on the CPU?

Fits one synthetic Tucker model (20,000 entries, 300 coordinates per mode, R = 3, 30
sweeps) twice in fresh processes, with ``JAX_PLATFORMS=cpu`` and with JAX's default
backend, and prints both ELBOs and the largest relative differences of the predictive
means and standard deviations at 200 training points. Each side uses its device's
default chain solver (``native`` on the CPU, ``parallel`` on a GPU), so a GPU run
checks the solvers and the backends at once. On a machine without an accelerator
both runs use the CPU and agree exactly. Example::

    PYTHONPATH=src python benchmarks/backend_agreement.py --json agreement.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance  # noqa: E402

_CHILD = """
import json, jax, funbat
from funbat.datasets import make_synthetic
d = make_synthetic(20000, n_unique=300, seed=0)
m = funbat.FunBaT(rank=3, max_iter=30, random_state=0).fit(d.X, d.y)
mu, sd = m.predict(d.X.iloc[:200], return_std=True)
print(json.dumps({"backend": jax.default_backend(), "elbo": m.elbo_,
                  "elbo_history": [float(e) for e in m.elbo_history_],
                  "solver": m.summary()["chain_solver"],
                  "mu": mu.tolist(), "sd": sd.tolist()}))
"""


def _fit(platform: str | None) -> dict:
    env = dict(os.environ)
    if platform:
        env["JAX_PLATFORMS"] = platform
    r = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"the {platform or 'default'} run failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", help="write both runs' summaries and the differences here")
    a = p.parse_args(argv)
    c, g = _fit("cpu"), _fit(None)
    mu_c, mu_g = np.asarray(c["mu"]), np.asarray(g["mu"])
    sd_c, sd_g = np.asarray(c["sd"]), np.asarray(g["sd"])
    h_c, h_g = np.asarray(c["elbo_history"]), np.asarray(g["elbo_history"])
    diff = {
        "elbo_history": float(np.max(np.abs(h_c - h_g) / np.abs(h_c))),
        "means": float(np.max(np.abs(mu_c - mu_g) / (np.abs(mu_c) + 1e-3))),
        "means_abs": float(np.max(np.abs(mu_c - mu_g))),  # near-zero means dominate the above
        "stds": float(np.max(np.abs(sd_c - sd_g) / np.abs(sd_c))),
    }
    print(f"backends: {c['backend']} / {g['backend']}; solvers: {c['solver']} / {g['solver']}")
    print(f"ELBO: {c['elbo']:.10f} / {g['elbo']:.10f}")
    print(f"max relative difference of the ELBO history: {diff['elbo_history']:.3g}")
    print(f"max relative difference of means: {diff['means']:.3g} (absolute {diff['means_abs']:.3g})")
    print(f"max relative difference of stds:  {diff['stds']:.3g}")
    if a.json:
        from funbat.files import atomic_write

        runs = {
            side: {k: r[k] for k in ("backend", "solver", "elbo", "elbo_history", "mu", "sd")}
            for side, r in (("cpu", c), ("default", g))
        }
        with atomic_write(a.json, "w") as f:
            json.dump(dict(provenance=provenance(), runs=runs, max_rel_diff=diff), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
