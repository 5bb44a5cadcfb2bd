"""Your own network in hybridseg: ``CNNSegmenter.from_module``, input normalisation, outputs
of every common wrapping, fine-tuning with a slower or frozen backbone, and the network kept
unchanged in Pipelines, GridSearchCV and files. The libraries' own models are tested in
``tests/interop`` (the interop environment)."""

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

import hybridseg  # noqa: E402
from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.deep import CNNSegmenter  # noqa: E402
from hybridseg.deep._interop import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

K = 4


class Net(nn.Module):
    """A small trained-looking network with a 'backbone' and a 'head' and batch norm."""

    def __init__(self, k=K, c=3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU())
        self.head = nn.Conv2d(8, k, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


class QuarterLogits(nn.Module):
    """Hugging Face's manners: an output object with ``.logits`` at a quarter of the size."""

    class Output(dict):  # ModelOutput is a dict too, without 'out'
        def __init__(self, logits):
            super().__init__(logits=logits)
            self.logits = logits

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, K, 4, stride=4)

    def forward(self, pixel_values):
        return self.Output(self.conv(pixel_values))


class Wrapped(nn.Module):
    """Outputs of other wrappings: a dict with 'out' and 'aux', a tuple, or a custom one."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.net = Net()

    def forward(self, x):
        z = self.net(x)
        if self.how == "dict":
            return {"out": z, "aux": z * 0}
        if self.how == "tuple":
            return (z, torch.zeros(x.shape[0], 3))
        if self.how == "custom":
            return {"masks": z}
        return "nothing"


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    net = Net(**kw)
    with torch.no_grad():  # batch norm statistics as a trained network has them
        net.backbone[1].running_mean.uniform_(-0.5, 0.5)
        net.backbone[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def _data(n=4, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    y = [(x[..., 0] // 64).astype(np.uint8) for x in X]
    y[0][:2] = 255
    return X, y


def _reference(net, image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    x = (image.astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)
    with torch.no_grad():
        z = net.eval()(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
        if isinstance(z, dict):
            z = z["logits"] if "logits" in z else z["out"]
        z = nn.functional.interpolate(z, size=image.shape[:2], mode="bilinear",
                                      align_corners=False)
    return torch.softmax(z, 1)[0].permute(1, 2, 0).numpy()


def _digest(net):
    return [v.detach().clone() for v in net.state_dict().values()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


def test_from_module_is_the_networks_softmax_on_imagenet_normalised_images():
    net = _net()
    X, _ = _data()
    seg = CNNSegmenter.from_module(net, device="cpu")
    p = seg.predict_proba(X[:2])
    for image, q in zip(X[:2], p):
        np.testing.assert_allclose(q, _reference(net, image), atol=1e-5)
    assert seg.n_classes_ == K and seg.epochs == 0 and seg.normalize_ == "imagenet"
    assert seg.n_channels_ == 3 and seg.loss_curve_ == [] and seg.n_epochs_ == 0
    assert seg.transform(X[:1]).scores[0].shape == (24, 32, K)
    assert seg.model_ is not net  # a copy: the instance given stays the user's


@pytest.mark.parametrize(("normalize", "mean", "std"), [
    ("none", (0, 0, 0), (1, 1, 1)),
    ((0.5, 0.25), (0.5,) * 3, (0.25,) * 3),
    (([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]), (0.1, 0.2, 0.3), (0.3, 0.2, 0.1)),
])
def test_from_module_normalisations(normalize, mean, std):
    net = _net()
    X, _ = _data()
    seg = CNNSegmenter.from_module(net, normalize=normalize, device="cpu")
    np.testing.assert_allclose(seg.predict_proba(X[:1])[0], _reference(net, X[0], mean, std),
                               atol=1e-5)


def test_uint16_and_float_images_read_by_the_one_rule():
    net = _net()
    X, _ = _data(n=1)
    seg = CNNSegmenter.from_module(net, device="cpu")
    p8 = seg.predict_proba(X)[0]
    p16 = seg.predict_proba([X[0].astype(np.uint16) * 257])[0]
    pf = seg.predict_proba([X[0].astype(np.float32) / 255])[0]
    np.testing.assert_allclose(p16, p8, atol=1e-5)
    np.testing.assert_allclose(pf, p8, atol=1e-5)


@pytest.mark.parametrize("how", ["dict", "tuple"])
def test_outputs_of_common_wrappings(how):
    net = Wrapped(how).eval()
    X, _ = _data(n=1)
    seg = CNNSegmenter.from_module(net, device="cpu")
    np.testing.assert_allclose(seg.predict_proba(X)[0], _reference(net.net, X[0]), atol=1e-5)


def test_logits_at_a_quarter_size_are_resized_bilinearly():
    torch.manual_seed(0)
    net = QuarterLogits().eval()
    X, _ = _data(n=1)
    seg = CNNSegmenter.from_module(net, device="cpu")
    np.testing.assert_allclose(seg.predict_proba(X)[0], _reference(net, X[0]), atol=1e-5)


def test_a_user_output_function():
    net = Wrapped("custom").eval()
    X, _ = _data(n=1)
    with pytest.raises(ValueError, match=r"without 'out' or 'logits'.*'masks'.*output="):
        CNNSegmenter.from_module(net, device="cpu")
    seg = CNNSegmenter.from_module(net, device="cpu", output=_masks)
    np.testing.assert_allclose(seg.predict_proba(X)[0], _reference(net.net, X[0]), atol=1e-5)
    back = pickle.loads(pickle.dumps(seg))  # an importable function pickles
    np.testing.assert_array_equal(back.predict_proba(X)[0], seg.predict_proba(X)[0])


def _masks(raw):
    return raw["masks"]


def test_an_output_nothing_recognises_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the network returned a str.*output="):
        CNNSegmenter.from_module(Wrapped("other"), device="cpu")


def test_the_pipeline_and_grid_search_never_retrain_it():
    net = _net()
    before = _digest(net)
    X, y = _data()
    seg = CNNSegmenter.from_module(net, device="cpu")
    pipe = Pipeline([("cnn", seg), ("crf", DenseCRF(n_iter=2))]).fit(X, y)
    assert _same(before, _digest(pipe.named_steps["cnn"].model_))
    assert _same(before, _digest(net))
    search = GridSearchCV(Pipeline([("cnn", seg), ("crf", DenseCRF(n_iter=1))]),
                          {"crf__bilateral_weight": [1.0, 5.0]}, cv=2).fit(X, y)
    assert _same(before, _digest(search.best_estimator_.named_steps["cnn"].model_))
    assert _same(before, _digest(net))


def test_a_frozen_estimator_around_it():
    frozen = pytest.importorskip("sklearn.frozen")
    net = _net()
    before = _digest(net)
    X, y = _data()
    seg = CNNSegmenter.from_module(net, device="cpu")
    pipe = Pipeline([("cnn", frozen.FrozenEstimator(seg)),
                     ("crf", DenseCRF(n_iter=2))]).fit(X, y)
    assert _same(before, _digest(pipe.named_steps["cnn"].estimator.model_))
    search = GridSearchCV(Pipeline([("cnn", frozen.FrozenEstimator(seg)),
                                    ("crf", DenseCRF(n_iter=1))]),
                          {"crf__gaussian_weight": [1.0, 3.0]}, cv=2).fit(X, y)
    assert _same(before, _digest(search.best_estimator_.named_steps["cnn"].estimator.model_))
    assert pipe.predict(X[:1])[0].shape == (24, 32)


def test_save_and_load_give_identical_outputs_and_write_the_network_once(tmp_path):
    net = _net()
    X, _ = _data(n=1)
    seg = CNNSegmenter.from_module(net, device="cpu")
    path = tmp_path / "m.hseg"
    hybridseg.save(seg, path)
    back = hybridseg.load(path)
    np.testing.assert_array_equal(back.predict_proba(X)[0], seg.predict_proba(X)[0])
    assert back.model_ is not back.model and not back.model_.training
    big = CNNSegmenter.from_module(nn.Conv2d(3, K, 31), normalize="none", device="cpu")
    one = len(pickle.dumps(big.model))
    assert len(pickle.dumps(big)) < one * 1.2  # the parameter and model_: written once


def test_fine_tuning_changes_a_copy_with_the_backbone_slower():
    net = _net()
    before = _digest(net)
    X, y = _data()
    groups = []

    def sgd(params, lr):
        groups.extend(params)
        return torch.optim.SGD(params, lr=lr)

    seg = CNNSegmenter(net, epochs=1, batch_size=2, device="cpu", random_state=0,
                       optimizer=sgd, augment=False).fit(X, y)
    assert _same(before, _digest(net))
    assert not _same(before, _digest(seg.model_))
    assert seg.normalize_ == "dataset"  # a network of unknown origin, normalize="auto"
    assert [g["peak_lr"] for g in groups] == [pytest.approx(1e-4), pytest.approx(1e-3)]
    assert len(groups[0]["params"]) == 4 and len(groups[1]["params"]) == 2


def test_frozen_backbone_epochs_and_frozen_batch_norm():
    net = _net()
    X, y = _data()
    common = {"epochs": 1, "batch_size": 2, "device": "cpu", "random_state": 0,
              "normalize": "imagenet"}
    seg = CNNSegmenter(net, freeze_backbone_epochs=1, **common).fit(X, y)
    for a, b in zip(net.backbone.state_dict().values(),
                    seg.model_.backbone.state_dict().values()):
        assert torch.equal(a, b)  # weights and batch-norm statistics
    assert not torch.equal(net.head.weight, seg.model_.head.weight)
    assert all(p.requires_grad for p in seg.model_.parameters())
    seg = CNNSegmenter(net, freeze_bn=True, **common).fit(X, y)
    bn, bn0 = seg.model_.backbone[1], net.backbone[1]
    assert torch.equal(bn.running_mean, bn0.running_mean)
    assert not torch.equal(bn.weight, bn0.weight)  # the affine part still learns
    seg = CNNSegmenter(net, backbone_lr_mult=0.0, **common).fit(X, y)
    assert torch.equal(seg.model_.backbone[0].weight, net.backbone[0].weight)


def test_backbone_options_that_find_nothing_are_clear_errors():
    X, y = _data()
    net = nn.Sequential(nn.Conv2d(3, K, 1))
    with pytest.raises(ValueError, match=r"'enc\.' matches no trainable parameter"):
        CNNSegmenter(net, epochs=1, device="cpu", backbone_prefix="enc.").fit(X, y)
    with pytest.raises(ValueError, match="none was found in the network: give backbone_prefix"):
        CNNSegmenter(net, epochs=1, device="cpu", freeze_backbone_epochs=1).fit(X, y)
    seg = CNNSegmenter(net, epochs=1, device="cpu", backbone_prefix="0.",
                       backbone_lr_mult=0.5, random_state=0).fit(X, y)
    assert seg.n_epochs_ == 1


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"normalize": "imagenett"}, ValueError, "'normalize' parameter"),
    ({"normalize": "dataset"}, ValueError, "needs training images"),
    ({"normalize": (123.7, 58.4)}, ValueError, "divide 0-255 statistics"),
    ({"normalize": ((0.5, 0.5), (0.2, 0.2))}, ValueError, "mean has 2 values"),
    ({"normalize": (0.5, 0.0)}, ValueError, "std must be positive"),
    ({"n_classes": 5}, ValueError, "outputs 4 channels but n_classes is 5"),
    ({"class_names": ["a", "b"]}, ValueError, "class_names must name the 4 classes"),
    ({"epochs": 3}, TypeError, "sets model"),
])
def test_bad_settings_of_from_module(kwargs, error, match):
    with pytest.raises(error, match=match):
        CNNSegmenter.from_module(_net(), device="cpu", **kwargs)


def test_bad_input_to_a_hosted_network():
    seg = CNNSegmenter.from_module(_net(), device="cpu")
    X, y = _data()
    with pytest.raises(ValueError, match=r"X\[0\] has 1 channel but the network was fitted "
                                         "on 3-channel images"):
        seg.predict([X[0][..., 0]])
    y_bad = [m.copy() for m in y]
    y_bad[1][0, 0] = 7
    with pytest.raises(ValueError, match=r"y\[1\] holds labels 7.*the network given "
                                         "outputs 4 channels, one per class"):
        Pipeline([("cnn", seg), ("crf", DenseCRF())]).fit(X, y_bad)
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        CNNSegmenter.from_module("unet")
    with pytest.raises(ValueError, match="'imagenet' holds statistics of 3 channels"):
        CNNSegmenter.from_module(_net(c=2), device="cpu")
    gray = CNNSegmenter.from_module(_net(c=1), device="cpu")  # ImageNet's averages
    np.testing.assert_allclose(gray.mean_, [np.mean(IMAGENET_MEAN)], rtol=1e-6)
    assert gray.predict_proba([X[0][..., 0]])[0].shape == (24, 32, K)


def test_class_names_from_a_hugging_face_style_config():
    net = _net()
    net.config = type("Config", (), {"id2label": {i: f"c{i}" for i in range(K)}})()
    assert CNNSegmenter.from_module(net, device="cpu").class_names_ == ["c0", "c1", "c2",
                                                                        "c3"]
    with pytest.raises(ValueError, match="class_names"):  # a str is not a list of names
        CNNSegmenter.from_module(net, class_names="wxyz", device="cpu")
    named = CNNSegmenter.from_module(net, class_names=list("wxyz"), device="cpu")
    assert named.class_names_ == ["w", "x", "y", "z"]


def test_stride_of_the_network_pads_the_input():
    net = _net()
    net.stride = 8
    X, _ = _data(n=1, h=21, w=27)
    seg = CNNSegmenter.from_module(net, device="cpu")
    assert seg.stride_ == 8 and seg.predict_proba(X)[0].shape == (21, 27, K)


def test_files_written_before_normalize_read_with_the_statistics_they_used():
    X, y = _data()
    seg = CNNSegmenter("unet", model_options={"widths": (4, 8)}, epochs=1, batch_size=2,
                       device="cpu", random_state=0).fit(X, y)
    state = seg.__getstate__()
    for key in ("normalize", "output", "class_names", "backbone_lr_mult",
                "backbone_prefix", "freeze_backbone_epochs", "freeze_bn", "normalize_",
                "class_names_"):
        state.pop(key)
    old = CNNSegmenter.__new__(CNNSegmenter)
    old.__setstate__(copy.deepcopy(state))
    assert old.get_params()["normalize"] == "dataset" and old.normalize_ == "dataset"
    np.testing.assert_array_equal(old.predict_proba(X[:1])[0], seg.predict_proba(X[:1])[0])


def test_the_shipped_unet_hosted_by_from_module_is_the_shipped_segmenter():
    from hybridseg.datasets import load_sample
    from hybridseg.deep import load_pretrained

    shipped = load_pretrained("camvid-unet", device="cpu")
    hosted = CNNSegmenter.from_module(shipped.model_, normalize=(shipped.mean_, shipped.std_),
                                      scale=shipped.scale, device="cpu")
    images = load_sample("camvid").images[:2]
    for a, b in zip(hosted.predict_proba(images), shipped.predict_proba(images)):
        np.testing.assert_array_equal(a, b)
