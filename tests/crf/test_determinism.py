"""The dense CRF gives the same bytes whatever the number of threads: a run on a laptop
reproduces one on a server. Each thread count runs in its own process, as a user's would
(numba fixes its thread pool when it starts)."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from hybridseg.crf import DenseCRF

PROBE = r"""
import hashlib, sys, numpy as np
from hybridseg.crf import DenseCRF
rng = np.random.default_rng(3)
image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
image[:, 60:] //= 3
logits = rng.normal(0, 2, (90, 120, 6)).astype(np.float32)
mu = rng.random((6, 6))
for crf in (DenseCRF(n_iter=5), DenseCRF(n_iter=5, compat=mu + mu.T)):
    q = np.ascontiguousarray(crf.refine(image, logits, kind="logits"), np.float32)
    print(hashlib.sha256(q.tobytes()).hexdigest())
if "fit" in sys.argv:
    from hybridseg import Unaries
    labels = (logits + 2 * rng.normal(size=logits.shape)).argmax(-1)
    crf = DenseCRF(n_iter=3, max_iter=3, compat="learn").fit(
        Unaries([image], [logits], kind="logits"), [labels])
    print(hashlib.sha256(crf.kernel_weights_.tobytes() + crf.compat_.tobytes()).hexdigest())
if "crfrnn" in sys.argv:
    import torch
    from hybridseg.deep import CRFRNN
    layer = CRFRNN(6, n_iter=3, engine="numba")
    x = torch.from_numpy(logits).permute(2, 0, 1)[None].clone().requires_grad_(True)
    im = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    out = layer(x, im)
    (out * torch.from_numpy(logits).permute(2, 0, 1)[None]).sum().backward()
    parts = [out.detach(), x.grad, layer.gaussian_weight.grad, layer.bilateral_weight.grad,
             layer.compat.grad]
    print(hashlib.sha256(b"".join(p.numpy().tobytes() for p in parts)).hexdigest())
"""


def _digests(threads, *parts):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", PROBE, *parts], env=env, capture_output=True,
                         text=True, timeout=600, check=True)
    return out.stdout.split()


def test_refine_is_the_same_to_the_last_bit_with_one_and_two_threads():
    one, two = _digests(1), _digests(2)
    assert len(one) == 2
    assert one == two


def test_learning_is_the_same_to_the_last_bit_with_one_and_two_threads():
    one, two = _digests(1, "fit"), _digests(2, "fit")
    assert len(one) == 3
    assert one == two


def test_crfrnn_forward_and_gradients_are_the_same_with_one_and_two_threads():
    pytest.importorskip("torch")
    one, two = _digests(1, "crfrnn"), _digests(2, "crfrnn")
    assert len(one) == 3
    assert one == two


def test_refine_is_the_same_with_the_thread_count_changed_in_process(rng):
    import numba

    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    logits = rng.normal(0, 2, (40, 50, 4)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        outs = []
        for t in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(t)
            outs.append(DenseCRF(n_iter=3).refine(image, logits, kind="logits"))
    finally:
        numba.set_num_threads(threads)
    assert hashlib.sha256(outs[0].tobytes()).digest() == \
        hashlib.sha256(outs[-1].tobytes()).digest()


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_batch_composition_and_order_do_not_change_an_image(n_jobs, rng):
    from hybridseg import Unaries

    images = [rng.integers(0, 256, (30 + 5 * i, 40, 3), dtype=np.uint8) for i in range(3)]
    logits = [rng.normal(0, 2, (*im.shape[:2], 4)).astype(np.float32) for im in images]
    crf = DenseCRF(n_iter=3, n_jobs=n_jobs).fit(Unaries(images, logits, kind="logits"))
    batch = crf.predict_proba(Unaries(images, logits, kind="logits"))
    reverse = crf.predict_proba(Unaries(images[::-1], logits[::-1], kind="logits"))[::-1]
    for i, (a, b) in enumerate(zip(batch, reverse)):
        alone = crf.refine(images[i], logits[i], kind="logits")
        np.testing.assert_array_equal(a, alone)
        np.testing.assert_array_equal(b, alone)
