"""The model zoo: shapes, strides, sizes, determinism, bad options."""

import pytest

torch = pytest.importorskip("torch")

from hybridseg.deep.models import MODELS, UNet, build_model, register_model  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
def test_logits_at_the_input_size(name, channels):
    torch.manual_seed(0)
    model = build_model(name, channels, 5).eval()
    s = model.stride
    for h, w in ((s, s), (2 * s, 3 * s)):
        with torch.no_grad():
            out = model(torch.rand(2, channels, h, w))
        assert out.shape == (2, 5, h, w) and torch.isfinite(out).all()


def test_unet_default_size_and_stride():
    model = UNet(3, 11)
    n = sum(p.numel() for p in model.parameters())
    assert 0.45e6 < n < 0.5e6  # "4 levels, widths 16-128, 0.48 M parameters"
    assert model.stride == 8
    assert UNet(3, 2, widths=(8, 16)).stride == 2


def test_same_seed_same_weights_and_gradients_flow():
    torch.manual_seed(3)
    a = UNet(3, 4, widths=(4, 8, 16))
    torch.manual_seed(3)
    b = UNet(3, 4, widths=(4, 8, 16))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    x = torch.rand(2, 3, 8, 8)
    a(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in a.parameters())


@pytest.mark.parametrize("call, match", [
    (lambda: build_model("resnet", 3, 2), "unknown model 'resnet'"),
    (lambda: build_model("unet", 0, 2), "in_channels"),
    (lambda: build_model("unet", 3, 2.5), "n_classes"),
    (lambda: UNet(3, 2, widths=(8,)), "at least two"),
    (lambda: UNet(3, 2, dropout=1.0), "dropout"),
])
def test_bad_options(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_register_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("unet")(UNet)
