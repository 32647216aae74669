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

With ``--solver parallel`` the parallel solver's pieces (:mod:`funbat.solvers.parallel`,
associative scans) are timed the same way: its filter, five filters side by side, its
smoother, and its whole search and smoother as the engine calls it. On a CPU it does
more work than the sequential loop for no gain from its shorter depth; it is meant for a
GPU.

With ``--solver native`` (the default times ``sequential`` and ``native``) the same
pieces of the native solver (:mod:`funbat.solvers.native`, numba loops) are timed in the
same run, on the same messages, called directly on host arrays, and
``search + smoother (callback)`` times
the solver's whole lengthscale search and smoother as the engine calls it: from
compiled JAX code through ``jax.pure_callback`` (so the difference to the direct calls
is the callback's overhead).

    python benchmarks/kalman_step.py
    python benchmarks/kalman_step.py --solver sequential native parallel
    python benchmarks/kalman_step.py --rank 7 --json kalman_step.json
"""

from __future__ import annotations

import argparse
import json
import os
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


def _native_pieces(kern, coords, Lams, etas, I):
    """The native solver's pieces: numba kernels on host arrays, and the whole search
    through the callback from compiled code."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from funbat.solvers import NativeSolver
    from funbat.solvers import _native_kernels as K

    d, ell, s2 = kern.state_dim, float(kern.lengthscale), float(kern.variance)
    c, L_, e_ = (np.ascontiguousarray(np.asarray(x)) for x in (coords, Lams, etas))
    R = L_.shape[-1]
    D = R * d
    KR = K.kernels(d, R)
    F = np.empty((I, R, R))
    K.factors(L_, I, F)
    ms, Ps = np.zeros((I, D)), np.zeros((I, D, D))
    sm, sP = np.empty((I, D)), np.empty((I, D, D))
    out = np.empty(3)
    cands = np.log(ell) + np.array([0.0, -1.0, -0.25, 0.25, 1.0])
    bounds = jnp.array([np.log(1e-4), np.log(10.0)])

    blocks = [np.empty((I, d, d)), np.empty((I, d, d)), np.empty((d, d))]
    A1, Q1, _ = blocks  # the smoother's: the current lengthscale's
    scratch = [np.empty_like(b) for b in blocks]

    def filt(ell=ell, store=True, blocks=blocks):  # the transitions, then the filter
        KR.transitions(ell, s2, c, I, *blocks)
        return KR.filter_chain(blocks[0], blocks[1], F, L_, e_, I, store, ms, Ps)

    def filt5():
        return [filt(float(np.exp(t)), False, scratch) for t in cands]

    filt()

    def smoother():
        sm[:] = ms
        sP[:] = Ps
        KR.rts_smooth(A1, Q1, ms, Ps, I, sm, sP)
        return sm

    def search():
        KR.search(ell, s2, c, L_, e_, I, 0.5, float(bounds[0]), float(bounds[1]), ms, Ps, sm,
                 sP, out)  # fmt: skip
        return out

    solver = NativeSolver()
    via_callback = jax.jit(
        lambda L, e: solver.smooth_with_lengthscale_search(kern, coords, L, e, 0.5, bounds, I)
    )
    return {
        "native filter": (filt, ()),
        "native filter x5 (no store)": (filt5, ()),
        "native smoother": (smoother, ()),
        "native search + smoother": (search, ()),
        "native search + smoother (callback)": (via_callback, (Lams, etas)),
    }


def _parallel_pieces(kern, coords, Lams, etas, factors, I):
    """The parallel solver's pieces, each compiled on its own, and its whole search and
    smoother as the engine calls it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from funbat.solvers import ParallelSolver
    from funbat.solvers import parallel as P

    cands = jnp.log(kern.lengthscale) + jnp.array([0.0, -1.0, -0.25, 0.25, 1.0])
    bounds = jnp.array([np.log(1e-4), np.log(10.0)])

    def filter_x5(L, e, f):
        return jax.vmap(
            lambda th: P.scan_filter(replace(kern, lengthscale=jnp.exp(th)), coords, L, e, f, I)
        )(cands)

    def search(L, e):
        return ParallelSolver().smooth_with_lengthscale_search(kern, coords, L, e, 0.5, bounds, I)

    filtered, logz = P.scan_filter(kern, coords, Lams, etas, factors, I)
    return {
        "parallel filter": (
            jax.jit(lambda L, e, f: P.scan_filter(kern, coords, L, e, f, I)),
            (Lams, etas, factors),
        ),
        "parallel filter x5": (jax.jit(filter_x5), (Lams, etas, factors)),
        "parallel smoother": (
            jax.jit(lambda f, z: P.scan_rts_smooth(kern, coords, f, z, I)),
            (filtered, logz),
        ),
        "parallel search + smoother": (jax.jit(search), (Lams, etas)),
    }


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
    ap.add_argument("--solver", nargs="+", default=["sequential", "native"],
                    choices=["sequential", "native", "parallel"], help="chain solvers to time")  # fmt: skip
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
    if "sequential" not in args.solver:
        pieces = {}
    if "native" in args.solver:
        pieces.update(_native_pieces(kern, coords, Lams, etas, I))
    if "parallel" in args.solver:
        pieces.update(_parallel_pieces(kern, coords, Lams, etas, factors, I))
    rows = []
    print(f"{args.kernel}, rank {R} (state size {D}), a chain of {I} coordinates, "
          f"median of {args.repeats}\n")  # fmt: skip
    print("| piece | ms per chain | us per step |\n| --- | --- | --- |")
    per_step = {}
    for name, (fn, fargs) in pieces.items():
        s = _time(fn, *fargs, repeats=args.repeats)
        per_step[name] = s / I
        rows.append({"piece": name, "ms_per_chain": 1e3 * s, "us_per_step": 1e6 * s / I})
        print(f"| {name} | {1e3 * s:.3f} | {1e6 * s / I:.3f} |")
    steps = sum(args.modes)
    chain_ms, floor_ms = {}, None
    if "sequential" in args.solver:
        chain_ms["sequential"] = 1e3 * steps * (per_step["filter x5"] + per_step["smoother"])
        floor_ms = 1e3 * steps * 2 * per_step["predict only"]
    if "native" in args.solver:
        chain_ms["native"] = 1e3 * steps * per_step["native search + smoother (callback)"]
    if "parallel" in args.solver:
        # the scan's cost per step falls with the chain's length (O(log I) depth): these
        # are the chain timed, scaled per step, as for the other solvers
        chain_ms["parallel"] = 1e3 * steps * per_step["parallel search + smoother"]
    print(f"\nmodes with {' + '.join(map(str, args.modes))} = {steps} coordinates: the chains "
          "of one sweep with learning (filter x5 + smoother per step) take "
          + ", ".join(f"{v:.2f} ms ({k})" for k, v in chain_ms.items()))  # fmt: skip
    if floor_ms is not None:
        print(f"two predict-only passes of the JAX loop alone take {floor_ms:.1f} ms")
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()}")
    if args.json:
        with atomic_write(args.json, "w") as fh:
            json.dump(
                {"provenance": provenance(), "config": vars(args), "rows": rows,
                 "sweep_chain_ms": chain_ms, "sweep_predict_only_ms": floor_ms},
                fh,
                indent=1,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
