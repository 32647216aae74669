"""The inference engine on its own: specs, sweeps and the loop, without an estimator."""

import jax
import numpy as np
import pytest

from funbat import FunBaT, inference
from funbat.backends import entries_from_input
from funbat.datasets import make_synthetic
from funbat.inference.sweep import warmup_sweeps
from funbat.likelihoods import make_likelihood
from funbat.modes import mode_kind


def _problem(likelihood="gaussian", noise_mode=None, max_iter=14):
    data = make_synthetic(400, n_modes=3, rank=2, n_unique=12, noise_std=0.1, seed=2)
    entries = entries_from_input(data.X, data.y)
    kinds = tuple(mode_kind(e.kind) for e in entries.encodings)
    spec = inference.ModelSpec("tucker", (2, 2, 2), kinds,
                               make_likelihood(likelihood, noise_mode), max_iter=max_iter,
                               tol=0.0, recalibrate=False)  # fmt: skip
    with jax.enable_x64(True):
        kernels = [k.kernel(e, "matern32", None, 1.0) for k, e in zip(kinds, entries.encodings)]
        entries = entries.with_chunk(inference.chunk_size(entries.n, spec.ranks, 65536))
    return data, spec, entries, kernels


def test_fit_is_the_start_then_sweeps_and_the_estimator_gives_the_same():
    data, spec, entries, kernels = _problem()
    result = inference.fit(spec, entries, kernels, rng=np.random.default_rng(0))
    with jax.enable_x64(True):  # the same by hand, one sweep at a time
        state = inference.initial_state(spec, entries, kernels, np.random.default_rng(0))
        history = []
        for it in range(spec.max_iter):
            state = inference.sweep(spec, entries, state, warm=it < 7)
            history.append(float(state.elbo))
    np.testing.assert_allclose(history, result.elbo_history, rtol=1e-12)
    assert state.sweeps == spec.max_iter
    est = FunBaT(rank=2, max_iter=14, tol=0.0, recalibrate=False, random_state=0)
    np.testing.assert_allclose(est.fit(data.X, data.y).elbo_history_, history, rtol=1e-12)


@pytest.mark.parametrize(("likelihood", "noise_mode"), [("student_t", None), ("student_t", 1)])
def test_elbo_never_decreases_after_the_warm_up(likelihood, noise_mode):
    _, spec, entries, kernels = _problem(likelihood, noise_mode, max_iter=24)
    result = inference.fit(spec, entries, kernels, rng=np.random.default_rng(1))
    after = result.elbo_history[warmup_sweeps(spec):]
    assert np.all(np.diff(after) >= -1e-8 * np.abs(after[1:]))


def test_timer_hook_reports_every_stage_of_every_sweep():
    _, spec, entries, kernels = _problem("student_t", max_iter=4)
    seen = []
    inference.fit(spec, entries, kernels, rng=np.random.default_rng(0),
                  timer=lambda stage, s: seen.append((stage, s)))  # fmt: skip
    stages = [s for s, _ in seen]
    K, warm = 3, 2  # min(10, max_iter // 2) warm-up sweeps without the likelihood update
    assert stages.count("statistics") == stages.count("mode") == stages.count("core") == 4 * K
    assert stages.count("likelihood") == 4 - warm
    assert all(s >= 0.0 for _, s in seen)
