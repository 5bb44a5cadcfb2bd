"""The one description of the dense CRF's kernels: the defaults every class takes, and the
feature builder that the numba and torch executions share (the same float32 features bit
for bit), with its checks and its warning on float images in [0, 1]."""

import inspect
import warnings

import numpy as np
import pytest

from hybridseg.crf import DenseCRF, Kernel
from hybridseg.crf._kernels import (
    DENSE_CRF_DEFAULTS,
    builtin_kernels,
    compat_matrix,
    kernel_features,
    positions,
)


def _defaults(cls):
    params = inspect.signature(cls).parameters
    return {name: params[name].default for name in DENSE_CRF_DEFAULTS}


def test_every_class_takes_the_one_set_of_defaults():
    assert dict(DENSE_CRF_DEFAULTS) == {"gaussian_sxy": 3.0, "gaussian_weight": 3.0,
                                        "bilateral_sxy": 80.0, "bilateral_srgb": 13.0,
                                        "bilateral_weight": 10.0}
    assert _defaults(DenseCRF) == dict(DENSE_CRF_DEFAULTS)
    pytest.importorskip("torch")
    from hybridseg.deep import CRFRNN

    assert _defaults(CRFRNN) == dict(DENSE_CRF_DEFAULTS)
    with pytest.raises(TypeError):
        DENSE_CRF_DEFAULTS["gaussian_sxy"] = 1.0  # read-only


def test_positions_are_x_first_scaled_by_spacing_over_sigma():
    p = positions((2, 3), 2.0, (1.0, 4.0))
    assert p.shape == (6, 2) and p.dtype == np.float64
    np.testing.assert_array_equal(p[:, 0], np.tile([0, 2, 4], 2))   # x * 4 / 2
    np.testing.assert_array_equal(p[:, 1], np.repeat([0, 0.5], 3))  # y * 1 / 2
    v = positions((2, 2, 2), 1.0)
    np.testing.assert_array_equal(v[:, 2], np.repeat([0, 1], 4))    # z last


def test_builtin_features_match_an_explicit_computation(rng):
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gaussian, bilateral = builtin_kernels(**DENSE_CRF_DEFAULTS)
    f = kernel_features(bilateral, image, (5, 7), name="bilateral")
    yy, xx = np.mgrid[:5, :7]
    expected = np.concatenate([np.stack([xx.ravel() / 80.0, yy.ravel() / 80.0], 1),
                               image.reshape(-1, 3) / 13.0], 1).astype(np.float32)
    assert f.dtype == np.float32 and f.flags.c_contiguous
    np.testing.assert_array_equal(f, expected)
    g = kernel_features(gaussian, image, (5, 7))
    np.testing.assert_array_equal(
        g, (np.stack([xx.ravel(), yy.ravel()], 1) / 3.0).astype(np.float32))


CASES = {
    "rgb 2-D": ((6, 9), (6, 9, 3), np.uint8, Kernel(1.0, "image", 13.0, 80.0), None),
    "gray 2-D": ((6, 9), (6, 9), np.float32, Kernel(1.0, "image", 0.1, 5.0), None),
    "per-channel sfeat": ((4, 5), (4, 5, 2), np.float64,
                          Kernel(1.0, "image", (0.5, 2.0), None), None),
    "volume with spacing": ((3, 4, 5), (3, 4, 5, 1), np.uint16,
                            Kernel(1.0, "image", 100.0, 2.0), (2.5, 1.0, 0.5)),
    "positions only": ((3, 4, 5), (3, 4, 5), np.uint8, Kernel(1.0, None, 1.0, 3.0),
                       (1.0, 1.0, 2.0)),
}


@pytest.mark.parametrize("case", CASES)
def test_numpy_and_torch_build_the_same_features_bit_for_bit(case, rng):
    torch = pytest.importorskip("torch")
    spatial, shape, dtype, spec, spacing = CASES[case]
    image = (rng.random(shape) * 200).astype(dtype)
    ref = kernel_features(spec, image, spatial, spacing=spacing)
    out = kernel_features(spec, torch.from_numpy(image), spatial, spacing=spacing,
                          device="cpu")
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), ref)
    f64 = kernel_features(spec, torch.from_numpy(image), spatial, spacing=spacing,
                          device="cpu", dtype=torch.float64)
    np.testing.assert_array_equal(f64.float().numpy(), ref)


def test_named_and_callable_features(rng):
    depth = rng.random((4, 6))
    spec = Kernel(2.0, "depth", 0.5, None)
    f = kernel_features(spec, None, (4, 6), features={"depth": depth})
    np.testing.assert_array_equal(f[:, 0], (depth.ravel() / 0.5).astype(np.float32))
    called = Kernel(1.0, lambda im: im[..., 0], 2.0, None)
    image = rng.random((4, 6, 3))
    np.testing.assert_array_equal(kernel_features(called, image, (4, 6))[:, 0],
                                  (image[..., 0].ravel() / 2.0).astype(np.float32))


