"""Yes/no and count likelihoods against Gaussian noise on transformed targets and
gradient boosting with the matching loss, on five random 80/20 splits.

* Synthetic data from the model (3 continuous modes, 30 coordinates each, a rank-2
  Tucker latent from :func:`funbat.datasets.make_synthetic`): Bernoulli (logit), Poisson
  and negative-binomial (r = 4) targets. Reported: held-out log-loss (Bernoulli) or
  mean Poisson deviance of the predicted mean (counts), the latent log-odds / log-mean's
  RMSE against the truth (and an oracle's, :func:`oracle_fit_rmse`), the expected
  calibration error on 10 bins (Bernoulli), the 95% intervals' coverage (counts), and
  the seconds per sweep against Student-t noise on the same entries.
* ``--cost-only``: the likelihood step's time (the entries' moments and the likelihood's
  own passes, through the engine's timer hook) and a whole sweep's, against Student-t
  noise on ``log1p(y)`` of the same entries, interleaved fits, medians; ``--cost-sizes``
  repeats it for several numbers of entries.
* Real yes/no data: the Beijing PM2.5 table shipped in ``../shared/data`` (temperature,
  pressure, date; 16,965 rows), target ``pm25_z > 1`` (a polluted day).

The Gaussian baseline fits the same FunBaT to ``y`` (0/1; probabilities clipped to
[1e-3, 1 - 1e-3]) or to ``log1p(y)`` (mean count ``expm1`` of its prediction, at least
1e-3). Gradient boosting: scikit-learn's ``HistGradientBoostingClassifier`` and
``HistGradientBoostingRegressor(loss="poisson")`` with default settings.

    PYTHONPATH=src python benchmarks/counts.py --json benchmarks/results/counts.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import log_loss, mean_poisson_deviance

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance  # noqa: E402

from funbat import FunBaT  # noqa: E402
from funbat.datasets import make_synthetic_counts  # noqa: E402

BEIJING = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "beijing_pm25.csv"


def draw(family: str, n: int, seed: int):
    """X, y and the true log-odds / log-mean of ``n`` entries from the model."""
    return make_synthetic_counts(n, family, seed=seed)


def ece(p, y, bins=10):
    b = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[b == i].mean() - p[b == i].mean()) * np.mean(b == i)
                     for i in range(bins) if np.any(b == i)))  # fmt: skip


def _numeric(X: pd.DataFrame) -> pd.DataFrame:
    """Dates as days, for gradient boosting."""
    return X.apply(lambda c: (c - c.min()).dt.days if c.dtype.kind == "M" else c)


#: The synthetic negative-binomial data's dispersion (``make_synthetic_counts``).
NB_DISPERSION = 4.0


def oracle(family, truth, y):
    """The same measures for the true distribution of each held-out entry (``truth``:
    its log-odds or log-mean): the floor that sampling noise and integer counts set.
    With a few hundred entries per bin the true probabilities' ECE is not 0, and the
    true count distribution's central 95% integer interval holds at least 95%, often
    much more when counts are small."""
    from scipy import stats

    if family == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-truth))
        return {"ece": ece(p, y), "log_loss": log_loss(y, p, labels=[0, 1])}
    mu = np.exp(truth)
    if family == "poisson":
        dist = stats.poisson(mu)
    else:
        dist = stats.nbinom(NB_DISPERSION, NB_DISPERSION / (NB_DISPERSION + mu))
    lo, hi = dist.ppf(0.025), dist.ppf(0.975)
    return {"coverage95": float(np.mean((y >= lo) & (y <= hi))),
            "interval_mass95": float(np.mean(dist.cdf(hi) - dist.cdf(lo - 1)))}  # fmt: skip


def fisher_information(family, truth):
    """Each entry's Fisher information (n,) about its latent value ``truth`` (log-odds or
    log-mean): ``p (1 - p)`` (Bernoulli), ``mu`` (Poisson), ``r mu / (r + mu)`` (negative
    binomial, ``r`` = :data:`NB_DISPERSION`)."""
    if family == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-truth))
        return p * (1.0 - p)
    mu = np.exp(truth)
    return mu if family == "poisson" else NB_DISPERSION * mu / (NB_DISPERSION + mu)


def oracle_fit_rmse(family, X, truth, train, test, kw, seed):
    """The latent RMSE (held-out) of the oracle: the same FunBaT with Gaussian noise fitted
    to the true latent values of the training entries plus Gaussian noise whose variance
    ``N / sum_n I_n`` carries the same total Fisher information as the 0/1 or count
    targets (:func:`fisher_information`). It sees the latent function through the true
    link with no loss from the augmentation, the link's curvature or integer targets."""
    info = fisher_information(family, truth[train])
    sigma = np.sqrt(len(info) / info.sum())
    z = truth[train] + sigma * np.random.default_rng(seed).standard_normal(len(info))
    model = FunBaT(**kw).fit(X.iloc[train], z)
    return float(np.sqrt(np.mean((model.predict(X.iloc[test]) - truth[test]) ** 2))), float(sigma)


