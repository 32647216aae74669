"""Grouped statistics against a brute-force loop over entries."""

from functools import reduce

import jax.numpy as jnp
import numpy as np
import pytest

from funbat.stats import mode_statistics, pad_entries

pytestmark = pytest.mark.usefixtures("x64")


def _problem(rng, K, ranks, n, n_groups):
    idx = np.column_stack([rng.integers(0, g, size=n) for g in n_groups])
    y = rng.normal(size=n)
    means = [rng.normal(size=(g, r)) for g, r in zip(n_groups, ranks)]
    seconds = []
    for m in means:
        a = rng.normal(size=(m.shape[0], m.shape[1], 2))
        seconds.append(m[:, :, None] * m[:, None, :] + a @ a.transpose(0, 2, 1))
    return idx, y, means, seconds


def _brute_force(idx, y, means, seconds, mode, n_groups, structure):
    """One entry at a time: G_j = sum (x)_{i != k} S^i_n, g_j = sum y_n (x)_{i != k} mu^i_n."""
    others = [i for i in range(idx.shape[1]) if i != mode]
    op = np.multiply if structure == "cp" else np.kron
    p = (
        means[others[0]].shape[1]
        if structure == "cp"
        else int(np.prod([means[i].shape[1] for i in others]))
    )
    G = np.zeros((n_groups, p, p))
    g = np.zeros((n_groups, p))
    for n in range(idx.shape[0]):
        S = reduce(op, [seconds[i][idx[n, i]] for i in others])
        m = reduce(op, [means[i][idx[n, i]] for i in others])
        G[idx[n, mode]] += S
        g[idx[n, mode]] += y[n] * m
    return G, g


@pytest.mark.parametrize("structure", ["tucker", "cp"])
@pytest.mark.parametrize("K", [2, 3, 4])
def test_mode_statistics_match_entry_loop(structure, K):
    rng = np.random.default_rng(K)
    ranks = [2] * K if structure == "cp" else [2, 3, 1, 2][:K]
    n_groups = [5, 7, 4, 6][:K]
    n, chunk = 53, 16  # not a multiple of the chunk: padded with zero-weight entries
    idx, y, means, seconds = _problem(rng, K, ranks, n, n_groups)
    idx_p, y_p, w_p = pad_entries(idx, y, -(-n // chunk) * chunk)
    for mode in range(K):
        G, g = mode_statistics(
            jnp.asarray(idx_p),
            jnp.asarray(y_p),
            jnp.asarray(w_p),
            tuple(jnp.asarray(m) for m in means),
            tuple(jnp.asarray(s) for s in seconds),
            mode=mode,
            n_groups=n_groups[mode] + 3,  # padded groups stay zero
            chunk=chunk,
            structure=structure,
        )
        G_ref, g_ref = _brute_force(idx, y, means, seconds, mode, n_groups[mode], structure)
        np.testing.assert_allclose(G[: n_groups[mode]], G_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g[: n_groups[mode]], g_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(G[n_groups[mode] :], 0.0)
        np.testing.assert_array_equal(g[n_groups[mode] :], 0.0)


@pytest.mark.parametrize("structure", ["tucker", "cp"])
def test_offset_sums_match_entry_loop(structure):
    """``h = [sum_n E[z_n], sum_n 1, sum_n y_n]`` per coordinate (weights 1, padding 0),
    and ``G``, ``g`` as without it."""
    rng = np.random.default_rng(7)
    ranks = [2, 2, 2] if structure == "cp" else [2, 3, 2]
    n_groups = [5, 7, 4]
    n, chunk = 53, 16
    idx, y, means, seconds = _problem(rng, 3, ranks, n, n_groups)
    idx_p, y_p, w_p = pad_entries(idx, y, -(-n // chunk) * chunk)
    for mode in range(3):
        args = (jnp.asarray(idx_p), jnp.asarray(y_p), jnp.asarray(w_p),
                tuple(jnp.asarray(m) for m in means), tuple(jnp.asarray(s) for s in seconds))
        kw = dict(mode=mode, n_groups=n_groups[mode] + 2, chunk=chunk, structure=structure)
        G, g, h = mode_statistics(*args, offset_sums=True, **kw)
        G0, g0 = mode_statistics(*args, **kw)
        np.testing.assert_array_equal(G, G0)
        np.testing.assert_array_equal(g, g0)
        _, z_sum = _brute_force(idx, np.ones(n), means, seconds, mode, n_groups[mode], structure)
        I = n_groups[mode]
        np.testing.assert_allclose(h[:I, :-2], z_sum, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h[:I, -2], np.bincount(idx[:, mode], minlength=I), rtol=1e-12)
        np.testing.assert_allclose(h[:I, -1], np.bincount(idx[:, mode], y, minlength=I),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
        np.testing.assert_array_equal(h[I:], 0.0)
