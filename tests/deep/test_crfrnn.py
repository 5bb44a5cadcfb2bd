"""CRFRNN: the same mean field as DenseCRF, forward and gradients against the numpy
oracle's mean field and hand-written backward, gradcheck, batches, and bad input."""

import numpy as np
import pytest
from _oracles import dense as oracle

torch = pytest.importorskip("torch")

from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.crf._torch_lattice import lattice_filter  # noqa: E402
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


@pytest.mark.parametrize("potts", [True, False])
def test_inference_without_gradients_is_the_same_output(potts):
    # under no_grad the numba engine runs without a tape: the same bits as with one
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 255, (2, 3, 12, 14))).float()
    logits = torch.randn(2, 5, 12, 14, generator=torch.Generator().manual_seed(3))
    layer = CRFRNN(5, n_iter=3)
    if not potts:
        with torch.no_grad():
            layer.compat.add_(0.3 * torch.randn(5, 5, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        plain = layer(logits, images)
    taped = layer(logits.clone().requires_grad_(True), images)
    assert taped.requires_grad and not plain.requires_grad
    assert torch.equal(plain, taped.detach())


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


# --------------------------------------------------------------------------- numpy oracle
@pytest.mark.parametrize("symmetric", [True, False])
def test_oracle_backward_matches_finite_differences_of_its_forward(symmetric):
    # The oracle verified on its own: float64, exact Gaussian kernels (or, as the lattice's
    # are, asymmetric ones: the backward must use K^T), an asymmetric compatibility,
    # L = <R, z_T>; central differences of the forward for every logit, both kernel weights
    # and every entry of mu.
    rng = np.random.default_rng(0)
    h, w, k, n_iter = 4, 5, 3, 3
    image = rng.uniform(0, 255, (h, w, 3))
    kernels = [oracle.normalised_kernel(f) for f in oracle.dense_crf_features(image, 2.0, 4.0,
                                                                              40.0)]
    if not symmetric:
        kernels = [m * rng.uniform(0.5, 1.5, m.shape) for m in kernels]
    a = rng.normal(0, 1.5, (h * w, k))
    weights = np.array([2.0, 4.0])
    mu = rng.uniform(-1, 2, (k, k))
    r = rng.normal(0, 1, (h * w, k))

    def loss(a, weights, mu):
        return np.sum(r * oracle.mean_field(a, kernels, weights, mu, n_iter)[0])

    _, tape = oracle.mean_field(a, kernels, weights, mu, n_iter)
    grads = oracle.mean_field_backward(tape, r)
    eps = 1e-6
    for which, (x, g) in enumerate(zip((a, weights, mu), grads)):
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            args = [a, weights, mu]
            plus, minus = x.copy(), x.copy()
            plus[i] += eps
            minus[i] -= eps
            args[which] = plus
            up = loss(*args)
            args[which] = minus
            numeric[i] = (up - loss(*args)) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())
        assert np.abs(g).max() > 1e-2  # every gradient is far from trivially zero


def _run_layer(layer, logits, images, r, dtype):
    """The layer's output and the gradients of ``<r, output>`` (logits, the two kernel
    weights and the compatibility where they are parameters), as float64 numpy."""
    x = torch.from_numpy(logits).to(dtype).requires_grad_()
    out = layer(x, torch.from_numpy(images).to(dtype))
    (out * torch.from_numpy(r).to(dtype)).sum().backward()
    grads = [x.grad]
    if layer.trainable:
        grads += [torch.stack([layer.gaussian_weight.grad, layer.bilateral_weight.grad]),
                  layer.compat.grad]
    return out.detach().double().numpy(), [g.double().numpy() for g in grads]


def _oracle_of_layer(mats_per_image, logits, r, weights, mu, n_iter):
    """The oracle's output and gradients for a batch, with the given kernel matrices."""
    k, h, w = logits.shape[1:]
    outs, g_a, g_w, g_mu = [], [], 0.0, 0.0
    for mats, a, ri in zip(mats_per_image, logits, r):
        z, tape = oracle.mean_field(a.reshape(k, h * w).T, mats, weights, mu, n_iter)
        ga, gw, gm = oracle.mean_field_backward(tape, ri.reshape(k, h * w).T)
        outs.append(z.T.reshape(k, h, w))
        g_a.append(ga.T.reshape(k, h, w))
        g_w, g_mu = g_w + gw, g_mu + gm
    return np.stack(outs), [np.stack(g_a), g_w, g_mu]


def _scene(rng, n=2, k=3, h=6, w=7):
    """Images of two colour blocks with noise, logits, a random R for ``<R, output>`` and
    an asymmetric compatibility."""
    images = np.zeros((n, 3, h, w))
    images[:, :, :, w // 2:] = 200
    images[:, 1, h // 2:] = 120
    images = np.clip(images + rng.normal(0, 10, images.shape), 0, 255)
    return (images, rng.normal(0, 1.5, (n, k, h, w)), rng.normal(0, 1, (n, k, h, w)),
            rng.uniform(-1, 2, (k, k)))


PARAMS = dict(gaussian_sxy=2.0, gaussian_weight=2.0, bilateral_sxy=4.0, bilateral_srgb=40.0,
              bilateral_weight=4.0)


@pytest.mark.parametrize("engine, dtype, compat, trainable", [
    ("numba", torch.float32, "matrix", True),
    ("numba", torch.float32, "potts", False),   # the Potts fast path of the numba backward
    ("torch", torch.float32, "matrix", True),
    ("torch", torch.float64, "matrix", True),
    ("torch", torch.float64, "potts", False),
], ids=["numba-f32-matrix", "numba-f32-potts-fixed", "torch-f32-matrix", "torch-f64-matrix",
        "torch-f64-potts-fixed"])
def test_forward_and_gradients_are_the_oracle_s_with_the_layer_s_kernels(engine, dtype, compat,
                                                                         trainable):
    # The lattice filter is linear: its columns on unit vectors are the explicit (N, N)
    # matrix it applies, so the oracle can run the layer's own kernels and the mean field,
    # its softmax, compatibility and reverse pass are held to float rounding. These lattice
    # matrices are far from symmetric (by 0.02-0.1), so a backward that used K instead of
    # K^T would fail; how far the lattice is from the exact Gaussians is the next test's.
    rng = np.random.default_rng(1)
    images, logits, r, mu = _scene(rng)
    layer = CRFRNN(3, n_iter=3, engine=engine, trainable=trainable, **PARAMS).to(dtype)
    if compat == "matrix":
        with torch.no_grad():
            layer.compat.copy_(torch.from_numpy(mu))
    else:
        mu = -np.eye(3)
    out, grads = _run_layer(layer, logits, images, r, dtype)
    n_points = images.shape[2] * images.shape[3]
    mats = []
    for image in torch.from_numpy(images).to(dtype):
        eye = torch.eye(n_points, dtype=dtype)
        mats.append([lattice_filter(eye, kern).double().numpy()
                     for kern in layer.kernels(image, dtype)])
    assert max(np.abs(m - m.T).max() for m in mats[0]) > 1e-2
    ref_out, ref_grads = _oracle_of_layer(mats, logits, r, [PARAMS["gaussian_weight"],
                                                           PARAMS["bilateral_weight"]], mu, 3)
    # Relative to the largest entry: float32 ~1e-7 measured, float64 ~1e-15.
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=tol * np.abs(ref_out).max())
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("engine, dtype", [("numba", torch.float32), ("torch", torch.float64)],
                         ids=["numba-f32", "torch-f64"])
def test_close_to_the_oracle_with_exact_gaussian_kernels(engine, dtype):
    # The whole layer (its features and normalisation included) against the oracle's
    # brute-force Gaussians: the lattice approximates them, so the stated tolerance is that
    # approximation's on this 10x12 scene (measured: probabilities 0.003 apart on average,
    # gradients 2-8% apart in L2 norm).
    rng = np.random.default_rng(2)
    images, logits, r, mu = _scene(rng, n=1, h=10, w=12)
    params = dict(gaussian_sxy=3.0, gaussian_weight=3.0, bilateral_sxy=8.0,
                  bilateral_srgb=30.0, bilateral_weight=5.0)
    layer = CRFRNN(3, n_iter=3, engine=engine, **params).to(dtype)
    with torch.no_grad():
        layer.compat.copy_(torch.from_numpy(mu))
    out, grads = _run_layer(layer, logits, images, r, dtype)
    feats = oracle.dense_crf_features(images[0].transpose(1, 2, 0), params["gaussian_sxy"],
                                      params["bilateral_sxy"], params["bilateral_srgb"])
    mats = [[oracle.normalised_kernel(f) for f in feats]]
    ref_out, ref_grads = _oracle_of_layer(
        mats, logits, r, [params["gaussian_weight"], params["bilateral_weight"]], mu, 3)
    p = torch.softmax(torch.from_numpy(out), 1).numpy()
    ref_p = torch.softmax(torch.from_numpy(ref_out), 1).numpy()
    assert np.abs(p - ref_p).mean() < 0.01
    assert (p.argmax(1) == ref_p.argmax(1)).mean() > 0.95
    for got, want in zip(grads, ref_grads):
        assert np.linalg.norm(got - want) < 0.25 * np.linalg.norm(want)


def test_features_beyond_the_lattice_are_refused_not_crashed():
    # DenseCRF's guard: these once ended the process with signal 11
    with pytest.raises(ValueError, match="gaussian kernel is too small"):
        CRFRNN(2, gaussian_sxy=1e-9)(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8))
    huge = torch.zeros(1, 3, 8, 8)
    huge[..., 4:] = 2e30
    for engine in ("numba", "torch"):
        with pytest.raises(ValueError, match="bilateral kernel is too small"):
            CRFRNN(2, engine=engine)(torch.randn(1, 2, 8, 8), huge)
    with pytest.raises(ValueError, match="images have no channels"):
        CRFRNN(2)(torch.randn(1, 2, 8, 8), torch.zeros(1, 0, 8, 8))
    with pytest.raises(ValueError, match="'gaussian_weight' parameter of CRFRNN"):
        CRFRNN(2, gaussian_weight=float("inf"))


def test_half_precision_logits_come_back_in_half_precision():
    logits = torch.randn(1, 3, 8, 9)
    images = torch.randint(0, 256, (1, 3, 8, 9)).float()
    layer = CRFRNN(3, n_iter=2)
    out = layer(logits.half(), images)
    assert out.dtype == torch.float16
    ref = layer(logits.half().float(), images)
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)
