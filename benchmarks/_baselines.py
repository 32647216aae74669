"""Baseline regressors for the paper table.

Every baseline has the interface ``fit(X, y) -> self``, ``predict(X) -> mean`` and, where
the method has a predictive distribution, ``predict_std(X) -> std`` (Gaussian predictive
std of a new observation, noise included). ``X`` is an ``(N, K)`` float array of
continuous coordinates (dates as days), ``y`` the target in its own units.

Hyperparameters are tuned by :func:`tune_and_fit` on a validation part of the *training*
data only, then the model is refitted on the whole training set.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

# --------------------------------------------------------------------------------------
# grid discretisation shared by the Tucker-ALS / CP-ALS baselines
# --------------------------------------------------------------------------------------


def _subsample(X, y, max_train: int, seed):
    """At most ``max_train`` random rows of (X, y), for the methods that cannot take all."""
    if len(y) <= max_train:
        return X, y
    sub = np.random.default_rng(seed).choice(len(y), max_train, replace=False)
    return X[sub], y[sub]


class GridMapper:
    """Map continuous coordinates to cell indices of a per-mode grid.

    ``kind="unique"``: one cell per unique training coordinate of each mode; any point
    maps to the nearest unique value. ``kind="coarse"``: ``bins[k]`` equal-width bins
    between the training min and max of mode ``k`` (fewer if the mode has fewer unique
    values); points outside the range fall into the first/last bin.
    """

    def __init__(self, kind: str = "unique", bins: tuple[int, ...] = (50, 50, 150)):
        if kind not in ("unique", "coarse"):
            raise ValueError(kind)
        self.kind = kind
        self.bins = bins

    def fit(self, X: np.ndarray) -> GridMapper:
        self.centres_: list[np.ndarray] = []
        self.edges_: list[np.ndarray] = []
        for k in range(X.shape[1]):
            u = np.unique(X[:, k])
            if self.kind == "unique" or len(u) <= self.bins[k]:
                # one cell per unique value; boundaries at midpoints -> nearest value
                self.centres_.append(u)
                self.edges_.append((u[1:] + u[:-1]) / 2)
            else:
                e = np.linspace(u[0], u[-1], self.bins[k] + 1)
                self.centres_.append((e[1:] + e[:-1]) / 2)
                self.edges_.append(e[1:-1])
        self.shape_ = tuple(len(c) for c in self.centres_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [np.searchsorted(e, X[:, k], side="left") for k, e in enumerate(self.edges_)]
        )


def _cell_means(idx: np.ndarray, y: np.ndarray, shape: tuple[int, ...]):
    """Mean target per observed cell: (flat cell ids, cell index array (C, K), means)."""
    flat = np.ravel_multi_index(tuple(idx.T), shape)
    cells, inv = np.unique(flat, return_inverse=True)
    sums = np.bincount(inv, weights=y)
    cnts = np.bincount(inv)
    return cells, np.column_stack(np.unravel_index(cells, shape)), sums / cnts


def _gram_svd(matrix, n_eigenvecs=None, **kwargs):
    """Truncated SVD via the eigendecomposition of the *smaller* Gram matrix.

    tensorly's ``truncated_svd`` runs a full LAPACK SVD of every unfolding (minutes on a
    50 x 50 x 150 grid with mask repeats) and its ``symeig_svd`` forms the larger Gram
    matrix; this is the cheap equivalent for the short-and-wide unfoldings used here.
    """
    m = np.asarray(matrix)
    k = min(m.shape) if n_eigenvecs is None else min(n_eigenvecs, *m.shape)
    if m.shape[0] <= m.shape[1]:
        S2, U = np.linalg.eigh(m @ m.T)
        S2, U = S2[::-1][:k], U[:, ::-1][:, :k]
        S = np.sqrt(np.clip(S2, 1e-300, None))
        V = (m.T @ U / S).T
    else:
        S2, V = np.linalg.eigh(m.T @ m)
        S2, V = S2[::-1][:k], V[:, ::-1][:, :k]
        S = np.sqrt(np.clip(S2, 1e-300, None))
        U = m @ V / S
        V = V.T
    return U, S, V


# --------------------------------------------------------------------------------------
# sparse (observed-entries only) ALS: used when the dense grid is too large for tensorly
# --------------------------------------------------------------------------------------


def _rowwise_ridge(idx: np.ndarray, n_rows: int, F: np.ndarray, y: np.ndarray, lam: float):
    """Solve, for every row i, min_u sum_{n: idx_n=i} (y_n - F_n u)^2 + lam |u|^2."""
    n, R = F.shape
    S = sp.csr_matrix((np.ones(n), (idx, np.arange(n))), shape=(n_rows, n))
    A = (S @ (F[:, :, None] * F[:, None, :]).reshape(n, R * R)).reshape(n_rows, R, R)
    b = S @ (F * y[:, None])
    A += lam * np.eye(R)[None]
    return np.linalg.solve(A, b[..., None])[..., 0]


def sparse_cp_als(idx, y, shape, rank, lam=1.0, n_sweeps=25, seed=0):
    rng = np.random.default_rng(seed)
    U = [rng.normal(scale=0.5, size=(s, rank)) for s in shape]
    K = len(shape)
    for _ in range(n_sweeps):
        for m in range(K):
            F = np.ones((len(y), rank))
            for o in range(K):
                if o != m:
                    F *= U[o][idx[:, o]]
            U[m] = _rowwise_ridge(idx[:, m], shape[m], F, y, lam)
    return U


def sparse_tucker_als(idx, y, shape, rank, lam=1.0, n_sweeps=25, seed=0):
    if len(shape) != 3:
        raise NotImplementedError("sparse Tucker-ALS is written for 3-mode tensors")
    rng = np.random.default_rng(seed)
    U = [rng.normal(scale=0.5, size=(s, rank)) for s in shape]
    G = rng.normal(scale=0.5, size=(rank,) * 3)
    for _ in range(n_sweeps):
        for m in range(3):
            o1, o2 = [o for o in range(3) if o != m]
            Gm = np.moveaxis(G, m, 0)
            F = np.einsum("abc,nb,nc->na", Gm, U[o1][idx[:, o1]], U[o2][idx[:, o2]])
            U[m] = _rowwise_ridge(idx[:, m], shape[m], F, y, lam)
        Z = np.einsum("na,nb,nc->nabc", U[0][idx[:, 0]], U[1][idx[:, 1]], U[2][idx[:, 2]]).reshape(
            len(y), -1
        )
        g = np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ y)
        G = g.reshape((rank,) * 3)
    return G, U


# --------------------------------------------------------------------------------------
# Tucker-ALS / CP-ALS on a discretised grid
# --------------------------------------------------------------------------------------


class GridTensorALS:
    """Tucker-ALS or CP-ALS on the data discretised to a grid.

    Cell value = mean of the (centred) training targets falling in the cell; unobserved
    cells are masked. A test point is predicted by the reconstruction at its (nearest)
    cell. With a dense grid of at most ``max_dense_cells`` cells the decomposition is
    ``tensorly.decomposition.tucker`` / ``parafac`` with ``mask=`` (EM-style imputation of
    the missing cells, initialised at the training mean). Larger grids (the
    one-cell-per-unique-coordinate grid of Beijing has 351 x 455 x 1318 = 2.1e8 cells)
    do not fit a dense tensorly run on the benchmark machine; they are decomposed by an
    ALS over the observed cells only (ridge ``lam``), ``solver_`` records which.

    Tuned: ``n_iter`` (tensorly Tucker: number of EM/HOOI iterations, no other
    regulariser exists), ``l2_reg`` (tensorly CP), ``lam`` (observed-cell ALS).
    """

    def __init__(
        self,
        model: str = "tucker",
        rank: int = 3,
        grid: str = "unique",
        bins: tuple[int, ...] = (50, 50, 150),
        n_iter: int = 50,
        l2_reg: float = 0.0,
        lam: float = 1.0,
        max_dense_cells: int = 5_000_000,
        random_state: int = 0,
    ):
        self.model = model
        self.rank = rank
        self.grid = grid
        self.bins = bins
        self.n_iter = n_iter
        self.l2_reg = l2_reg
        self.lam = lam
        self.max_dense_cells = max_dense_cells
        self.random_state = random_state

    def fit(self, X, y):
        import tensorly as tl
        from tensorly.decomposition import parafac, tucker

        self.mapper_ = GridMapper(self.grid, self.bins).fit(X)
        shape = self.mapper_.shape_
        self.mean_ = float(np.mean(y))
        cells, cidx, vals = _cell_means(self.mapper_.transform(X), y - self.mean_, shape)
        n_cells = int(np.prod(shape))
        self.shape_ = shape
        if n_cells <= self.max_dense_cells:
            self.solver_ = "tensorly"
            T = np.zeros(n_cells)
            M = np.zeros(n_cells)
            T[cells] = vals
            M[cells] = 1.0
            T, M = T.reshape(shape), M.reshape(shape)
            tl.set_backend("numpy")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.model == "tucker":
                    core, factors = tucker(
                        T,
                        rank=[min(self.rank, s) for s in shape],
                        mask=M,
                        n_iter_max=self.n_iter,
                        tol=0,
                        init="svd",
                        svd=_gram_svd,
                        random_state=self.random_state,
                    )
                    self.full_ = tl.tucker_to_tensor((core, factors))
                else:
                    cp = parafac(
                        T,
                        rank=self.rank,
                        mask=M,
                        n_iter_max=self.n_iter,
                        tol=0,
                        l2_reg=self.l2_reg,
                        init="svd",
                        svd=_gram_svd,
                        random_state=self.random_state,
                    )
                    self.full_ = tl.cp_to_tensor(cp)
        else:
            self.solver_ = "observed-cell ALS"
            self.full_ = None
            if self.model == "tucker":
                self.G_, self.U_ = sparse_tucker_als(
                    cidx, vals, shape, self.rank, self.lam, seed=self.random_state
                )
            else:
                self.U_ = sparse_cp_als(
                    cidx, vals, shape, self.rank, self.lam, seed=self.random_state
                )
        return self

    def predict(self, X):
        idx = self.mapper_.transform(X)
        if self.full_ is not None:
            return self.full_[tuple(idx.T)] + self.mean_
        A = [U[idx[:, k]] for k, U in enumerate(self.U_)]
        if self.model == "tucker":
            out = np.einsum("abc,na,nb,nc->n", self.G_, *A)
        else:
            out = np.prod(np.stack(A), axis=0).sum(axis=1)
        return out + self.mean_

    def tuning_grid(self, X, quick: bool = False) -> dict[str, list]:
        n_cells = int(np.prod(GridMapper(self.grid, self.bins).fit(X).shape_))
        if n_cells > self.max_dense_cells:
            return {"lam": [1.0, 10.0] if quick else [0.1, 1.0, 10.0]}
        if self.model == "tucker":
            return {"n_iter": [10, 50] if quick else [10, 50, 200]}
        return {"l2_reg": [0.0, 10.0] if quick else [0.0, 1.0, 10.0, 100.0]}


# --------------------------------------------------------------------------------------
# functional tensor-train (teneva TT-ALS on a Chebyshev basis)
# --------------------------------------------------------------------------------------


class FunctionalTT:
    """Functional tensor train: ``teneva.als_func`` with a Chebyshev basis of ``n_basis``
    polynomials per mode and TT-rank ``rank``, on inputs scaled to [-1, 1] by the training
    range (test points outside the range are clipped). Tuned: ``n_basis``, ``lamb``."""

    def __init__(self, rank=3, n_basis=10, lamb=1e-3, nswp=10, random_state=0):
        self.rank = rank
        self.n_basis = n_basis
        self.lamb = lamb
        self.nswp = nswp
        self.random_state = random_state

    def _scale(self, X):
        Z = 2 * (X - self.lo_) / (self.hi_ - self.lo_) - 1
        return np.clip(Z, -1.0, 1.0)

    def fit(self, X, y):
        import teneva

        self.lo_ = X.min(axis=0)
        self.hi_ = np.where(X.max(axis=0) > self.lo_, X.max(axis=0), self.lo_ + 1)
        self.mean_ = float(np.mean(y))
        self.std_ = float(np.std(y)) or 1.0
        d = X.shape[1]
        A0 = teneva.rand([self.n_basis] * d, self.rank, seed=self.random_state)
        info: dict = {}
        self.A_ = teneva.als_func(
            self._scale(X),
            (y - self.mean_) / self.std_,
            A0,
            a=-1.0,
            b=1.0,
            nswp=self.nswp,
            e=1e-10,
            info=info,
            lamb=self.lamb,
        )
        self.info_ = info
        return self

    def predict(self, X):
        import teneva

        return teneva.func_get(self._scale(X), self.A_, -1.0, 1.0) * self.std_ + self.mean_

    def tuning_grid(self, X, quick: bool = False) -> dict[str, list]:
        if quick:
            return {"n_basis": [5, 10], "lamb": [1e-3]}
        return {"n_basis": [5, 10, 15], "lamb": [1e-3, 1e-1]}


# --------------------------------------------------------------------------------------
# kernel / linear baselines (scikit-learn)
# --------------------------------------------------------------------------------------


class SVRBaseline:
    """RBF support-vector regression on standardised inputs and target, fitted on a random
    subsample of at most ``max_train`` training points (SVR is O(n^2)-O(n^3)).
    Tuned: ``C``, ``gamma``, ``epsilon`` (epsilon in units of the target's std)."""

    def __init__(self, C=10.0, gamma=1.0, epsilon=0.1, max_train=5000, random_state=0):
        self.C = C
        self.gamma = gamma
        self.epsilon = epsilon
        self.max_train = max_train
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        X, y = _subsample(X, y, self.max_train, self.random_state)
        self.n_fit_ = len(y)
        self.sx_ = StandardScaler().fit(X)
        self.mean_, self.std_ = float(np.mean(y)), float(np.std(y)) or 1.0
        self.svr_ = SVR(kernel="rbf", C=self.C, gamma=self.gamma, epsilon=self.epsilon)
        self.svr_.fit(self.sx_.transform(X), (y - self.mean_) / self.std_)
        return self

    def predict(self, X):
        return self.svr_.predict(self.sx_.transform(X)) * self.std_ + self.mean_

    def tuning_grid(self, X, quick: bool = False) -> dict[str, list]:
        if quick:
            return {"C": [1.0, 10.0], "gamma": [1.0, 3.0], "epsilon": [0.1]}
        return {"C": [1.0, 10.0, 100.0], "gamma": [0.3, 1.0, 3.0, 10.0], "epsilon": [0.05, 0.2]}


class BLRBaseline:
    """Bayesian linear regression (``sklearn.linear_model.BayesianRidge``) on polynomial
    features of the standardised inputs; predictive std includes the noise.
    Tuned: polynomial ``degree``."""

    def __init__(self, degree=1):
        self.degree = degree

    def fit(self, X, y):
        from sklearn.linear_model import BayesianRidge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        self.pipe_ = make_pipeline(
            StandardScaler(),
            PolynomialFeatures(self.degree, include_bias=False),
            StandardScaler(),
            BayesianRidge(),
        )
        self.pipe_.fit(X, y)
        return self

    def predict(self, X):
        return self.pipe_.predict(X)

    def predict_std(self, X):
        return self.pipe_.predict(X, return_std=True)[1]

    def tuning_grid(self, X, quick: bool = False) -> dict[str, list]:
        return {"degree": [1, 3] if quick else [1, 2, 3, 4, 6, 8]}


class GPBaseline:
    """Exact GP regression, ``ConstantKernel * Matern(nu=1.5, ARD) + WhiteKernel``, on a
    random training subset of ``max_train`` points, standardised inputs, normalised
    target. Kernel hyperparameters are fitted by marginal likelihood (no validation grid).
    Predictive std includes the fitted noise."""

    def __init__(self, max_train=3000, n_restarts=0, max_iter=None, random_state=0):
        self.max_train = max_train
        self.n_restarts = n_restarts
        self.max_iter = max_iter  # L-BFGS-B iterations of the marginal likelihood (None: default)
        self.random_state = random_state

    def _optimizer(self, obj_func, initial_theta, bounds):
        from scipy.optimize import minimize

        res = minimize(
            obj_func,
            initial_theta,
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            options={"maxiter": self.max_iter},
        )
        self.opt_nit_ = int(res.nit)
        return res.x, res.fun

    def fit(self, X, y):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.preprocessing import StandardScaler

        X, y = _subsample(X, y, self.max_train, self.random_state)
        self.n_fit_ = len(y)
        self.sx_ = StandardScaler().fit(X)
        d = X.shape[1]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.ones(d), length_scale_bounds=(1e-3, 1e3), nu=1.5
        ) + WhiteKernel(0.1, (1e-6, 1e1))
        self.gp_ = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            optimizer=self._optimizer if self.max_iter else "fmin_l_bfgs_b",
            n_restarts_optimizer=self.n_restarts,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.gp_.fit(self.sx_.transform(X), y)
        return self

    def _pred(self, X):
        Z = self.sx_.transform(X)
        mus, sds = [], []
        for s in range(0, len(Z), 5000):
            m, sd = self.gp_.predict(Z[s : s + 5000], return_std=True)
            mus.append(m)
            sds.append(sd)
        return np.concatenate(mus), np.concatenate(sds)

    def predict(self, X):
        return self._pred(X)[0]

    def predict_std(self, X):
        return self._pred(X)[1]

    def predict_mean_std(self, X):
        return self._pred(X)

    def tuning_grid(self, X, quick: bool = False) -> dict[str, list]:
        return {}

    def fitted_params(self) -> dict[str, Any]:
        return {
            "kernel": str(self.gp_.kernel_),
            "n_train_subset": self.n_fit_,
            "max_iter": self.max_iter,
        }


