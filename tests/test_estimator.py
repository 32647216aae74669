"""End-to-end behaviour of FunBaT and FunBaTCP on data from known functions."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from funbat import FunBaT, FunBaTCP, InputError
from funbat.datasets import make_synthetic
from funbat.evaluation import split_indices
from funbat.inference.predict import mode_marginals


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(6000, n_modes=3, rank=2, n_unique=120, noise_std=0.1, seed=4)


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_elbo_never_decreases(K, cls, assert_elbo_rises):
    data = make_synthetic(1500, n_modes=K, rank=2, n_unique=30, seed=K)
    model = cls(rank=2, max_iter=12, tol=0.0, random_state=0).fit(data.X, data.y)
    h = model.elbo_history_
    assert len(h) == 12
    assert_elbo_rises(h, 12)


def test_elbo_never_decreases_with_fixed_hyperparameters(assert_elbo_rises):
    data = make_synthetic(1500, n_modes=3, rank=2, n_unique=30, seed=9)
    model = FunBaT(rank=3, max_iter=10, tol=0.0, learn_hyperparameters=False, random_state=1)
    assert_elbo_rises(model.fit(data.X, data.y).elbo_history_, 10)


@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_recovers_known_functions_with_calibrated_intervals(synthetic, cls):
    train, test = split_indices(len(synthetic.y), 0)
    model = cls(rank=3, max_iter=60, random_state=0).fit(
        synthetic.X.iloc[train], synthetic.y[train]
    )
    mean, std = model.predict(synthetic.X.iloc[test], return_std=True)
    rmse = np.sqrt(np.mean((mean - synthetic.y[test]) ** 2))
    assert rmse < 1.15 * synthetic.noise_std
    # the latent (noiseless) function is recovered well below the noise level
    assert np.sqrt(np.mean((mean - synthetic.f[test]) ** 2)) < 0.5 * synthetic.noise_std
    lower, upper = model.predict_interval(synthetic.X.iloc[test], 0.95)
    cover = np.mean((lower <= synthetic.y[test]) & (synthetic.y[test] <= upper))
    assert 0.93 <= cover <= 0.97
    assert np.all(std <= 0.5 * (upper - lower))  # the one-sigma spread is inside it
    assert np.sqrt(model.noise_variance_) == pytest.approx(synthetic.noise_std, rel=0.1)
    assert model.score(synthetic.X.iloc[test], synthetic.y[test]) > 0.98


# the ends of the range: ranks 2 and 3 are those of nearly every other test, and each
# rank compiles a whole fit's programs anew
@pytest.mark.parametrize("rank", [1, 5])
def test_ranks_one_to_five(rank):
    data = make_synthetic(800, n_modes=3, rank=2, n_unique=20, seed=rank)
    for cls in (FunBaT, FunBaTCP):
        model = cls(rank=rank, max_iter=5, random_state=0).fit(data.X, data.y)
        assert model.core_.shape == (rank,) * 3
        assert np.all(np.isfinite(model.predict(data.X.iloc[:10])))


def test_multilinear_rank_and_per_mode_kernels():
    data = make_synthetic(800, n_modes=3, rank=2, n_unique=20, seed=1)
    model = FunBaT(rank=(1, 2, 3), kernel=["matern12", "matern32", "matern52"], max_iter=5)
    model.fit(data.X, data.y)
    assert model.core_.shape == (1, 2, 3)
    mean, std = model.latent_functions(2, np.linspace(0, 1, 7))
    assert mean.shape == std.shape == (7, 3)
    assert np.all(std > 0)


def test_single_unique_coordinate_and_duplicated_rows():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.uniform(0, 1, n), "b": np.full(n, 2.5), "c": rng.integers(0, 5, n)})
    y = np.sin(3 * X["a"].to_numpy()) * X["c"].to_numpy() + 0.05 * rng.normal(size=n)
    X2 = pd.concat([X, X.iloc[:100]], ignore_index=True)  # exact duplicate rows
    y2 = np.concatenate([y, y[:100] + 0.05 * rng.normal(size=100)])
    for cls in (FunBaT, FunBaTCP):
        model = cls(rank=2, max_iter=30, random_state=0).fit(X2, y2)
        assert model.score(X, y) > 0.9
        # the constant mode extrapolates to its prior away from its single coordinate
        q = X.iloc[:5].assign(b=100.0)
        assert np.all(np.isfinite(model.predict(q, return_std=True)[1]))


def test_dates_are_continuous_days():
    data = make_synthetic(1500, n_modes=3, rank=2, n_unique=40, dates=True, seed=2)
    model = FunBaT(rank=2, max_iter=20, random_state=0).fit(data.X, data.y)
    assert data.X["date"].dtype.kind == "M"
    # lengthscale of the date mode is reported in days
    span = (data.X["date"].max() - data.X["date"].min()).days
    assert 0 < model.lengthscales_[0] < 10 * span
    unseen = data.X.iloc[:3].assign(date=pd.Timestamp("2030-01-01"))
    mean, std = model.predict(unseen, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    with pytest.raises(InputError, match="dates"):
        model.predict(data.X.assign(date=1.0))


def test_predictions_are_in_user_units():
    data = make_synthetic(1500, n_modes=2, rank=2, n_unique=40, seed=3)
    y = 1000.0 + 50.0 * data.y
    model = FunBaT(rank=2, max_iter=30, random_state=0).fit(data.X.to_numpy(), y)
    mean, std = model.predict(data.X.to_numpy(), return_std=True)
    assert abs(np.mean(mean) - 1000.0) < 10
    assert np.sqrt(model.noise_variance_) == pytest.approx(50 * data.noise_std, rel=0.2)
    assert np.median(std) == pytest.approx(50 * data.noise_std, rel=0.3)


def test_sklearn_contract():
    data = make_synthetic(600, n_modes=2, rank=1, n_unique=20, seed=5)
    est = FunBaT(rank=2, max_iter=3, random_state=0)
    assert clone(est).get_params() == est.get_params()
    search = GridSearchCV(est, {"rank": [1, 2]}, cv=2).fit(data.X, data.y)
    assert search.best_params_["rank"] in (1, 2)
    with pytest.raises(Exception, match="not fitted"):
        FunBaT().predict(data.X)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"rank": (2, 2)}, "rank has 2 entries"),
        ({"kernel": "rbf"}, "kernel 'rbf': unknown kernel part 'rbf'; choose among .*'matern12'"),
        ({"max_iter": 0}, "max_iter"),
        ({"lengthscale": -1.0}, "lengthscale"),
        ({"n_init": 0}, "n_init"),
        ({"n_init": 6}, "n_init"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs, message):
    data = make_synthetic(100, n_modes=3, rank=1, n_unique=10, seed=0)
    with pytest.raises(InputError, match=message):
        FunBaT(**kwargs).fit(data.X, data.y)


def test_n_init_keeps_the_start_with_the_highest_elbo():
    # each start is the fit with that starting lengthscale, run on its own
    data = make_synthetic(600, n_modes=2, rank=2, n_unique=15, seed=3)
    kw = dict(rank=2, max_iter=15, tol=0.0, random_state=0)
    both = FunBaT(lengthscale=0.1, n_init=2, **kw).fit(data.X, data.y)
    alone = [FunBaT(lengthscale=ell, **kw).fit(data.X, data.y) for ell in (0.1, 0.3)]
    np.testing.assert_allclose(both.init_elbos_, [m.elbo_ for m in alone], rtol=1e-10)
    best = alone[int(np.argmax(both.init_elbos_))]
    assert both.elbo_ == max(both.init_elbos_)
    np.testing.assert_allclose(both.predict(data.X), best.predict(data.X), rtol=1e-10)
    assert FunBaT(**kw).fit(data.X, data.y).init_elbos_.shape == (1,)


def test_bad_data_are_clear_errors():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match="'a' has 1 NaN"):
        FunBaT().fit(X, [1.0, 2.0, 3.0])
    # a column of strings is a discrete mode (issue 4), not an error
    m = FunBaT(max_iter=2).fit(pd.DataFrame({"a": ["x", "y", "x"]}), [1.0, 2.0, 1.5])
    assert m.mode_kinds_ == ["discrete"]
    with pytest.raises(InputError, match="at least 2"):
        FunBaT().fit(np.ones((1, 2)), [1.0])
    with pytest.raises(InputError, match="rows"):
        FunBaT().fit(np.ones((3, 2)), [1.0, 2.0])
    with pytest.raises(InputError, match="CP needs one rank"):
        FunBaTCP(rank=(1, 2)).fit(np.ones((3, 2)), [1.0, 2.0, 3.0])
    model = FunBaT(rank=1, max_iter=2).fit(
        pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 2.0, 1.0]}), [1.0, 2.0, 3.0]
    )
    with pytest.raises(InputError, match="fitted on"):
        model.predict(pd.DataFrame({"a": [0.0], "c": [1.0]}))


def test_predictive_moments_equal_explicit_kronecker_formula():
    import jax

    data = make_synthetic(500, n_modes=3, rank=2, n_unique=15, seed=6)
    model = FunBaT(rank=(2, 1, 3), max_iter=5, random_state=0, recalibrate=False)
    model.fit(data.X, data.y)
    Xq = data.X.iloc[:7].to_numpy() + 0.013
    mean, std = model.predict(Xq, return_std=True)
    with jax.enable_x64(True):
        mom = [mode_marginals(model.result_, k, Xq[:, k]) for k in range(3)]
    m_w = np.asarray(model.result_.core.mean)
    Eww = np.asarray(model.result_.core.cov) + np.outer(m_w, m_w)
    noise = float(model.result_.noise.rate) / (float(model.result_.noise.shape) - 1.0)
    for n in range(7):
        z = np.kron(np.kron(mom[0][0][n], mom[1][0][n]), mom[2][0][n])
        S = np.kron(np.kron(mom[0][1][n], mom[1][1][n]), mom[2][1][n])
        f = m_w @ z
        var = np.sum(Eww * S) - f**2 + noise
        assert mean[n] == pytest.approx(f * model.result_.y_scale + model.result_.y_mean, rel=1e-9)
        assert std[n] == pytest.approx(
            np.sqrt(var) * model.result_.y_scale, rel=1e-7
        )  # E[f^2] - f^2 cancels


def test_collapsed_lengthscale_warns_and_smooth_fit_does_not():
    """Weak signal with structured leftovers (a mode binarised to two values) makes the
    learned lengthscale of x0 collapse far below its coordinate spacing: a warning says
    so. Data from the model itself gives no warning."""
    import warnings

    d = make_synthetic(5000, seed=4)
    X = d.X.copy()
    X["x1"] = (X["x1"] > 0.5).astype(float)
    with pytest.warns(UserWarning, match="lengthscale of mode 'x0'.*far below the median spacing"):
        FunBaT(rank=3, random_state=0).fit(X.iloc[1000:], d.y[1000:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        FunBaT(rank=3, random_state=0).fit(d.X.iloc[1000:], d.y[1000:])


def test_pickle_and_joblib_keep_the_fit_exact(tmp_path):
    import pickle

    import joblib

    data = make_synthetic(300, n_modes=3, rank=2, n_unique=12, seed=3)
    model = FunBaT(rank=2, max_iter=5, likelihood="student_t", random_state=0)
    model.fit(data.X, data.y)
    joblib.dump(model, tmp_path / "m.joblib")
    for copy in (pickle.loads(pickle.dumps(model)), joblib.load(tmp_path / "m.joblib")):
        assert copy.result_.modes[0].posterior.smoothed_covs.dtype == np.float64
        for a, b in zip(copy.predict(data.X, return_std=True), model.predict(data.X, True)):
            np.testing.assert_array_equal(a, b)


def test_complex_and_sparse_inputs_are_refused():
    import scipy.sparse

    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(InputError, match="complex"):
        FunBaT().fit(X + 1j, np.arange(6.0))
    with pytest.raises(InputError, match="complex"):
        FunBaT().fit(X, np.arange(6.0) + 1j)
    with pytest.raises(InputError, match="sparse input is not supported"):
        FunBaT().fit(scipy.sparse.csr_matrix(X), np.arange(6.0))
