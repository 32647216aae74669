"""Reproduce the FunBaT paper's real-data table (Beijing PM2.5, US temperature).

Five random 80/20 splits (protocol in ``shared/data/README.md``), ranks R = 2, 3, 5, 7.
Reports test RMSE / MAE (mean +- std over splits), NLPD and 95% coverage for methods with
a Gaussian predictive distribution, and fit wall time. Baselines are tuned on a 20%
validation part of each training set (never on test); the grids and the chosen values are
written to the JSON output.

Examples::

    python benchmarks/paper_table.py --quick            # 1 split, R = 3, fewer baselines
    python benchmarks/paper_table.py                    # full table
    python benchmarks/paper_table.py --ranks 3 --splits 2 --datasets us_temp
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _baselines import (  # noqa: E402
    BLRBaseline,
    FunctionalTT,
    GPBaseline,
    GridTensorALS,
    SVRBaseline,
    tune_and_fit,
)
from _protocol import DATASETS, Dataset, load_dataset, metrics, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402

COARSE_BINS = (50, 50, 150)


# --------------------------------------------------------------------------------------
# method registry
# --------------------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    key: str
    rank_dependent: bool
    # run(ds, train_idx, test_idx, rank, split, quick) -> (mean, std | None, record)
    run: Callable[..., tuple[np.ndarray, np.ndarray | None, dict[str, Any]]]
    in_quick: bool = True


def _baseline_runner(make: Callable[[int | None, int, bool], Callable[..., Any]]):
    """Wrap a baseline factory into a runner that tunes, fits and predicts."""

    def run(ds: Dataset, tr, te, rank, split, quick):
        X, y = ds.X, ds.y
        ctor = make(rank, split, quick)
        grid = ctor().tuning_grid(X[tr], quick)
        model, rec = tune_and_fit(ctor, grid, X[tr], y[tr], seed=split)
        Xte = X[te]
        if hasattr(model, "predict_mean_std"):
            mean, std = model.predict_mean_std(Xte)
        else:
            mean = model.predict(Xte)
            std = model.predict_std(Xte) if hasattr(model, "predict_std") else None
        if hasattr(model, "solver_"):
            rec["solver"] = model.solver_
            rec["grid_shape"] = list(model.shape_)
        if hasattr(model, "n_fit_"):
            rec["n_train_used"] = model.n_fit_
        if hasattr(model, "fitted_params"):
            rec["fitted"] = model.fitted_params()
        return mean, std, rec

    return run


def _grid_als(model: str, grid: str):
    def make(rank, split, quick):
        def ctor(**kw):
            return GridTensorALS(model, rank, grid, COARSE_BINS, random_state=0, **kw)

        return ctor

    return _baseline_runner(make)


def _ftt(rank, split, quick):
    # quick mode: 5 ALS sweeps instead of 10 (time budget)
    return lambda **kw: FunctionalTT(rank=rank, nswp=5 if quick else 10, random_state=0, **kw)


def _svr(rank, split, quick):
    return lambda **kw: SVRBaseline(max_train=5000, random_state=split, **kw)


def _blr(rank, split, quick):
    return lambda **kw: BLRBaseline(**kw)


def _gp(rank, split, quick):
    # quick mode: 1,000-point subset and at most 30 optimiser iterations (time budget)
    if quick:
        return lambda **kw: GPBaseline(max_train=1000, max_iter=30, random_state=split, **kw)
    return lambda **kw: GPBaseline(max_train=3000, random_state=split, **kw)


_FUNBAT: dict[str, Any] = {}


def _import_funbat() -> str | None:
    """Import funbat.FunBaT / FunBaTCP; return an error message if unavailable."""
    if _FUNBAT:
        return None
    try:
        try:
            from funbat import FunBaT, FunBaTCP
        except ImportError:
            src = str(ROOT / "src")
            if src not in sys.path:
                sys.path.insert(0, src)
            from funbat import FunBaT, FunBaTCP
    except Exception as exc:  # ImportError, or a package that fails at import time
        return f"{type(exc).__name__}: {exc}"
    _FUNBAT.update(FunBaT=FunBaT, FunBaTCP=FunBaTCP)
    return None


def _funbat_runner(cls_name: str):
    def run(ds: Dataset, tr, te, rank, split, quick):
        err = _import_funbat()  # a no-op once imported; needed in worker processes
        if err:
            raise ImportError(err)
        cls = _FUNBAT[cls_name]
        X_df, y = ds.X_df, ds.y
        t0 = time.perf_counter()
        # the Gaussian predictive, like the baselines' (NLPD and coverage of mean +- std);
        # the recalibrated default's intervals are in benchmarks/calibration.py
        # every row counts, exact repeats included, as for the baselines and the paper
        model = cls(rank=rank, random_state=0, recalibrate=False, duplicates="keep")
        model.fit(X_df.iloc[tr].reset_index(drop=True), y[tr])
        fit_time = time.perf_counter() - t0
        mean, std = model.predict(X_df.iloc[te].reset_index(drop=True), return_std=True)
        rec = {
            "tuned": {},
            "chosen": {
                "rank": rank,
                "random_state": 0,
                "other": "package defaults but recalibrate=False, duplicates='keep'",
            },
            "tune_time_s": 0.0,
            "fit_time_s": fit_time,
            "sweeps": len(model.elbo_history_),
            "converged": bool(model.converged_),
        }
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float), rec

    return run


METHODS: list[Method] = [
    Method("FunBaT (Tucker)", "funbat", True, _funbat_runner("FunBaT")),
    Method("FunBaT-CP", "funbat_cp", True, _funbat_runner("FunBaTCP")),
    Method("Tucker-ALS (unique grid)", "tucker_unique", True, _grid_als("tucker", "unique")),
    Method(
        "Tucker-ALS (50x50x150 grid)",
        "tucker_coarse",
        True,
        _grid_als("tucker", "coarse"),
        in_quick=False,
    ),
    Method("CP-ALS (unique grid)", "cp_unique", True, _grid_als("cp", "unique")),
    Method("CP-ALS (50x50x150 grid)", "cp_coarse", True, _grid_als("cp", "coarse"), in_quick=False),
    Method("FTT-ALS (teneva, Chebyshev)", "ftt", True, _baseline_runner(_ftt)),
    Method("SVR (RBF)", "svr", False, _baseline_runner(_svr)),
    Method("BLR (BayesianRidge)", "blr", False, _baseline_runner(_blr)),
    Method("GP (Matern-3/2 ARD)", "gp", False, _baseline_runner(_gp)),
]
FUNBAT_KEYS = {"funbat", "funbat_cp"}


# --------------------------------------------------------------------------------------
# output helpers
# --------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    from funbat.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _mean_std(vals: list[float | None]) -> tuple[float, float] | None:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return None
    return float(np.mean(v)), float(np.std(v))


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["method"], r["rank"]), []).append(r)
    out = []
    for (dsn, meth, rank), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        row = {
            "dataset": dsn,
            "method": meth,
            "rank": rank,
            "n_splits": len(ok),
            "n_failed": len(rs) - len(ok),
        }
        for m in ("rmse", "mae", "nlpd", "coverage95", "fit_time_s", "tune_time_s"):
            ms = _mean_std([r.get(m) for r in ok])
            row[m] = None if ms is None else {"mean": ms[0], "std": ms[1]}
        out.append(row)
    return out


def _fmt(cell: dict | None, digits: int = 3, pct: bool = False) -> str:
    if cell is None:
        return "—"
    if pct:
        return f"{100 * cell['mean']:.1f}% ± {100 * cell['std']:.1f}"
    return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}"


def _order(summary: list[dict], datasets: list[str]) -> list[dict]:
    mpos = {m.name: i for i, m in enumerate(METHODS)}
    return sorted(
        summary,
        key=lambda r: (
            datasets.index(r["dataset"]) if r["dataset"] in datasets else 99,
            mpos.get(r["method"], 99),
            r["rank"] or 0,
        ),
    )


def markdown(summary: list[dict], config: dict, notes: list[str]) -> str:
    datasets = config["datasets"]
    lines = [
        "# FunBaT paper table: real continuous-indexed data",
        "",
        f"Generated by `{config['command']}` on {config['date']} "
        f"({config['cpu_count']} CPU cores, Python {config['python']}).",
        "",
    ]
    if "resumed_from" in config:
        prev = config["resumed_from"]
        lines += [
            f"Resumed (`--resume`) from a run of `{prev['command']}` on {prev['date']} "
            f"({prev['cpu_count']} CPU cores, Python {prev['python']}), which ran the "
            "other cells; each cell's machine is in the JSON (`host`).",
            "",
        ]
    lines += [
        f"Splits: {config['splits']} random 80/20 splits (`default_rng(s).permutation(N)`, "
        f"s = 0..{config['splits'] - 1}); mean ± std (ddof = 0) over splits. "
        "NLPD (nats, per test point) and 95% coverage only for methods with a Gaussian "
        "predictive distribution. Fit time = wall time of the final fit on the whole "
        "training set (tuning time excluded, in the JSON). Baselines tuned on a 20% "
        "validation part of each training set; grids and chosen values are in the JSON.",
        "",
    ]
    for dsn in datasets:
        rows = [r for r in _order(summary, datasets) if r["dataset"] == dsn]
        if not rows:
            continue
        lines += [
            f"## {dsn} (target `{DATASETS[dsn][2]}`)",
            "",
            "| Method | R | RMSE | MAE | NLPD | 95% cov. | fit time (s) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if r["n_splits"] == 0:
                lines.append(f"| {r['method']} | {r['rank'] or '—'} | failed | | | | |")
                continue
            rank = r["rank"] if r["rank"] is not None else "—"
            fail = f" ({r['n_failed']} split(s) failed)" if r["n_failed"] else ""
            lines.append(
                f"| {r['method']}{fail} | {rank} | {_fmt(r['rmse'])} | {_fmt(r['mae'])} | "
                f"{_fmt(r['nlpd'])} | {_fmt(r['coverage95'], pct=True)} | "
                f"{_fmt(r['fit_time_s'], 2)} |"
            )
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def figure(summary: list[dict], datasets: list[str], ranks: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dss = [d for d in datasets if any(r["dataset"] == d for r in summary)]
    if not dss:
        return
    fig, axes = plt.subplots(len(dss), 1, figsize=(12, 4.2 * len(dss)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(ranks))
    for ax, dsn in zip(axes[:, 0], dss, strict=True):
        rows = [r for r in _order(summary, datasets) if r["dataset"] == dsn and r["rmse"]]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        labelled: set = set()
        # an unstable baseline (huge spread) must not squash the others: cap the axis
        tops = sorted(r["rmse"]["mean"] + r["rmse"]["std"] for r in rows)
        ymax = 1.15 * tops[int(0.9 * (len(tops) - 1))]
        for i, m in enumerate(methods):
            for r in (r for r in rows if r["method"] == m):
                if r["rank"] is None:
                    x, c, lab = i, "0.5", "rank-free"
                else:
                    j = ranks.index(r["rank"]) if r["rank"] in ranks else 0
                    x = i - 0.4 + width * (j + 0.5)
                    c, lab = colors[j % len(colors)], f"R = {r['rank']}"
                mean, std = r["rmse"]["mean"], r["rmse"]["std"]
                ax.bar(
                    x,
                    min(mean, ymax),
                    width if r["rank"] is not None else 0.5,
                    yerr=[[min(std, mean)], [std]],  # RMSE >= 0: no bar below zero
                    color=c,
                    capsize=2,
                    label=None if lab in labelled else lab,
                )
                if mean + std > ymax:  # off the scale: say where it is
                    ax.annotate(
                        f"{mean:.2f}±{std:.2f}",
                        (x, ymax),
                        ha="center",
                        va="top",
                        rotation=90,
                        fontsize=7,
                        xytext=(0, -2),
                        textcoords="offset points",
                    )
                labelled.add(lab)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, ymax)
        ax.set_ylabel(f"test RMSE ({DATASETS[dsn][2]})")
        ax.set_title(dsn)
        ax.legend(fontsize=8)
    fig.tight_layout()
    from funbat.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, dpi=120, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def _resolve(p: str, default: str) -> Path:
    """Defaults are relative to the project root; user-given paths to the cwd."""
    return (ROOT / p) if p == default else Path(p)


def _versions() -> dict[str, str]:
    out = {}
    for mod in ("numpy", "sklearn", "tensorly", "teneva", "jax"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = "unavailable"
    return out


@functools.lru_cache(maxsize=2)
def _dataset(name: str, data_dir: str) -> Dataset:
    return load_dataset(name, Path(data_dir))


def run_cell(dsn: str, s: int, key: str, rank: int | None, data_dir: str, quick: bool) -> dict:
    """Fit and score one (dataset, split, method, rank) cell; errors are recorded, not raised."""
    m = next(m for m in METHODS if m.key == key)
    ds = _dataset(dsn, data_dir)
    tr, te = split_indices(len(ds), s)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"dataset": dsn, "method": m.name, "key": key, "rank": rank, "split": s}
    try:
        mean, std, info = m.run(ds, tr, te, rank, s, quick)
        rec.update(info)
        rec.update(metrics(ds.y[te], mean, std))
        msg = (
            f"RMSE {rec['rmse']:.4f}  MAE {rec['mae']:.4f}"
            + (
                f"  NLPD {rec['nlpd']:.3f}  cov {rec['coverage95']:.3f}"
                if rec["nlpd"] is not None
                else ""
            )
            + f"  fit {rec['fit_time_s']:.2f}s"
            + (f"  chosen {rec['chosen']}" if rec.get("chosen") else "")
        )
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc()
        msg = f"FAILED {rec['error']}"
        print(rec["traceback"], file=sys.stderr)
    rec["wall_s"] = time.perf_counter() - t0
    rec["message"] = msg
    rec["host"] = f"{platform.node()} ({os.cpu_count()} cores)"
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--ranks", nargs="+", type=int, default=[2, 3, 5, 7])
    ap.add_argument("--splits", type=int, default=5, help="number of splits (s = 0..n-1)")
    ap.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=[m.key for m in METHODS],
        help="subset of methods (default: all; --quick: a smaller set)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="one split, R = 3, fewer baselines and smaller tuning grids (< 5 min)",
    )
    ap.add_argument(
        "--jobs", type=int, default=1, help="cells run in parallel processes (default 1)"
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished cells of --out-json (an interrupted run) and run the rest",
    )
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out-md", default="benchmarks/results/paper_table.md")
    ap.add_argument("--out-json", default="benchmarks/results/paper_table.json")
    ap.add_argument("--figure", default="docs/_static/paper_table.png")
    args = ap.parse_args(argv)

    if args.quick:
        args.splits, args.ranks = 1, [3]
    if args.splits < 1 or args.splits > 5:
        ap.error("--splits must be in 1..5 (the protocol defines splits 0..4)")
    data_dir = _resolve(args.data_dir, "../shared/data")
    missing = [DATASETS[d][0] for d in args.datasets if not (data_dir / DATASETS[d][0]).is_file()]
    if missing:
        print(
            f"error: data files {missing} not found in {data_dir.resolve()}; "
            "pass --data-dir pointing at the shared data folder",
            file=sys.stderr,
        )
        return 2
    out_md = _resolve(args.out_md, "benchmarks/results/paper_table.md")
    out_json = _resolve(args.out_json, "benchmarks/results/paper_table.json")
    out_fig = _resolve(args.figure, "docs/_static/paper_table.png")

    keys = args.methods or [m.key for m in METHODS if m.in_quick or not args.quick]
    methods = [m for m in METHODS if m.key in keys]
    notes: list[str] = []
    if any(m.key in FUNBAT_KEYS for m in methods):
        err = _import_funbat()
        if err:
            msg = f"funbat not importable ({err}); FunBaT rows skipped"
            print(f"WARNING: {msg}", file=sys.stderr)
            notes.append(msg)
            methods = [m for m in methods if m.key not in FUNBAT_KEYS]

    config = {
        "command": "python benchmarks/paper_table.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "datasets": args.datasets,
        "ranks": args.ranks,
        "splits": args.splits,
        "quick": args.quick,
        "methods": [m.name for m in methods],
        "data_dir": str(data_dir),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": _versions(),
        "protocol": "perm = np.random.default_rng(s).permutation(N); "
        "test, train = perm[: N // 5], perm[N // 5 :]",
        "tuning": "grid search on a 20% validation part of each training set "
        "(np.random.default_rng(10000 + s)), lowest validation RMSE, refit on all training data",
    }
    notes += [
        "Tucker-ALS / CP-ALS: data discretised to a grid, cell value = mean of training "
        "targets in the cell (centred), unobserved cells masked; a test point is predicted "
        "from its nearest cell. 'unique grid' = one cell per unique training coordinate per "
        f"mode; '{'x'.join(map(str, COARSE_BINS))} grid' = equal-width bins (fewer if a mode "
        "has fewer unique values). Dense grids (<= 5e6 cells) use tensorly tucker/parafac "
        "with mask=; the Beijing unique grid (~2e8 cells) is too large for a dense tensorly "
        "run and uses a ridge ALS over observed cells (`solver` in the JSON).",
        "FTT-ALS: teneva.als_func (TT-ALS, Chebyshev basis) on inputs scaled to [-1, 1], "
        + ("5 sweeps (--quick)." if args.quick else "10 sweeps."),
        "SVR: fitted on a random subsample of at most 5,000 training points.",
        "GP: exact GP on a random training subset of "
        + ("1,000 points, <= 30 optimiser iterations (--quick)." if args.quick else "3,000.")
        + " Hyperparameters by marginal likelihood.",
    ]
    if args.quick:
        notes.append(
            "--quick: split 0 only, R = 3, coarse-grid ALS rows omitted, smaller tuning grids."
        )

    cells = [
        (dsn, s, m.key, rank)
        for dsn in args.datasets
        for s in range(args.splits)
        for m in methods
        for rank in (args.ranks if m.rank_dependent else [None])
    ]
    runs: list[dict] = []
    if args.resume and out_json.is_file():
        # keep the finished cells of an interrupted run with the same settings
        old = json.loads(out_json.read_text())
        same = all(old["config"].get(k) == config[k] for k in ("quick", "data_dir"))
        wanted = set(cells)
        runs = [
            r
            for r in (old["runs"] if same else [])
            if "error" not in r and (r["dataset"], r["split"], r["key"], r["rank"]) in wanted
        ]
        done = {(r["dataset"], r["split"], r["key"], r["rank"]) for r in runs}
        cells = [c for c in cells if c not in done]
        if runs:  # where and how the kept cells ran (machine, versions, command)
            config["resumed_from"] = old["config"]
        print(f"--resume: {len(runs)} cells kept from {out_json}, {len(cells)} to run", flush=True)
    t_start = time.perf_counter()

    def dump() -> list[dict]:
        summary = summarise(runs)
        payload = {"provenance": provenance(), "config": config, "notes": notes, "summary": summary, "runs": runs}
        _write_text(out_json, json.dumps(payload, indent=1, default=float) + "\n")
        _write_text(out_md, markdown(summary, config, notes))
        return summary

    def report(rec: dict) -> None:
        runs.append(rec)
        dump()  # after every cell, so an interrupted run can --resume
        rtxt = f"R={rec['rank']}" if rec["rank"] is not None else "R=-"
        print(
            f"  {rec['dataset']} split {rec['split']} {rec['method']:<30} {rtxt:<4} "
            f"{rec['message']}  [{rec['wall_s']:.1f}s, total {time.perf_counter() - t_start:.0f}s]",
            flush=True,
        )

    args_cell = (str(data_dir), args.quick)
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: JAX's threads do not survive fork; each worker loads a dataset once
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            # longest cells first (the GP, then high ranks), so workers finish together
            order = sorted(cells, key=lambda c: (c[2] != "gp", -(c[3] or 0)))
            futures = [pool.submit(run_cell, *c, *args_cell) for c in order]
            for fut in as_completed(futures):
                report(fut.result())
    else:
        for c in cells:
            report(run_cell(*c, *args_cell))

    config["total_wall_s"] = time.perf_counter() - t_start
    summary = dump()
    figure(summary, args.datasets, args.ranks, out_fig)
    print(markdown(summary, config, notes))
    print(f"wrote {out_md}, {out_json}, {out_fig} in {config['total_wall_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
