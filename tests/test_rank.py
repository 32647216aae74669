"""Learning the rank (``funbat.inference.rank``): the precisions' update and ELBO terms
against dense references, monotone ELBOs through prunings, recovery of a planted rank,
bad inputs, and model files."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, gammaln

from funbat import FunBaT, FunBaTCP, InputError, load, save
from funbat.datasets import make_synthetic_ranked
from funbat.inference import rank as RK
from funbat.kernels import make_kernel
from funbat.modes import ChainMode
from funbat.solvers import get_solver


def _gamma_kl(a, b, a0, b0):
    return ((a - a0) * digamma(a) - gammaln(a) + gammaln(a0) + a0 * (np.log(b) - np.log(b0))
            + a * (b0 - b) / b)  # fmt: skip


def _gauss_kl(m, C, P):
    """KL(N(m, C) || N(0, P)), dense."""
    Pinv = np.linalg.inv(P)
    return 0.5 * (np.trace(Pinv @ C) + m @ Pinv @ m - m.size + np.linalg.slogdet(P)[1]
                  - np.linalg.slogdet(C)[1])  # fmt: skip


def test_mode_update_under_scaled_prior_matches_dense(x64):
    """A chain mode updated with prior N(0, K / lambda_r): moments, KL and quadratic forms
    equal the dense GP posterior's under the prior ``K kron diag(1 / lambda)``."""
    rng = np.random.default_rng(0)
    I, R = 6, 2
    coords = np.sort(rng.uniform(0, 1, I))
    kern = make_kernel("matern32", 0.3, 1.0)
    kind = ChainMode(solver=get_solver("sequential"))
    state = kind.init(type("E", (), {"unique": coords})(), R, kern, rng.normal(size=(I, R)), I)
    a = rng.normal(size=(I, R, 3))
    G, g = np.einsum("jra,jsa->jrs", a, a), rng.normal(size=(I, R))
    lam, tau = np.array([0.5, 20.0]), 2.0
    new, kl, quad, _ = RK.mode_update(kind, state, jnp.asarray(G), jnp.asarray(g), tau, None,
                                      jnp.asarray(lam), learn=False, learning=False)  # fmt: skip
    Kt = np.asarray(kern.covariance(coords[:, None] - coords[None, :]))
    prior = np.kron(Kt, np.diag(1.0 / lam))  # point-major (j, r)
    Lam = np.zeros((I * R, I * R))
    for j in range(I):
        Lam[j * R : (j + 1) * R, j * R : (j + 1) * R] = tau * G[j]
    C = np.linalg.inv(np.linalg.inv(prior) + Lam)
    m = C @ (tau * g.reshape(-1))
    np.testing.assert_allclose(np.asarray(new.means), m.reshape(I, R), atol=1e-8)
    sec = np.array([C[j * R : (j + 1) * R, j * R : (j + 1) * R] for j in range(I)])
    sec = sec + m.reshape(I, R)[:, :, None] * m.reshape(I, R)[:, None, :]
    np.testing.assert_allclose(np.asarray(new.seconds), sec, atol=1e-8)
    np.testing.assert_allclose(float(kl), _gauss_kl(m, C, prior), rtol=1e-8)
    # E[u_r^T K^{-1} u_r] with the kernel's own (unscaled) K; the chain's forms are over
    # its whole state (u and u'), whose derivative part given u keeps the prior's
    # conditional (the messages see u only): I (d - 1) more variables of precision lambda
    Kinv = np.linalg.inv(Kt)
    E = C + np.outer(m, m)
    want = [np.trace(Kinv @ E[r::R, r::R]) + I * (kern.state_dim - 1) / lam[r] for r in range(R)]
    np.testing.assert_allclose(np.asarray(quad), want, rtol=1e-7)


def _categories_data(rng, n, sizes, rank=2):
    U = [rng.normal(size=(s, rank)) for s in sizes]
    idx = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    f = np.sum(np.prod([U[k][idx[:, k]] for k in range(len(sizes))], axis=0), axis=1)
    X = pd.DataFrame({f"c{k}": [f"v{v}" for v in idx[:, k]] for k in range(len(sizes))})
    return X, f + 0.1 * rng.normal(size=n)


