"""CNNSegmenter: every architecture fits and predicts at any size, user modules (dict
outputs, fixed K), clone, save/load, determinism, tiling, validation and bad input."""

import os
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from sklearn.base import clone  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from hybridseg import Unaries  # noqa: E402
from hybridseg.crf import DenseCRF  # noqa: E402
from hybridseg.deep import CNNSegmenter  # noqa: E402
from hybridseg.deep._training import (  # noqa: E402
    balanced_weights,
    median_frequency_weights,
)
from hybridseg.deep.models import MODELS  # noqa: E402
from hybridseg.utils.estimator_checks import parametrize_with_image_checks  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

SMALL = {"unet": {"widths": (4, 8)}}


def _data(n=4, h=32, w=40, k=3, channels=3, seed=0):
    """Images whose class is readable from the colour: a learnable toy problem."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.uint8)
        lab[:, w // 3:] = 1
        lab[h // 2:, 2 * w // 3:] = k - 1
        img = (lab * (200 // max(k - 1, 1)) + rng.integers(0, 40, (h, w))).astype(np.uint8)
        if channels == 3:
            img = np.stack([img, 255 - img, img // 2], -1)
        X.append(img)
        y.append(lab)
    return X, y


def _seg(**kw):
    params = dict(model="unet", model_options=SMALL["unet"], epochs=2, batch_size=2,
                  device="cpu", random_state=0)
    if kw.get("model", "unet") != "unet":
        params["model_options"] = None
    params.update(kw)
    return CNNSegmenter(**params)


class DictNet(nn.Module):
    """A user network with a torchvision-style dict output and a fixed K of 4."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return {"out": self.c(x), "aux": self.c(x)}


class PointNet(nn.Module):
    """Only 1x1 convolutions: every pixel's logits depend on that pixel alone."""

    def __init__(self, in_channels=3, n_classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, 8, 1), nn.ReLU(),
                                 nn.Conv2d(8, n_classes, 1))

    def forward(self, x):
        return self.net(x)


class HalfRes(nn.Module):
    """Logits at half the input's size, as a network without a decoder gives."""

    def __init__(self, in_channels, n_classes):
        super().__init__()
        self.c = nn.Conv2d(in_channels, n_classes, 3, stride=2, padding=1)

    def forward(self, x):
        return self.c(x)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_architecture_fits_and_predicts_at_odd_sizes(name):
    X, y = _data(n=2, h=64, w=64)
    seg = CNNSegmenter(name, epochs=1, batch_size=2, device="cpu", random_state=0)
    seg.fit(X, y)
    s = seg.stride_
    assert s == MODELS[name](3, 3).stride
    for h, w in ((s + 3, 2 * s + 5), (67, 45)):
        img = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
        p = seg.predict_proba([img])[0]
        assert p.shape == (h, w, 3) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
        assert (p >= 0).all()


def test_learns_a_toy_problem_and_scores():
    X, y = _data(n=6)
    seg = _seg(epochs=25, lr=1e-2).fit(X, y)
    assert seg.loss_curve_[-1] < seg.loss_curve_[0]
    assert seg.score(X, y) > 0.8
    assert seg.n_classes_ == 3 and list(seg.classes_) == [0, 1, 2]
    assert seg.n_channels_ == 3 and seg.mean_.shape == (3,)
    labels = seg.predict(X[:1])[0]
    assert labels.dtype == np.uint8 and labels.shape == X[0].shape[:2]


def test_gray_images_and_a_class_with_a_signature():
    X, y = _data(n=3, channels=1)
    seg = _seg(model=PointNet).fit(X, y)
    assert seg.n_channels_ == 1
    assert seg.model_.net[0].in_channels == 1 and seg.model_.net[-1].out_channels == 3
    assert seg.predict_proba(X[:1])[0].shape == (32, 40, 3)


def test_user_module_with_dict_output_fixes_k_and_is_not_mutated():
    net = DictNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data(n=3, k=3)
    seg = _seg(model=net).fit(X, y)
    assert seg.n_classes_ == 4  # the module's output channels, not 1 + max label
    assert seg.predict_proba(X[:1])[0].shape == (32, 40, 4)
    assert seg.model_ is not net
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="outputs 4 channels but n_classes is 3"):
        _seg(model=DictNet(), n_classes=3).fit(X, y)


