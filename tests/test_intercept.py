"""The learned intercept (``learn_intercept=True``): its update against a brute-force
sum over entries, the ELBO's monotonicity, and what it is for: data from a low-rank
model whose mean is not zero keep their rank."""

from functools import reduce

import jax.numpy as jnp
import numpy as np
import pytest

from funbat import FunBaT, FunBaTCP, InputError, load, save
from funbat import updates as U
from funbat.datasets import make_synthetic_ranked
from funbat.inference.sweep import core_and_noise
from funbat.stats import mode_statistics, pad_entries


def _moments(rng, sizes, ranks):
    means = [rng.normal(size=(g, r)) for g, r in zip(sizes, ranks)]
    seconds = []
    for m in means:
        a = 0.3 * rng.normal(size=(m.shape[0], m.shape[1], 2))
        seconds.append(m[:, :, None] * m[:, None, :] + a @ a.transpose(0, 2, 1))
    return means, seconds


def _entry_moments(idx, means, seconds, core, structure):
    """E[f_n] and E[f_n^2] one entry at a time."""
    op = np.multiply if structure == "cp" else np.kron
    ef, ef2 = np.empty(idx.shape[0]), np.empty(idx.shape[0])
    for n in range(idx.shape[0]):
        m = reduce(op, [mu[idx[n, k]] for k, mu in enumerate(means)])
        S = reduce(op, [s[idx[n, k]] for k, s in enumerate(seconds)])
        if core is None:
            ef[n], ef2[n] = m.sum(), S.sum()
        else:
            ww = np.asarray(core.cov) + np.outer(core.mean, core.mean)
            ef[n], ef2[n] = np.asarray(core.mean) @ m, np.sum(ww * S)
    return ef, ef2


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("structure", ["cp", "tucker"])
def test_intercept_update_is_the_exact_optimum_of_a_brute_force_elbo(structure):
    """After the last mode's update, ``q(b)`` maximises ``-E[tau]/2 sum E[(y - b -
    f)^2] - KL(q(b) || N(0, 1))`` (closed form from per-entry moments), and the squared
    error the noise sees is that sum at the new ``q(b)``."""
    rng = np.random.default_rng(3)
    sizes, ranks = [6, 5, 7], [2, 2, 2] if structure == "cp" else [2, 3, 2]
    n, chunk, k = 90, 32, 2
    idx = np.column_stack([rng.integers(0, s, size=n) for s in sizes])
    y = rng.normal(size=n) + 0.7
    means, seconds = _moments(rng, sizes, ranks)
    core = None
    if structure == "tucker":  # the core's update comes first and is exact: use its result
        P = int(np.prod(ranks))
        core = U.CoreMoments(jnp.asarray(rng.normal(size=P)), jnp.zeros((P, P)))
    idx_p, y_p, w_p = pad_entries(idx, y, -(-n // chunk) * chunk)
    G, g, h = mode_statistics(jnp.asarray(idx_p), jnp.asarray(y_p), jnp.asarray(w_p),
                              tuple(map(jnp.asarray, means)), tuple(map(jnp.asarray, seconds)),
                              mode=k, n_groups=sizes[k], chunk=chunk, structure=structure,
                              offset_sums=True)  # fmt: skip
    old = U.OffsetMoments(jnp.asarray(0.3), jnp.asarray(0.01))
    noise = U.NoiseMoments(jnp.asarray(4.0), jnp.asarray(2.0))  # E[tau] = 2
    a0 = b0 = 1e-3
    from_last = None if core is None else U.core_orders(tuple(ranks), k)[1]
    new_core, new_noise, q, _ = core_and_noise(
        G, g - old.mean * h[:, :-2], means[k], seconds[k], core, noise, 0.0, 0.0,
        jnp.sum(y**2), n, (1.0, a0, b0), jnp.asarray(False), from_last, old, h,
        structure=structure,
    )  # fmt: skip
    ef, ef2 = _entry_moments(idx, means, seconds, new_core, structure)
    tau = 2.0
    prec = tau * n + 1.0 / U.OFFSET_PRIOR_VARIANCE
    assert float(q.var) == pytest.approx(1.0 / prec, rel=1e-12)
    assert float(q.mean) == pytest.approx(tau * np.sum(y - ef) / prec, rel=1e-10)
    m, v = float(q.mean), float(q.var)
    esq = np.sum((y - m) ** 2 + v - 2.0 * (y - m) * ef + ef2)
    assert 2.0 * (float(new_noise.rate) - b0) == pytest.approx(esq, rel=1e-10)


def _uncentred(rank, structure, seed, n=6000, n_unique=25):
    return make_synthetic_ranked(n, ranks=(rank,) * 3 if structure == "cp" else rank,
                                 structure=structure, n_unique=n_unique, seed=seed)  # fmt: skip


@pytest.mark.parametrize(
    "cls, rank, moves",
    [(FunBaTCP, 2, False), (FunBaTCP, "auto", True), (FunBaT, (2, 2, 3), True),
     (FunBaT, "auto", False)],
)  # fmt: skip
def test_elbo_never_decreases_with_a_learned_intercept(cls, rank, moves):
    structure = "cp" if cls is FunBaTCP else "tucker"
    d = _uncentred(2 if structure == "cp" else (2, 2, 3), structure, seed=1, n=3000, n_unique=15)
    m = cls(rank=rank, max_rank=3, learn_intercept=True, transform_moves=moves, max_iter=30,
            tol=0.0, random_state=0).fit(d.X, d.y)  # fmt: skip
    h = m.elbo_history_[10:]  # from the warm-up's end (min(10, 30 // 2) sweeps)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1])), np.diff(h).min()
    assert m.result_.offset is not None and np.isfinite(m.intercept_)


def test_learned_intercept_keeps_the_rank_of_data_with_a_mean():
    """Data from a rank-2 CP model: its centred version is rank 3 (the mean is one
    more product of constants), so with the intercept fixed at the mean the fit
    keeps 3 components and a fixed rank 2 fits worse; learned, rank 2 suffices."""
    d = _uncentred(2, "cp", seed=2)  # a seed without passengers (docs/guide/rank.md)
    err = {}
    for learn in (False, True):
        auto = FunBaTCP(rank="auto", max_rank=5, learn_intercept=learn, random_state=0)
        auto.fit(d.X, d.y)
        fixed = FunBaTCP(rank=2, learn_intercept=learn, random_state=0).fit(d.X, d.y)
        err[learn] = np.sqrt(np.mean((fixed.predict(d.X) - d.f) ** 2))
        assert auto.ranks_ == ((2, 2, 2) if learn else (3, 3, 3))  # docs/guide/rank.md
    assert err[True] < 0.7 * err[False], err


def test_intercept_is_the_constant_the_products_do_not_carry():
    """``y = 5 + u(a) v(b)`` with ``mean(u v) = 1.3``: the fixed intercept is the
    targets' mean (6.3), which a rank-1 product cannot make up for; the learned one
    moves to 5. (It gets there slowly: the intercept and the product's level trade off
    by coordinate ascent, 5.42 after these 100 sweeps.)"""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 4000), rng.uniform(0, 1, 4000)
    a, b = np.round(a * 40) / 40, np.round(b * 40) / 40
    uv = (1.0 + np.sin(3 * a)) * (1.0 + 0.5 * np.cos(2 * b))
    uv = 1.3 * uv / uv.mean()
    y = 5.0 + uv + 0.05 * rng.normal(size=a.size)
    X = np.column_stack([a, b])
    fixed = FunBaTCP(rank=1, random_state=0).fit(X, y)
    learned = FunBaTCP(rank=1, learn_intercept=True, random_state=0).fit(X, y)
    assert fixed.intercept_ == pytest.approx(y.mean(), rel=1e-12)
    assert abs(learned.intercept_ - 5.0) < 0.4 * abs(y.mean() - 5.0)
    assert learned.summary()["intercept_learned"] and not fixed.summary()["intercept_learned"]
    f = 5.0 + uv
    rmse = {m: np.sqrt(np.mean((m.predict(X) - f) ** 2)) for m in (fixed, learned)}
    assert rmse[learned] < 0.5 * rmse[fixed], rmse


def test_learned_intercept_survives_save_load_and_enters_the_draws(tmp_path):
    d = _uncentred(2, "cp", seed=2, n=2000, n_unique=12)
    m = FunBaTCP(rank=2, learn_intercept=True, max_iter=30, random_state=0).fit(d.X, d.y)
    save(m, tmp_path / "m.funbat")
    back = load(tmp_path / "m.funbat")
    assert back.intercept_ == m.intercept_
    np.testing.assert_array_equal(back.predict(d.X[:50]), m.predict(d.X[:50]))
    draws = m.sample_y(d.X[:20], n_samples=4000, random_state=1)  # (20, 4000)
    _, std = m.predict(d.X[:20], return_std=True)
    np.testing.assert_allclose(draws.mean(axis=1), m.predict(d.X[:20]), atol=5 * std.max() / 60)


@pytest.mark.parametrize("kw", [dict(likelihood="student_t"), dict(likelihood="poisson"),
                                dict(noise_mode="x0")])  # fmt: skip
def test_learned_intercept_needs_gaussian_noise_with_one_level(kw):
    d = _uncentred(1, "cp", seed=0, n=300, n_unique=8)
    y = np.abs(np.round(d.y * 3)) if kw.get("likelihood") == "poisson" else d.y
    with pytest.raises(InputError, match="learn_intercept=True needs likelihood='gaussian'"):
        FunBaTCP(rank=1, learn_intercept=True, max_iter=2, **kw).fit(d.X, y)