def _dense_elbo(model, X, y):
    """The ELBO of a fit on discrete modes by brute force: per-entry expectations under
    the fitted q, the expected KL of every category's Gaussian against its prior
    N(0, s^2 / lambda) over q(lambda), the KLs of q(lambda), q(tau) (and q(W))."""
    r = model.result_
    ys = (np.asarray(y) - r.y_mean) / r.y_scale
    codes = [e.codes(X[e.name].to_numpy()) for e in r.encodings]
    mus = [np.asarray(m.means)[c] for m, c in zip(r.modes, codes)]
    secs = [np.asarray(m.seconds)[c] for m, c in zip(r.modes, codes)]
    rank = r.rank
    if r.core is None:
        Ef = np.sum(np.prod(mus, axis=0), axis=1)
        Ef2 = np.sum(np.prod(secs, axis=0), axis=(1, 2))
        err = np.sum(ys**2 - 2 * ys * Ef + Ef2)
        kl_core = 0.0
    else:
        m, C = np.asarray(r.core.mean), np.asarray(r.core.cov)
        z = mus[0]
        Z2 = secs[0]
        for k in range(1, len(mus)):
            z = np.einsum("na,nb->nab", z, mus[k]).reshape(len(ys), -1)
            Z2 = np.einsum("nac,nbd->nabcd", Z2, secs[k]).reshape(len(ys), z.shape[1], z.shape[1])
        Eww = C + np.outer(m, m)
        err = np.sum(ys**2 - 2 * ys * (z @ m) + np.einsum("pq,npq->n", Eww, Z2))
        lam = [np.asarray(a) / np.asarray(b) for a, b in zip(rank.shape, rank.rate)]
        elog = [
            digamma(np.asarray(a)) - np.log(np.asarray(b)) for a, b in zip(rank.shape, rank.rate)
        ]
        alpha = np.ones(())
        beta = np.zeros(())
        for la, el in zip(lam, elog):
            alpha, beta = np.multiply.outer(alpha, la), np.add.outer(beta, el)
        alpha, beta = alpha.reshape(-1), beta.reshape(-1)
        s2 = model.core_prior_variance
        P = m.size
        kl_core = 0.5 * (np.sum(alpha * np.diag(Eww)) / s2 - P + P * np.log(s2) - np.sum(beta)
                         - np.linalg.slogdet(C)[1])  # fmt: skip
    a, b = float(r.noise.shape), float(r.noise.rate)
    N = len(ys)
    lik = 0.5 * N * (digamma(a) - np.log(b) - np.log(2 * np.pi)) - 0.5 * a / b * err
    kl = _gamma_kl(a, b, 1e-3, 1e-3) + kl_core
    for k, mode in enumerate(r.modes):
        g = 0 if r.core is None else k
        lam = np.asarray(rank.shape[g]) / np.asarray(rank.rate[g])
        elog = digamma(np.asarray(rank.shape[g])) - np.log(np.asarray(rank.rate[g]))
        mu, S = np.asarray(mode.means), np.asarray(mode.seconds)
        for j in range(mu.shape[0]):
            Cj = S[j] - np.outer(mu[j], mu[j])
            # E over q(lambda) of KL(N(mu_j, C_j) || N(0, diag(1 / lambda)))
            kl += 0.5 * (np.sum(lam * np.diag(S[j])) - mu.shape[1] - np.sum(elog)
                         - np.linalg.slogdet(Cj)[1])  # fmt: skip
    for sh, rt in zip(rank.shape, rank.rate):
        kl += np.sum(_gamma_kl(np.asarray(sh), np.asarray(rt), *RK.PRIOR))
    return lik - kl


@pytest.mark.parametrize("cls", [FunBaTCP, FunBaT])
def test_elbo_equals_dense_computation(cls):
    """The reported ELBO of a rank-learning fit, with its precision terms, equals a
    brute-force computation from the fitted q on a tiny all-discrete problem."""
    rng = np.random.default_rng(1)
    X, y = _categories_data(rng, 120, (5, 4))
    m = cls(rank="auto", max_rank=3, max_iter=14, random_state=0, recalibrate=False).fit(X, y)
    np.testing.assert_allclose(m.elbo_, _dense_elbo(m, X, y), rtol=1e-9, atol=1e-7)


def _mixed_data(rng, n, K, rank=2):
    """K modes: a continuous one first, then categories."""
    t = np.sort(rng.uniform(0, 1, 25))
    U0 = np.stack([np.sin(2 * np.pi * (r + 1) * t + r) for r in range(rank)], axis=1)
    Us = [U0] + [rng.normal(size=(6, rank)) for _ in range(K - 1)]
    idx = np.stack([rng.integers(0, len(u), n) for u in Us], axis=1)
    f = np.sum(np.prod([Us[k][idx[:, k]] for k in range(K)], axis=0), axis=1)
    X = pd.DataFrame({"t": t[idx[:, 0]], **{f"c{k}": [f"v{v}" for v in idx[:, k]]
                                           for k in range(1, K)}})  # fmt: skip
    return X, f + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("cls", [FunBaTCP, FunBaT])
