"""CRFRNN: the same mean field as DenseCRF, gradients that pass gradcheck, batches, and
bad input."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.deep import CRFRNN  # noqa: E402


def _tensors(im, logits, dtype=torch.float32):
    L = torch.from_numpy(logits).permute(2, 0, 1)[None].to(dtype).contiguous()
    image = torch.from_numpy(im).permute(2, 0, 1)[None].to(dtype)
    return L, image


@pytest.mark.parametrize("engine, dtype", [("numba", torch.float32),
                                           ("torch", torch.float32),
                                           ("torch", torch.float64)])
def test_agrees_with_dense_crf(scene, engine, dtype):
    im, logits = scene
    ref = DenseCRF(n_iter=5).refine(im, logits, kind="logits")
    L, image = _tensors(im, logits, dtype)
    with torch.no_grad():
        out = CRFRNN(11, n_iter=5, engine=engine)(L, image)
    p = torch.softmax(out, 1)[0].permute(1, 2, 0).numpy()
    assert (p.argmax(-1) == ref.argmax(-1)).mean() >= 0.999
    np.testing.assert_allclose(p, ref, atol=1e-4)


@pytest.mark.parametrize("compat", [[1.0, 2.0, 0.5], [[0, 1, 2], [1, 0, 1], [2, 1, 0]]])
def test_agrees_with_dense_crf_on_other_compatibilities(compat):
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (12, 14, 3)).astype(np.uint8)
    logits = rng.normal(size=(12, 14, 3)).astype(np.float32)
    ref = DenseCRF(n_iter=3, compat=compat).refine(im, logits, kind="logits")
    L, image = _tensors(im, logits, torch.float64)
    with torch.no_grad():
        out = CRFRNN(3, n_iter=3, compat=compat, engine="torch")(L, image)
    np.testing.assert_allclose(torch.softmax(out, 1)[0].permute(1, 2, 0).numpy(), ref,
                               atol=1e-5)


def test_gradcheck_logits_weights_and_compat():
    torch.manual_seed(0)
    layer = CRFRNN(3, n_iter=2, engine="torch").double()
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    img = torch.rand(1, 3, 5, 6, dtype=torch.float64) * 255
    assert torch.autograd.gradcheck(lambda a: layer(a, img), (x,))

    # The parameters, swapped for plain tensors that gradcheck can perturb.
    def functional(wg, wb, mu):
        old = layer.gaussian_weight, layer.bilateral_weight, layer.compat
        del layer.gaussian_weight, layer.bilateral_weight, layer.compat
        layer.gaussian_weight, layer.bilateral_weight, layer.compat = wg, wb, mu
        try:
            return layer(x.detach(), img)
        finally:
            del layer.gaussian_weight, layer.bilateral_weight, layer.compat
            layer.gaussian_weight, layer.bilateral_weight, layer.compat = old

    params = (torch.tensor(3.0, dtype=torch.float64, requires_grad=True),
              torch.tensor(10.0, dtype=torch.float64, requires_grad=True),
              (-torch.eye(3, dtype=torch.float64)).requires_grad_())
    assert torch.autograd.gradcheck(functional, params)


def test_a_batch_equals_the_images_one_by_one():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 255, (3, 3, 10, 12))).float()
    logits = torch.randn(3, 4, 10, 12, generator=torch.Generator().manual_seed(0))
    layer = CRFRNN(4, n_iter=3)
    with torch.no_grad():
        together = layer(logits, images)
        for i in range(3):
            torch.testing.assert_close(layer(logits[i:i + 1], images[i:i + 1])[0],
                                       together[i])


def test_parameters_and_zero_iterations():
    layer = CRFRNN(4)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"gaussian_weight", "bilateral_weight", "compat"}
    assert torch.equal(layer.compat, -torch.eye(4))
    fixed = CRFRNN(4, trainable=False)
    assert not list(fixed.parameters()) and "compat" in dict(fixed.named_buffers())
    z = torch.randn(1, 4, 5, 5)
    assert torch.equal(CRFRNN(4, n_iter=0)(z, torch.zeros(1, 3, 5, 5)), z)


def test_bad_input():
    layer = CRFRNN(3)
    z, im = torch.randn(1, 3, 6, 7), torch.rand(1, 3, 6, 7)
    with pytest.raises(ValueError, match="differ in batch size or in H, W"):
        layer(z, torch.rand(1, 3, 6, 8))
    with pytest.raises(ValueError, match="logits have 4 channels but the layer has "
                                         "n_classes=3"):
        layer(torch.randn(1, 4, 6, 7), im)
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((1, 3, 6, 7), float("nan")), im)
    with pytest.raises(ValueError, match="must be \\(N, K, H, W\\), got a 2-D"):
        layer(torch.randn(6, 7), im)
    layer(z, im)
    with pytest.raises(ValueError, match="images have 1 channels but the layer was built "
                                         "for 3-channel"):
        layer(z, torch.rand(1, 1, 6, 7))
    with pytest.raises(ValueError, match="n_classes"):
        CRFRNN(0)
    with pytest.raises(ValueError, match="bilateral_srgb"):
        CRFRNN(3, bilateral_srgb=0)


@pytest.mark.parametrize("trainable", [True, False])
def test_numba_engine_gradients_match_the_torch_lattice(trainable):
    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.integers(0, 255, (1, 3, 14, 17))).float()
    base = torch.from_numpy(rng.normal(size=(1, 4, 14, 17)).astype(np.float32))
    target = torch.from_numpy(rng.random((1, 4, 14, 17)))
    grads = {}
    for engine, dtype in (("numba", torch.float32), ("torch", torch.float64)):
        layer = CRFRNN(4, n_iter=3, engine=engine, trainable=trainable,
                       compat=[[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]])
        layer = layer.to(dtype)
        x = base.detach().to(dtype).clone().requires_grad_()
        out = layer(x, image.to(dtype))
        (out * target.to(dtype)).sum().backward()
        grads[engine] = [x.grad] + ([p.grad for p in (layer.gaussian_weight,
                                                      layer.bilateral_weight, layer.compat)]
                                    if trainable else [])
        grads[engine + "_out"] = out
    torch.testing.assert_close(grads["numba_out"].double(), grads["torch_out"], atol=1e-4,
                               rtol=1e-4)
    for a, b in zip(grads["numba"], grads["torch"]):
        torch.testing.assert_close(a.double(), b, atol=2e-4, rtol=1e-3)
