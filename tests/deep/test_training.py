"""The training module: schedule shapes, crops and augmentation, class weights."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg.deep import _training  # noqa: E402


def _crop(x, y, ch, cw, rng, **kw):
    opts = dict(void=255, augment=False, scale_jitter=(1.0, 1.0), color_jitter=0.0)
    opts.update(kw)
    return _training.sample_crop(x, y, ch, cw, rng, **opts)


def test_lr_schedule_shapes():
    f = _training.lr_factor
    assert f(0.0, warmup=0.1, schedule="cosine") == 0
    assert f(0.05, warmup=0.1, schedule="cosine") == pytest.approx(0.5)
    assert f(0.1, warmup=0.1, schedule="cosine") == pytest.approx(1)
    assert f(1.0, warmup=0.1, schedule="cosine") == pytest.approx(0)
    assert f(0.5, warmup=0.0, schedule="poly") == pytest.approx(0.5 ** 0.9)
    assert f(0.7, warmup=0.0, schedule="constant") == 1.0


def test_crops_pad_with_void_and_keep_pixels_with_their_labels():
    x = torch.arange(120.0).reshape(1, 10, 12)
    lab = torch.arange(120).reshape(10, 12)
    xc, yc = _crop(x, lab, 16, 8, np.random.default_rng(0))
    assert xc.shape == (1, 16, 8) and yc.shape == (16, 8)
    inside = yc != 255
    assert inside.sum() == 10 * 8  # all 10 rows, 8 of the 12 columns
    assert torch.equal(xc[0][inside], yc[inside].float())  # pixel and label travel together


def test_color_jitter_changes_crops_not_labels():
    x = torch.ones(3, 8, 8)
    lab = torch.zeros(8, 8, dtype=torch.long)
    xc, yc = _crop(x, lab, 8, 8, np.random.default_rng(0), augment=True, color_jitter=0.3)
    assert torch.equal(yc, lab)
    per_channel = xc.mean((1, 2))
    assert ((per_channel > 0.4) & (per_channel < 1.6)).all() and per_channel.std() > 0


def test_crop_size_rounds_up_to_the_stride_and_refuses_bad_sizes():
    xs = [torch.zeros(3, 30, 41), torch.zeros(3, 20, 50)]
    assert _training.crop_size(xs, None, 8) == (32, 56)
    assert _training.crop_size(xs, 5, 8) == (16, 16)  # at least two strides a side
    assert _training.crop_size(xs, (17, 24), 8) == (24, 24)
    with pytest.raises(ValueError, match="crop_size must be"):
        _training.crop_size(xs, (17, 0), 8)


def test_class_weights():
    labels = [np.array([[0, 0, 0, 1], [0, 0, 255, 1]])]
    mf = _training.class_weights("median_frequency", labels, 3, 255)
    bal = _training.class_weights("balanced", labels, 3, 255)
    # class 0 is 5 of 7 pixels, class 1 2 of 7, class 2 absent (weight 0)
    np.testing.assert_allclose(bal, [7 / (2 * 5), 7 / (2 * 2), 0])
    assert mf[2] == 0 and mf[1] > mf[0]
    assert _training.class_weights(None, labels, 3, 255) is None
    with pytest.raises(ValueError, match="one weight per class"):
        _training.class_weights([1.0, 2.0], labels, 3, 255)
    with pytest.raises(ValueError, match="finite non-negative"):
        _training.class_weights([1.0, -2.0, 1.0], labels, 3, 255)


def test_adversarial_training_trains_a_discriminator_beside_the_network():
    from hybridseg.deep import CNNSegmenter

    rng = np.random.default_rng(0)
    X = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    kw = {"model_options": {"widths": (4, 8)}, "epochs": 2, "batch_size": 2, "device": "cpu",
          "random_state": 0}
    a = CNNSegmenter("unet", adversarial_weight=0.1, **kw).fit(X, y)
    b = CNNSegmenter("unet", adversarial_weight=0.1, **kw).fit(X, y)
    plain = CNNSegmenter("unet", **kw).fit(X, y)
    assert len(a.discriminator_losses_) == 4 and plain.discriminator_losses_ == []
    assert a.discriminator_losses_ == b.discriminator_losses_  # seeded
    assert a.loss_curve_ != plain.loss_curve_  # the adversarial term is in the loss
    assert not hasattr(a.model_, "discriminator")


def test_the_adversarys_losses_reach_the_right_weights():
    from hybridseg.deep._adversarial import Adversary

    torch.manual_seed(0)
    adv = Adversary(3, 4, weight=0.5, void=255, device=torch.device("cpu"))
    images = torch.rand(2, 3, 16, 16)
    logits = torch.randn(2, 4, 16, 16, requires_grad=True)
    labels = torch.randint(0, 4, (2, 16, 16))
    labels[0, :4] = 255
    adv.generator_loss(images, logits).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.net.parameters())
    before = [p.detach().clone() for p in adv.net.parameters()]
    adv.step(images, logits, labels)
    assert any(not torch.equal(p, q) for p, q in zip(adv.net.parameters(), before))
    real = adv._real(torch.softmax(logits.detach(), 1), labels)
    assert torch.allclose(real[0, :, :4], torch.softmax(logits.detach(), 1)[0, :, :4])
    assert torch.equal(real[1].argmax(0), labels[1])


def test_a_time_budget_that_allows_few_epochs_is_said():
    from hybridseg.deep import CNNSegmenter

    rng = np.random.default_rng(0)
    X = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    seg = CNNSegmenter("unet", model_options={"widths": (4, 8)}, epochs=50, batch_size=2,
                       max_time=1e-3, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match=r"max_time 0.001 s allowed 1 of 50 epochs"):
        seg.fit(X, y)
    assert seg.n_epochs_ == 1


# --------------------------------------------------------------------------- mixed precision
def test_amp_auto_is_bfloat16_training_on_cpus_with_amx_only(monkeypatch):
    from hybridseg.deep._inference import amp_supported

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for amx in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert amp_supported(cpu, "auto") is amx
        assert amp_supported(cpu, "auto", training=False) is False  # predictions: float32
    assert amp_supported(cuda, "auto") and amp_supported(cuda, "auto", training=False)
    assert amp_supported(cpu, True, training=False) and not amp_supported(cuda, False)
    assert not amp_supported(torch.device("meta"), True)


def test_amp_on_the_cpu_trains_channels_last_and_gives_the_network_back_contiguous():
    from hybridseg.deep import CNNSegmenter

    rng = np.random.default_rng(0)
    X = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(4)]
    y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.head = torch.nn.Conv2d(8, 2, 1)

        def forward(self, x):
            z = self.conv(x)
            seen.append((self.training, x.is_contiguous(memory_format=torch.channels_last),
                         z.dtype))
            return self.head(torch.relu(z))

    seg = CNNSegmenter(Spy(), epochs=2, batch_size=2, amp=True, device="cpu",
                       early_stopping=False, random_state=0)
    seg.fit(X, y)
    assert seen and all(cl and dt == torch.bfloat16 for tr, cl, dt in seen if tr)
    params = dict(seg.model_.named_parameters())
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in params.values())
    seen.clear()
    p_amp = seg.predict_proba(X[:1])[0]
    assert seen[-1][1:] == (True, torch.bfloat16)
    seg.set_params(amp="auto")
    p32 = seg.predict_proba(X[:1])[0]
    assert seen[-1][1:] == (False, torch.float32)  # "auto" predicts in float32 on the CPU
    np.testing.assert_allclose(p_amp, p32, atol=0.05)
    assert np.allclose(p_amp.sum(-1), 1, atol=1e-3)


def test_amp_on_the_cpu_is_reproducible():
    from hybridseg.deep import CNNSegmenter

    rng = np.random.default_rng(1)
    X = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(4)]
    y = [(x[..., 1] > 127).astype(np.uint8) for x in X]

    def fit():
        return CNNSegmenter("unet", epochs=2, batch_size=2, amp=True, device="cpu",
                            model_options=dict(widths=(4, 8)), random_state=0).fit(X, y)

    a, b = fit(), fit()
    for (name, pa), pb in zip(a.model_.named_parameters(), b.model_.parameters()):
        assert torch.equal(pa, pb), name