def random_splits(n: int, k: int):
    """``k`` random 80/20 (train, test) index pairs of ``n`` entries (seed 0)."""
    rng = np.random.default_rng(0)
    for _ in range(k):
        perm = rng.permutation(n)
        yield perm[: int(0.8 * n)], perm[int(0.8 * n) :]


def one_split(family, X, y, truth, train, test, rank, max_iter, n_init=1, **model_kw):
    """funbat with ``family``, funbat with Gaussian noise on transformed targets and
    gradient boosting on one (train, test) split; ``model_kw`` go to both funbat fits
    (``modes=`` for a spatial mode, say)."""
    kw = dict(rank=rank, max_iter=max_iter, duplicates="keep", random_state=0) | model_kw
    Xtr, Xte, ytr, yte = X.iloc[train], X.iloc[test], y[train], y[test]
    out = {}
    t0 = time.perf_counter()
    model = FunBaT(likelihood=family, n_init=n_init, **kw).fit(Xtr, ytr)
    out["funbat_fit_s"] = time.perf_counter() - t0
    out["funbat_sweeps"] = int(model.n_iter_)
    pred = model.predictive(Xte)
    gauss = FunBaT(**kw).fit(Xtr, ytr if family == "bernoulli" else np.log1p(ytr))
    g = gauss.predict(Xte)
    if family == "bernoulli":
        hgb = HistGradientBoostingClassifier(random_state=0).fit(_numeric(Xtr), ytr)
        p_g = np.clip(g, 1e-3, 1 - 1e-3)
        out["log_loss"] = {"funbat": log_loss(yte, pred.mean, labels=[0, 1]),
                           "gaussian": log_loss(yte, p_g, labels=[0, 1]),
                           "hgb": log_loss(yte, hgb.predict_proba(_numeric(Xte))[:, 1], labels=[0, 1])}
        out["ece"] = {"funbat": ece(pred.mean, yte), "gaussian": ece(p_g, yte)}
        g_latent = np.log(p_g / (1 - p_g))
        latent = pred.loc
    else:
        hgb = HistGradientBoostingRegressor(loss="poisson", random_state=0).fit(_numeric(Xtr),
                                                                           ytr)
        m_g = np.maximum(np.expm1(g), 1e-3)
        out["poisson_deviance"] = {"funbat": mean_poisson_deviance(yte, pred.mean),
                                   "gaussian": mean_poisson_deviance(yte, m_g),
                                   "hgb": mean_poisson_deviance(yte, hgb.predict(_numeric(Xte)))}
        lo, hi = pred.interval(0.95)
        out["coverage95"] = float(np.mean((yte >= lo) & (yte <= hi)))
        out["interval_mass95"] = float(np.mean(pred.cdf(hi) - pred.cdf(lo - 1)))
        g_latent = np.log(m_g)
        latent = pred.loc + np.log(pred.dispersion)
    if truth is not None:
        tt = truth[test]
        rmse_o, out["oracle_noise_std"] = oracle_fit_rmse(family, X, truth, train, test, kw,
                                                          seed=int(test[0]))  # fmt: skip
        out["latent_rmse"] = {"funbat": float(np.sqrt(np.mean((latent - tt) ** 2))),
                              "gaussian": float(np.sqrt(np.mean((g_latent - tt) ** 2))),
                              "oracle_gaussian": rmse_o}  # fmt: skip
        out["latent_rmse_ratio"] = out["latent_rmse"]["funbat"] / rmse_o
        out["oracle"] = oracle(family, tt, yte)
    if family == "negative_binomial":
        out["dispersion"] = float(model.dispersion_)
    return out


