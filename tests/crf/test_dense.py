"""DenseCRF: agreement with the numpy oracle and the exact backend, invariants, bad input.

The parity tests against pydensecrf (the ``peers`` extra) are in test_dense_parity.py."""

import numpy as np
import pytest
from _oracles import dense as oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg import Unaries
from hybridseg.crf import DenseCRF, Kernel
from hybridseg.utils import softmax
from hybridseg.utils.estimator_checks import parametrize_with_image_checks


def image_and_logits(rng, h=24, w=31, k=3, channels=3):
    image = np.zeros((h, w, channels or 1), np.uint8)
    image[:, w // 2:] = 200
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    truth = (np.arange(w) >= w // 2).astype(int)[None].repeat(h, 0) % k
    logits = 1.5 * np.eye(k)[truth] + rng.normal(0, 1.0, (h, w, k))
    return (image if channels else image[..., 0]), logits.astype(np.float32), truth


@parametrize_with_image_checks([DenseCRF(n_iter=3), DenseCRF(n_iter=2, compat=np.eye(3) * -1.0)])
def test_image_checks(estimator, check):
    check(estimator)


def test_output_is_distribution_and_smooths(rng):
    image, logits, truth = image_and_logits(rng)
    q = DenseCRF(n_iter=5).refine(image, logits, kind="logits")
    assert q.shape == logits.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(-1), 1, atol=1e-5)
    assert (q.argmax(-1) == truth).mean() > (logits.argmax(-1) == truth).mean()


@settings(max_examples=20)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_zero_pairwise_weight_returns_unary_softmax(n_iter, k, seed):
    rng = np.random.default_rng(seed)
    image, logits, _ = image_and_logits(rng, h=9, w=11, k=k)
    crf = DenseCRF(n_iter=n_iter, gaussian_weight=0, bilateral_weight=0)
    np.testing.assert_allclose(crf.refine(image, logits, kind="logits"), softmax(logits),
                               rtol=1e-5, atol=1e-6)


@settings(max_examples=15)
@given(st.integers(2, 5), st.integers(0, 2**31 - 1), st.sampled_from([None, 1, 3]))
def test_outputs_are_distributions_and_potts_is_permutation_equivariant(k, seed, channels):
    rng = np.random.default_rng(seed)
    image, logits, _ = image_and_logits(rng, h=10, w=13, k=k, channels=channels)
    crf = DenseCRF(n_iter=3)
    q = crf.refine(image, logits, kind="logits")
    assert np.isfinite(q).all() and (q >= 0).all()
    np.testing.assert_allclose(q.sum(-1), 1, atol=1e-5)
    perm = rng.permutation(k)
    qp = crf.refine(image, logits[..., perm], kind="logits")
    np.testing.assert_allclose(qp, q[..., perm], rtol=1e-4, atol=1e-5)


def oracle_refine(image, logits, n_iter=5, gaussian_sxy=3.0, gaussian_weight=3.0,
                  bilateral_sxy=80.0, bilateral_srgb=13.0, bilateral_weight=10.0, mu=None):
    """``DenseCRF.refine(image, logits, kind="logits")`` by the float64 numpy oracle, with
    exact Gaussian kernels; ``mu`` the compatibility as DenseCRF uses it (None: Potts)."""
    h, w, k = logits.shape
    feats = oracle.dense_crf_features(image, gaussian_sxy, bilateral_sxy, bilateral_srgb)
    kernels = [oracle.normalised_kernel(f) for f in feats]
    mu = -np.eye(k) if mu is None else mu
    z, _ = oracle.mean_field(logits.reshape(h * w, k), kernels,
                             [gaussian_weight, bilateral_weight], mu, n_iter)
    return oracle.softmax(z).reshape(h, w, k)


TINY = dict(n_iter=4, gaussian_sxy=2.0, gaussian_weight=2.0, bilateral_sxy=5.0,
            bilateral_srgb=30.0, bilateral_weight=4.0)


@pytest.mark.parametrize("channels", [3, None])
@pytest.mark.parametrize("compat", ["potts", "vector", "matrix", "asymmetric"])
def test_exact_backend_is_the_oracle_mean_field(rng, compat, channels):
    image, logits, _ = image_and_logits(rng, h=7, w=9, k=3, channels=channels)
    # Each compat as given, and as DenseCRF reads it: -I, -diag(c), a matrix's symmetric
    # part (pydensecrf's MatrixCompatibility).
    if compat == "potts":
        given, mu = "potts", -np.eye(3)
    elif compat == "vector":
        given = np.array([1.0, 2.0, 0.5])
        mu = -np.diag(given)
    elif compat == "matrix":
        given = mu = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [2.0, 0.5, 0.0]])
    else:
        given = rng.uniform(-1, 2, (3, 3))
        mu = 0.5 * (given + given.T)
    q = DenseCRF(backend="exact", compat=given, **TINY).refine(image, logits, kind="logits")
    ref = oracle_refine(image, logits, mu=mu, **TINY)
    np.testing.assert_allclose(q, ref, rtol=1e-4, atol=2e-6)
    # The pairwise terms are strong enough here that a wrong model could not pass.
    assert np.abs(ref - softmax(logits)).max() > 0.2


