"""The dense CRF's mean-field engine (crf/_meanfield.py) against the float64 oracle, and
the callers that must agree because they run it: DenseCRF.fit's gradients and CRFRNN's."""

import numpy as np
import pytest
from _oracles import dense as oracle

from hybridseg.crf import DenseCRF, LatticeKernel, mean_field_backward, mean_field_forward
from hybridseg.crf._exact import ExactKernel
from hybridseg.crf._meanfield import POSITION_KERNELS_KEPT, position_kernel


def _problem(rng, n, k, kind):
    feats = [rng.normal(0, 2, (n, 2)).astype(np.float32),
             rng.normal(0, 1.5, (n, 5)).astype(np.float32)]
    if kind == "exact":
        kernels = [ExactKernel(f) for f in feats]
        mats = [kern.matrix.astype(np.float64) for kern in kernels]
    else:
        kernels = [LatticeKernel(f) for f in feats]
        # the lattice filter as a matrix: its columns are the filtered unit vectors
        mats = [kern.filter(np.eye(n, dtype=np.float32)).astype(np.float64)
                for kern in kernels]
    return kernels, mats


@pytest.mark.parametrize("kind", ["lattice", "exact"])
@pytest.mark.parametrize("compat", ["potts", "matrix"])
@pytest.mark.parametrize("k", [3, 11, 21])
def test_forward_and_backward_are_the_oracle_s(rng, kind, compat, k):
    n, n_iter = 150, 4
    kernels, mats = _problem(rng, n, k, kind)
    weights = np.array([1.5, 2.5])
    mu = None
    if compat == "matrix":
        mu = rng.normal(0, 1, (k, k))
    a = rng.normal(0, 2, (n, k)).astype(np.float32)
    z, tape = mean_field_forward(a, kernels, weights, mu, n_iter, output="logits", tape=True)
    r = rng.normal(0, 1, (n, k)).astype(np.float32)
    ga, gw, gmu = mean_field_backward(tape, r, want_mu=True)  # mu's too, at -I for Potts
    z_ref, ref_tape = oracle.mean_field(a, mats, weights, -np.eye(k) if mu is None else mu,
                                        n_iter)
    ga_ref, gw_ref, gmu_ref = oracle.mean_field_backward(ref_tape, r)
    np.testing.assert_allclose(z, z_ref, atol=1e-5 * np.abs(z_ref).max())
    np.testing.assert_allclose(ga, ga_ref, atol=1e-5 * np.abs(ga_ref).max())
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-5, atol=1e-5 * np.abs(gw_ref).max())
    np.testing.assert_allclose(gmu, gmu_ref, atol=1e-5 * np.abs(gmu_ref).max())
    assert mean_field_backward(tape, r)[2] is None
    q = mean_field_forward(a, kernels, weights, mu, n_iter)
    np.testing.assert_allclose(q, oracle.softmax(z_ref), atol=1e-6)


