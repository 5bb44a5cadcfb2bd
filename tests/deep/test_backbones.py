"""Backbones of the zoo: shapes and strides, checkpoints in and out, torchvision's ImageNet
files found in torch's cache, and the zoo's architectures on them. Agreement with
torchvision's own networks is tested in tests/interop (torchvision does not import here)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg.deep import CNNSegmenter  # noqa: E402
from hybridseg.deep.models import BACKBONES, build_backbone, build_model  # noqa: E402
from hybridseg.deep.models._backbones import IMAGENET_URLS  # noqa: E402

NAMES = sorted(BACKBONES)
CHANNELS = {"light": (32, 64, 96, 128), "resnet18": (64, 128, 256, 512),
            "resnet34": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048),
            "resnet101": (256, 512, 1024, 2048), "resnet152": (256, 512, 1024, 2048),
            "vgg16_bn": (128, 256, 512, 512),
            "mobilenet_v3_large": (24, 40, 112, 960)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_four_maps_at_the_strides_asked(name, output_stride):
    if name in ("resnet101", "resnet152") and output_stride != 32:
        pytest.skip("resnet50 covers the dilated bottlenecks")
    net = build_backbone(name, output_stride=output_stride).eval()
    strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
    assert net.strides == strides and net.channels == CHANNELS[name]
    with torch.no_grad():
        maps = net(torch.zeros(1, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(CHANNELS[name], strides)]


def _checkpoint(name, tmp_path, head=True):
    """A state dict of the backbone as torchvision's file has it (with the classifier)."""
    torch.manual_seed(1)
    state = build_backbone(name).state_dict()
    if head:
        key = "fc" if name.startswith("resnet") else "classifier.0"
        state[key + ".weight"] = torch.zeros(10, 4)
        state[key + ".bias"] = torch.zeros(10)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "mobilenet_v3_large"])
def test_checkpoints_load_without_the_classifier(name, tmp_path):
    path, state = _checkpoint(name, tmp_path)
    net = build_backbone(name, weights=path)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert net.weights == str(path)
    wrapped = tmp_path / "wrapped.pth"  # {"state_dict": ...} with DataParallel's prefix
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, wrapped)
    again = build_backbone(name, weights=wrapped)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values()))


def test_mismatched_checkpoints_name_the_first_missing_and_unexpected_keys(tmp_path):
    path, state = _checkpoint("resnet18", tmp_path, head=False)
    state.pop("layer1.0.conv1.weight")
    state["layer9.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"1 missing \(first 'layer1\.0\.conv1\.weight'\), "
                                         r"1 unexpected \(first 'layer9\.weight'\)"):
        build_backbone("resnet18", weights=path)
    path50, _ = _checkpoint("resnet50", tmp_path)
    with pytest.raises(ValueError, match="do not match backbone 'resnet18'"):
        build_backbone("resnet18", weights=path50)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        build_backbone("resnet18", weights=bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        build_backbone("resnet18", weights=tmp_path / "absent.pth")


def test_a_gray_backbone_from_rgb_weights(tmp_path):
    path, _ = _checkpoint("resnet18", tmp_path)
    rgb = build_backbone("resnet18", weights=path).eval()
    gray = build_backbone("resnet18", in_channels=1, weights=path).eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a, b = rgb(x.repeat(1, 3, 1, 1))[-1], gray(x)[-1]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    four = build_backbone("resnet18", in_channels=4, weights=path)
    assert four.conv1.weight.shape[1] == 4


def test_imagenet_weights_come_from_torchs_cache(tmp_path, monkeypatch):
    """``weights="imagenet"`` asks torch.hub for torchvision's file; one already in the
    cache (as after a first download) is read without the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    _, state = _checkpoint("resnet18", tmp_path)
    torch.save(state, cache / IMAGENET_URLS["resnet18"].rsplit("/", 1)[1])
    net = build_backbone("resnet18", weights="imagenet")
    assert torch.equal(net.conv1.weight, state["conv1.weight"]) and net.weights == "imagenet"
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_backbone("light", weights="imagenet")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "resnet19"}, ValueError, "unknown backbone 'resnet19'"),
    ({"name": 50}, TypeError, "backbone name"),
    ({"name": "resnet18", "output_stride": 4}, ValueError, "output_stride must be 8, 16"),
    ({"name": "resnet18", "in_channels": 0}, ValueError, "in_channels"),
    ({"name": "resnet18", "weights": 3}, TypeError, "weights must be a path"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_backbone(**kwargs)


def test_segnet_takes_no_backbone():
    with pytest.raises(ValueError, match="'segnet' takes no backbone"):
        build_model("segnet", 3, 5, backbone="resnet18")


@pytest.mark.parametrize("name", ["deeplabv3plus", "pspnet", "fcn", "unet"])
def test_the_zoo_on_a_backbone(name):
    net = build_model(name, 3, 5, backbone="resnet18").eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 96)).shape == (1, 5, 64, 96)
    assert net.backbone.name == "resnet18"
    with pytest.raises(ValueError, match="backbone_weights needs a backbone"):
        build_model(name, 3, 5, backbone_weights="imagenet")


def test_a_pretrained_backbone_trains_slower_with_imagenet_inputs(tmp_path):
    path, _ = _checkpoint("resnet18", tmp_path)
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    groups = []

    def sgd(params, lr):
        groups.extend(params)
        return torch.optim.SGD(params, lr=lr)

    seg = CNNSegmenter("fcn", model_options={"backbone": "resnet18",
                                             "backbone_weights": str(path)},
                       epochs=1, batch_size=2, optimizer=sgd, device="cpu",
                       random_state=0).fit(X, y)
    assert seg.normalize_ == "imagenet"
    assert [g["peak_lr"] for g in groups] == [pytest.approx(1e-4), pytest.approx(1e-3)]
    scratch = CNNSegmenter("fcn", model_options={"backbone": "resnet18"}, epochs=1,
                           batch_size=2, device="cpu", random_state=0).fit(X, y)
    assert scratch.normalize_ == "dataset"
