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


class _FakeGPU:
    """Stands in for a JAX device: a platform name and memory statistics."""

    platform = "gpu"

    def __init__(self, bytes_limit):
        self._limit = bytes_limit

    def memory_stats(self):
        return {"bytes_limit": self._limit}


def test_chunk_is_small_on_a_cpu_and_whole_array_within_the_budget_on_a_gpu():
    ranks = (3, 3, 3)  # P = 9: 32 * 81 bytes per entry
    cpu = inference.chunk_size(10**6, ranks, "auto")
    assert cpu <= 65536 and 32 * 81 * cpu <= inference.chunk_budget_bytes()
    assert inference.chunk_size(100, ranks, "auto") == 128  # the bucket above n
    gpu = _FakeGPU(140 * 2**30)
    assert inference.chunk_budget_bytes(gpu) == 2**32  # capped
    assert inference.chunk_budget_bytes(_FakeGPU(64 * 2**30)) == 2 * 2**30
    big = inference.chunk_size(10**6, ranks, "auto", device=gpu)
    assert big >= 10**6 // 2 and 32 * 81 * big <= inference.chunk_budget_bytes(gpu)
    assert inference.chunk_size(10**6, ranks, 4096, device=gpu) == 4096  # a request is kept
    # a budget too small for the request lowers it; a device without statistics gets the CPU's
    assert inference.chunk_size(10**8, (8, 8, 8), "auto", device=_FakeGPU(2**30)) < 10**5
    assert inference.chunk_budget_bytes(_FakeGPU(0)) == 2**26