def test_lattice_agrees_with_the_oracle_on_tiny_images(rng):
    image, logits, _ = image_and_logits(rng, h=16, w=20, k=3)
    params = dict(n_iter=5, gaussian_sxy=2.0, bilateral_sxy=8.0, bilateral_srgb=30.0)
    fast = DenseCRF(**params).refine(image, logits, kind="logits")
    exact = oracle_refine(image, logits, **params)
    # The lattice approximates the Gaussian kernels: marginals agree to a few hundredths,
    # labels almost everywhere.
    assert np.abs(fast - exact).mean() < 0.02
    assert (fast.argmax(-1) == exact.argmax(-1)).mean() > 0.97


def test_potts_equals_its_matrix_forms(rng):
    image, logits, _ = image_and_logits(rng, k=4)
    potts = DenseCRF(n_iter=4).refine(image, logits, kind="logits")
    for compat in (-np.eye(4), 1 - np.eye(4), np.ones(4)):
        other = DenseCRF(n_iter=4, compat=compat).refine(image, logits, kind="logits")
        np.testing.assert_allclose(other, potts, rtol=1e-4, atol=1e-5)


def test_proba_and_logits_kinds_agree(rng):
    image, logits, _ = image_and_logits(rng)
    p = softmax(logits)
    a = DenseCRF(n_iter=3).refine(image, p, kind="proba")
    b = DenseCRF(n_iter=3).refine(image, logits, kind="logits")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_any_layout_and_dtype(rng):
    image, logits, _ = image_and_logits(rng)
    ref = DenseCRF(n_iter=3).refine(image, logits, kind="logits")
    variants = [
        (np.asfortranarray(image), np.asfortranarray(logits)),
        (image.astype(np.float64), logits.astype(np.float64)),
        (image[:, ::-1][:, ::-1], logits.astype(np.float16).astype(np.float32)),
    ]
    for im, lg in variants:
        out = DenseCRF(n_iter=3).refine(im, lg, kind="logits")
        np.testing.assert_allclose(out, ref, atol=2e-3)


def test_single_class_and_zero_iterations(rng):
    image, logits, _ = image_and_logits(rng)
    assert (DenseCRF().refine(image, logits[..., :1], kind="logits") == 1).all()
    np.testing.assert_allclose(DenseCRF(n_iter=0).refine(image, logits, kind="logits"),
                               softmax(logits), rtol=1e-5)


def test_huge_and_tiny_sigmas(rng):
    image, logits, _ = image_and_logits(rng)
    for params in (dict(gaussian_sxy=1e6, bilateral_sxy=1e6, bilateral_srgb=1e6),
                   dict(gaussian_sxy=1e-3, bilateral_sxy=1e-3, bilateral_srgb=1e-3)):
        q = DenseCRF(n_iter=3, **params).refine(image, logits, kind="logits")
        np.testing.assert_allclose(q.sum(-1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        DenseCRF(gaussian_sxy=1e-9).refine(image, logits, kind="logits")


def test_bad_input(rng):
    image, logits, _ = image_and_logits(rng)
    crf = DenseCRF(n_iter=2)
    bad = logits.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        crf.refine(image, bad, kind="logits")
    with pytest.raises(ValueError, match="kind='logits'"):
        crf.refine(image, softmax(logits) * 1.1, kind="proba")
    with pytest.raises(ValueError, match="but its image is"):
        crf.refine(image[:-1], logits, kind="logits")
    with pytest.raises(ValueError, match="compat"):
        DenseCRF(compat=np.eye(5)).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="'gaussian_sxy'"):
        DenseCRF(gaussian_sxy=0).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="'backend'"):
        DenseCRF(backend="cuda").refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="too many"):
        DenseCRF(backend="exact").refine(np.zeros((80, 80)), np.zeros((80, 80, 2)),
                                         kind="logits")


def test_predict_on_unaries_with_n_jobs(rng):
    pairs = [image_and_logits(rng, h=12 + i, w=14) for i in range(4)]
    U = Unaries([p[0] for p in pairs], [p[1] for p in pairs], kind="logits")
    one = DenseCRF(n_iter=2).fit(U).predict_proba(U)
    two = DenseCRF(n_iter=2, n_jobs=2).fit(U).predict_proba(U)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# --------------------------------------------------------------------------- energy trace