@pytest.mark.parametrize("compat", ["potts", "matrix"])
def test_fused_passes_over_many_blocks_are_the_unfused_recursion(rng, compat):
    # 20,000 points run in several blocks: the fused slice-update-splat passes against the
    # recursion written with each kernel's own filter (itself checked against the oracle).
    n, k, n_iter = 20000, 5, 3
    kernels = [LatticeKernel(rng.normal(0, 4, (n, d)).astype(np.float32)) for d in (2, 5)]
    assert kernels[0].lattice.n_blocks > 1
    weights = np.array([3.0, 10.0])
    mu = None if compat == "potts" else rng.normal(0, 1, (k, k)).astype(np.float32)
    mu_ref = -np.eye(k) if mu is None else mu.astype(np.float64)
    a = rng.normal(0, 2, (n, k)).astype(np.float32)
    z, tape = mean_field_forward(a, kernels, weights, mu, n_iter, output="logits", tape=True)
    zr, qs, msgs = a.astype(np.float64), [], []
    for _ in range(n_iter):
        q = oracle.softmax(zr)
        m = sum(w * kern.filter(q.astype(np.float32)) for w, kern in zip(weights, kernels))
        qs.append(q)
        msgs.append(m)
        zr = a - m @ mu_ref.T
    np.testing.assert_allclose(z, zr, atol=2e-5 * np.abs(zr).max())
    r = rng.normal(0, 1, (n, k)).astype(np.float32)
    ga, gw, gmu = mean_field_backward(tape, r, want_mu=True)
    g, ga_ref, gw_ref, gmu_ref = r.astype(np.float64), 0.0, np.zeros(2), 0.0
    for q, m in zip(reversed(qs), reversed(msgs)):
        ga_ref = ga_ref + g
        gmu_ref = gmu_ref - g.T @ m
        gm = -g @ mu_ref
        hs = [kern.filter(gm.astype(np.float32), transpose=True) for kern in kernels]
        gw_ref += [np.sum(h * q) for h in hs]
        gq = sum(w * h for w, h in zip(weights, hs))
        g = q * (gq - (gq * q).sum(1, keepdims=True))
    ga_ref = ga_ref + g
    np.testing.assert_allclose(ga, ga_ref, atol=1e-4 * np.abs(ga_ref).max())
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-4)
    np.testing.assert_allclose(gmu, gmu_ref, rtol=1e-4, atol=1e-4 * np.abs(gmu_ref).max())


def test_no_iterations_and_zero_weights(rng):
    kernels, _ = _problem(rng, 60, 4, "lattice")
    a = rng.normal(0, 1, (60, 4)).astype(np.float32)
    np.testing.assert_array_equal(mean_field_forward(a, kernels, [1.0, 1.0], None, 0,
                                                     output="logits"), a)
    q = mean_field_forward(a, kernels, [0.0, 0.0], None, 3)
    np.testing.assert_allclose(q, oracle.softmax(a), atol=1e-6)
    # a zero weight still gets its gradient
    _, tape = mean_field_forward(a, kernels, [0.0, 2.0], None, 2, tape=True)
    _, gw, _ = mean_field_backward(tape, np.ones((60, 4), np.float32) - 4 * (a > 0))
    assert gw[0] != 0.0


def test_bad_arguments(rng):
    kernels, _ = _problem(rng, 30, 3, "lattice")
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        mean_field_forward(np.zeros(30), kernels, [1, 1], None, 2)
    with pytest.raises(ValueError, match="compat must be"):
        mean_field_forward(np.zeros((30, 3)), kernels, [1, 1], np.eye(2), 2)
    with pytest.raises(ValueError, match="output must be"):
        mean_field_forward(np.zeros((30, 3)), kernels, [1, 1], None, 2, output="q")


def test_position_kernel_is_a_fresh_build_and_is_kept():
    a = position_kernel((30, 40), 3.0)
    assert position_kernel((30, 40), 3.0) is a
    fresh = LatticeKernel(np.stack(np.meshgrid(np.arange(40) / 3.0, np.arange(30) / 3.0),
                                   -1).reshape(-1, 2))
    np.testing.assert_array_equal(a.lattice.offsets, fresh.lattice.offsets)
    np.testing.assert_array_equal(a.weights, fresh.weights)
    for size in range(POSITION_KERNELS_KEPT):
        position_kernel((31 + size, 40), 3.0)
    assert position_kernel((30, 40), 3.0) is not a  # the oldest is dropped