@pytest.mark.parametrize("device", [None, "cpu"])
def test_bad_features_get_clear_errors(device, rng):
    if device is not None:
        torch = pytest.importorskip("torch")
        wrap = torch.from_numpy
    else:
        def wrap(a):
            return a
    image = rng.random((4, 5, 3)) * 255
    with pytest.raises(ValueError, match="expected"):
        kernel_features(Kernel(1.0, "image", 13.0), wrap(image), (4, 6), device=device)
    with pytest.raises(ValueError, match="2 feature standard deviations for 3"):
        kernel_features(Kernel(1.0, "image", (1.0, 2.0)), wrap(image), (4, 5), device=device)
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kernel_features(Kernel(1.0, "image", 13.0), wrap(bad), (4, 5), device=device)
    with pytest.raises(ValueError, match="too small for this image"):
        kernel_features(Kernel(1.0, "image", 1e-30, 3.0), wrap(image), (4, 5),
                        device=device, name="bilateral")
    with pytest.raises(ValueError, match="pass them as refine"):
        kernel_features(Kernel(1.0, "depth"), wrap(image), (4, 5), device=device)
    with pytest.raises(TypeError, match="numeric"):
        kernel_features(Kernel(1.0, "image"), np.ones((4, 5), bool), (4, 5))


def test_a_float_image_in_unit_range_warns_that_the_colour_kernel_is_blind(rng):
    image = rng.random((8, 9, 3))
    spec = builtin_kernels(**DENSE_CRF_DEFAULTS)[1]
    with pytest.warns(UserWarning, match=r"in \[0.*0-255 units"):
        kernel_features(spec, image, (8, 9), name="bilateral")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel_features(spec, (image * 255).astype(np.uint8), (8, 9))   # 8-bit
        kernel_features(spec, image * 255, (8, 9))                      # floats, 0-255
        kernel_features(Kernel(1.0, "image", 0.1, 80.0), image, (8, 9))  # sfeat for [0, 1]
        kernel_features(builtin_kernels(**DENSE_CRF_DEFAULTS)[0], image, (8, 9))


def test_dense_crf_warns_on_a_unit_range_image_and_not_on_its_uint8_copy(rng):
    image = rng.random((10, 12, 3)).astype(np.float32)
    scores = rng.normal(size=(10, 12, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match="bilateral kernel's colour standard deviation"):
        DenseCRF(n_iter=1).refine(image, scores, kind="logits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DenseCRF(n_iter=1).refine((image * 255).astype(np.uint8), scores, kind="logits")


def test_compat_matrix_forms():
    assert compat_matrix("potts", 3) is None
    np.testing.assert_array_equal(compat_matrix([1.0, 2.0], 2), -np.diag([1.0, 2.0]))
    m = np.array([[0.0, 1.0], [3.0, 0.0]])
    np.testing.assert_array_equal(compat_matrix(m, 2), [[0.0, 2.0], [2.0, 0.0]])
    with pytest.raises(ValueError, match="3 per-class weights for 2"):
        compat_matrix([1.0, 2.0, 3.0], 2)
    with pytest.raises(ValueError, match="shape"):
        compat_matrix(np.ones((2, 3)), 2)
    with pytest.raises(ValueError, match="NaN"):
        compat_matrix([np.nan, 1.0], 2)


def test_crfrnn_builds_the_features_dense_crf_builds(rng):
    torch = pytest.importorskip("torch")
    from hybridseg.crf._torch_lattice import NormalizedKernel
    from hybridseg.deep import CRFRNN

    image = rng.integers(0, 256, (7, 8, 3), dtype=np.uint8)
    seen = []

    class Spy(NormalizedKernel):
        def __init__(self, features, dtype, engine="auto", splat="auto"):
            seen.append(features.numpy().copy())
            super().__init__(features, dtype, engine, splat)

    import hybridseg.crf._torch_lattice as module

    original = module.NormalizedKernel
    module.NormalizedKernel = Spy
    try:  # the torch lattice: both kernels' features built on the device
        CRFRNN(2).kernels(torch.from_numpy(image).permute(2, 0, 1).double(), torch.float64)
    finally:
        module.NormalizedKernel = original
    crf = DenseCRF()
    for index, spec in enumerate(crf._kernel_specs()):
        np.testing.assert_array_equal(seen[index].astype(np.float32),
                                      crf._spec_features(index, spec, image, (7, 8), None))
    # numba: the very kernels DenseCRF builds (the smoothness one shared)
    numba_kernels = CRFRNN(2).kernels(torch.from_numpy(image).permute(2, 0, 1).float(),
                                      torch.float32)
    built = dict(crf._build_kernels(image, (7, 8), None, crf._weights()))
    for mine, theirs in zip(numba_kernels, (built[0], built[1])):
        np.testing.assert_array_equal(mine.lattice.offsets, theirs.lattice.offsets)
        np.testing.assert_array_equal(mine.weights, theirs.weights)
    assert numba_kernels[0] is built[0]