def test_trace_energy_matches_the_oracle(rng):
    from hybridseg.crf._meanfield import mean_field

    image, logits, _ = image_and_logits(rng, h=8, w=10, k=3)
    crf = DenseCRF(n_iter=3, backend="exact", gaussian_sxy=2.0, bilateral_sxy=5.0)
    built = crf._build_kernels(image, (8, 10), None, crf._weights())
    kernels = [kern for _, kern in built]
    weights = [crf._weights()[i] for i, _ in built]
    unary = -logits.reshape(-1, 3)
    qs, trace = [], {}
    mean_field(unary, kernels, weights, None, 3, callback=lambda it, q: qs.append(q.copy()),
               trace=trace)
    mats = [w * kern.matrix.astype(np.float64) for w, kern in zip(weights, kernels)]
    expected = [oracle.free_energy(unary, q.astype(np.float64), mats, None) for q in qs]
    np.testing.assert_allclose(trace["energy"], expected, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 4), st.integers(0, 2**31 - 1), st.floats(0.5, 20.0))
def test_potts_energy_never_rises_with_exact_kernels(k, seed, weight):
    # Exact Gaussian kernels are positive semi-definite and Potts is -I: the pairwise
    # term is concave, so parallel updates cannot raise the free energy (Krahenbuhl &
    # Koltun 2013). float32 arithmetic allows a rounding-sized slack.
    rng = np.random.default_rng(seed)
    image, logits, _ = image_and_logits(rng, h=9, w=11, k=k)
    crf = DenseCRF(n_iter=6, backend="exact", gaussian_weight=weight,
                   bilateral_weight=2 * weight, gaussian_sxy=2.0, bilateral_sxy=6.0)
    _, trace = crf.refine(image, logits, kind="logits", return_trace=True)
    steps = np.diff(trace.energy)
    assert (steps <= 1e-5 * np.abs(trace.energy).max()).all(), steps


def test_trace_on_the_lattice(rng):
    image, logits, _ = image_and_logits(rng, h=40, w=50, k=4)
    q, trace = DenseCRF(n_iter=5).refine(image, logits, kind="logits", return_trace=True)
    np.testing.assert_array_equal(q, DenseCRF(n_iter=5).refine(image, logits, kind="logits"))
    assert trace.energy.shape == (6,) and trace.seconds.shape == (5,)
    assert trace.changed.shape == (5,) and (trace.seconds > 0).all()
    assert trace.build_seconds > 0
    # The lattice kernels are nearly symmetric PSD: with Potts the energy falls overall
    # and rises, if at all, by rounding-sized amounts.
    assert trace.energy[-1] < trace.energy[0]
    assert (np.diff(trace.energy) <= 1e-4 * np.abs(trace.energy).max()).all()


# --------------------------------------------------------------------------- volumes, kernels
def test_volume_matches_exact_and_spacing_scales_positions(rng):
    d, h, w, k = 4, 6, 7, 3
    vol = rng.uniform(0, 255, (d, h, w))
    logits = rng.normal(0, 1, (d, h, w, k)).astype(np.float32)
    params = dict(n_iter=3, gaussian_sxy=2.0, bilateral_sxy=4.0, bilateral_srgb=40.0)
    fast = DenseCRF(**params).refine(vol, logits, kind="logits")
    exact = DenseCRF(backend="exact", **params).refine(vol, logits, kind="logits")
    assert fast.shape == (d, h, w, k)
    np.testing.assert_allclose(fast.sum(-1), 1, atol=1e-5)
    assert np.abs(fast - exact).mean() < 0.03
    # Halving the spacing of every axis is doubling every spatial sigma.
    a = DenseCRF(backend="exact", spacing=(0.5, 0.5, 0.5), **params).refine(
        vol, logits, kind="logits")
    b = DenseCRF(backend="exact", **{**params, "gaussian_sxy": 4.0, "bilateral_sxy": 8.0}
                 ).refine(vol, logits, kind="logits")
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Anisotropic spacing: a coarse z axis decouples the slices.
    far = DenseCRF(backend="exact", spacing=(1e4, 1.0, 1.0), **params).refine(
        vol, logits, kind="logits")
    for z in range(d):
        np.testing.assert_allclose(
            far[z], DenseCRF(backend="exact", **params).refine(vol[z], logits[z],
                                                                kind="logits"), atol=1e-5)