def sweep_seconds(family, X, y, rank, sweeps=20):
    """Seconds per sweep of ``family`` and of Student-t noise on the same entries, after
    a first fit has compiled everything."""
    out = {}
    for lik in (family, "student_t"):
        target = y if lik == family else np.log1p(y)
        kw = dict(rank=rank, max_iter=sweeps, tol=0.0, duplicates="keep", random_state=0,
                  likelihood=lik)  # fmt: skip
        FunBaT(**kw).fit(X, target)
        m = FunBaT(**kw).fit(X, target)
        out[lik] = m.fit_time_ / m.n_iter_
    return out


def step_seconds(family, X, y, rank, sweeps, repeats):
    """Seconds of the likelihood's own step (the entries' moments and its passes, as the
    engine's timer hook sees them) and of a whole sweep, for ``family`` and for Student-t
    noise on ``log1p(y)``: medians of ``repeats`` fits each, the two interleaved so that
    both share the machine's load, after a first fit of each has compiled everything."""
    import jax

    from funbat import inference
    from funbat.backends import entries_from_input
    from funbat.likelihoods import make_likelihood
    from funbat.modes import mode_kind

    def one(lik):
        target = y if lik == family else np.log1p(y)
        entries = entries_from_input(X, target, duplicates="keep")
        with jax.enable_x64(True):
            entries = entries.with_chunk(
                inference.chunk_size(entries.n, (rank,) * len(entries.encodings), 65536))
            kinds = tuple(mode_kind(e.kind) for e in entries.encodings)
            kernels = [k.kernel(e, "matern32", None, 1.0) for k, e in zip(kinds, entries.encodings)]
        spec = inference.ModelSpec("tucker", (rank,) * len(kinds), kinds, make_likelihood(lik),
                                   max_iter=sweeps, tol=0.0, recalibrate=False)  # fmt: skip
        stages = {"likelihood": [0.0, 0]}

        def timer(stage, seconds):
            if stage == "likelihood":
                stages[stage][0] += seconds
                stages[stage][1] += 1

        t = time.perf_counter()
        result = inference.fit(spec, entries, kernels, rng=np.random.default_rng(0), timer=timer)
        total, n = time.perf_counter() - t, len(result.elbo_history)
        return {"likelihood_step": stages["likelihood"][0] / max(stages["likelihood"][1], 1),
                "sweep": total / n}

    liks = (family, "student_t")
    for lik in liks:  # compile
        one(lik)
    runs = [{lik: one(lik) for lik in liks} for _ in range(repeats)]
    return {lik: {k: float(np.median([r[lik][k] for r in runs])) for k in ("likelihood_step", "sweep")}
            for lik in liks}  # fmt: skip


def summarise(splits):
    def agg(key):
        vals = [s[key] for s in splits if key in s]
        if not vals:
            return None
        if isinstance(vals[0], dict):
            return {k: [float(np.mean([v[k] for v in vals])), float(np.std([v[k] for v in vals]))]
                    for k in vals[0]}  # fmt: skip
        return [float(np.mean(vals)), float(np.std(vals))]

    keys = sorted({k for s in splits for k in s})
    return {k: agg(k) for k in keys}


def _ms(pair):
    return None if pair is None else {"mean": pair[0], "std": pair[1]}