# --------------------------------------------------------------------------------------
# tuning
# --------------------------------------------------------------------------------------


def tune_and_fit(
    make: Callable[..., Any],
    grid: dict[str, list],
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    val_frac: float = 0.2,
) -> tuple[Any, dict[str, Any]]:
    """Pick the grid point with the lowest validation RMSE on a ``val_frac`` part of the
    training data, refit on the whole training set. Returns (model, tuning record)."""
    from _protocol import validation_split

    t0 = time.perf_counter()
    scores = []
    keys = list(grid)
    combos = [dict(zip(keys, v, strict=True)) for v in itertools.product(*grid.values())]
    if len(combos) > 1:
        fit_idx, val_idx = validation_split(len(y), seed, val_frac)
        for params in combos:
            try:
                m = make(**params).fit(X[fit_idx], y[fit_idx])
                pred = m.predict(X[val_idx])
                rmse = float(np.sqrt(np.mean((y[val_idx] - pred) ** 2)))
            except Exception as exc:  # a grid point that fails is just not chosen
                rmse = float("inf")
                params = {**params, "error": repr(exc)}
            if not np.isfinite(rmse):
                rmse = float("inf")
            scores.append({**params, "val_rmse": rmse})
        best = int(np.argmin([s["val_rmse"] for s in scores]))
        chosen = combos[best]
    else:
        chosen = combos[0] if combos else {}
    tune_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = make(**chosen).fit(X, y)
    fit_time = time.perf_counter() - t0
    record = {
        "tuned": {k: list(v) for k, v in grid.items()},
        "chosen": chosen,
        "val_scores": scores,
        "tune_time_s": tune_time,
        "fit_time_s": fit_time,
    }
    return model, record
