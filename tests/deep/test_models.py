"""The model zoo: shapes, strides, sizes, determinism, bad options, and what makes each
architecture itself (FCN's bilinear upsampling, SegNet's unpooling indices, DeepLab's
separable atrous branches, PSPNet's pyramid bins)."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hybridseg.deep.models import (  # noqa: E402
    FCN,
    MODELS,
    DeepLabV3Plus,
    PSPNet,
    SegNet,
    UNet,
    build_model,
    register_model,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions run fastest on one thread, and do not stall when other jobs keep
    the cores busy (two threads then spin against them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# --- every architecture ---


def test_the_zoo():
    assert {"unet", "fcn", "segnet", "deeplabv3plus", "pspnet"} <= set(MODELS)
    assert MODELS["fcn"] is FCN and MODELS["segnet"] is SegNet
    assert MODELS["deeplabv3plus"] is DeepLabV3Plus and MODELS["pspnet"] is PSPNet


@pytest.mark.parametrize("name, stride", [
    ("unet", 8), ("fcn", 32), ("segnet", 16), ("deeplabv3plus", 16), ("pspnet", 8),
])
def test_default_strides(name, stride):
    assert build_model(name, 3, 2).stride == stride


@pytest.mark.parametrize("name", sorted(MODELS))
def test_more_sizes_in_train_mode(name):
    torch.manual_seed(1)
    model = build_model(name, 3, 4).train()
    s = model.stride
    for h, w in ((3 * s, 2 * s), (2 * s, 4 * s)):
        out = model(torch.rand(2, 3, h, w))
        assert out.shape == (2, 4, h, w) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batch_of_one_trains_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(2)
    model = build_model(name, 1, 3).train()
    s = model.stride
    out = model(torch.rand(1, 1, 2 * s, 3 * s))
    assert out.shape == (1, 3, 2 * s, 3 * s)
    labels = torch.randint(0, 3, (1, 2 * s, 3 * s))
    loss = F.cross_entropy(out, labels)
    if getattr(model, "se_logits", None) is not None:  # EncNet's auxiliary head
        from hybridseg.deep._training import semantic_encoding_loss

        loss = loss + semantic_encoding_loss(model.se_logits, labels, void=-100)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_sizes_train_on_a_cpu(name):
    for k in (2, 21):
        n = sum(p.numel() for p in build_model(name, 3, k).parameters())
        low = 5e3 if name == "msd" else 0.3e6  # MSD's point: very few parameters
        assert low < n < 1.5e6, (name, k, n)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_outputs(name):
    x = torch.rand(1, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(4)
        outs.append(build_model(name, 3, 2).eval()(x))
    assert torch.equal(*outs)


@pytest.mark.parametrize("call, match", [
    (lambda: FCN(3, 2, widths=(8, 16)), "widths"),
    (lambda: FCN(3, 2, widths=(8, 16, 0)), "widths"),
    (lambda: FCN(3, 2, depth=0), "depth"),
    (lambda: FCN(3, 2, fc_width=2.5), "fc_width"),
    (lambda: FCN(3, 2, dropout=-0.1), "dropout"),
    (lambda: SegNet(3, 2, widths=()), "widths"),
    (lambda: SegNet(3, 2, widths=(8, True)), "widths"),
    (lambda: SegNet(3, 2, widths=16), "widths"),
    (lambda: SegNet(3, 2, depth=True), "depth"),
    (lambda: DeepLabV3Plus(3, 2, widths=(8, 16, 32)), "widths"),
    (lambda: DeepLabV3Plus(3, 2, blocks=(1, 0, 1)), "blocks"),
    (lambda: DeepLabV3Plus(3, 2, output_stride=32), "output_stride"),
    (lambda: DeepLabV3Plus(3, 2, rates=(6, 12)), "rates"),
    (lambda: DeepLabV3Plus(3, 2, aspp_width=0), "aspp_width"),
    (lambda: DeepLabV3Plus(3, 2, low_level_width=-1), "low_level_width"),
    (lambda: DeepLabV3Plus(3, 2, decoder_width=None), "decoder_width"),
    (lambda: DeepLabV3Plus(3, 2, dropout=1), "dropout"),
    (lambda: PSPNet(3, 2, widths=(8, 16, 32, 64)), "widths"),
    (lambda: PSPNet(3, 2, blocks=(1, 1, 1)), "blocks"),
    (lambda: PSPNet(3, 2, bins=(1, 0)), "bins"),
    (lambda: PSPNet(3, 2, bins=()), "bins"),
    (lambda: PSPNet(3, 2, head_width=0), "head_width"),
    (lambda: PSPNet(3, 2, dropout="0.1"), "dropout"),
    (lambda: PSPNet(3, 2, bins=(2.5,)), "bins"),
])
def test_bad_architecture_options(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_option_is_refused(name):
    with pytest.raises(TypeError, match="width_multiplier"):
        build_model(name, 3, 2, width_multiplier=2)


# --- FCN ---


def test_fcn_upsamplings_start_bilinear():
    model = FCN(3, 3)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert ups == [model.upscore2, model.upscore_pool4, model.upscore_final]
    assert [m.stride for m in ups] == [(2, 2), (2, 2), (8, 8)]
    for up, f in ((model.upscore2, 2), (model.upscore_pool4, 2), (model.upscore_final, 8)):
        with torch.no_grad():
            flat = up(torch.full((1, 3, 5, 6), 2.0))
            x = torch.rand(1, 3, 5, 6)
            smooth, reference = up(x), F.interpolate(x, scale_factor=f, mode="bilinear")
        assert flat.shape == (1, 3, 5 * f, 6 * f)
        inner = (..., slice(f, -f), slice(f, -f))
        assert torch.allclose(flat[inner], torch.tensor(2.0))  # constant interior
        assert torch.allclose(smooth[inner], reference[inner], atol=1e-6)
        # each class is upsampled on its own
        assert torch.equal(up.weight[0, 1], torch.zeros_like(up.weight[0, 1]))


def test_fcn_fuses_three_strides_and_the_skip_scores_start_at_zero():
    model = FCN(3, 2, widths=(4, 8, 8, 16, 16), depth=1, fc_width=16)
    assert model.score_pool3.in_channels == 8 and model.score_pool4.in_channels == 16
    assert not model.score_pool3.weight.any() and not model.score_pool4.weight.any()
    seen = {}
    for key in ("score", "score_pool4", "score_pool3"):
        getattr(model, key).register_forward_hook(
            lambda _m, _a, out, key=key: seen.update({key: out.shape[-2:]}))
    model.eval()(torch.rand(1, 3, 64, 96))
    assert seen == {"score": (2, 3), "score_pool4": (4, 6), "score_pool3": (8, 12)}


def test_fcn_with_fewer_stages():
    model = FCN(1, 2, widths=(4, 8, 16), depth=1, fc_width=8)
    assert model.stride == 8 and model.upscore_final.stride == (2, 2)
    assert model.eval()(torch.rand(1, 1, 16, 24)).shape == (1, 2, 16, 24)


# --- SegNet ---


def test_segnet_unpools_at_the_pooling_indices():
    torch.manual_seed(5)
    model = SegNet(3, 2, widths=(4, 8, 8)).eval()
    assert model.stride == 8
    assert isinstance(model.unpool, nn.MaxUnpool2d)
    assert isinstance(model.pool, nn.MaxPool2d) and model.pool.return_indices
    pooled, unpooled = [], []
    model.pool.register_forward_hook(lambda _m, _a, out: pooled.append(out[1]))
    model.unpool.register_forward_hook(
        lambda _m, args, out: unpooled.append((args[0], args[1], out)))
    with torch.no_grad():
        model(torch.rand(2, 3, 16, 24))
    assert len(pooled) == len(unpooled) == 3
    for (x, indices, out), pool_indices in zip(unpooled, pooled[::-1]):
        assert indices is pool_indices  # the encoder's own indices, in mirror order
        assert out.shape[-2:] == (2 * x.shape[-2], 2 * x.shape[-1])
        flat, idx = out.flatten(2), indices.flatten(2)
        at_argmax = torch.zeros_like(flat, dtype=torch.bool).scatter_(2, idx, True)
        assert torch.equal(flat.gather(2, idx), x.flatten(2))
        assert not flat[~at_argmax].any()  # zero off the argmax positions
        assert (x > 0).any()


# --- DeepLabv3+ ---


@pytest.mark.parametrize("options, stride, rates", [
    ({}, 16, (6, 12, 18)),
    ({"output_stride": 8}, 8, (12, 24, 36)),
    ({"rates": (2, 3, 4)}, 16, (2, 3, 4)),
])
def test_deeplab_aspp_is_separable_and_atrous(options, stride, rates):
    model = DeepLabV3Plus(3, 2, **options)
    assert model.stride == stride and model.rates == rates
    assert len(model.aspp) == 5
    cin = model.layer3[-1].body[1].out_channels
    for branch, rate in zip(model.aspp[1:4], rates):
        depthwise, pointwise = branch[0], branch[3]
        assert depthwise.kernel_size == (3, 3) and depthwise.dilation == (rate, rate)
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == cin
        assert pointwise.kernel_size == (1, 1) and pointwise.groups == 1
    pooling = model.aspp[4]
    assert isinstance(pooling[0], nn.AdaptiveAvgPool2d)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in pooling.modules())
    for conv in model.decoder.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
            assert conv.groups == conv.in_channels  # separable decoder too


def test_deeplab_output_stride_and_decoder_stride_four():
    for output_stride in (16, 8):
        model = DeepLabV3Plus(3, 2, output_stride=output_stride).eval()
        seen = {}
        model.layer3.register_forward_hook(lambda _m, _a, out, s=seen: s.update(aspp=out.shape))
        model.reduce.register_forward_hook(lambda _m, _a, out, s=seen: s.update(low=out.shape))
        with torch.no_grad():
            out = model(torch.rand(1, 3, 32, 64))
        assert out.shape == (1, 2, 32, 64)
        assert seen["aspp"][-2:] == (32 // output_stride, 64 // output_stride)
        assert seen["low"][-2:] == (8, 16)


# --- PSPNet ---


@pytest.mark.parametrize("bins", [(1, 2, 3, 6), (1, 3)])
def test_pspnet_pyramid_bins(bins):
    model = PSPNet(3, 2, bins=bins).eval()
    assert model.stride == 8 and model.bins == bins
    pools = [level[0] for level in model.pyramid]
    assert all(isinstance(p, nn.AdaptiveAvgPool2d) for p in pools)
    assert [p.output_size for p in pools] == list(bins)
    shapes = []
    for level in model.pyramid:
        level.register_forward_hook(lambda _m, _a, out: shapes.append(out.shape[-2:]))
    with torch.no_grad():
        assert model(torch.rand(1, 3, 48, 64)).shape == (1, 2, 48, 64)
    assert shapes == [(b, b) for b in bins]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.pyramid[0].modules())
    dilations = [stage[0].body[0][0].dilation for stage in model.layers]
    assert dilations == [(1, 1), (1, 1), (2, 2), (4, 4)]


# --- presets and the papers' sizes ---

PAPER_SIZES = {"fcn": (11, 134.5), "segnet": (11, 29.5), "unet": (2, 31.0),
               "fcdensenet56": (11, 1.5), "fcdensenet67": (11, 3.5),
               "fcdensenet103": (11, 9.4), "enet": (11, 0.37),
               # DeepLab v1 LargeFOV as its paper counts it; v2 and v3 on ResNet-101 as
               # their released models are (torchvision's v3 adds a 3x3 layer: 58.6 M)
               "deeplabv1": (21, 20.5), "deeplabv2": (21, 44.0), "deeplabv3": (21, 58.0),
               # ParseNet on LargeFOV; DilatedNet's front end (134 M) + large context
               "parsenet": (21, 20.5), "dilatednet": (21, 141.2), "deconvnet": (21, 252.0)}


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_presets_have_the_papers_sizes(name):
    k, millions = PAPER_SIZES[name]
    with torch.device("meta"):  # no memory for FCN's 134 M parameters
        n = sum(p.numel() for p in build_model(name, 3, k, preset="paper").parameters())
    assert abs(n / 1e6 - millions) <= 0.1 * millions, (name, n)


def test_presets_are_checked_and_options_override_them():
    with pytest.raises(ValueError, match=r"unknown preset 'huge' of 'unet'; presets: "
                                         r"\['paper', 'small'\]"):
        build_model("unet", 3, 2, preset="huge")
    with torch.device("meta"):
        net = build_model("unet", 3, 2, preset="paper", widths=(8, 16))
    assert net.stride == 2


@pytest.mark.parametrize(("variant", "factor", "skips"), [
    ("32s", 32, ()), ("16s", 16, ("score_pool4",)), ("8s", 8, ("score_pool4", "score_pool3"))])
def test_fcn_variants_fuse_their_skips(variant, factor, skips):
    net = FCN(3, 4, variant=variant).eval()
    assert net.upscore_final.stride == (factor, factor)
    for name in ("score_pool4", "score_pool3"):
        assert hasattr(net, name) == (name in skips)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    with pytest.raises(ValueError, match="variant must be '8s', '16s' or '32s'"):
        FCN(3, 4, variant="4s")


def test_the_tiramisu_upsamples_only_the_new_maps():
    from hybridseg.deep.models import FCDenseNet56

    net = FCDenseNet56(3, 11)  # the paper's: growth 12, 4 layers a block
    assert net.transitions_up[0].in_channels == 4 * 12  # the bottleneck's new maps only
    assert [len(b.layers) for b in (*net.down, net.bottleneck, *net.up)] == [4] * 11
    assert net.down[0].layers[0][2].out_channels == 12


def test_enet_blocks_in_the_papers_order():
    from hybridseg.deep.models import ENet

    net = ENet(3, 11)
    kinds = [(b.kind, b.main[0].dilation if b.kind == "regular" else None)
             for b in net.stage23[:8]]
    assert kinds == [("regular", (1, 1)), ("regular", (2, 2)), ("asymmetric", None),
                     ("regular", (4, 4)), ("regular", (1, 1)), ("regular", (8, 8)),
                     ("asymmetric", None), ("regular", (16, 16))]
    assert len(net.stage23) == 16 and net.stride == 8
    with pytest.raises(ValueError, match="width must exceed in_channels"):
        ENet(16, 2, width=16)


def test_deeplab_v3_multi_grid_and_v2_branches():
    from hybridseg.deep.models import DeepLabV2, DeepLabV3

    with torch.device("meta"):
        v3 = DeepLabV3(3, 21, backbone="resnet50", multi_grid=(1, 2, 4))
    assert [b.conv2.dilation for b in v3.backbone.layer4] == [(2, 2), (4, 4), (8, 8)]
    v2 = DeepLabV2(3, 5, width=None)
    assert [b[0].dilation for b in v2.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    with pytest.raises(ValueError, match="multi_grid applies to the ResNets"):
        DeepLabV3(3, 5, multi_grid=(1, 2, 4))
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        DeepLabV3(3, 5, output_stride=32)


def test_dilatednets_context_module_starts_as_the_identity():
    from hybridseg.deep.models import DilatedNet

    net = DilatedNet(3, 4, context="large").eval()
    z = torch.rand(1, 4, 10, 12)
    with torch.no_grad():
        assert torch.allclose(net.context(z), z)  # ReLU passes the non-negative scores
    dilations = [m.dilation[0] for m in net.context if isinstance(m, nn.Conv2d)]
    assert dilations == [1, 1, 2, 4, 8, 16, 1, 1]
    with torch.device("meta"):
        vgg = DilatedNet(3, 4, backbone="vgg16_bn")
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.backbone.features) == 3


def test_parsenet_context_is_global():
    from hybridseg.deep.models import ParseNet

    torch.manual_seed(0)
    net = ParseNet(3, 4).eval()
    x = torch.rand(1, 3, 320, 320)
    y = x.clone()
    y[..., :16, :16] = 5.0  # a far corner, beyond the local features' reach
    with torch.no_grad():
        a, b = net(x), net(y)
        net.norm_global.scale.zero_()  # without the context the far scores do not move
        c, d = net(x), net(y)
    assert not torch.allclose(a[..., -16:, -16:], b[..., -16:, -16:])
    torch.testing.assert_close(c[..., -16:, -16:], d[..., -16:, -16:])


def test_gcn_fpn_and_msd_are_built_as_their_papers_say():
    from hybridseg.deep.models import FPN, GCN, MSDNet

    gcn = GCN(3, 5)
    left = gcn.gcn[0].left
    assert left[0].kernel_size == (15, 1) and left[1].kernel_size == (1, 15)
    with pytest.raises(ValueError, match="k must be odd"):
        GCN(3, 5, k=14)
    fpn = FPN(3, 5, path_aggregation=True)
    assert [len(s) for s in fpn.head] == [1, 1, 2, 3] and len(fpn.down) == 3
    with pytest.raises(ValueError, match="groups"):
        FPN(3, 5, width=60, groups=8)
    msd = MSDNet(3, 5, depth=12)
    assert [layer[0].dilation[0] for layer in msd.layers] == [*range(1, 11), 1, 2]
    assert msd.layers[11][0].in_channels == 3 + 11 and msd.head.in_channels == 3 + 12


def test_encnets_encoding_layer_against_its_definition():
    from hybridseg.deep.models._encnet import _Encoding

    torch.manual_seed(0)
    enc = _Encoding(8, 5)
    x = torch.randn(2, 8, 6, 7)
    r = x.flatten(2).transpose(1, 2)[:, :, None, :] - enc.codewords[None, None]
    a = torch.softmax(enc.scale * r.pow(2).sum(-1), dim=2)
    torch.testing.assert_close(enc(x), (a[..., None] * r).sum(1), rtol=1e-4, atol=1e-4)


def test_encnet_keeps_its_semantic_encoding_logits():
    from hybridseg.deep.models import EncNet

    net = EncNet(3, 5).eval()
    with torch.no_grad():
        net(torch.rand(2, 3, 32, 48))
    assert net.se_logits.shape == (2, 5)


def test_refinenet_cascade():
    from hybridseg.deep.models import RefineNet

    net = RefineNet(3, 5)
    assert net.refine4.fuse is None and len(net.refine1.paths) == 2
    assert len(net.refine1.pool.stages) == 2
    assert net.refine1.pool.stages[0][0].kernel_size == 5


def test_the_semantic_encoding_loss_counts_the_classes_present():
    from hybridseg.deep._training import semantic_encoding_loss

    labels = torch.tensor([[[0, 2], [2, 255]], [[1, 1], [1, 1]]])
    logits = torch.tensor([[9.0, -9.0, 9.0], [-9.0, 9.0, -9.0]])
    assert semantic_encoding_loss(logits, labels, void=255) < 1e-3
    assert semantic_encoding_loss(-logits, labels, void=255) > 5


@pytest.mark.parametrize("name", ["msd", "enet", "fcdensenet56", "deconvnet", "segnet"])
def test_a_backbone_an_architecture_cannot_take_is_a_clear_error(name):
    with pytest.raises(ValueError, match=f"'{name}' takes no backbone; the architectures "
                                         "that take a backbone are"):
        build_model(name, 3, 2, backbone="resnet18")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_architecture_has_a_small_and_a_paper_preset(name):
    assert set(MODELS[name].PRESETS) == {"small", "paper"}
    with torch.device("meta"):
        small = sum(p.numel() for p in build_model(name, 3, 11).parameters())
        paper = sum(p.numel() for p in build_model(name, 3, 11, preset="paper").parameters())
    assert paper >= small
