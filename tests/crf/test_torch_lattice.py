"""The torch execution of the permutohedral lattice against the numba one: the same
lattice (vertex count), the same filter and transpose, in float32 and float64."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg.crf._lattice import Lattice  # noqa: E402
from hybridseg.crf._meanfield import PairwiseKernel  # noqa: E402
from hybridseg.crf._torch_lattice import (  # noqa: E402
    NormalizedKernel,
    TorchLattice,
    lattice_filter,
)


@pytest.mark.parametrize("n, d", [(1, 1), (50, 2), (400, 3), (800, 5)])
@pytest.mark.parametrize("transpose", [False, True])
def test_same_filter_as_the_numba_lattice(n, d, transpose):
    rng = np.random.default_rng(n + d)
    f = (rng.random((n, d)) * 5).astype(np.float32)
    v = rng.normal(size=(n, 3)).astype(np.float32)
    ref_lat = Lattice(f)
    ref = ref_lat.filter(v, transpose=transpose)
    for dtype in (torch.float32, torch.float64):
        lat = TorchLattice(torch.from_numpy(f).to(dtype))
        assert lat.n_lattice == ref_lat.n_lattice
        out = lat.filter(torch.from_numpy(v).to(dtype), transpose=transpose).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_transpose_is_the_adjoint():
    rng = np.random.default_rng(0)
    f = torch.from_numpy(rng.random((300, 5)) * 4)
    lat = TorchLattice(f)
    a, b = torch.randn(300, 2, dtype=torch.float64), torch.randn(300, 2, dtype=torch.float64)
    left = (lat.filter(a) * b).sum()
    right = (a * lat.filter(b, transpose=True)).sum()
    assert torch.allclose(left, right, rtol=1e-10)


def test_normalized_kernel_engines_agree_with_pairwise_kernel():
    rng = np.random.default_rng(1)
    f = (rng.random((500, 4)) * 6).astype(np.float32)
    q = rng.random((500, 3)).astype(np.float32)
    ref = np.zeros_like(q)
    PairwiseKernel(f, 1.0).filter_add(q, ref)
    for engine, dtype in (("numba", torch.float32), ("torch", torch.float32),
                          ("torch", torch.float64)):
        k = NormalizedKernel(torch.from_numpy(f).to(dtype), dtype, engine)
        out = lattice_filter(torch.from_numpy(q).to(dtype), k).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_filter_gradient_is_the_transpose_filter():
    rng = np.random.default_rng(2)
    f = torch.from_numpy(rng.random((40, 3)) * 3)
    k = NormalizedKernel(f, torch.float64, "torch")
    v = torch.randn(40, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: lattice_filter(x, k), (v,))


def test_bad_features():
    with pytest.raises(ValueError, match="non-empty"):
        TorchLattice(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="NaN"):
        TorchLattice(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        TorchLattice(torch.zeros(3))
