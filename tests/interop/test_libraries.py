"""The networks people run, hosted by hybridseg: torchvision, timm, segmentation_models_pytorch
and Hugging Face transformers. These need the interop environment (torch 2.14.1 with
torchvision 0.29.1, and timm, smp and transformers from the registry; README "Your own
network"): every test here is marked ``interop`` and skipped where a library is missing.

    python -m pytest -m interop tests/interop
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.interop

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from sklearn.pipeline import Pipeline  # noqa: E402

import hybridseg  # noqa: E402
from hybridseg.apps.cli import main  # noqa: E402
from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.deep import CNNSegmenter, scores_from_logits  # noqa: E402
from hybridseg.deep._interop import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from hybridseg.deep.models import build_backbone, build_model  # noqa: E402

K = 5
tvseg = torchvision.models.segmentation


def _segformer():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.SegformerConfig(
        num_labels=K, depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64],
        decoder_hidden_size=32, num_attention_heads=[1, 1, 2, 2],
        id2label={i: f"class{i}" for i in range(K)}, label2id={f"class{i}": i for i in range(K)})
    return transformers.SegformerForSemanticSegmentation(cfg)


def _smp_unet(encoder="resnet18"):
    smp = pytest.importorskip("segmentation_models_pytorch")
    return smp.Unet(encoder, encoder_weights=None, classes=K)


NETWORKS = {
    "deeplabv3_mobilenet_v3_large": lambda: tvseg.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=K, aux_loss=True),
    "lraspp_mobilenet_v3_large": lambda: tvseg.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=K),
    "fcn_resnet50": lambda: tvseg.fcn_resnet50(weights=None, weights_backbone=None,
                                               num_classes=K),
    "segformer": _segformer,
    "smp_unet": _smp_unet,
}
PREFIX = {"deeplabv3_mobilenet_v3_large": "backbone.", "lraspp_mobilenet_v3_large":
          "backbone.", "fcn_resnet50": "backbone.", "segformer": "segformer.",
          "smp_unet": "encoder."}


def _network(name):
    torch.manual_seed(0)
    return NETWORKS[name]().eval()


def _data(n=4, h=64, w=96):
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    y = [(x[..., 0] // 52).astype(np.uint8) for x in X]
    y[0][:3] = 255
    return X, y


def _reference(module, image):
    x = (image.astype(np.float32) / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    z = scores_from_logits(out, size=image.shape[:2])[0]
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _digest(net):
    return [v.detach().clone() for v in net.state_dict().values()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_from_module_pipeline_and_file(name, tmp_path):
    net = _network(name)
    before = _digest(net)
    X, y = _data()
    seg = CNNSegmenter.from_module(net, device="cpu")
    p = seg.predict_proba(X[:1])[0]
    np.testing.assert_allclose(p, _reference(net, X[0]), atol=2e-5)
    pipe = Pipeline([("cnn", seg), ("crf", DenseCRF(n_iter=2))]).fit(X, y)
    assert _same(before, _digest(pipe.named_steps["cnn"].model_)) and _same(before, _digest(net))
    assert pipe.predict(X[:1])[0].shape == (64, 96)
    hybridseg.save(pipe, tmp_path / "p.hseg")
    back = hybridseg.load(tmp_path / "p.hseg")
    np.testing.assert_array_equal(back.named_steps["cnn"].predict_proba(X[:1])[0], p)
    if name == "segformer":
        assert seg.class_names_ == [f"class{i}" for i in range(K)]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_fine_tuning_one_epoch(name, tmp_path):
    net = _network(name)
    before = _digest(net)
    X, y = _data()
    groups = []

    def adamw(params, lr):
        groups.extend(params)
        return torch.optim.AdamW(params, lr=lr)

    seg = CNNSegmenter(net, epochs=1, batch_size=2, optimizer=adamw, device="cpu",
                       random_state=0).fit(X, y)
    assert _same(before, _digest(net)), "the instance given changed"
    assert not _same(before, _digest(seg.model_)), "the copy did not train"
    assert seg.normalize_ == "imagenet"
    backbone = {id(p) for n, p in seg.model_.named_parameters() if n.startswith(PREFIX[name])}
    assert groups[0]["peak_lr"] == pytest.approx(1e-4)
    assert {id(p) for p in groups[0]["params"]} == backbone
    path = tmp_path / "ft.hseg"
    hybridseg.save(seg.set_params(optimizer="adamw"), path)  # the local function won't pickle
    np.testing.assert_array_equal(hybridseg.load(path).predict_proba(X[:1])[0],
                                  seg.predict_proba(X[:1])[0])


def test_segment_runs_a_saved_hugging_face_model(tmp_path):
    from PIL import Image

    X, _ = _data(n=2)
    (tmp_path / "in").mkdir()
    for i, x in enumerate(X):
        Image.fromarray(x).save(tmp_path / "in" / f"{i}.png")
    hybridseg.save(CNNSegmenter.from_module(_network("segformer"), device="cpu"),
                   tmp_path / "m.hseg")
    assert main(["segment", str(tmp_path / "in"), str(tmp_path / "out"), "--model",
                 str(tmp_path / "m.hseg"), "--refine", "dense", "--n-jobs", "2",
                 "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png"]


def _torchvision_features(ref, x, taps=None):
    if taps is None:  # a ResNet
        h = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        out = []
        for layer in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
            h = layer(h)
            out.append(h)
        return out
    out, h = [], x
    for i, layer in enumerate(ref.features):
        h = layer(h)
        if i in taps:
            out.append(h)
    return out


@pytest.mark.parametrize(("name", "kwargs", "output_stride"), [
    ("resnet18", {}, 32), ("resnet34", {}, 32), ("resnet50", {}, 32),
    ("resnet101", {}, 32), ("resnet152", {}, 32),
    ("resnet50", {"replace_stride_with_dilation": [False, True, True]}, 8),
    ("resnet50", {"replace_stride_with_dilation": [False, False, True]}, 16),
    ("vgg16_bn", {}, 32), ("mobilenet_v3_large", {}, 32),
    ("mobilenet_v3_large", {"dilated": True}, 16),
])
def test_backbones_give_torchvisions_features(name, kwargs, output_stride, tmp_path):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    with torch.no_grad():  # statistics of a trained network, not the identity
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), path)
    ours = build_backbone(name, weights=path, output_stride=output_stride).eval()
    x = torch.randn(2, 3, 96, 128)
    taps = {"vgg16_bn": (13, 23, 33, 43), "mobilenet_v3_large": (3, 6, 12, 16)}.get(name)
    if taps == (13, 23, 33, 43):  # the 2nd to 5th max pools
        taps = tuple(i for i, m in enumerate(ref.features)
                     if isinstance(m, torch.nn.MaxPool2d))[1:]
    with torch.no_grad():
        got, want = ours(x), _torchvision_features(ref, x, taps)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


def test_a_timm_encoder_and_its_checkpoint(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "timm_resnet18.pth"
    torch.save(ref.state_dict(), path)
    net = build_backbone("timm:resnet18", weights=path).eval()
    assert net.strides == (4, 8, 16, 32) and net.channels == (64, 128, 256, 512)
    for k, v in ref.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(net.model.state_dict()[k], v), k
    seg = CNNSegmenter("deeplabv3plus", model_options={"backbone": "timm:resnet18",
                                                       "backbone_weights": str(path)},
                       epochs=1, batch_size=2, device="cpu", random_state=0)
    X, y = _data()
    seg.fit(X, y)
    assert seg.normalize_ == "imagenet" and seg.predict(X[:1])[0].shape == (64, 96)
    with pytest.raises(ValueError, match="timm:no_such_net"):
        build_backbone("timm:no_such_net")


def test_clear_errors_for_the_libraries_networks():
    X, y = _data()
    y_many = [np.minimum(m, 7) for m in y]
    y_many[1][0, 0] = 7  # the labels have 8 classes, the network 5
    seg = CNNSegmenter(_network("lraspp_mobilenet_v3_large"), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="y"):
        seg.fit(X, y_many)
    with pytest.raises(ValueError, match="1 channel but the network was fitted on 3"):
        CNNSegmenter.from_module(_network("smp_unet"), device="cpu").predict([X[0][..., 0]])
    with pytest.raises(ValueError, match="divide 0-255 statistics"):
        CNNSegmenter.from_module(_network("smp_unet"), normalize=((123.7, 116.3, 103.5),
                                                                  (58.4, 57.1, 57.4)))


def test_the_zoo_on_torchvision_imagenet_files_in_torchs_cache(tmp_path, monkeypatch):
    """``backbone_weights="imagenet"``: the file torchvision's own download would put in
    torch's cache is read from there (here: one written by this test)."""
    from hybridseg.deep.models._backbones import IMAGENET_URLS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "hub" / "checkpoints" /
               IMAGENET_URLS["resnet18"].rsplit("/", 1)[1])
    net = build_model("pspnet", 3, K, backbone="resnet18", backbone_weights="imagenet")
    assert torch.equal(net.backbone.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
