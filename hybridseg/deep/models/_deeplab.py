"""The DeepLab family: v1 LargeFOV (2015), v2 (2017), v3 (2017) and v3+ (2018)."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_of as _backbone
from ._backbones import backbone_option
from ._blocks import (
    check_dropout,
    conv_bn_relu,
    pooled_branch,
    positive_int,
    positive_ints,
    residual_stage,
    separable,
    upsample,
)
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("deeplabv3plus")
class DeepLabV3Plus(nn.Module):
    """DeepLabv3+: a residual backbone, atrous spatial pyramid pooling (ASPP) and a decoder
    that refines the upsampled ASPP output with stride-4 features.

    The backbone is a 3x3 conv-BN-ReLU stem of stride 2 (then one of stride 1) and three
    stages of basic residual blocks at strides 4, 8 and 16; at ``output_stride=8`` the last
    stage keeps stride 8 and dilates its convolutions by 2 instead. ASPP runs five branches on
    the last feature map: a 1x1 conv-BN-ReLU, three depthwise-separable 3x3 convolutions
    (depthwise conv-BN-ReLU, pointwise conv-BN-ReLU, as in the Xception variant) dilated at
    ``rates``, and image pooling (global average, 1x1 conv, ReLU, broadcast back). The image
    pooling branch has no batch normalisation but a bias: on its 1x1 map batch normalisation
    cannot train at batch size 1. The branches are concatenated and projected by a 1x1
    conv-BN-ReLU (and dropout). The decoder upsamples that bilinearly to the stride-4 map,
    concatenates it with the stride-4 features reduced by a 1x1 conv-BN-ReLU, applies two
    separable 3x3 convolutions and a 1x1 classifier, and upsamples the logits bilinearly
    to the input's size.

    ``stride`` is the output stride: inputs must be multiples of it.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of four int, default=(16, 32, 64, 128)
        Channels of the stem and of the stages at strides 4, 8 and 16 (or dilated 8). The
        default has about 0.75 M parameters (K = 21).
    blocks : sequence of three int, default=(1, 2, 2)
        Residual blocks in each stage.
    output_stride : {16, 8}, default=16
        Stride of the backbone's last feature map, where ASPP runs.
    rates : sequence of three int, optional
        Dilation rates of the three atrous ASPP branches; by default ``(6, 12, 18)`` at
        output stride 16 and twice that, ``(12, 24, 36)``, at 8, as in the paper.
    aspp_width : int, default=64
        Channels of each ASPP branch and of its projection (the paper's 256).
    low_level_width : int, default=16
        Channels the stride-4 features are reduced to (the paper's 48).
    decoder_width : int, default=64
        Channels of the decoder's separable convolutions (the paper's 256).
    dropout : float, default=0.1
        Dropout after the ASPP projection.
    backbone : str, optional
        A backbone of ``build_backbone`` (``"resnet50"``, ``"mobilenet_v3_large"``,
        ``"timm:<name>"``, ...) in place of the small built-in encoder (its stride-4 and
        last maps feed the decoder and ASPP; ``widths`` and ``blocks`` then do not apply).
    backbone_weights : str or path-like, optional
        The backbone's pretrained weights: a checkpoint path or ``"imagenet"``
        (``build_backbone``'s ``weights``).
    """

    #: The paper's head on ResNet-101 (the paper's best model is on Xception-65, which the
    #: zoo does not have; its ResNet-101 results are in the paper too).
    PRESETS = {"small": {}, "paper": {"backbone": "resnet101", "aspp_width": 256,
                                      "low_level_width": 48, "decoder_width": 256}}

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), blocks=(1, 2, 2),
                 output_stride=16, rates=None, aspp_width=64, low_level_width=16,
                 decoder_width=64, dropout=0.1, backbone=None, backbone_weights=None):
        super().__init__()
        widths = positive_ints("widths", widths, count=4)
        blocks = positive_ints("blocks", blocks, count=3)
        rates = _aspp_rates(output_stride, rates)
        aspp_width = positive_int("aspp_width", aspp_width)
        low_level_width = positive_int("low_level_width", low_level_width)
        decoder_width = positive_int("decoder_width", decoder_width)
        dropout = check_dropout(dropout)
        self.stride = int(output_stride)
        self.rates = rates
        self.backbone = backbone_option(backbone, backbone_weights, in_channels,
                                        output_stride)
        if self.backbone is None:
            self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0], stride=2),
                                      conv_bn_relu(widths[0], widths[0]))
            self.layer1 = residual_stage(widths[0], widths[1], blocks[0], stride=2)
            self.layer2 = residual_stage(widths[1], widths[2], blocks[1], stride=2)
            self.layer3 = (residual_stage(widths[2], widths[3], blocks[2], stride=2)
                           if output_stride == 16 else
                           residual_stage(widths[2], widths[3], blocks[2], dilation=2))
            low_width, cin = widths[1], widths[3]
        else:
            low_width, cin = self.backbone.channels[0], self.backbone.channels[-1]
        self.aspp = nn.ModuleList([
            conv_bn_relu(cin, aspp_width, kernel_size=1),
            *(separable(cin, aspp_width, dilation=r) for r in rates),
            pooled_branch(cin, aspp_width, 1),
        ])
        self.project = nn.Sequential(conv_bn_relu(5 * aspp_width, aspp_width, kernel_size=1),
                                     nn.Dropout2d(dropout))
        self.reduce = conv_bn_relu(low_width, low_level_width, kernel_size=1)
        self.decoder = nn.Sequential(separable(aspp_width + low_level_width, decoder_width),
                                     separable(decoder_width, decoder_width))
        self.head = nn.Conv2d(decoder_width, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        if _backbone(self) is None:
            low = self.layer1(self.stem(x))
            x = self.layer3(self.layer2(low))
        else:
            features = self.backbone(x)
            low, x = features[0], features[-1]
        x = torch.cat([upsample(branch(x), x.shape[-2:]) for branch in self.aspp], dim=1)
        x = upsample(self.project(x), low.shape[-2:])
        x = self.decoder(torch.cat([x, self.reduce(low)], dim=1))
        return upsample(self.head(x), size)


def _aspp_rates(output_stride, rates):
    """ASPP's three atrous rates: given, or the paper's (6, 12, 18) at output stride 16 and
    twice those at 8; the output stride is checked."""
    if isinstance(output_stride, bool) or output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    if rates is None:
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    return positive_ints("rates", rates, count=3)


def _dropout(p):
    return nn.Dropout2d(p) if p > 0 else nn.Identity()


class _FCHead(nn.Sequential):
    """DeepLab v1/v2's converted classifier on one branch: a 3x3 convolution dilated at
    ``rate`` (fc6), a 1x1 (fc7), each with ReLU and dropout, and a 1x1 to the K scores
    (fc8); with ``width`` None one 3x3 dilated convolution to the scores (the ResNet
    variant of DeepLab v2)."""

    def __init__(self, cin, width, n_classes, rate, dropout):
        if width is None:
            super().__init__(nn.Conv2d(cin, n_classes, 3, padding=rate, dilation=rate))
            return
        super().__init__(
            nn.Conv2d(cin, width, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True),
            _dropout(dropout), nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
            _dropout(dropout), nn.Conv2d(width, n_classes, 1))


class _AtrousClassifier(nn.Module):
    """DeepLab v1 (one fc branch, rate 12: LargeFOV) and v2 (ASPP: fc branches at several
    rates whose scores are summed), on a backbone of output stride 8."""

    def __init__(self, in_channels, n_classes, rates, width, dropout, backbone,
                 backbone_weights):
        super().__init__()
        rates = positive_ints("rates", rates)
        width = None if width is None else positive_int("width", width)
        dropout = check_dropout(dropout)
        self.stride = 8
        self.rates = rates
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 8)
        cin = self.backbone.channels[-1]
        self.branches = nn.ModuleList(_FCHead(cin, width, n_classes, r, dropout)
                                      for r in rates)

    def forward(self, x):
        size = x.shape[-2:]
        x = self.backbone(x)[-1]
        return upsample(sum(branch(x) for branch in self.branches), size)


@register_model("deeplabv1")
class DeepLabV1(_AtrousClassifier):
    """DeepLab v1, the LargeFOV variant (Chen et al., 2015): a VGG-16 whose last two pools
    keep the stride (3x3 pools of stride 1) so that the scores come at stride 8, conv5
    dilated by 2, and the fully connected layers as convolutions: fc6 3x3 dilated at rate
    12 with 1024 channels, fc7 1x1 of 1024, fc8 1x1 to K; the scores are upsampled
    bilinearly (the paper's fully connected CRF after it is ``DenseCRF`` or ``+dense``).

    Faithful at ``preset="paper"``: VGG-16 (``backbone="vgg16_bn"``, batch-normalised,
    ImageNet weights loadable) with those layers and dropout 0.5, 20.5 M parameters at
    K = 21 (the paper's LargeFOV 20.5 M). ``preset="small"``: the light backbone and
    fc layers of 128 channels, 0.66 M parameters at K = 11.

    Parameters
    ----------
    in_channels, n_classes : int
    rate : int, default=12
        Dilation of fc6.
    width : int, default=128
        Channels of fc6 and fc7 (the paper's 1024).
    dropout : float, default=0.1
        After fc6 and fc7 (the paper's 0.5).
    backbone : str, default="light"
        A ``build_backbone`` name, dilated to output stride 8 (the paper's ``"vgg16_bn"``).
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "vgg16_bn", "width": 1024,
                                      "dropout": 0.5}}

    def __init__(self, in_channels, n_classes, rate=12, width=128, dropout=0.1,
                 backbone="light", backbone_weights=None):
        super().__init__(in_channels, n_classes, (rate,), width, dropout, backbone,
                         backbone_weights)


@register_model("deeplabv2")
class DeepLabV2(_AtrousClassifier):
    """DeepLab v2 (Chen et al., 2017): atrous spatial pyramid pooling as four fc branches
    (fc6 3x3 dilated at rates 6, 12, 18 and 24, fc7 1x1, fc8 1x1 to K, the "ASPP-L"
    configuration) on a backbone of output stride 8, their scores summed and upsampled
    bilinearly.

    Faithful at ``preset="paper"``: ResNet-101 (``backbone="resnet101"``) dilated to output
    stride 8, each branch one 3x3 dilated convolution to the K scores, as the paper's
    ResNet-101 model has it (``width=None``; ``width=1024`` is its VGG-16 "ASPP-L"): 44.1 M
    parameters at K = 21. Simplified: the paper's multi-scale inputs (max fusion over
    scales 0.5, 0.75, 1) are left out.
    ``preset="small"``: the light backbone and branches of 64 channels, 0.81 M
    parameters at K = 11.

    Parameters
    ----------
    in_channels, n_classes : int
    rates : sequence of int, default=(6, 12, 18, 24)
    width : int or None, default=64
        Channels of each branch's fc6 and fc7; None: one 3x3 convolution to the scores
        per branch.
    dropout : float, default=0.1
    backbone : str, default="light"
        A ``build_backbone`` name, dilated to output stride 8 (the paper's
        ``"resnet101"``).
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet101", "width": None}}

    def __init__(self, in_channels, n_classes, rates=(6, 12, 18, 24), width=64,
                 dropout=0.1, backbone="light", backbone_weights=None):
        super().__init__(in_channels, n_classes, rates, width, dropout, backbone,
                         backbone_weights)


@register_model("deeplabv3")
class DeepLabV3(nn.Module):
    """DeepLab v3 (Chen et al., 2017, "Rethinking atrous convolution"): a backbone of
    output stride 16 (or 8) with multi-grid dilation in its last stage, and ASPP with batch
    normalisation: a 1x1 conv-BN-ReLU, three 3x3 conv-BN-ReLU dilated at ``rates`` and
    image-level features (global average pooling, 1x1 conv, ReLU, upsampled), concatenated,
    projected by a 1x1 conv-BN-ReLU and scored by a 1x1 convolution; the scores are
    upsampled bilinearly.

    Faithful at ``preset="paper"``: ResNet-101 (``backbone="resnet101"``, multi-grid (1, 2,
    4)) and ASPP of 256 channels: 58.0 M parameters at K = 21. The image pooling branch has
    a bias instead of batch normalisation (which cannot train on its 1x1 map at batch size
    1). ``preset="small"``: the light backbone (no multi-grid) and ASPP of 64 channels,
    0.75 M parameters at K = 11.

    Parameters
    ----------
    in_channels, n_classes : int
    output_stride : {16, 8}, default=16
    rates : sequence of three int, optional
        ``(6, 12, 18)`` at output stride 16, twice that at 8.
    multi_grid : sequence of int, optional
        The ResNets' last-stage rates (``(1, 2, 4)``); None for other backbones.
    aspp_width : int, default=64
        (The paper's 256.)
    dropout : float, default=0.1
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet101", "multi_grid": (1, 2, 4),
                                      "aspp_width": 256}}

    def __init__(self, in_channels, n_classes, output_stride=16, rates=None,
                 multi_grid=None, aspp_width=64, dropout=0.1, backbone="light",
                 backbone_weights=None):
        super().__init__()
        rates = _aspp_rates(output_stride, rates)
        aspp_width = positive_int("aspp_width", aspp_width)
        dropout = check_dropout(dropout)
        self.stride = int(output_stride)
        self.backbone = backbone_option(backbone, backbone_weights, in_channels,
                                        output_stride, multi_grid)
        cin = self.backbone.channels[-1]
        self.aspp = nn.ModuleList([
            conv_bn_relu(cin, aspp_width, kernel_size=1),
            *(conv_bn_relu(cin, aspp_width, dilation=r) for r in rates),
            pooled_branch(cin, aspp_width, 1),
        ])
        self.project = nn.Sequential(conv_bn_relu(5 * aspp_width, aspp_width, kernel_size=1),
                                     nn.Dropout2d(dropout))
        self.head = nn.Conv2d(aspp_width, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        x = self.backbone(x)[-1]
        x = torch.cat([upsample(branch(x), x.shape[-2:]) for branch in self.aspp], dim=1)
        return upsample(self.head(self.project(x)), size)
