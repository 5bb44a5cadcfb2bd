"""The CUDA paths, run for real where a GPU is present (skipped elsewhere): the torch
lattice, CRFRNN and DenseCRF(backend="torch") on the GPU agree with the CPU, gradients
included; the default splat repeats itself to the bit and the atomic one stays within a
tolerance; CNNSegmenter and CRFRNNSegmenter train with mixed precision on the GPU and their
saved files load on the CPU with the same predictions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.crf._torch_lattice import TorchLattice  # noqa: E402
from hybridseg.datasets import load_sample  # noqa: E402
from hybridseg.deep import CRFRNN, CNNSegmenter, CRFRNNSegmenter  # noqa: E402

CUDA = torch.device("cuda")


def test_lattice_same_on_gpu():
    rng = np.random.default_rng(0)
    f = torch.from_numpy(rng.normal(0, 3, (500, 5)))
    v = torch.from_numpy(rng.normal(0, 1, (500, 4)))
    cpu = TorchLattice(f)
    gpu = TorchLattice(f.to(CUDA))
    assert cpu.n_lattice == gpu.n_lattice
    for transpose in (False, True):
        np.testing.assert_allclose(gpu.filter(v.to(CUDA), transpose=transpose).cpu().numpy(),
                                   cpu.filter(v, transpose=transpose).numpy(), atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crfrnn_gpu_equals_cpu(scene, dtype):
    im, logits = scene
    ims = np.stack([im, im[::-1].copy()])
    L = torch.from_numpy(np.stack([logits, logits[::-1]])).permute(0, 3, 1, 2).to(dtype)
    images = torch.from_numpy(ims).permute(0, 3, 1, 2).to(dtype)
    outs, grads = [], []
    for device in ("cpu", "cuda"):
        layer = CRFRNN(11, n_iter=5, engine="torch").to(device, dtype)
        x = L.to(device).contiguous().requires_grad_(True)
        out = layer(x, images.to(device))
        (out * torch.linspace(-1, 1, 11, device=device, dtype=dtype)[:, None, None]).sum() \
            .backward()
        outs.append(out.detach().cpu().double().numpy())
        grads.append([x.grad.cpu().double().numpy(), layer.compat.grad.cpu().double().numpy(),
                      float(layer.bilateral_weight.grad), float(layer.gaussian_weight.grad)])
    tol = 1e-3 if dtype == torch.float32 else 1e-8
    np.testing.assert_allclose(outs[1], outs[0], atol=tol)
    for g_gpu, g_cpu in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-3 if dtype == torch.float32
                                   else 1e-7, atol=tol)


def test_crfrnn_gpu_gradcheck():
    torch.manual_seed(0)
    layer = CRFRNN(3, n_iter=2, bilateral_sxy=3.0, bilateral_srgb=20.0,
                   engine="torch").to(CUDA, torch.float64)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, device=CUDA, requires_grad=True)
    im = torch.randint(0, 256, (2, 3, 5, 6), device=CUDA).double()

    # d out / d logits by gradcheck; d out / d (weights, compat) against central
    # differences of the parameters in place.
    # index_add_ on CUDA adds in no fixed order: a tolerance for that, not for error.
    assert torch.autograd.gradcheck(lambda v: layer(v, im), (x,), eps=1e-6, atol=1e-5,
                                    nondet_tol=1e-12)
    out = layer(x, im)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    for name in ("gaussian_weight", "bilateral_weight", "compat"):
        param = getattr(layer, name)
        flat = param.data.view(-1)
        numeric = torch.zeros_like(flat)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + 1e-6
            up = (layer(x, im) * w).sum().item()
            flat[i] = old - 1e-6
            down = (layer(x, im) * w).sum().item()
            flat[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(param.grad.view(-1).cpu().numpy(), numeric.cpu().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_cuda_repeats_itself_and_atomic_adds_stay_within_their_tolerance(scene):
    # The default torch splat and slice are sparse CSR products, the transpose built as its
    # own matrix (never cuSPARSE's transposed operand): no atomic adds, so two runs give the
    # same bits, forward and gradients. The index_add_ splat adds atomically in no fixed
    # order: its runs differ by float32 rounding only (the guide's "Determinism" section).
    from hybridseg.crf import dense_kernels, mean_field_forward

    im, logits = scene
    k = logits.shape[-1]
    image = torch.from_numpy(im).float().to(CUDA)
    a = torch.from_numpy(logits.reshape(-1, k)).float().to(CUDA)
    mu = (-torch.eye(k) + 0.1 * torch.randn(k, k, generator=torch.Generator().manual_seed(0)))
    r = torch.linspace(-1, 1, k, device=CUDA)

    def run(kernels):
        x = a.clone().requires_grad_(True)
        w = torch.tensor([3.0, 10.0], device=CUDA, requires_grad=True)
        m = mu.to(CUDA).requires_grad_(True)
        q = mean_field_forward(x, kernels, w, m, 5)
        (q * r).sum().backward()
        return [t.detach().cpu() for t in (q, x.grad, w.grad, m.grad)]

    kernels = dense_kernels(image, engine="torch")
    first, second = run(kernels), run(kernels)
    for u, v in zip(first, second):
        assert torch.equal(u, v)
    for kern in kernels:  # the same lattices, splatted with index_add_
        kern._matrices = kern._transposed = None
    atomic = [run(kernels) for _ in range(3)]
    for out in atomic:
        assert (out[0].argmax(1) == first[0].argmax(1)).float().mean() >= 0.9999
        for u, v in zip(out, first):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5 * float(v.abs().max()))


def test_dense_crf_torch_backend_on_gpu(scene):
    im, logits = scene
    ref = DenseCRF(n_iter=5).refine(im, logits, kind="logits")
    out = DenseCRF(n_iter=5, backend="torch", device="cuda").refine(im, logits, kind="logits")
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.995
    np.testing.assert_allclose(out, ref, atol=1e-3)


def _data():
    d = load_sample()
    X = [np.ascontiguousarray(im[:96, :128]) for im in d.images[:4]]
    y = [lab[:96, :128] for lab in d.labels[:4]]
    return X, y


def test_segmenters_train_on_gpu_with_amp_and_load_on_cpu(tmp_path):
    X, y = _data()
    seg = CNNSegmenter("unet", epochs=2, batch_size=2, device="cuda", amp="auto",
                       random_state=0).fit(X, y)
    assert seg.device_.type == "cuda"
    assert np.isfinite(seg.loss_curve_).all()
    p_gpu = seg.predict_proba(X[:2])
    seg.save(tmp_path / "cnn.pt")
    cpu = CNNSegmenter.load(tmp_path / "cnn.pt", device="cpu")
    p_cpu = cpu.predict_proba(X[:2])
    for a, b in zip(p_gpu, p_cpu):
        assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.99
        np.testing.assert_allclose(a.sum(-1), 1, atol=1e-4)
    crf = CRFRNNSegmenter(seg, epochs=1, n_iter=3).fit(X, y)
    assert np.isfinite(crf.loss_curve_).all()
    assert crf.model_.crf.compat.device.type == "cuda"
    q_gpu = crf.predict_proba(X[:2])
    crf.save(tmp_path / "crf.pt")
    q_cpu = CRFRNNSegmenter.load(tmp_path / "crf.pt", device="cpu").predict_proba(X[:2])
    for a, b in zip(q_gpu, q_cpu):
        assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.99
    # From scratch, both stages on the GPU.
    fresh = CRFRNNSegmenter(CNNSegmenter("unet", epochs=1, batch_size=2, device="cuda",
                                         random_state=0), epochs=1, n_iter=2).fit(X, y)
    assert len(fresh.unary_loss_curve_) == 1 and len(fresh.loss_curve_) == 1
