"""Does a fit give the same numbers on the default JAX backend (a GPU) as on the CPU?

Fits one synthetic Tucker model (20,000 entries, 300 coordinates per mode, R = 3, 30
sweeps) twice in fresh processes, with ``JAX_PLATFORMS=cpu`` and with JAX's default
backend, and prints both ELBOs and the largest relative differences of the predictive
means and standard deviations at 200 training points. On a machine without an
accelerator both runs use the CPU and agree exactly. Example::

    PYTHONPATH=src python benchmarks/backend_agreement.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

_CHILD = """
import json, jax, funbat
from funbat.datasets import make_synthetic
d = make_synthetic(20000, n_unique=300, seed=0)
m = funbat.FunBaT(rank=3, max_iter=30, random_state=0).fit(d.X, d.y)
mu, sd = m.predict(d.X.iloc[:200], return_std=True)
print(json.dumps({"backend": jax.default_backend(), "elbo": m.elbo_,
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


def main() -> int:
    c, g = _fit("cpu"), _fit(None)
    mu_c, mu_g = np.asarray(c["mu"]), np.asarray(g["mu"])
    sd_c, sd_g = np.asarray(c["sd"]), np.asarray(g["sd"])
    print(f"backends: {c['backend']} / {g['backend']}")
    print(f"ELBO: {c['elbo']:.10f} / {g['elbo']:.10f}")
    print(
        f"max relative difference of means: {np.max(np.abs(mu_c - mu_g) / (np.abs(mu_c) + 1e-3)):.3g}"
    )
    print(f"max relative difference of stds:  {np.max(np.abs(sd_c - sd_g) / np.abs(sd_c)):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