def test_logits_at_another_size_are_resized_to_the_input():
    X, y = _data(n=2)
    seg = _seg(model=HalfRes).fit(X, y)
    assert seg.predict_proba([X[0][:31, :37]])[0].shape == (31, 37, 3)


def test_clone_is_unfitted_and_keeps_parameters():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    c = clone(seg)
    assert not hasattr(c, "model_")
    assert c.get_params()["model_options"] == SMALL["unet"]
    net = DictNet()
    c2 = clone(_seg(model=net))
    assert c2.model is not net  # an instance parameter is copied, as sklearn does


def test_same_random_state_same_weights_on_cpu():
    X, y = _data(n=4)
    a = _seg(epochs=2, model_options={"widths": (4, 8), "dropout": 0.2}).fit(X, y)
    b = _seg(epochs=2, model_options={"widths": (4, 8), "dropout": 0.2}).fit(X, y)
    c = _seg(epochs=2, random_state=1,
             model_options={"widths": (4, 8), "dropout": 0.2}).fit(X, y)
    sa, sb, sc = (m.model_.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.loss_curve_ == b.loss_curve_


def test_fit_leaves_the_global_torch_rng_alone():
    X, y = _data(n=2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    _seg(epochs=1).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_save_load_round_trip(tmp_path):
    X, y = _data(n=3)
    seg = _seg(epochs=2).fit(X, y)
    path = tmp_path / "seg.pt"
    seg.save(path)
    back = CNNSegmenter.load(path)
    for a, b in zip(seg.predict_proba(X), back.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    assert back.get_params() == seg.get_params()
    assert back.loss_curve_ == seg.loss_curve_
    with pytest.raises(FileExistsError, match="overwrite=True"):
        seg.save(path)
    mtime = os.stat(path).st_mtime_ns
    seg.save(path, overwrite=True)
    assert os.stat(path).st_mtime_ns >= mtime
    assert [p.name for p in tmp_path.iterdir()] == ["seg.pt"]  # no temporary left


def test_unpickling_without_the_saved_device_falls_back_to_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    seg.device = "cuda"  # as if fitted on a GPU machine
    with pytest.warns(UserWarning, match="CUDA is not available.*put on the CPU"):
        back = pickle.loads(pickle.dumps(seg))
    assert back.device_.type == "cpu"
    np.testing.assert_array_equal(back.predict_proba(X[:1])[0], seg.predict_proba(X[:1])[0])


def test_save_load_a_user_module(tmp_path):
    X, y = _data(n=2)
    seg = _seg(model=DictNet(), epochs=1).fit(X, y)
    seg.save(tmp_path / "d.pt")
    back = CNNSegmenter.load(tmp_path / "d.pt")
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])


def test_load_refuses_files_that_are_not_ours(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="not a hybridseg model file"):
        CNNSegmenter.load(bad)
    torch.save({"weights": 1}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a hybridseg model file"):
        CNNSegmenter.load(tmp_path / "y.pt")
    # the earlier CNNSegmenter.save format, from a newer release
    torch.save({"magic": "hybridseg.CNNSegmenter", "format_version": 99}, tmp_path / "z.pt")
    with pytest.raises(ValueError, match="format version 99"):
        CNNSegmenter.load(tmp_path / "z.pt")


def test_pickle_round_trip():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    back = pickle.loads(pickle.dumps(seg))
    np.testing.assert_array_equal(seg.predict_proba(X[:1])[0], back.predict_proba(X[:1])[0])


def test_tiles_give_the_whole_image_answer_for_a_pointwise_network():
    X, y = _data(n=2, h=40, w=48)
    seg = _seg(model=PointNet, epochs=1, tile_size=16).fit(X, y)
    rng = np.random.default_rng(2)
    big = rng.integers(0, 255, (50, 75, 3), dtype=np.uint8)
    tiled = seg.predict_proba([big])[0]
    seg.tile_size = 1024
    whole = seg.predict_proba([big])[0]
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiles_agree_with_the_whole_image_for_a_unet():
    X, y = _data(n=4, h=48, w=64)
    seg = _seg(epochs=15, lr=1e-2).fit(X, y)
    big, _ = _data(n=1, h=96, w=120, seed=3)
    whole = seg.predict_proba(big)[0]
    seg.tile_size = 48
    tiled = seg.predict_proba(big)[0]
    assert (whole.argmax(-1) == tiled.argmax(-1)).mean() > 0.97


def test_batches_of_mixed_sizes_match_one_by_one():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    rng = np.random.default_rng(4)
    imgs = [rng.integers(0, 255, (*s, 3), dtype=np.uint8)
            for s in [(20, 30), (33, 17), (20, 30), (20, 30)]]
    together = seg.predict_proba(imgs)
    for img, p in zip(imgs, together):
        np.testing.assert_allclose(seg.predict_proba([img])[0], p, atol=1e-5)


def test_transform_gives_unaries_of_either_kind_and_feeds_a_crf():
    X, y = _data(n=3)
    seg = _seg(epochs=2).fit(X, y)
    U = seg.transform(X)
    assert isinstance(U, Unaries) and U.kind == "proba" and U.n_classes == 3
    seg.set_params(unaries="logits")
    L = seg.transform(X)
    assert L.kind == "logits"
    z = L.scores[0] - L.scores[0].max(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(-1, keepdims=True), U.scores[0],
                               atol=1e-5)
    pipe = Pipeline([("cnn", _seg(epochs=2)), ("crf", DenseCRF(n_iter=3))]).fit(X, y)
    out = pipe.predict(X[:1])[0]
    assert out.shape == X[0].shape[:2]


def test_scale_predicts_at_the_input_size():
    X, y = _data(n=2, h=64, w=80)
    seg = _seg(epochs=1, scale=0.5).fit(X, y)
    assert seg.predict_proba([X[0][:63, :77]])[0].shape == (63, 77, 3)


def test_early_stopping_keeps_the_best_epoch():
    X, y = _data(n=6)
    seg = _seg(epochs=6, early_stopping=True, validation_fraction=0.34,
               n_iter_no_change=2, lr=1e-2).fit(X, y)
    scores = seg.validation_scores_
    assert 1 <= seg.n_epochs_ <= 6 and len(scores) == seg.n_epochs_
    assert seg.best_epoch_ == int(np.argmax(scores)) + 1
    assert seg.best_validation_score_ == max(scores)
    Xv, yv = _data(n=2, seed=9)
    seg2 = _seg(epochs=2, early_stopping=False).fit(X, y, X_val=Xv, y_val=yv)
    assert len(seg2.validation_scores_) == 2 and seg2.best_epoch_ == 2


def test_max_time_stops_training():
    X, y = _data(n=4)
    seg = _seg(epochs=500, max_time=1e-3).fit(X, y)
    assert seg.n_epochs_ == 1


def test_ignore_index_is_left_out_of_training():
    X, y = _data(n=4)
    # Void over the right part; labels under it would be "class 1" otherwise.
    y_void = [np.where(np.arange(40)[None, :] > 30, 255, m).astype(np.uint8) for m in y]
    seg = _seg(epochs=1).fit(X, y_void)
    assert seg.n_classes_ == 3
    y7 = [np.where(m == 255, 7, m).astype(np.uint8) for m in y_void]
    seg7 = _seg(epochs=1, ignore_index=7).fit(X, y7)
    assert seg7.n_classes_ == 3
    same = [seg.model_.state_dict()[k].equal(seg7.model_.state_dict()[k])
            for k in seg.model_.state_dict()]
    assert all(same)  # void is void, whatever its value


def test_class_weight_options():
    y = [np.array([[0, 0, 0, 1], [0, 0, 255, 1]], np.uint8),
         np.array([[2, 2, 0, 0], [0, 0, 0, 0]], np.uint8)]
    # counts: 0 -> 11, 1 -> 2, 2 -> 2; pixels of images where each class appears:
    # 0 -> 7 + 8, 1 -> 7, 2 -> 8
    f = np.array([11 / 15, 2 / 7, 2 / 8])
    np.testing.assert_allclose(median_frequency_weights(y, 3, 255), np.median(f) / f)
    np.testing.assert_allclose(balanced_weights(y, 3, 255), 15 / (3 * np.array([11, 2, 2])))
    assert median_frequency_weights(y, 4, 255)[3] == 0  # absent class
    X, yy = _data(n=2)
    seg = _seg(epochs=1, class_weight="median_frequency").fit(X, yy)
    assert seg.class_weight_.shape == (3,)
    seg = _seg(epochs=1, class_weight=[1.0, 2.0, 3.0]).fit(X, yy)
    np.testing.assert_array_equal(seg.class_weight_, [1, 2, 3])
    with pytest.raises(ValueError, match=r"one weight per class, shape \(3,\)"):
        _seg(epochs=1, class_weight=[1.0, 2.0]).fit(X, yy)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", lambda p, lr: torch.optim.RMSprop(p, lr)])
@pytest.mark.parametrize("schedule", ["poly", "constant"])
def test_optimizers_schedules_and_losses(optimizer, schedule):
    X, y = _data(n=2)
    seg = _seg(epochs=1, optimizer=optimizer, lr_schedule=schedule, loss="ce+dice",
               crop_size=16).fit(X, y)
    assert np.isfinite(seg.loss_curve_).all()


def test_zero_epochs_builds_the_network_and_statistics_without_training():
    X, y = _data(n=2)
    seg = _seg(epochs=0).fit(X, y)
    assert seg.n_epochs_ == 0 and seg.loss_curve_ == []
    assert seg.mean_.shape == (3,) and seg.predict(X[:1])[0].shape == X[0].shape[:2]


# ------------------------------------------------------------------------ bad input
def test_bad_input_messages():
    X, y = _data(n=2)
    with pytest.raises(ValueError, match="X is empty"):
        _seg().fit([], [])
    seg = _seg(epochs=1).fit(X, y)
    gray = [X[0][..., 0]]
    with pytest.raises(ValueError, match="X\\[0\\] has 1 channel but the network was fitted "
                                         "on 3-channel"):
        seg.predict_proba(gray)
    with pytest.raises(ValueError, match="smaller than the network's stride 2"):
        seg.predict_proba([X[0][:1, :5]])
    with pytest.raises(ValueError, match="first convolution takes 3 channels but the "
                                         "images have 1"):
        _seg(model=DictNet()).fit(gray * 2, y)
    with pytest.raises(ValueError, match=r"y\[0\]"):  # labels >= K of a fixed-K module
        bad = [np.full((32, 40), 6, np.uint8)] * 2
        _seg(model=DictNet()).fit(X, bad)
    with pytest.raises(ValueError, match="label"):
        _seg(n_classes=2).fit(X, y)
    with pytest.raises(ValueError, match="X_val and y_val"):
        _seg().fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="early_stopping needs validation images"):
        _seg(early_stopping=True).fit(X, y)
    with pytest.raises(ValueError, match="not a registered architecture"):
        _seg(model="resnet", model_options=None).fit(X, y)
    with pytest.raises(TypeError, match="model must be a registered name"):
        _seg(model=3).fit(X, y)
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        _seg(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="epochs"):
        _seg(epochs=-1).fit(X, y)
    with pytest.raises(ValueError, match="mixes images of"):
        _seg().fit([X[0], X[1][..., 0]], y)
    with pytest.raises(ValueError, match="scale_jitter"):
        _seg(scale_jitter=(1.5, 0.5)).fit(X, y)
    big = [np.zeros((40, 40, 3), np.uint8), X[1]]
    with pytest.raises(ValueError, match="y\\[0\\]"):  # sizes of X and y differ
        _seg().fit(big, y)


def test_network_that_fails_on_the_images_gives_a_clear_error():
    class Wrong(nn.Module):
        def forward(self, x):
            return x.view(-1, 7)

    X, y = _data(n=2)
    with pytest.raises(ValueError, match="the network failed on a"):
        _seg(model=Wrong()).fit(X, y)


def test_unfitted_predict_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CNNSegmenter().predict_proba([np.zeros((8, 8, 3), np.uint8)])


@parametrize_with_image_checks([
    CNNSegmenter("unet", model_options={"widths": (4, 8)}, epochs=1, batch_size=2,
                 device="cpu", random_state=0),
    CNNSegmenter(PointNet, epochs=1, device="cpu", random_state=0, augment=False),
])
def test_image_checks(estimator, check):
    check(estimator)


def test_fit_transform_cross_fits_with_cv():
    X, y = _data(n=4)
    seg = _seg(epochs=2, cv=2)
    U = seg.fit_transform(X, y)
    assert isinstance(U, Unaries) and len(U) == 4 and U.n_classes == 3
    # The fold scores come from other networks than the final one.
    final = seg.predict_proba(X)
    assert not np.allclose(U.scores[0], final[0])
    # The final network is the one fit(X, y) gives.
    ref = _seg(epochs=2).fit(X, y)
    np.testing.assert_array_equal(ref.predict_proba(X)[0], final[0])
    # Without cv: the scores of the network trained on all images.
    U2 = _seg(epochs=2).fit_transform(X, y)
    np.testing.assert_allclose(U2.scores[0], final[0], atol=1e-6)
    # A fold whose images miss a class still gives K scores.
    y_missing = [m.copy() for m in y]
    y_missing[0][y_missing[0] == 2] = 1
    y_missing[1][y_missing[1] == 2] = 1
    assert _seg(epochs=1, cv=2).fit_transform(X, y_missing).n_classes == 3
    with pytest.raises(ValueError, match="cv=3 folds need at least 3 images"):
        _seg(cv=3).fit_transform(X[:2], y[:2])


def test_flip_tta_is_the_mean_of_the_two_views():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    img = X[0][:, :36]  # a multiple of the stride: no padding, which a mirror would move
    plain = seg.decision_function([img])[0]
    mirrored = seg.decision_function([img[:, ::-1]])[0][:, ::-1]
    seg.set_params(tta=True)
    np.testing.assert_allclose(seg.decision_function([img])[0], (plain + mirrored) / 2,
                               atol=1e-5)


def test_the_shipped_camvid_unet(tmp_path, monkeypatch):
    from hybridseg.datasets import load_sample
    from hybridseg.deep import PRETRAINED, load_pretrained

    seg = load_pretrained("camvid-unet", device="cpu")
    assert isinstance(seg, CNNSegmenter) and seg.n_classes_ == 11 and seg.n_channels_ == 3
    data = load_sample()
    test = [i for i, s in enumerate(data.split) if s == "test"]
    score = seg.score([data.images[i] for i in test], [data.labels[i] for i in test])
    assert score > 0.35  # the prior floor on these images is about 0.14
    with pytest.raises(ValueError, match="unknown pretrained model"):
        load_pretrained("imagenet")
    # A file that does not match the recorded checksum is refused before unpickling.
    import hybridseg.deep._pretrained as mod

    bad = tmp_path / "camvid_unet.pt"
    bad.write_bytes(b"not the shipped file")
    monkeypatch.setattr(mod, "_file", lambda name: bad)
    with pytest.raises(ValueError, match="does not have the SHA-256"):
        load_pretrained("camvid-unet")
    assert set(PRETRAINED) == {"camvid-unet", "camvid-unet-crfrnn"}
    # The CRF-as-RNN one is a CRFRNNSegmenter on the same U-Net.
    monkeypatch.undo()
    from hybridseg.deep import CRFRNNSegmenter

    crf = load_pretrained("camvid-unet-crfrnn", device="cpu")
    assert isinstance(crf, CRFRNNSegmenter) and crf.n_classes_ == 11
    assert crf.score([data.images[i] for i in test], [data.labels[i] for i in test]) > 0.35


def test_images_read_outside_the_fitted_range_warn():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)  # uint8 images, read in [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seg.predict([x / 255.0 for x in X])  # floats in [0, 1]: the same reading
        seg.predict([x.astype(np.uint16) * 257 for x in X])
    with pytest.warns(UserWarning, match=r"X\[0\] \(float32\) is read in \[.*labels may be"):
        seg.predict([x.astype(np.float32) for x in X])  # 8-bit values as floats
    with pytest.warns(UserWarning, match=r"X\[0\] \(uint16\) is read in"):
        seg.predict([x.astype(np.uint16) for x in X])  # 8-bit values in a 16-bit array


def test_all_void_labels_are_refused():
    X, y = _data(n=2)
    with pytest.raises(ValueError, match="no labelled pixel"):
        _seg(epochs=1).fit(X, [np.full_like(m, 255) for m in y])


def test_one_reading_rule_every_integer_type_is_8_bit():
    X, y = _data(n=2)
    seg = _seg(epochs=1).fit(X, y)
    ref = seg.predict_proba(X)
    for dtype in (np.int32, np.int64):  # read as 8-bit values, as the classical stages do
        for a, b in zip(ref, seg.predict_proba([x.astype(dtype) for x in X])):
            np.testing.assert_array_equal(a, b)