@pytest.mark.parametrize("learn_compat", [False, True])
def test_dense_crf_fit_and_crfrnn_have_the_same_gradients(rng, learn_compat):
    # The promise: learning the dense CRF and training CRF-as-RNN differentiate
    # the same mean field. Same image, logits, parameters and log loss: same gradients.
    torch = pytest.importorskip("torch")
    from hybridseg.crf._learn import LearningProblem
    from hybridseg.deep import CRFRNN

    h, w, k, n_iter = 12, 17, 3, 3
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    logits = rng.normal(0, 2, (h, w, k)).astype(np.float32)
    labels = rng.integers(-1, k, (h, w))
    crf = DenseCRF(n_iter=n_iter)
    weights = crf._weights()
    kernels = [kern for _, kern in crf._build_kernels(image, (h, w), None, weights)]
    problem = LearningProblem(-logits.reshape(-1, k), labels.reshape(-1), kernels)
    loss, g_w, g_mu = problem.loss_and_gradient(weights, -np.eye(k), n_iter, np.ones(k),
                                                learn_compat)

    layer = CRFRNN(k, n_iter=n_iter)
    layer.compat.requires_grad_(learn_compat)
    z = layer(torch.from_numpy(logits).permute(2, 0, 1)[None],
              torch.from_numpy(image).permute(2, 0, 1)[None].float())
    y = torch.from_numpy(labels.reshape(-1))
    keep = y >= 0
    logq = torch.log_softmax(z[0].reshape(k, -1).T, dim=1)
    torch_loss = -logq[keep, y[keep]].sum()
    torch_loss.backward()
    assert float(torch_loss.detach()) == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose([float(layer.gaussian_weight.grad),
                                float(layer.bilateral_weight.grad)], g_w, rtol=1e-5)
    if learn_compat:
        np.testing.assert_allclose(layer.compat.grad.numpy(), g_mu, rtol=1e-4,
                                   atol=1e-5 * np.abs(g_mu).max())


def test_vectorised_log_and_exp_are_float32_accurate():
    import numba

    from hybridseg.crf._meanfield import _log_floored
    from hybridseg.crf._simd import _exp8

    @numba.njit
    def both(x, y):
        lo, ex = np.empty_like(x), y.copy()
        for i in range(x.size):
            lo[i] = _log_floored(x[i])
        for c0 in range(0, y.size, 8):
            _exp8(ex, c0, np.float32(0.0))
        return lo, ex

    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-69, 69, 100000)), [0.0, 1e-35, 1.0, 0.5, 2.0,
                                                               0.70710677, 1.4142135]])
    x = x.astype(np.float32)
    y = np.concatenate([rng.uniform(-60, 0, 99996), [0.0, -60.0, -61.0, -1e4]]).astype(
        np.float32)
    lo, ex = both(x, y)
    want = np.log(np.maximum(x.astype(np.float64), 1e-30))
    assert np.all(np.abs(lo - want) <= 2 * np.spacing(np.abs(want).astype(np.float32)))
    want = np.exp(np.maximum(y.astype(np.float64), -60.0))  # floored at exp(-60)
    np.testing.assert_allclose(ex, want, rtol=3e-7)