def test_extra_kernels_read_image_named_and_callable_features(rng):
    image, logits, _ = image_and_logits(rng, h=12, w=15, k=3)
    base = DenseCRF(n_iter=3, gaussian_weight=0.0, backend="exact")
    as_extra = DenseCRF(n_iter=3, gaussian_weight=0.0, bilateral_weight=0.0, backend="exact",
                        extra_kernels=[Kernel(10.0, "image", 13.0, 80.0)])
    ref = base.refine(image, logits, kind="logits")
    np.testing.assert_allclose(as_extra.refine(image, logits, kind="logits"), ref, atol=1e-6)
    named = as_extra.set_params(extra_kernels=[Kernel(10.0, "rgb", (13.0,) * 3, 80.0)])
    np.testing.assert_allclose(
        named.refine(image, logits, kind="logits", features={"rgb": image}), ref, atol=1e-6)
    called = DenseCRF(n_iter=3, gaussian_weight=0.0, bilateral_weight=0.0, backend="exact",
                      extra_kernels=[Kernel(10.0, lambda im: im / 13.0, 1.0, 80.0)])
    np.testing.assert_allclose(called.refine(image, logits, kind="logits"), ref, atol=1e-5)
    # A kernel on features alone (no positions).
    depth = np.linspace(0, 1, 15)[None].repeat(12, 0)
    q = DenseCRF(n_iter=2, extra_kernels=[Kernel(3.0, "depth", 0.1)]).refine(
        image, logits, kind="logits", features={"depth": depth})
    np.testing.assert_allclose(q.sum(-1), 1, atol=1e-5)


def test_volume_and_kernel_errors(rng):
    image, logits, _ = image_and_logits(rng, h=6, w=7, k=3)
    crf = DenseCRF(n_iter=1)
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        crf.refine(image[..., 0], logits[None], kind="logits")
    with pytest.raises(ValueError, match="volume"):
        crf.refine(np.zeros((2, 6, 8)), np.zeros((2, 6, 7, 3)), kind="logits")
    with pytest.raises(ValueError, match="spacing"):
        DenseCRF(spacing=(1.0, 1.0, 1.0)).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="spacing"):
        DenseCRF(spacing=(1.0, -1.0)).refine(image, logits, kind="logits")
    with pytest.raises(TypeError, match="extra_kernels\\[0\\]"):
        DenseCRF(extra_kernels=[{"weight": 1.0}]).refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="sfeat"):
        DenseCRF(extra_kernels=[Kernel(sfeat=0.0)]).refine(image, logits, kind="logits")
    needs_depth = DenseCRF(extra_kernels=[Kernel(1.0, "depth", 1.0, 3.0)])
    with pytest.raises(ValueError, match="features=\\{'depth'"):
        needs_depth.refine(image, logits, kind="logits")
    with pytest.raises(ValueError, match="have shape"):
        needs_depth.refine(image, logits, kind="logits", features={"depth": np.zeros((6, 6))})
    with pytest.raises(ValueError, match="NaN"):
        needs_depth.refine(image, logits, kind="logits",
                           features={"depth": np.full((6, 7), np.nan)})
    with pytest.raises(ValueError, match="2 feature standard deviations"):
        DenseCRF(extra_kernels=[Kernel(1.0, "image", (1.0, 2.0))]).refine(
            image, logits, kind="logits")
    with pytest.raises(TypeError, match="mapping"):
        crf.refine(image, logits, kind="logits", features=[1, 2])
    with pytest.raises(ValueError, match="return_trace"):
        DenseCRF(backend="pydensecrf").refine(image, logits, kind="logits",
                                              return_trace=True)


@pytest.mark.parametrize("value", [np.inf, 1e300, np.nan])
@pytest.mark.parametrize("name", ["gaussian_weight", "bilateral_weight"])
def test_weights_that_would_give_nan_are_refused(name, value):
    im = np.zeros((8, 8, 3), np.uint8)
    p = np.full((8, 8, 2), 0.5, np.float32)
    with pytest.raises(ValueError, match=f"'{name}' parameter of DenseCRF"):
        DenseCRF(**{name: value}).refine(im, p)


def test_big_endian_images_give_the_native_result_on_every_backend():
    rng = np.random.default_rng(0)
    im = rng.integers(0, 60000, (16, 16, 3)).astype(">u2")
    p = rng.dirichlet(np.ones(3), (16, 16)).astype(np.float32)
    native = DenseCRF(bilateral_srgb=3000).refine(im.astype("<u2"), p)
    for backend in ("numba", "torch"):
        if backend == "torch":
            pytest.importorskip("torch")
        out = DenseCRF(bilateral_srgb=3000, backend=backend, device="cpu").refine(im, p)
        assert (out.argmax(-1) == native.argmax(-1)).mean() >= 0.995


def test_an_image_beyond_the_machine_gets_a_memory_plan(monkeypatch):
    from hybridseg.utils import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 100 * 2**20)  # 100 MiB
    im = np.zeros((600, 600, 3), np.uint8)
    p = np.full((600, 600, 21), 1 / 21, np.float32)
    with pytest.raises(MemoryError, match="a dense CRF on a 600x600 image with 21 classes "
                                          r"needs 3[0-9.]+ MiB.*refine_tiles"):
        DenseCRF().refine(im, p)
    with pytest.raises(MemoryError, match="backend='numba'"):
        DenseCRF(backend="exact").refine(im[:64, :64], p[:64, :64])
