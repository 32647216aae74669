"""Transformation moves (funbat.inference.moves): the data term is exactly invariant,
the optimisers find the optimum of their objective, and fits with moves never lower
the ELBO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funbat import FunBaT, FunBaTCP
from funbat import updates as U
from funbat.datasets import make_synthetic
from funbat.inference import moves as MV
from funbat.latent import latent_moments


def _spd(rng, R, scale=1.0):
    A = rng.normal(size=(R, R))
    return scale * (A @ A.T + R * np.eye(R))


def _moments(rng, n, R):
    means = rng.normal(size=(n, R))
    B = rng.normal(size=(n, R, R)) * 0.3
    seconds = means[:, :, None] * means[:, None, :] + B @ np.swapaxes(B, 1, 2)
    return means, seconds


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_expected_fit_is_invariant_under_a_tucker_transform(x64, mode):
    rng = np.random.default_rng(mode)
    ranks, n = (2, 3, 2), 50
    P = int(np.prod(ranks))
    core = U.CoreMoments(jnp.asarray(rng.normal(size=P)), jnp.asarray(_spd(rng, P, 0.05)))
    means, seconds = zip(*(_moments(rng, n, R) for R in ranks))
    T = rng.normal(size=(ranks[mode], ranks[mode])) + 2.0 * np.eye(ranks[mode])
    first, _ = U.core_orders(ranks, mode)
    core_t = MV.transform_core(core, jnp.asarray(T), jnp.asarray(first), rank=ranks[mode])
    means_t, seconds_t = list(means), list(seconds)
    means_t[mode] = means[mode] @ T.T
    seconds_t[mode] = T @ seconds[mode] @ T.T
    args = dict(structure="tucker")
    m, e2 = latent_moments(core, [jnp.asarray(a) for a in means],
                           [jnp.asarray(a) for a in seconds], **args)  # fmt: skip
    mt, e2t = latent_moments(core_t, [jnp.asarray(a) for a in means_t],
                             [jnp.asarray(a) for a in seconds_t], **args)  # fmt: skip
    np.testing.assert_allclose(mt, m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(e2t, e2, rtol=1e-10, atol=1e-12)


def test_expected_fit_is_invariant_under_cp_scales(x64):
    rng = np.random.default_rng(7)
    K, R, n = 3, 3, 40
    means, seconds = zip(*(_moments(rng, n, R) for _ in range(K)))
    logs = rng.normal(size=(K, R))
    c = np.exp(logs - logs.mean(axis=0))  # product one per component
    means_t = [m * ck for m, ck in zip(means, c)]
    seconds_t = [s * np.outer(ck, ck) for s, ck in zip(seconds, c)]
    m, e2 = latent_moments(None, list(map(jnp.asarray, means)), list(map(jnp.asarray, seconds)),
                           structure="cp")  # fmt: skip
    mt, e2t = latent_moments(None, list(map(jnp.asarray, means_t)),
                             list(map(jnp.asarray, seconds_t)), structure="cp")  # fmt: skip
    np.testing.assert_allclose(mt, m, rtol=1e-10)
    np.testing.assert_allclose(e2t, e2, rtol=1e-10)


@pytest.mark.parametrize("R", [1, 2, 4])
def test_tucker_transform_is_a_stationary_point_that_raises_the_objective(x64, R):
    rng = np.random.default_rng(R)
    Q, M = _spd(rng, R, 3.0), _spd(rng, R, 0.2)
    dim, n_rest, var = 40.0 * R, 9.0, 0.7
    T, gain = MV.tucker_transform(jnp.asarray(Q), jnp.asarray(M), dim, n_rest, var)
    f = lambda t: MV.tucker_objective(t, Q, M, dim, n_rest, var)  # noqa: E731
    assert float(gain) > 0.0
    np.testing.assert_allclose(float(gain), float(f(T) - f(jnp.eye(R))), rtol=1e-12)
    grad = np.asarray(jax.grad(f)(T))
    assert np.max(np.abs(grad)) < 1e-6 * (1.0 + np.max(np.abs(np.asarray(T))))
    # a random perturbation of the optimum does no better
    for _ in range(5):
        E = 1e-3 * rng.normal(size=(R, R))
        assert float(f(T + E)) <= float(f(T)) + 1e-10


def test_tucker_transform_keeps_the_identity_at_its_optimum(x64):
    # Q and M for which T = I is the optimum: no move, no gain
    R, dim, n_rest, var = 3, 30.0, 6.0, 0.5
    b = 2.0  # f's gradient at I is -Q + M / s_w^2 + (D - P_-k) I, zero here
    T, gain = MV.tucker_transform(jnp.eye(R) * (dim - n_rest + b), jnp.eye(R) * var * b,
                                  dim, n_rest, var)  # fmt: skip
    np.testing.assert_allclose(np.asarray(T), np.eye(R), atol=1e-8)
    assert float(gain) <= 1e-10


def test_cp_scales_keep_the_product_and_satisfy_the_optimality_conditions(x64):
    rng = np.random.default_rng(3)
    K, R = 4, 3
    Q = rng.uniform(1.0, 50.0, size=(K, R))
    dims = np.array([30.0, 200.0, 12.0, 80.0])
    c, gain = MV.cp_scales(jnp.asarray(Q), jnp.asarray(dims))
    c = np.asarray(c)
    np.testing.assert_allclose(np.prod(c, axis=0), 1.0, rtol=1e-12)
    # stationarity of sum_k [-Q c^2 / 2 + D log c] on the constraint: -Q c^2 + D = lam
    lam = dims[:, None] - Q * c**2
    np.testing.assert_allclose(lam, np.broadcast_to(lam[:1], lam.shape), rtol=1e-8, atol=1e-6)
    expect = np.sum(-0.5 * Q * (c**2 - 1.0) + dims[:, None] * np.log(c))
    np.testing.assert_allclose(float(gain), expect, rtol=1e-10)
    assert float(gain) > 0.0


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_elbo_never_decreases_with_moves_and_ends_higher(K, cls):
    data = make_synthetic(1500, n_modes=K, rank=2, n_unique=30, seed=K)
    kw = dict(rank=2, max_iter=30, tol=0.0, random_state=0, recalibrate=False)
    with_moves = cls(**kw, transform_moves=True).fit(data.X, data.y).elbo_history_
    without = cls(**kw, transform_moves=False).fit(data.X, data.y).elbo_history_
    after = with_moves[10:]
    assert np.all(np.diff(after) >= -1e-8 * np.abs(after[1:])), np.diff(after)
    assert with_moves[-1] >= without[-1] - 1e-6 * abs(without[-1])
