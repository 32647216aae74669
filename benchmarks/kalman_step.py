"""What one step of a mode's Kalman chain costs on this machine, and the sweep it implies.

A sweep runs, for every continuous mode, a forward filter for each lengthscale candidate
of the search (five, side by side with ``vmap``) and one RTS smoother, each a
sequential loop over the mode's sorted unique coordinates. On a CPU each loop step
costs what launching its few small matrix operations costs, so the sweep has a floor of
(steps) x (cost per step) whatever else is optimised. This script times, on random
messages (the cost does not depend on their values):

* ``predict only``: a loop whose step is only the state prediction ``A m``,
  ``A P A^T + Q`` (two small matrix products): the least any filter step can cost;
* ``filter``: funbat's filter (:func:`funbat.kalman.filter_chain`), one lengthscale;
* ``filter x5``: the lengthscale search's five candidates side by side;
* ``smoother``: the RTS pass (:func:`funbat.kalman.rts_smooth`), batched gains included;

and adds ``filter x5 + smoother`` over the unique coordinates of each mode of a
dataset (beijing_pm25: 347 + 443 + 1318 in split 0's training rows) into the chain time
of one sweep with lengthscale learning.

    python benchmarks/kalman_step.py
    python benchmarks/kalman_step.py --rank 7 --json kalman_step.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from _provenance import provenance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _time(fn, *args, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` after one compiling call."""
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1318, help="chain length timed")
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--kernel", default="matern32")
    ap.add_argument(
        "--modes",
        type=int,
        nargs="+",
        default=[347, 443, 1318],
        help="unique coordinates of each mode (default: beijing_pm25 split 0)",
    )
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from funbat import kalman
    from funbat.files import atomic_write
    from funbat.kernels import make_kernel

    I, R = args.steps, args.rank
    rng = np.random.default_rng(0)
    coords = jnp.asarray(np.sort(rng.uniform(0.0, 1.0, I)))
    B = rng.normal(size=(I, R, R))
    Lams, etas = jnp.asarray(B @ B.transpose(0, 2, 1)), jnp.asarray(rng.normal(size=(I, R)))
    kern = make_kernel(args.kernel, 0.05, 1.0)
    D = R * kern.state_dim
    factors = kalman.message_factors(Lams)
    A = jnp.asarray(0.3 * rng.normal(size=(I, D, D)))

    def predict_only():
        def body(j, carry):
            m, P = carry
            return A[j] @ m, A[j] @ P @ A[j].T + jnp.eye(D)

        return jax.lax.fori_loop(0, I, body, (jnp.zeros(D), jnp.eye(D)))

    cands = jnp.log(0.05) + jnp.array([0.0, -1.0, -0.25, 0.25, 1.0])

    def filter_x5(L, e, f):
        return jax.vmap(
            lambda th: kalman.filter_chain(
                replace(kern, lengthscale=jnp.exp(th)), coords, L, e, f, n_valid=I
            )
        )(cands)

    filtered, logz = kalman.filter_chain(kern, coords, Lams, etas, factors)
    pieces = {
        "predict only": (jax.jit(predict_only), ()),
        "filter": (
            jax.jit(lambda L, e, f: kalman.filter_chain(kern, coords, L, e, f, n_valid=I)),
            (Lams, etas, factors),
        ),
        "filter x5": (jax.jit(filter_x5), (Lams, etas, factors)),
        "smoother": (
            jax.jit(lambda f, z: kalman.rts_smooth(kern, coords, f, z, n_valid=I)),
            (filtered, logz),
        ),
    }
    rows = []
    print(f"{args.kernel}, rank {R} (state size {D}), a chain of {I} coordinates, "
          f"median of {args.repeats}\n")  # fmt: skip
    print("| piece | ms per chain | us per step |\n| --- | --- | --- |")
    per_step = {}
    for name, (fn, fargs) in pieces.items():
        s = _time(fn, *fargs, repeats=args.repeats)
        per_step[name] = s / I
        rows.append({"piece": name, "ms_per_chain": 1e3 * s, "us_per_step": 1e6 * s / I})
        print(f"| {name} | {1e3 * s:.2f} | {1e6 * s / I:.2f} |")
    steps = sum(args.modes)
    chain_ms = 1e3 * steps * (per_step["filter x5"] + per_step["smoother"])
    floor_ms = 1e3 * steps * 2 * per_step["predict only"]
    print(
        f"\nmodes with {' + '.join(map(str, args.modes))} = {steps} coordinates: the chains "
        f"of one sweep (filter x5 + smoother per step) take {chain_ms:.1f} ms; two "
        f"predict-only passes alone take {floor_ms:.1f} ms"
    )
    if args.json:
        with atomic_write(args.json, "w") as fh:
            json.dump(
                {"provenance": provenance(), "config": vars(args), "rows": rows, "sweep_chain_ms": chain_ms,
                 "sweep_predict_only_ms": floor_ms},
                fh,
                indent=1,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