def test_elbo_rises_with_rank_learning(cls, K, assert_elbo_rises):
    """Every sweep raises the ELBO (prunings included), with a chain mode and
    categories; the planted rank 2 comes back from an upper bound of 4."""
    rng = np.random.default_rng(K)
    X, y = _mixed_data(rng, 300, K)
    m = cls(rank="auto", max_rank=3, max_iter=24, random_state=0).fit(X, y)
    assert_elbo_rises(m.elbo_history_, 24)
    assert m.ranks_ == (2,) * K  # the planted rank, pruned from 3...
    assert all(s.means.shape[1] == R for s, R in zip(m.result_.modes, m.ranks_))  # ...and shrank
    if cls is FunBaT:
        assert m.core_.shape == tuple(m.ranks_)
    assert m.predict(X.iloc[:5]).shape == (5,)


@pytest.mark.parametrize("structure", ["cp", "tucker"])
def test_a_masked_component_sweeps_as_a_removed_one(structure):
    """A component removed during a fit is masked (its moments and core slices zeroed,
    its terms left out; the shapes stay, so nothing compiles again). Sweeps from the
    masked state equal sweeps from the state with the component taken out by
    marginalising ``q`` (the arrays shrunk): the same ELBOs, the same live moments."""
    from funbat import inference
    from funbat.backends import entries_from_input
    from funbat.likelihoods import make_likelihood
    from funbat.modes import mode_kind

    X, y = _mixed_data(np.random.default_rng(3), 300, 3)
    entries = entries_from_input(X, y)
    kinds = tuple(mode_kind(e.kind) for e in entries.encodings)
    spec = inference.ModelSpec(structure, (3, 3, 3), kinds, make_likelihood("gaussian", None),
                               max_iter=12, tol=0.0, recalibrate=False, warmup=2,
                               rank_learning=True)  # fmt: skip
    with jax.enable_x64(True):
        kernels = [k.kernel(e, "matern32", None, 1.0) for k, e in zip(kinds, entries.encodings)]
        entries = entries.with_chunk(inference.chunk_size(entries.n, spec.ranks, 65536))
        state = inference.initial_state(spec, entries, kernels, np.random.default_rng(0))
        for it in range(4):
            state = RK._sweep_from(spec, entries, state, warm=it < 2, timer=None)
        keeps = [np.array([0, 2])] * 3 if structure == "cp" else [np.array([0, 2]),
                                                                   np.arange(3), np.array([1, 2])]
        modes, core, rank = RK.deactivate(structure, list(state.modes), state.core, state.rank,
                                          keeps)  # fmt: skip
        masked = state._replace(modes=tuple(modes), core=core, rank=rank)
        assert [m.means.shape[1] for m in masked.modes] == [3, 3, 3]
        removed = RK.compact(masked)
        assert [m.means.shape[1] for m in removed.modes] == [len(k) for k in keeps]
        for _ in range(2):
            masked = RK._sweep_from(spec, entries, masked, warm=False, timer=None)
            removed = RK._sweep_from(spec, entries, removed, warm=False, timer=None)
            np.testing.assert_allclose(float(masked.elbo), float(removed.elbo), rtol=1e-10)
        for m, r, kp in zip(masked.modes, removed.modes, keeps):
            np.testing.assert_allclose(np.asarray(m.means)[:, kp], np.asarray(r.means), atol=1e-9)
            dead = np.setdiff1d(np.arange(3), kp)
            assert not np.any(np.asarray(m.means)[:, dead]) and not np.any(
                np.asarray(m.seconds)[:, dead])  # fmt: skip
        final = RK.compact(masked)  # the records too: the live part of each is exact
        for m, r in zip(final.modes, removed.modes):
            for a, b in zip(jax.tree_util.tree_leaves((m.seconds, m.posterior)),
                            jax.tree_util.tree_leaves((r.seconds, r.posterior))):  # fmt: skip
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-9)


def test_pruning_raises_the_elbo(x64):
    """The pruning test's bound: removing a dead component by marginalising it raises
    the ELBO; a component that carries the signal stays."""
    rank = RK.RankState((jnp.full(2, 50.0),), (jnp.array([50.0, 1e-4]),), (), (), ())
    # component 0 explains the data (b = T), component 1 nothing
    T = jnp.array([[100.0, 0.0], [0.0, 1e-9]])
    b = jnp.array([100.0, 0.0])
    keep = RK.prune_plan("cp", (2, 2), None, 10.0, rank, (T, b))
    assert [list(k) for k in keep] == [[0], [0]]
    keep = RK.prune_plan("cp", (2, 2), None, 10.0, rank, (jnp.eye(2) * 100.0, jnp.full(2, 100.0)))
    assert [list(k) for k in keep] == [[0, 1], [0, 1]]


def test_pure_noise_keeps_one_negligible_component():
    d = make_synthetic_ranked(300, ranks=(0, 0), n_unique=25, noise_std=1.0, seed=0)
    m = FunBaTCP(rank="auto", max_rank=3, max_iter=24, random_state=0).fit(d.X, d.y)
    assert m.ranks_ == (1, 1)
    assert m.component_precisions_.shape == (1,)
    assert np.std(m.predict(d.X)) < 0.05 * np.std(d.y)  # the predictions are the mean