def test_a_callback_sees_every_iteration_with_or_without_a_tape(rng):
    kernels, _ = _problem(rng, 80, 3, "lattice")
    a = rng.normal(0, 1, (80, 3)).astype(np.float32)
    from hybridseg.crf._meanfield import forward, logits_rows

    seen = {}
    for tape in (False, True):
        qs = []
        out = forward(logits_rows(a, "logits"), kernels, [1.0, 2.0], None, 3,
                      k=3, tape=tape, callback=lambda t, q, qs=qs: qs.append(q.copy()))
        seen[tape] = qs
        np.testing.assert_allclose(qs[-1], out[0] if tape else out, atol=1e-7)
    assert len(seen[False]) == len(seen[True]) == 4
    for x, y in zip(seen[False], seen[True]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kp", [8, 24])
def test_one_point_splat_matches_numpy(rng, kp):
    # _scatter_add: 8 labels at a time (_splat8), rows padded to a multiple of 8
    import numba

    from hybridseg.crf._meanfield import _scatter_add

    @numba.njit
    def splat_all(acc, rows, w, values, scale):
        for i in range(values.shape[0]):
            _scatter_add(acc, rows, w, i, values[i], scale)

    n, m = 40, 9
    rows = np.stack([rng.choice(m, 6, replace=False) for _ in range(n)]).astype(np.int32)
    w = rng.random((n, 6)).astype(np.float32)
    values = rng.normal(0, 1, (n, kp)).astype(np.float32)
    acc = rng.normal(0, 1, (m, kp)).astype(np.float32)
    want = acc.astype(np.float64)
    for i in range(n):
        for r in range(6):
            want[rows[i, r]] += 0.5 * w[i, r] * values[i]
    splat_all(acc, rows, w, values, np.float32(0.5))
    np.testing.assert_allclose(acc, want, rtol=1e-5, atol=1e-5)


def test_dense_kernels_are_dense_crf_s(rng):
    from hybridseg.crf import dense_kernels

    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    crf = DenseCRF()
    built = dict(crf._build_kernels(image, (9, 11), None, crf._weights()))
    mine = dense_kernels(image)
    assert mine[0] is built[0]
    np.testing.assert_array_equal(mine[1].lattice.offsets, built[1].lattice.offsets)
    np.testing.assert_array_equal(mine[1].weights, built[1].weights)
    with pytest.raises(ValueError, match="channels last"):
        dense_kernels(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="engine must be"):
        dense_kernels(image, engine="cuda")
    with pytest.raises(ValueError, match="needs the image as a torch tensor"):
        dense_kernels(image, engine="torch")


def test_work_pool_keeps_arrays_by_shape_within_its_cap():
    from hybridseg.crf._meanfield import _Pool

    pool = _Pool(3 * 4 * 1000)  # three (10, 100) float32 arrays
    arrays = [pool.take((10, 100)) for _ in range(4)]
    assert len({id(a) for a in arrays}) == 4
    pool.give(arrays)  # the fourth does not fit
    assert pool._bytes == 3 * 4000
    again = [pool.take((10, 100)) for _ in range(3)]
    assert {id(a) for a in again} <= {id(a) for a in arrays}
    assert pool._bytes == 0
    pool.give(again[:2])
    pool.give([np.empty((5, 100), np.float32), np.empty((5, 100), np.float32)])
    assert pool._bytes <= 3 * 4000 and pool.take((5, 100)).shape == (5, 100)
    # views, other dtypes and non-contiguous arrays are never kept
    pool.clear()
    base = np.empty((10, 100), np.float32)
    pool.give([base[:5], np.empty((10, 100)), base.T])
    assert pool._bytes == 0


def test_a_pooled_tape_keeps_its_arrays_until_it_is_collected(rng):
    import gc

    from hybridseg.crf._meanfield import _POOL, backward, forward, logits_rows

    kernels, _ = _problem(rng, 200, 5, "lattice")
    a = logits_rows(rng.normal(0, 2, (200, 5)).astype(np.float32), "logits")
    r = rng.normal(0, 1, (200, 5)).astype(np.float32)
    _, first = forward(a, kernels, [1.0, 2.0], None, 3, k=5, tape=True, pool_tape=True)
    kept = [q.copy() for q in first.qs]
    want = backward(first, r, want_mu=True)
    b = logits_rows(rng.normal(0, 2, (200, 5)).astype(np.float32), "logits")
    _, second = forward(b, kernels, [1.0, 2.0], None, 3, k=5, tape=True, pool_tape=True)
    assert not {id(q) for q in first.qs} & {id(q) for q in second.qs}
    for q, q0 in zip(first.qs, kept):  # the second forward wrote elsewhere
        np.testing.assert_array_equal(q, q0)
    got = backward(first, r, want_mu=True)
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, y)
    ids = {id(q) for q in first.qs}
    del first, got, want
    gc.collect()
    third = [_POOL.take((200, 8)) for _ in range(3)]
    assert ids & {id(q) for q in third}  # given back once collected
    _POOL.give(third)
