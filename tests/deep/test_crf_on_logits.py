"""A CRF on any torch model's logits: ``scores_from_logits`` and the refiners' ``refine``,
for a plain module, a torchvision model (where installed) and the example script."""

import importlib.util
import runpy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from hybridseg import Unaries  # noqa: E402
from hybridseg.crf import DenseCRF, GridCRF  # noqa: E402
from hybridseg.deep import scores_from_logits  # noqa: E402
from hybridseg.metrics import mean_iou  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crf_on_any_logits.py"


def _scene(seed=0, h=40, w=56):
    """A two-region image and a plain torch model that reads a noisy copy of it."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((h, w), np.uint8)
    truth[:, w // 2:] = 1
    truth[h // 3: 2 * h // 3, w // 4: 3 * w // 4] = 2
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.uint8)
    image = colours[truth]
    noisy = image.astype(np.float32) + rng.normal(0, 90, image.shape)
    model = nn.Conv2d(3, 3, 1)  # logits = colour similarity to each class's colour
    with torch.no_grad():
        model.weight[:] = torch.from_numpy(colours.astype(np.float32) / 2000)[:, :, None, None]
        model.bias.zero_()
    x = torch.from_numpy(noisy.transpose(2, 0, 1)[None].astype(np.float32))
    return image, truth, model, x


def test_two_lines_on_a_plain_module_improve_noisy_logits():
    image, truth, model, x = _scene()
    scores = scores_from_logits(model(x))  # gradients attached: detached inside
    dense = DenseCRF(bilateral_srgb=20).refine(image, scores[0], kind="logits")
    grid = GridCRF().refine(image, scores[0], kind="logits")
    for p in (dense, grid):
        assert p.shape == (*truth.shape, 3) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
    alone = mean_iou([truth], [scores[0].argmax(-1)], n_classes=3)
    assert mean_iou([truth], [dense.argmax(-1)], n_classes=3) > alone + 0.05
    assert mean_iou([truth], [grid.argmax(-1)], n_classes=3) > alone + 0.05


def test_refine_equals_the_unaries_path_and_zero_weights_give_the_softmax():
    image, _, model, x = _scene(seed=1)
    s = scores_from_logits(model(x))[0]
    crf = DenseCRF(n_iter=4)
    U = Unaries([image], [s], kind="logits")
    np.testing.assert_allclose(crf.refine(image, s, kind="logits"),
                               crf.fit(U).predict_proba(U)[0], atol=1e-6)
    off = DenseCRF(gaussian_weight=0, bilateral_weight=0).refine(image, s, kind="logits")
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(off, e / e.sum(-1, keepdims=True), atol=1e-5)


def test_scores_from_logits_shapes_and_errors():
    z = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    s = scores_from_logits({"out": z, "aux": z})
    assert [a.shape for a in s] == [(5, 6, 4)] * 2 and s[0].dtype == np.float32
    assert s[1].flags.c_contiguous
    np.testing.assert_allclose(s[1][2, 3], z[1, :, 2, 3].detach().numpy(), rtol=1e-6)
    assert scores_from_logits(np.zeros((4, 5, 6)))[0].shape == (5, 6, 4)
    with pytest.raises(TypeError, match=r"without 'out' or 'logits'.*'aux'"):
        scores_from_logits({"aux": z})
    with pytest.raises(ValueError, match=r"\(N, K, H, W\) or \(K, H, W\)"):
        scores_from_logits(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="NaN"):
        scores_from_logits(torch.full((1, 2, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        scores_from_logits(torch.zeros(0, 2, 3, 3))
    with pytest.raises(TypeError, match="logits: the network returned a list of 1"):
        scores_from_logits([[1.0]])
    with pytest.raises(TypeError, match="numeric"):
        scores_from_logits(np.array([["a"]]))


def test_a_torchvision_segmentation_model():
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    try:
        from torchvision.models.segmentation import fcn_resnet50
    except Exception as exc:  # a torchvision built for another torch fails on import
        pytest.skip(f"torchvision does not import beside this torch: {exc!r}")
    net = fcn_resnet50(weights=None, weights_backbone=None, num_classes=3).eval()
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.no_grad():
        scores = scores_from_logits(net(x))
    p = DenseCRF().refine(image, scores[0], kind="logits")
    assert p.shape == (48, 64, 3)
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)


def test_the_example_script(tmp_path):
    from hybridseg.deep import PRETRAINED

    rows = runpy.run_path(str(EXAMPLE))["main"](["--out", str(tmp_path / "fig.png")])
    assert (tmp_path / "fig.png").is_file()
    assert set(rows) == {"network", "+ DenseCRF", "+ GridCRF"}
    assert "camvid-unet" in PRETRAINED
