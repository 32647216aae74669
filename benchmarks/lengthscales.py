"""Learned lengthscales on data drawn from the model itself, against the truth and
against a dense GP fitted to the true function values.

Two modes, rank 1: ``y = f_1(x_1) f_2(x_2) + noise``, ``f_k`` Matérn-3/2 draws with
lengthscales 0.05 and 0.2 on [0, 1] (unit variance), ``x_k`` uniform, N entries, noise
std 0.05; each seed is one data set. For each: funbat's default fit (``FunBaT(rank=1)``)
in its own process (``--baseline-src DIR`` also fits another version of the code), the
ratio of each learned lengthscale to the truth, the sweeps it took and whether it
converged; and, as the reference of what the data can tell, a dense GP
(scikit-learn, Matérn-3/2 with learned variance and noise) fitted to 1,500 noisy values
of each true function alone. In a product only the product of the functions' scales is
identifiable, so the reference learns its variance too.

    PYTHONPATH=src python benchmarks/lengthscales.py --json benchmarks/results/lengthscales.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _provenance import provenance  # noqa: E402

TRUTH = (0.05, 0.2)
NOISE = 0.05

_CHILD = r"""
import json, sys, time
cfg = json.loads(sys.argv[1])
if cfg["src"]:
    sys.path.insert(0, cfg["src"])
sys.path.insert(0, cfg["here"])
import numpy as np, pandas as pd
from lengthscales import draw_data
from funbat import FunBaT
X, y, _ = draw_data(cfg["seed"], cfg["n"])
t0 = time.perf_counter()
m = FunBaT(rank=1, max_iter=cfg["max_iter"], random_state=cfg["seed"]).fit(X, y)
print(json.dumps(dict(
    lengthscales=[float(np.atleast_1d(e)[0]) for e in m.lengthscales_],
    sweeps=len(m.elbo_history_), converged=bool(m.converged_),
    noise_std=float(np.sqrt(m.noise_variance_)), fit_s=time.perf_counter() - t0)))
"""


def draw_data(seed: int, n: int):
    """The table (n, 2), targets (n,) and true function values (2, n) of one seed."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = [rng.uniform(size=n), rng.uniform(size=n)]
    f = []
    for xk, ell in zip(x, TRUTH):
        r = np.abs(xk[:, None] - xk[None, :]) / ell
        K = (1.0 + np.sqrt(3.0) * r) * np.exp(-np.sqrt(3.0) * r)
        f.append(np.linalg.cholesky(K + 1e-8 * np.eye(n)) @ rng.normal(size=n))
    y = f[0] * f[1] + NOISE * rng.normal(size=n)
    return pd.DataFrame({"a": x[0], "b": x[1]}), y, (x, f)


def dense_reference(seed: int, n: int, n_fit: int = 1500):
    """Lengthscales (2,) a dense GP learns from ``n_fit`` noisy values of each true
    function (variance, lengthscale and noise learned)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    _, _, (x, f) = draw_data(seed, n)
    rng = np.random.default_rng(10_000 + seed)
    out = []
    for xk, fk in zip(x, f):
        sub = rng.choice(n, n_fit, replace=False)
        kern = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(0.1, (1e-3, 10.0), nu=1.5)
                + WhiteKernel(1e-3, (1e-6, 1.0)))  # fmt: skip
        gp = GaussianProcessRegressor(kern).fit(xk[sub, None], fk[sub] + NOISE * rng.normal(size=n_fit))
        out.append(float(gp.kernel_.k1.k2.length_scale))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--baseline-src", help="src folder of another version of funbat to compare")
    ap.add_argument("--json", help="write the results here (with their provenance)")
    args = ap.parse_args(argv)
    origin = provenance()
    codes = [("this", None)]
    if args.baseline_src:
        codes.append(("baseline", str(Path(args.baseline_src).resolve())))
    rows = []
    print("| seed | code | ratio 0.05 | ratio 0.2 | sweeps | converged | noise std | dense GP ratios |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        ref = dense_reference(seed, args.n)
        for code, src in codes:
            cfg = dict(here=str(HERE), src=src, seed=seed, n=args.n, max_iter=args.max_iter)
            out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            ratios = [e / t for e, t in zip(res["lengthscales"], TRUTH)]
            ref_ratios = [e / t for e, t in zip(ref, TRUTH)]
            rows.append(dict(seed=seed, code=code, ratio_short=ratios[0], ratio_long=ratios[1],
                             dense_ratio_short=ref_ratios[0], dense_ratio_long=ref_ratios[1],
                             **res))  # fmt: skip
            print(f"| {seed} | {code} | {ratios[0]:.3f} | {ratios[1]:.3f} | {res['sweeps']} | "
                  f"{res['converged']} | {res['noise_std']:.4f} | "
                  f"{ref_ratios[0]:.3f}, {ref_ratios[1]:.3f} |", flush=True)  # fmt: skip
    if args.json:
        from funbat.files import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(dict(provenance=origin, args=vars(args), results=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
