"""Shared test set-up: hypothesis profiles and small fixtures.

Two hypothesis profiles, chosen by the ``HYPOTHESIS_PROFILE`` environment variable:
``dev`` (the default; quick) and ``ci`` (more examples). Both are derandomized, so a run is
reproducible, and have no deadline, because the first call of a numba kernel compiles it.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Beside other busy programs a model pass holds BLAS to the free cores (tinyconv/cpu_share.py),
# and a product summed on fewer threads may differ in its last bits. The tests run beside each
# other (and beside whatever else the machine runs), so they keep BLAS's thread count fixed
# for every process they start; tests/test_cpu_share.py turns the policy on where it tests it.
os.environ.setdefault("TINYCONV_SHARE_CORES", "0")

settings.register_profile(
    "dev", max_examples=15, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(params=["one thread", "all threads"])
def threads(request, monkeypatch):
    """Small inputs run on one thread; lowering the threshold sends them through prange."""
    if request.param == "all threads":
        from tinyconv import kernels
        monkeypatch.setattr(kernels._runtime, "PARALLEL_MIN_SIZE", 0)
        monkeypatch.setattr(kernels._runtime, "ONE_THREAD_BESIDE_BLAS", False)
    return request.param


@pytest.fixture
def rng():
    """A fresh, fixed-seed generator for each test (tests never share random state)."""
    return np.random.default_rng(20140101)
