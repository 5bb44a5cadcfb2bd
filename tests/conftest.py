import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: deterministic in CI, no deadline (first calls compile numba kernels).
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The plain-numpy oracles in tests/_oracles import as ``_oracles`` under any import mode
# (pytest's default "prepend" puts this folder on sys.path already; "importlib" does not).
_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
