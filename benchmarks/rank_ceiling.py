"""How low can a rank-R model's test error go? An optimistic reference for us_temp.

Every FunBaT model of ``us_temp`` with R latent functions of ``year`` -- Tucker or CP
over (lat01, lon01, year), or a spatial mode (lat01, lon01) x year -- predicts, for
the table *location x year*, a matrix of rank at most R (its year unfolding has R
columns). This script fits that table with an *unconstrained* rank-R matrix
factorisation, ``y(loc, year) ~ mean + sum_r U[loc, r] V[year, r]``, by alternating
ridge least squares on the training entries (repeated coordinates enter as counts),
from several random starts and with several ridge strengths, and reports the **best
test RMSE over those choices**: the choice is made on the test set, so the figure is
optimistic. It is not a proof of a lower bound for every rank-R model (a different
regulariser can generalise differently), but it shows where rank R stops: a model
with R functions per mode should not be expected to beat it by much.

    python benchmarks/rank_ceiling.py --ranks 3 5 7 --json rank_ceiling.json

The within-cell spread (several cities share a binned (lat01, lon01) and year) is
printed too: no model of the coordinates can predict it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import load_dataset, split_indices  # noqa: E402
from _provenance import provenance  # noqa: E402

from funbat.files import atomic_write  # noqa: E402


def cells(frame, row_cols, col_cols):
    """(row index, column index) of every entry in the table ``row_cols x col_cols``."""
    rows = frame.groupby(row_cols, sort=True).ngroup().to_numpy()
    cols = frame.groupby(col_cols, sort=True).ngroup().to_numpy()
    return rows, cols


def als_rmse(rows, cols, y, train, test, rank, ridge, seed, sweeps):
    """Test RMSE of a rank-``rank`` factorisation fitted by ridge ALS on ``train``."""
    n_r, n_c = rows.max() + 1, cols.max() + 1
    mu = y[train].mean()
    S = np.zeros((n_r, n_c))
    N = np.zeros((n_r, n_c))
    np.add.at(S, (rows[train], cols[train]), y[train] - mu)
    np.add.at(N, (rows[train], cols[train]), 1.0)
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_r, rank))
    V = rng.normal(size=(n_c, rank))
    eye = ridge * np.eye(rank)
    for _ in range(sweeps):
        # least squares over entries = weighted least squares over cell means
        U = np.linalg.solve(np.einsum("jr,ij,js->irs", V, N, V) + eye, (S @ V)[..., None])[..., 0]
        V = np.linalg.solve(np.einsum("ir,ij,is->jrs", U, N, U) + eye, (S.T @ U)[..., None])[..., 0]
    pred = mu + np.sum(U[rows[test]] * V[cols[test]], axis=1)
    return float(np.sqrt(np.mean((y[test] - pred) ** 2)))


def within_cell_std(rows, cols, y):
    """Pooled standard deviation of the entries around their cell's mean."""
    key = rows * (cols.max() + 1) + cols
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    means = np.bincount(inv, y) / counts
    dof = len(y) - len(counts)
    return float(np.sqrt(np.sum((y - means[inv]) ** 2) / dof))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--ranks", nargs="+", type=int, default=[3, 5, 7])
    ap.add_argument("--splits", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--ridges", nargs="+", type=float, default=[0.3, 1.0, 3.0])
    ap.add_argument("--starts", type=int, default=3, help="random starts per ridge")
    ap.add_argument("--sweeps", type=int, default=300, help="ALS sweeps per fit")
    ap.add_argument("--json", help="write the table here as JSON")
    ap.add_argument("--markdown", help="write the table here as Markdown")
    args = ap.parse_args(argv)

    ds = load_dataset("us_temp", Path(args.data))
    rows, cols = cells(ds.frame, ["lat01", "lon01"], ["year"])
    y = ds.y
    spread = within_cell_std(rows, cols, y)
    lines = [
        f"us_temp: {rows.max() + 1} locations x {cols.max() + 1} years, {len(y)} entries; "
        f"within-cell std {spread:.4f} deg F",
        "",
        "| rank | " + " | ".join(f"split {s}" for s in args.splits) + " | mean |",
        "|---|" + "---|" * (len(args.splits) + 1),
    ]
    print("\n".join(lines), flush=True)
    results = []
    for rank in args.ranks:
        per_split = []
        for s in args.splits:
            train, test = split_indices(len(y), s)
            per_split.append(
                min(
                    als_rmse(rows, cols, y, train, test, rank, ridge, seed, args.sweeps)
                    for ridge in args.ridges
                    for seed in range(args.starts)
                )
            )
        line = (
            f"| {rank} | "
            + " | ".join(f"{r:.4f}" for r in per_split)
            + f" | {np.mean(per_split):.4f} |"
        )
        print(line, flush=True)
        lines.append(line)
        results.append({"rank": rank, "test_rmse": per_split, "mean": float(np.mean(per_split))})
    if args.json:
        payload = {
            "provenance": provenance(),
            "dataset": "us_temp",
            "table": "(lat01, lon01) x year",
            "within_cell_std": spread,
            "ridges": args.ridges,
            "starts": args.starts,
            "sweeps": args.sweeps,
            "splits": args.splits,
            "results": results,
        }
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(payload, indent=2) + "\n")
    if args.markdown:
        with atomic_write(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
