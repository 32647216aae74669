"""Data-driven initialisation of the modes' latent functions.

Message passing is coordinate ascent: from a random start it can crawl along the
flat valleys of the Tucker/CP likelihood for hundreds of sweeps or stop in a poor
local optimum. We start instead from the leading singular vectors of each mode's
unfolding of the observed (sparse) tensor, as HOSVD does for complete tensors:
``Y_(k)`` has one row per unique coordinate of mode ``k``, one column per observed
combination of the other modes' coordinates, and the mean target of the entries in
that cell. Its top ``R_k`` left singular vectors are cheap to find by a randomised SVD
of the sparse matrix, ``O(N R)`` per mode.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

__all__ = ["svd_init"]


def _unfolding(idx: np.ndarray, y: np.ndarray, mode: int, n_rows: int) -> sp.csr_matrix:
    """Sparse mode-``mode`` unfolding with cell means, (I_k, observed other-mode cells)."""
    others = [i for i in range(idx.shape[1]) if i != mode]
    if others:
        _, cols = np.unique(idx[:, others], axis=0, return_inverse=True)
        cols = cols.reshape(-1)
    else:
        cols = np.zeros(idx.shape[0], dtype=np.int64)
    shape = (n_rows, int(cols.max()) + 1)
    sums = sp.coo_matrix((y, (idx[:, mode], cols)), shape=shape).tocsr()
    counts = sp.coo_matrix((np.ones_like(y), (idx[:, mode], cols)), shape=shape).tocsr()
    sums.sort_indices()
    counts.sort_indices()
    sums.data = sums.data / counts.data
    return sums


def svd_init(idx: np.ndarray, y: np.ndarray, sizes, ranks, rng: np.random.Generator):
    """Initial latent-function values at each mode's unique coordinates.

    Parameters
    ----------
    idx : (N, K) int, each entry's coordinate index per mode.
    y : (N,) standardised targets.
    sizes : number of unique coordinates per mode (I_k).
    ranks : rank per mode (R_k).
    rng : generator for the randomised SVD and for columns beyond the matrix rank.

    Returns
    -------
    list of K arrays (I_k, R_k), scaled to unit root-mean-square per column.
    """
    out = []
    for k, (I, R) in enumerate(zip(sizes, ranks)):
        M = _unfolding(idx, y, k, I)
        n_svd = min(R, min(M.shape) - 1) if min(M.shape) > 1 else 0
        vecs = np.zeros((I, R))
        if n_svd > 0:
            seed = int(rng.integers(2**31 - 1))
            U, _, _ = randomized_svd(M, n_components=n_svd, random_state=seed)
            vecs[:, :n_svd] = U
        # columns the data cannot inform (tiny modes) start from noise, as a random init
        vecs[:, n_svd:] = rng.normal(size=(I, R - n_svd)) / np.sqrt(I)
        out.append(vecs * np.sqrt(I))
    return out
