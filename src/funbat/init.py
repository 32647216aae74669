"""Data-driven initialisation of the modes' latent functions.

Message passing is coordinate ascent: from a random start it can crawl along the
flat valleys of the Tucker/CP likelihood for hundreds of sweeps or stop in a poor
local optimum. We start instead from the leading singular vectors of each mode's
unfolding of the observed (sparse) tensor, as HOSVD does for complete tensors:
``Y_(k)`` has one row per unique coordinate of mode ``k``, one column per observed
combination of the other modes' coordinates, and the mean target of the entries in
that cell. Its top ``R_k`` left singular vectors are cheap to find by a randomised SVD
of the sparse matrix, ``O(N R)`` per mode.

That start needs columns that hold several entries. Where (nearly) every combination of
the other modes' coordinates is observed once, as with scattered measurements whose
coordinates are all distinct, ``Y_(k) Y_(k)^T`` is (nearly) diagonal and its singular
vectors are spikes at the largest targets: the product of such starts is ~0 almost
everywhere, and the fit can settle at "predict the mean" (seismic events indexed by
magnitude, depth and latitude did, where two of those modes alone fitted well).
Such a mode (:func:`uninformative`) starts instead from the same SVD of a coarse
version of the tensor: every mode's coordinates, in their order, grouped into a few
contiguous bins (:func:`start_bins`), the cell means of the binned grid unfolded, and
the leading singular vectors spread back over the mode's coordinates, one value per
bin (:func:`binned_start`). The functions being smooth, a coarse grid keeps their
leading shape; the data refine it from there.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

__all__ = ["MAX_BINNED_CELLS", "MIN_CELLS_PER_COLUMN", "bin_of", "binned_cells", "binned_start",
           "orthonormal_columns", "randomized_left", "start_bins", "svd_init",
           "uninformative"]  # fmt: skip

#: A mode's unfolding with fewer observed cells per column than this, on average, does
#: not inform its SVD start (:func:`uninformative`): one cell per column makes the Gram
#: matrix diagonal; 1.5 means at most about half the columns hold a second cell.
MIN_CELLS_PER_COLUMN = 1.5


def uninformative(n_cells: int, n_columns: int) -> bool:
    """Whether an unfolding with ``n_cells`` observed cells in ``n_columns`` columns is
    too sparse for its singular vectors to mean anything (:data:`MIN_CELLS_PER_COLUMN`)."""
    return n_columns > 0 and n_cells < MIN_CELLS_PER_COLUMN * n_columns


#: Most cells of the coarse grid that starts the uninformative modes (float64 sums and
#: counts: 16 MB).
MAX_BINNED_CELLS = 2**20


def start_bins(sizes, n: int) -> tuple[int, ...]:
    """Bins per mode of the coarse grid (:func:`binned_start`) for ``n`` entries: the same
    number ``B`` for every mode, about two entries per cell (``B^K <= n / 2``) and at most
    :data:`MAX_BINNED_CELLS` cells; a mode with fewer coordinates keeps one bin each."""
    K = len(sizes)
    B = max(2, int(np.floor(min(n / 2.0, MAX_BINNED_CELLS) ** (1.0 / K) + 1e-9)))
    return tuple(min(int(I), B) for I in sizes)


def bin_of(I: int, B: int) -> np.ndarray:
    """(I,) the bin of each of ``I`` coordinates in ``B`` contiguous, near-equal bins of
    their order (the sorted coordinates of a chain; a discrete mode's category order)."""
    return (np.arange(I) * B) // I


def binned_cells(idx: np.ndarray, y: np.ndarray, sizes, bins) -> np.ndarray:
    """(2, prod(bins)): the sums of ``y`` and the entry counts per cell of the coarse grid
    (cells in C order); entries ``idx`` (N, K), targets ``y`` (N,). Sums over blocks of
    entries add up, so a distributed backend reduces them."""
    key = np.zeros(idx.shape[0], np.int64)
    for k, (I, B) in enumerate(zip(sizes, bins)):
        key = key * B + bin_of(int(I), int(B))[idx[:, k]]
    P = int(np.prod(bins))
    return np.stack([np.bincount(key, weights=y, minlength=P),
                     np.bincount(key, minlength=P).astype(float)])  # fmt: skip


def binned_start(cells: np.ndarray, sizes, bins, k: int, R: int,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(I_k, R) start of mode ``k`` from the coarse grid's cells (:func:`binned_cells`):
    the top ``R`` left singular vectors of its mode-``k`` unfolding of cell means (empty
    cells 0), one value per bin, each column signed so that its largest entry is
    positive and scaled to unit root-mean-square over the mode's coordinates. Columns
    beyond the grid's rank start from noise, as in :func:`svd_init`."""
    sums, counts = cells
    means = np.where(counts > 0, sums / np.maximum(counts, 1.0), 0.0).reshape(bins)
    M = np.moveaxis(means, k, 0).reshape(bins[k], -1)
    evals, evecs = np.linalg.eigh(M @ M.T)
    n_svd = min(R, int(np.sum(evals > 1e-12 * max(float(evals[-1]), 1e-300))))
    U = np.zeros((bins[k], R))
    U[:, :n_svd] = evecs[:, ::-1][:, :n_svd]
    # the sign of each column's largest entry positive (as sklearn's svd_flip): a rule
    # that round-off cannot tip, so backends that add the cells in another order agree
    top = U[np.argmax(np.abs(U[:, :n_svd]), axis=0), np.arange(n_svd)]
    U[:, :n_svd] *= np.where(top < 0, -1.0, 1.0)
    I = int(sizes[k])
    vecs = U[bin_of(I, bins[k])]
    vecs[:, n_svd:] = rng.normal(size=(I, R - n_svd))
    rms = np.sqrt(np.mean(vecs**2, axis=0))
    return vecs / np.where(rms > 0, rms, 1.0)


def _unfolding(idx: np.ndarray, y: np.ndarray, mode: int, n_rows: int) -> sp.csr_matrix:
    """Sparse mode-``mode`` unfolding with cell means, (I_k, observed other-mode cells)."""
    others = [i for i in range(idx.shape[1]) if i != mode]
    radix = [int(idx[:, i].max()) + 1 for i in others] if idx.shape[0] else []
    if others and int(np.prod(radix, dtype=object)) < 2**63:
        # one int64 key per combination, in the lexicographic order of the rows: the
        # same columns as np.unique(axis=0), without sorting structured rows
        key = np.zeros(idx.shape[0], np.int64)
        for i, r in zip(others, radix):
            key = key * r + idx[:, i]
        _, cols = np.unique(key, return_inverse=True)
        cols = cols.reshape(-1)
    elif others:
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


def orthonormal_columns(A: np.ndarray) -> np.ndarray:
    """An orthonormal basis (n, k) of the columns of ``A`` (n, k), by economic QR."""
    return la.qr(A, mode="economic", check_finite=False)[0]


def randomized_left(gram, gram_and_r, I: int, C: int, n_svd: int, seed: int) -> np.ndarray:
    """Top ``n_svd`` left singular vectors (I, n_svd) of an (I, C) matrix ``M``, I < C,
    as ``sklearn.utils.extmath.randomized_svd`` finds them.

    Its defaults (10 oversamples, 7 power iterations, or 4 for ``n_svd >= 0.1 I``, the
    sign flip), the same random matrix and the same subspaces, but only the short
    (I, s) side is ever orthonormalised: ``randomized_svd`` transposes a wide matrix
    and normalises (C, s) blocks at every power iteration, which at 10^6 entries was
    nearly all of a fit's set-up. Only the bases between iterations differ (QR here, LU
    there), which leaves the result unchanged up to rounding.

    ``M`` is touched only through ``gram(Q) = M M^T Q`` (I, s) and
    ``gram_and_r(Q) = (M M^T Q, R)``, ``R`` an R factor of ``M^T Q`` or the stacked R
    factors of its row blocks, so the products can be computed where the data live.
    """
    s = n_svd + 10
    n_iter = 7 if n_svd < 0.1 * min(I, C) else 4
    Q = np.random.RandomState(seed).normal(size=(I, s))
    for _ in range(n_iter):
        Q = orthonormal_columns(gram(Q))
    # B = Q_C^T M^T with Q_C R = M^T Q (a tall QR): B^T = M M^T Q R^{-1}
    Y, Rs = gram_and_r(Q)
    R = np.linalg.qr(Rs, mode="r") if Rs.shape[0] else np.zeros((0, Q.shape[1]))
    B = (Y @ np.linalg.pinv(R, rcond=1e-12)).T
    _, _, Vt = la.svd(B, full_matrices=False, lapack_driver="gesdd")
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
    return (Vt * signs[:, None])[:n_svd].T


def _gram(M, Q):
    return M @ (M.T @ Q)


def _gram_of(M):
    """``Q -> M M^T Q`` for a wide sparse ``M``: through the sparse (I, I) product
    ``M M^T`` when it has few nonzeros (columns with a few entries each: sparser
    unfoldings, about one entry per column, take :func:`binned_start` instead), else as
    two products."""
    per_column = np.bincount(M.indices, minlength=M.shape[1])  # M: CSR, no repeats
    if float(np.sum(per_column.astype(float) ** 2)) <= 4.0 * M.nnz:
        return (M @ M.T).tocsr().__matmul__
    return partial(_gram, M)


def _gram_and_r(M, Q):
    Z = M.T @ Q
    return M @ Z, np.linalg.qr(Z, mode="r")


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
    list of K arrays (I_k, R_k), scaled to unit root-mean-square per column; a mode
    whose unfolding is :func:`uninformative` gets :func:`binned_start` instead.
    """
    out, cells, bins = [], None, start_bins(sizes, idx.shape[0])
    for k, (I, R) in enumerate(zip(sizes, ranks)):
        M = _unfolding(idx, y, k, I)
        if I > 1 and uninformative(M.nnz, M.shape[1]):
            if cells is None:
                cells = binned_cells(idx, y, sizes, bins)
            out.append(binned_start(cells, sizes, bins, k, R, rng))
            continue
        n_svd = min(R, min(M.shape) - 1) if min(M.shape) > 1 else 0
        vecs = np.zeros((I, R))
        if n_svd > 0:
            seed = int(rng.integers(2**31 - 1))
            if M.shape[0] < M.shape[1]:
                vecs[:, :n_svd] = randomized_left(
                    _gram_of(M), partial(_gram_and_r, M), *M.shape, n_svd, seed
                )  # fmt: skip
            else:  # tall: randomized_svd's (C, s) side is the short one already
                U, _, _ = randomized_svd(M, n_components=n_svd, random_state=seed)
                vecs[:, :n_svd] = U
        # columns the data cannot inform (tiny modes) start from noise, as a random init
        vecs[:, n_svd:] = rng.normal(size=(I, R - n_svd)) / np.sqrt(I)
        out.append(vecs * np.sqrt(I))
    return out
