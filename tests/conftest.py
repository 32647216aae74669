"""Shared test fixtures: float64 JAX, random Gaussian messages, the dense GP reference."""

import os
import shutil
import tempfile

#: XLA's CPU backend with LLVM's optimisation off: the suite is mostly compilation of
#: small programs that then run a few sweeps, and this takes about 30% off its time
#: on two cores; the programs compute the same operations (XLA keeps IEEE semantics at every
#: level), so every tolerance holds. Set before JAX starts its backend (``funbat``'s
#: imports build arrays). A user's own ``--xla_backend_optimization_level`` is kept.
_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import _numerics  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from funbat.inference.state import ModelSpec  # noqa: E402

#: Set by the first pytest process to a fresh directory for this run's compilations.
_CACHE_VAR = "FUNBAT_COMPILATION_CACHE"
_owned_cache: list[str] = []  # the directory this process made, removed at its end


def pytest_configure(config):
    """One JAX compilation cache for the whole run, shared by the xdist workers and the
    subprocesses tests start: most of the suite's time is XLA compiling the same small
    programs in each process (half of it in a two-worker run). The directory is new for
    every run, so no result depends on an earlier one; a user's own setting is kept."""
    if _CACHE_VAR not in os.environ:
        os.environ[_CACHE_VAR] = tempfile.mkdtemp(prefix="funbat-tests-jax-")
        _owned_cache.append(os.environ[_CACHE_VAR])
    from funbat import enable_compilation_cache

    enable_compilation_cache(os.environ[_CACHE_VAR])


def pytest_unconfigure(config):
    for d in _owned_cache:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def x64():
    """Run a test with JAX in float64, as the library's own calls do."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def random_messages():
    """``make(rng, n, rank) -> (Lams (n, R, R), etas (n, R))``; some precisions singular
    (:func:`_numerics.random_messages`)."""
    return _numerics.random_messages


@pytest.fixture
def dense_gp_posterior():
    """``post(Kt, Lams, etas) -> (mean (I, R), Sigma (I R, I R), log Z)``: the GP
    posterior of ``R`` independent functions with prior Gram matrix ``Kt`` (I, I) given
    Gaussian messages, by the textbook dense formula; ``u`` ordered (point, component).
    The independent reference for the chain smoother and the dense spatial modes."""

    def post(Kt, Lams, etas):
        I, R = etas.shape
        K = np.kron(Kt, np.eye(R))
        L = np.zeros((I * R, I * R))
        for j in range(I):
            L[j * R : (j + 1) * R, j * R : (j + 1) * R] = Lams[j]
        eta = etas.reshape(-1)
        Sigma = K @ np.linalg.inv(np.eye(I * R) + L @ K)
        Sigma = 0.5 * (Sigma + Sigma.T)
        mean = Sigma @ eta
        logZ = -0.5 * np.linalg.slogdet(np.eye(I * R) + K @ L)[1] + 0.5 * eta @ Sigma @ eta
        return mean.reshape(I, R), Sigma, logZ

    return post


class _ErrorsOnly:
    """An entry backend of given expected squared errors ``sq`` (N,) (and targets 0):
    the per-block functions of a likelihood see exactly these."""

    def __init__(self, sq, mask, group=None):
        from funbat.backends import EntryBlock

        idx = np.zeros((len(sq), 1), np.int32) if group is None else group[:, None]
        self.block = EntryBlock(idx, np.zeros(len(sq)), mask, np.zeros(len(sq)), sq, 0)

    def entry_moments(self, means, seconds, core, *, structure):
        return self.block

    def map_reduce(self, fn, moments, *args):
        return fn(moments, *args)

    def map_weights(self, fn, moments, *args, n_handles=1):
        return fn(moments, *args)


@pytest.fixture
def errors_only():
    """``make(sq, mask, group=None)``: an entry backend whose blocks carry the given
    expected squared errors, for testing a likelihood's update on its own."""
    return _ErrorsOnly


@pytest.fixture
def assert_elbo_rises():
    """``check(history, max_iter)``: the ELBO never falls from one sweep to the next,
    except into the sweep that starts with the warm-up's one balancing of scales
    (:func:`funbat.inference.moves.balance_tucker`), which keeps the fitted product but
    not the bound. Sweep ``b = min(warmup, max_iter // 2)`` (1-based) is that sweep."""

    def check(history, max_iter):
        h = np.asarray(history)
        b = min(ModelSpec._field_defaults["warmup"], int(max_iter) // 2)
        steps = np.diff(h) >= -1e-8 * np.abs(h[1:])
        if b >= 2:
            steps[b - 2] = True
        assert np.all(steps), np.diff(h)

    return check