def table_rows(name, entry):
    """The docs' rows for one data set: each metric's mean and sd over the splits for
    funbat, the Gaussian baseline, gradient boosting and the oracle (the oracle fit for
    the latent RMSE, the true distribution for the ECE and the coverage)."""
    ms = entry["mean_std"]
    base = {"data": name, "likelihood": entry["family"], "n": entry["n"]}
    oracle_ = ms.get("oracle") or {}
    rows = []
    for key, label in (("log_loss", "log-loss"), ("poisson_deviance", "mean Poisson deviance")):
        if key in ms:
            rows.append(base | {"metric": label} | {k: _ms(v) for k, v in ms[key].items()})
    if "latent_rmse" in ms:
        lr = ms["latent_rmse"]
        rows.append(base | {"metric": "latent RMSE vs truth", "funbat": _ms(lr["funbat"]),
                            "gaussian": _ms(lr["gaussian"]),
                            "oracle": _ms(lr.get("oracle_gaussian")),
                            "ratio": _ms(ms.get("latent_rmse_ratio")),
                            "worst": max(s["latent_rmse"]["funbat"] for s in entry["splits"])})  # fmt: skip
    if "ece" in ms:
        rows.append(base | {"metric": "ECE (10 bins)", "funbat": _ms(ms["ece"]["funbat"]),
                            "gaussian": _ms(ms["ece"]["gaussian"]),
                            "oracle": _ms(oracle_.get("ece"))})  # fmt: skip
    if "coverage95" in ms:
        rows.append(base | {"metric": "95% interval coverage", "funbat": _ms(ms["coverage95"]),
                            "oracle": _ms(oracle_.get("coverage95"))})  # fmt: skip
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--n", type=int, default=5000, help="synthetic entries per family")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=50)
    ap.add_argument("--n-init", type=int, default=1,
                    help="starts of funbat's own fits (FunBaT's n_init; the baselines keep 1)")
    ap.add_argument("--no-beijing", action="store_true")
    ap.add_argument("--families", nargs="+", default=["bernoulli", "poisson", "negative_binomial"],
                    choices=["bernoulli", "poisson", "negative_binomial"],
                    help="the synthetic likelihoods to run")  # fmt: skip
    ap.add_argument(
        "--oracle-only",
        action="store_true",
        help="only the true distributions' measures on the same synthetic splits (no fits)",
    )
    ap.add_argument(
        "--cost-only",
        action="store_true",
        help="only the likelihood step's and a sweep's time against Student-t noise",
    )
    ap.add_argument("--cost-sizes", type=int, nargs="+",
                    help="--cost-only: synthetic entries per family, one run each (default --n)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="--cost-only: interleaved fits of each likelihood (the median is kept)")
    args = ap.parse_args(argv)
    if args.oracle_only:
        return _oracle_only(args)
    if args.cost_only:
        return _cost_only(args)
    results = {"provenance": provenance(), "settings": vars(args) | {"json": str(args.json)}}
    data = {f: draw(f, args.n, seed=7) for f in args.families}
    if not args.no_beijing and BEIJING.exists():
        df = pd.read_csv(BEIJING)
        X = df[["temp_c", "pres_hpa", "date"]].assign(date=pd.to_datetime(df["date"]))
        data["beijing_polluted"] = (X, (df["pm25_z"].to_numpy() > 1.0).astype(float), None)
    for name, (X, y, truth) in data.items():
        family = "bernoulli" if name == "beijing_polluted" else name
        rank = 3 if name == "beijing_polluted" else 2
        splits = []
        for s, (train, test) in enumerate(random_splits(len(y), args.splits)):
            splits.append(one_split(family, X, y, truth, train, test, rank, args.max_iter,
                                    args.n_init))  # fmt: skip
            print(name, s, json.dumps(splits[-1]), flush=True)
        entry = {"n": int(len(y)), "family": family, "rank": rank, "splits": splits,
                 "mean_std": summarise(splits)}  # fmt: skip
        if truth is not None:
            entry["seconds_per_sweep"] = sweep_seconds(family, X, y, rank)
        results[name] = entry
        results["table"] = results.get("table", []) + table_rows(name, entry)
        print(name, json.dumps(entry["mean_std"]), entry.get("seconds_per_sweep"), flush=True)
        if args.json:  # after each data set: a long run keeps what it has done
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))


def _cost_only(args):
    results = {"provenance": provenance(), "settings": vars(args) | {"json": str(args.json)}}
    rows = []
    for n in args.cost_sizes or [args.n]:
        for family in args.families:
            X, y, _ = draw(family, n, seed=7)
            t = step_seconds(family, X, y, 2, args.max_iter, args.repeats)
            row = {"n": int(len(y)), "family": family,
                   "step_ms": 1e3 * t[family]["likelihood_step"],
                   "student_t_step_ms": 1e3 * t["student_t"]["likelihood_step"],
                   "sweep_ms": 1e3 * t[family]["sweep"],
                   "student_t_sweep_ms": 1e3 * t["student_t"]["sweep"]}  # fmt: skip
            row["step_ratio"] = row["step_ms"] / row["student_t_step_ms"]
            row["sweep_ratio"] = row["sweep_ms"] / row["student_t_sweep_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    results["table"] = rows
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def _oracle_only(args):
    results = {"provenance": provenance(), "settings": vars(args) | {"json": str(args.json)}}
    for family in ("bernoulli", "poisson", "negative_binomial"):
        X, y, truth = draw(family, args.n, seed=7)
        splits = [{"oracle": oracle(family, truth[test], y[test])}
                  for _, test in random_splits(len(y), args.splits)]  # the full run's splits
        results[family] = {"n": int(len(y)), "splits": splits, "mean_std": summarise(splits)}
        print(family, json.dumps(results[family]["mean_std"]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
