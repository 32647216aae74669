"""The singular-vector start against scikit-learn's randomized SVD and a dense SVD."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from funbat import FunBaT
from funbat.init import bin_of, randomized_left, start_bins, svd_init, uninformative


@pytest.mark.parametrize("n_svd", [1, 3, 6])
def test_randomized_left_is_sklearns_randomized_svd_and_the_dense_subspace(n_svd):
    rng = np.random.default_rng(0)
    I, C = 40, 3000
    # a sparse wide matrix with a clear leading subspace plus noise on its nonzeros
    low = rng.normal(size=(I, 6)) @ (rng.normal(size=(6, C)) * np.linspace(3, 2, 6)[:, None])
    mask = rng.random((I, C)) < 0.9  # dense enough that the 6 planted directions stand out
    M = sp.csr_matrix(np.where(mask, low + 0.1 * rng.normal(size=(I, C)), 0.0))

    def gram_and_r(Q):
        Z = M.T @ Q
        return M @ Z, np.linalg.qr(Z, mode="r")

    got = randomized_left(lambda Q: M @ (M.T @ Q), gram_and_r, I, C, n_svd, 11)
    ref, _, _ = randomized_svd(M, n_components=n_svd, random_state=11)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    # and it spans the leading left singular subspace (projectors agree to what 4-7 power
    # iterations give on this spectrum; a random subspace is off by O(0.1))
    U = np.linalg.svd(M.toarray(), full_matrices=False)[0][:, :n_svd]
    np.testing.assert_allclose(got @ got.T, U @ U.T, atol=1e-3)


@pytest.mark.parametrize("sizes", [(30, 40, 40), (30, 4, 3), (40, 6)])
def test_svd_init_is_the_randomized_svd_of_each_unfolding(sizes):
    """About two entries per unfolding column (the sparse Gram path), a few (still the
    Gram), six (mode 1 of (40, 6): two products) and tall unfoldings: each mode's start
    is scikit-learn's randomized SVD of the cell-mean unfolding, built here with pandas."""
    rng = np.random.default_rng(1)
    n, K = 3000, len(sizes)
    ranks = (3, 2, 2)[:K]
    idx = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    y = rng.normal(size=n) + np.sin(idx[:, 0])
    got = svd_init(idx, y, sizes, ranks, np.random.default_rng(7))
    seeds = np.random.default_rng(7)
    for k, (I, R) in enumerate(zip(sizes, ranks)):
        others = [f"m{i}" for i in range(K) if i != k]
        df = pd.DataFrame(idx, columns=[f"m{i}" for i in range(K)]).assign(y=y)
        cells = df.groupby([f"m{k}", *others])["y"].mean().reset_index()
        col = cells.groupby(others).ngroup().to_numpy()  # lexicographic, as np.unique
        assert not uninformative(len(cells), col.max() + 1)  # the SVD start, not the binned
        M = sp.csr_matrix((cells["y"], (cells[f"m{k}"], col)), shape=(I, col.max() + 1))
        n_svd = min(R, min(M.shape) - 1)
        seed = int(seeds.integers(2**31 - 1))
        ref, _, _ = randomized_svd(M, n_components=n_svd, random_state=seed)
        np.testing.assert_allclose(got[k][:, :n_svd], ref * np.sqrt(I), rtol=0, atol=1e-9)
        seeds.normal(size=(I, R - n_svd))  # the columns beyond the matrix rank


def test_scattered_modes_start_from_the_svd_of_the_binned_tensor():
    """Every coordinate distinct in all three modes (each unfolding column holds one
    entry): each mode starts from the leading left singular vectors of the coarse grid's
    cell means, computed here with pandas and a dense SVD, one value per bin, each
    column's largest entry positive, at unit root-mean-square."""
    rng = np.random.default_rng(2)
    n, sizes, ranks = 2000, (2000, 2000, 2000), (2, 3, 1)
    idx = np.stack([rng.permutation(n) for _ in sizes], axis=1)
    y = np.sin(6 * idx[:, 0] / n) * (1 + idx[:, 1] / n) + 0.1 * rng.normal(size=n)
    got = svd_init(idx, y, sizes, ranks, np.random.default_rng(7))
    bins = start_bins(sizes, n)
    assert bins == (10, 10, 10)  # 10^3 cells: two entries per cell
    binned = pd.DataFrame({f"m{k}": bin_of(I, B)[idx[:, k]]
                           for k, (I, B) in enumerate(zip(sizes, bins))}).assign(y=y)  # fmt: skip
    means = binned.groupby(["m0", "m1", "m2"])["y"].mean()
    grid = np.zeros(bins)
    grid[tuple(np.array(means.index.to_list()).T)] = means.to_numpy()
    for k, (I, R) in enumerate(zip(sizes, ranks)):
        U = np.linalg.svd(np.moveaxis(grid, k, 0).reshape(bins[k], -1))[0][:, :R]
        ref = U[bin_of(I, bins[k])]
        ref *= np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(R)])
        ref /= np.sqrt(np.mean(ref**2, axis=0))
        np.testing.assert_allclose(got[k], ref, atol=1e-9)


def test_a_fit_of_scattered_coordinates_does_not_collapse_to_the_mean():
    """Three continuous modes, every coordinate distinct: from the plain SVD start (spikes
    at the largest targets) this fit stopped after 15 sweeps predicting the mean (test
    RMSE against the noiseless function 0.965, its standard deviation); from the binned
    start it learns the function."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({c: rng.uniform(size=1000) for c in "abc"})
    f = np.sin(4 * X.a) * (1.5 + X.b) + 0.5 * X.c
    y = f + 0.1 * rng.normal(size=1000)
    m = FunBaT(rank=2, max_iter=60, random_state=0).fit(X.iloc[:800], y[:800])
    rmse = np.sqrt(np.mean((m.predict(X.iloc[800:]) - f[800:]) ** 2))
    assert rmse < 0.05 * np.std(f[800:]), rmse
