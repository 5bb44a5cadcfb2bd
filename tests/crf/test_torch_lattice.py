"""The torch execution of the permutohedral lattice against the numba one: the same
lattice (vertex count), the same filter and transpose, in float32 and float64."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg import Unaries  # noqa: E402
from hybridseg.crf._lattice import Lattice  # noqa: E402
from hybridseg.crf._meanfield import LatticeKernel  # noqa: E402
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


def test_normalized_kernel_engines_agree_with_the_lattice_kernel():
    rng = np.random.default_rng(1)
    f = (rng.random((500, 4)) * 6).astype(np.float32)
    q = rng.random((500, 3)).astype(np.float32)
    ref = LatticeKernel(f).filter(q)
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


def test_dense_crf_torch_backend_agrees_with_numba():
    from hybridseg.crf import DenseCRF, Kernel
    from hybridseg.datasets import load_sample, make_noisy_scores

    d = load_sample()
    im, lab = d.images[4][:96, :128], d.labels[4][:96, :128]
    logits = make_noisy_scores([lab], 11, blur=6, noise=3, random_state=1)[0]
    for params in ({}, {"compat": np.linspace(0.5, 2, 11)},
                   {"extra_kernels": [Kernel(2.0, "image", 30.0, None)]}):
        ref = DenseCRF(n_iter=5, **params).refine(im, logits, kind="logits")
        out = DenseCRF(n_iter=5, backend="torch", device="cpu", **params).refine(
            im, logits, kind="logits")
        assert out.shape == ref.shape and out.dtype == np.float32
        assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.995
        np.testing.assert_allclose(out, ref, atol=1e-3)
    U = Unaries([im], [logits], kind="logits")
    proba = DenseCRF(n_iter=3, backend="torch").fit(U).predict_proba(U)[0]
    np.testing.assert_allclose(proba.sum(-1), 1, atol=1e-5)
    # Gray images, anisotropic spacing and volumes: features built on the device.
    gray = im.mean(-1)
    vol, vol_logits = np.stack([gray[:, :60], gray[:, 60:120]]), np.stack(
        [logits[:, :60], logits[:, 60:120]])
    for image, scores, params in ((gray, logits, {"spacing": (1.0, 2.0)}),
                                  (vol, vol_logits, {"spacing": (3.0, 1.0, 1.0)})):
        ref = DenseCRF(n_iter=5, bilateral_srgb=5.0, **params).refine(image, scores,
                                                                      kind="logits")
        out = DenseCRF(n_iter=5, bilateral_srgb=5.0, backend="torch", device="cpu",
                       **params).refine(image, scores, kind="logits")
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-3)
    with pytest.raises(ValueError, match="return_trace"):
        DenseCRF(backend="torch").refine(im, logits, kind="logits", return_trace=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            DenseCRF(backend="torch", device="cuda").refine(im, logits, kind="logits")
