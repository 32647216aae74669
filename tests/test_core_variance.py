"""A learned prior variance of the Tucker core (``core_prior_variance="auto"``): the
update against a dense one-dimensional maximisation of the ELBO's core term, the ELBO
never decreasing, bad combinations, and model files."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from funbat import FunBaT, FunBaTCP, InputError, load
from funbat.datasets import make_synthetic_ranked


def _core_kl(m, C, v):
    """KL(N(m, C) || N(0, v I)), dense."""
    P = m.size
    return 0.5 * (np.trace(C) / v + m @ m / v - P + P * np.log(v) - np.linalg.slogdet(C)[1])


@pytest.fixture(scope="module")
def data():
    d = make_synthetic_ranked(1500, ranks=(2, 2, 2), structure="tucker", n_unique=20, seed=1)
    return d.X, d.y


@pytest.fixture(scope="module")
def learned(data):
    X, y = data
    return FunBaT(rank=2, max_iter=40, tol=0, random_state=0, core_prior_variance="auto").fit(
        X, y
    )


def test_learned_variance_maximises_the_elbo_given_the_core(learned):
    """The learned variance is the maximiser of ``-KL(q(W) || N(0, v I))``, the only
    ELBO term that depends on it, found here by a dense scalar search."""
    core = learned.result_.core
    m, C = np.asarray(core.mean), np.asarray(core.cov)
    best = minimize_scalar(lambda t: _core_kl(m, C, np.exp(t)), bounds=(-20, 5),
                           method="bounded", options={"xatol": 1e-10})  # fmt: skip
    assert learned.core_prior_variance_ == pytest.approx(np.exp(best.x), rel=1e-6)
    assert learned.core_prior_variance_ != pytest.approx(1.0, rel=0.1)  # it moved


@pytest.mark.parametrize("moves", [False, True])
@pytest.mark.parametrize("K", [2, 3])
def test_elbo_never_decreases_with_a_learned_core_variance(moves, K):
    d = make_synthetic_ranked(1200, ranks=(2,) * K, structure="tucker", n_unique=15, seed=K)
    m = FunBaT(rank=2, max_iter=30, tol=0, random_state=0, core_prior_variance="auto",
               transform_moves=moves).fit(d.X, d.y)  # fmt: skip
    h = np.asarray(m.elbo_history_)
    after = np.diff(h[10:])  # past the warm-up
    assert np.all(after >= -1e-8 * np.abs(h[11:])), after.min()


def test_learning_the_core_variance_raises_the_elbo(data, learned):
    X, y = data
    fixed = FunBaT(rank=2, max_iter=40, tol=0, random_state=0).fit(X, y)
    assert fixed.core_prior_variance_ == 1.0
    assert learned.elbo_ > fixed.elbo_
    assert learned.summary()["core_prior_variance_learned"] is True
    assert fixed.summary()["core_prior_variance_learned"] is False


def test_bad_core_prior_variances_are_one_line_errors(data):
    X, y = data
    with pytest.raises(InputError, match="rank='auto'") as err:
        FunBaT(rank="auto", max_rank=3, core_prior_variance="auto", max_iter=5).fit(X, y)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="core_prior_variance"):
        FunBaT(core_prior_variance="learn", max_iter=5).fit(X, y)
    with pytest.raises(InputError, match="core_prior_variance"):
        FunBaT(core_prior_variance=0.0, max_iter=5).fit(X, y)


def test_cp_has_no_core_variance(data):
    X, y = data
    m = FunBaTCP(rank=2, max_iter=15, core_prior_variance="auto").fit(X, y)
    assert m.core_prior_variance_ is None
    assert m.summary()["core_prior_variance"] is None


def test_model_file_keeps_the_learned_variance(learned, tmp_path, data):
    path = tmp_path / "m.funbat"
    learned.save(path)
    back = load(path)
    assert back.core_prior_variance_ == learned.core_prior_variance_
    X, _ = data
    np.testing.assert_array_equal(back.predict(X[:50]), learned.predict(X[:50]))
