"""DenseCRF against its reference peer pydensecrf (the ``peers`` extra): every test here
needs it, so the module skips as a whole where it is absent."""

import glob
import os
from pathlib import Path

import numpy as np
import pytest

from hybridseg.crf import DenseCRF

pytest.importorskip("pydensecrf.densecrf", reason="the peers extra is not installed")

SHARED = Path(os.environ.get("HYBRIDSEG_DATA", Path(__file__).parents[3] / "shared" / "data"))


def _example_unaries(n):
    from PIL import Image

    d = SHARED / "pydensecrf_examples"
    if not d.is_dir():
        pytest.skip(f"pydensecrf examples not found at {d}")
    img = np.asarray(Image.open(d / f"im{n}.png").convert("RGB"))
    a = np.asarray(Image.open(d / f"anno{n}.png").convert("RGB")).astype(np.uint32)
    code = a[..., 0] | (a[..., 1] << 8) | (a[..., 2] << 16)
    colors, lab = np.unique(code, return_inverse=True)
    lab = lab.reshape(code.shape)
    unknown = colors[0] == 0
    k = len(colors) - int(unknown)
    lab = lab - int(unknown)
    proba = np.full((*lab.shape, k), 1.0 / k, np.float32)
    m = lab >= 0
    proba[m] = 0.3 / (k - 1)
    proba[m, lab[m]] = 0.7
    return img, proba


@pytest.mark.data
@pytest.mark.parametrize("n", [1, 2, 3])
def test_matches_pydensecrf_on_its_examples(n):
    img, proba = _example_unaries(n)
    ours = DenseCRF(n_iter=5).refine(img, proba)
    ref = DenseCRF(n_iter=5, backend="pydensecrf").refine(img, proba)
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.995
    np.testing.assert_allclose(ours, ref, atol=5e-3)


@pytest.mark.data
def test_matches_pydensecrf_on_camvid_with_matrix_compat(rng):
    from PIL import Image

    files = sorted(glob.glob(str(SHARED / "camvid" / "val" / "*.png")))[:2]
    if not files:
        pytest.skip("CamVid not found in the shared data")
    mu = rng.uniform(0, 1, (11, 11))
    for f in files:
        img = np.asarray(Image.open(f))
        gt = np.asarray(Image.open(f.replace("/val/", "/valannot/"))).astype(int) % 11
        logits = 2.0 * np.eye(11)[gt] + rng.normal(0, 1.5, (*gt.shape, 11))
        for compat in ("potts", mu):
            ours = DenseCRF(n_iter=10, compat=compat).refine(img, logits, kind="logits")
            ref = DenseCRF(n_iter=10, compat=compat, backend="pydensecrf").refine(
                img, logits, kind="logits")
            assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.995
