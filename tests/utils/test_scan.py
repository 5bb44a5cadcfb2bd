"""utils/_scan.py: the one-pass check of large score arrays against numpy's four passes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.utils._scan import scan_scores
from hybridseg.utils._validation import check_scores


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40000), st.integers(1, 23), st.integers(0, 3),
       st.integers(0, 2**31 - 1))
def test_scan_is_numpy_s_four_passes(n, k, n_bad, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 3, (n, k)).astype(np.float32)
    flat = a.reshape(-1)
    bad = rng.choice(flat.size, min(n_bad, flat.size), replace=False)
    flat[bad] = rng.choice([np.nan, np.inf, -np.inf], bad.size)
    got_bad, lo, hi, worst = scan_scores(a, True)
    assert got_bad == int((~np.isfinite(a)).sum())
    if got_bad == 0:
        assert lo == a.min() and hi == a.max()
        assert worst == pytest.approx(np.abs(a.sum(1, dtype=np.float64) - 1).max(),
                                      rel=1e-5, abs=1e-4)


def test_large_scores_are_checked_like_small_ones(rng):
    p = rng.random((1100, 1000, 2)).astype(np.float32)  # above the one-pass size
    p /= p.sum(-1, keepdims=True)
    assert check_scores(p).shape == p.shape
    q = p.copy()
    q[1099, 999, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_scores(q)
    with pytest.raises(ValueError, match="not probabilities"):
        check_scores(p * 1.5)
    assert check_scores(p * 1.5, kind="logits").shape == p.shape
