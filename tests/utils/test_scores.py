import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hybridseg.utils import log_proba, softmax, to_logits, to_proba


@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 6)),
              elements=st.floats(-1e4, 1e4)))
def test_softmax_is_a_distribution(x):
    p = softmax(x)
    assert p.dtype == np.float64 and np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-9)
    # invariant to a per-pixel shift
    np.testing.assert_allclose(softmax(x + 7.0), p, atol=1e-9)


def test_softmax_float32_and_axis():
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    assert softmax(x).dtype == np.float32
    np.testing.assert_allclose(softmax(x, axis=0).sum(0), 1, rtol=1e-6)
    assert softmax(x.astype(np.int64)).dtype == np.float32


def test_conversions_roundtrip():
    p = np.random.default_rng(1).dirichlet(np.ones(5), size=(4, 4))
    np.testing.assert_allclose(to_proba(to_logits(p, "proba"), "logits"), p, rtol=1e-10)
    assert to_proba(p, "proba") is p
    assert np.isfinite(log_proba(np.zeros(3))).all()