def test_fixed_rank_reports_no_precisions():
    X, y = _mixed_data(np.random.default_rng(0), 300, 2)
    m = FunBaTCP(rank=2, max_iter=4, random_state=0).fit(X, y)
    assert m.component_precisions_ is None and m.result_.rank is None
    assert m.summary()["rank_learned"] is False


@pytest.mark.parametrize("kw", [dict(rank="automatic"), dict(rank="auto", max_rank=0),
                                dict(rank="auto", max_rank=2.5)])  # fmt: skip
def test_bad_rank_inputs(kw):
    X, y = _mixed_data(np.random.default_rng(0), 50, 2)
    with pytest.raises(InputError) as err:
        FunBaTCP(**kw).fit(X, y)
    assert "\n" not in str(err.value)


def test_default_max_rank():
    assert RK.default_max_rank([30, 5, 100]) == 5
    assert RK.default_max_rank([300, 500]) == 8
    assert RK.default_max_rank([300, 500, 400], "tucker", 200) == 5  # 5^3 <= 200 < 6^3


@pytest.fixture(scope="module")
def cp_auto():
    """One CP ``rank="auto"`` fit that several tests only read; the CLI test fits the
    same data with the same settings (its programs are then compiled already)."""
    X, y = _mixed_data(np.random.default_rng(2), 300, 2)
    return X, y, FunBaTCP(rank="auto", max_rank=3, max_iter=12, random_state=0).fit(X, y)


def test_save_load_round_trip(tmp_path, cp_auto):
    X, y, fitted = cp_auto
    for cls in (FunBaTCP, FunBaT):
        m = fitted if cls is FunBaTCP else cls(rank="auto", max_rank=3, max_iter=12,
                                               random_state=0).fit(X, y)  # fmt: skip
        path = tmp_path / f"{cls.__name__}.funbat"
        save(m, path)
        back = load(path)
        assert back.ranks_ == m.ranks_
        for a, b in zip(np.atleast_1d(back.component_precisions_),
                        np.atleast_1d(m.component_precisions_)):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(back.predict(X.iloc[:20]), m.predict(X.iloc[:20]))
        mean, std = m.latent_functions("t", [0.1234, 0.5])
        mean2, std2 = back.latent_functions("t", [0.1234, 0.5])
        np.testing.assert_array_equal(mean, mean2)
        np.testing.assert_array_equal(std, std2)
        assert "precisions" in back.summary()["modes"][0]


def test_prediction_undoes_the_record_scale(x64, cp_auto):
    """Between training coordinates a chain mode predicts with the learned prior: the
    mean and variance at a training coordinate are the fitted marginals."""
    X, y, m = cp_auto
    st = m.result_.modes[0]
    t = m.result_.encodings[0].unscaled(np.asarray(st.coords[:5]))
    mean, std = m.latent_functions("t", t)
    np.testing.assert_allclose(mean, np.asarray(st.means[:5]), atol=1e-9)
    var = np.diagonal(np.asarray(st.seconds[:5]), axis1=1, axis2=2) - np.asarray(st.means[:5]) ** 2
    np.testing.assert_allclose(std**2, var, atol=1e-9)
    with jax.enable_x64(True):
        draws = m.sample_y(X.iloc[:3], n_samples=2, random_state=0)
    assert draws.shape == (3, 2)


def test_cli_rank_auto_fit_and_info(tmp_path, capsys, cp_auto):
    from funbat import cli

    X, y, _ = cp_auto
    X.assign(y=y).to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "m.funbat"
    args = ["fit", tmp_path / "d.csv", "-t", "y", "-m", "cp", "--rank", "auto", "--max-rank",
            "3", "--max-iter", "12", "-q", "-o", path]  # fmt: skip
    assert cli.main([str(a) for a in args]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "learned (auto)" in out and "component precisions" in out
    for bad, message in ((["--rank", "automatic"], "rank must be"),
                         (["--rank", "2", "--max-rank", "3"], "--max-rank needs --rank auto"),
                         (["--rank", "auto", "--max-rank", "0"], "max_rank")):  # fmt: skip
        code = cli.main([str(a) for a in ["fit", tmp_path / "d.csv", "-t", "y", *bad, "-o",
                                          tmp_path / "x.funbat"]])  # fmt: skip
        err = capsys.readouterr().err
        assert code != 0 and message in err, err


def test_select_model_takes_auto():
    from funbat.selection import select_model

    X, y = _mixed_data(np.random.default_rng(2), 300, 2)
    best, table = select_model(FunBaTCP(max_iter=12, random_state=0), X, y, ranks=("auto", 1))
    assert set(table["rank"]) == {"auto", 1}
    assert np.isfinite(table["elbo"]).all()
