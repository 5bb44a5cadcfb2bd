"""FCN (Long et al., 2015): FCN-8s."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_of as _backbone
from ._backbones import backbone_option
from ._blocks import (
    bilinear_upsampling,
    check_dropout,
    conv_bn_relu,
    odd_int,
    positive_int,
    positive_ints,
)
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("fcn")
class FCN(nn.Module):
    """FCN (FCN-32s, 16s, 8s): a VGG-like encoder, class scores at one to three strides
    fused by learned upsampling.

    The encoder is ``len(widths)`` stages of 3x3 conv-BN-ReLU and a 2x2 max pool (VGG-16 has
    five: stride 32); two "fully connected" layers as convolutions (3x3 and 1x1 conv-BN-ReLU,
    where VGG has 7x7 and 1x1 of 4096 channels) follow the last pool. 1x1 convolutions score
    the K classes on that map and, for FCN-16s and 8s, on the outputs of the second- and
    third-last pools (``pool4`` and ``pool3`` of VGG-16, strides 16 and 8). FCN-8s: the
    coarsest score is upsampled 2x by a transposed convolution and added to the ``pool4``
    score, the sum is upsampled 2x and added to the ``pool3`` score, and a last transposed
    convolution upsamples ``stride / 4`` times (8x) to the input's size; FCN-16s stops after
    ``pool4`` and upsamples 16x; FCN-32s upsamples the coarsest score 32x. The upsamplings
    are learned and initialised to bilinear interpolation, and the skip scores to zero, as
    in the paper.

    Faithful: the skip architecture, the score layers, the bilinear-initialised learned
    upsampling, and at ``preset="paper"`` VGG-16 (``backbone="vgg16_bn"``, its ImageNet
    weights loadable) with fc6 a 7x7 convolution of 4096 channels and fc7 1x1 of 4096,
    dropout 0.5: 134.4 M parameters at K = 11 (the paper's 134.5 M). Simplified:
    convolutions are padded (no 100-pixel input padding and crop) and followed by batch
    normalisation, for training from scratch; the default (``preset="small"``) has about
    0.67 M parameters at K = 11.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of int, default=(16, 32, 64, 96, 128)
        Channels of the encoder stages, one pool each: at least three, and the stride is
        ``2 ** len(widths)``. The default has about 0.77 M parameters (K = 21).
    depth : int, default=2
        3x3 conv-BN-ReLU layers in each encoder stage (VGG-16 has 2, 2, 3, 3, 3).
    fc_width : int, default=128
        Channels of the two convolutions after the last pool (VGG's fc6 and fc7: 4096).
    fc_kernel : int, default=3
        Kernel size of the first of them (VGG's fc6 as a convolution: 7).
    variant : {"8s", "16s", "32s"}, default="8s"
        Which skips are fused: FCN-8s (``pool4`` and ``pool3``), FCN-16s (``pool4``) or
        FCN-32s (none).
    dropout : float, default=0.0
        Dropout after each of these two (the paper's is 0.5).
    backbone : str, optional
        A backbone of ``build_backbone`` (``"resnet50"``, ``"mobilenet_v3_large"``,
        ``"timm:<name>"``, ...) in place of the small built-in encoder (its stride-8, 16
        and 32 maps play pool3, pool4 and pool5; ``widths`` and ``depth`` then do not
        apply; ``"vgg16_bn"`` is the paper's encoder).
    backbone_weights : str or path-like, optional
        The backbone's pretrained weights: a checkpoint path or ``"imagenet"``
        (``build_backbone``'s ``weights``).
    """

    PRESETS = {"small": {}, "paper": {"backbone": "vgg16_bn", "fc_width": 4096,
                                      "fc_kernel": 7, "dropout": 0.5}}

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 96, 128), depth=2,
                 fc_width=128, dropout=0.0, backbone=None, backbone_weights=None,
                 fc_kernel=3, variant="8s"):
        super().__init__()
        if not isinstance(variant, str) or variant not in ("8s", "16s", "32s"):
            raise ValueError(f"variant must be '8s', '16s' or '32s', got {variant!r}")
        widths = positive_ints("widths", widths, at_least=3)
        depth = positive_int("depth", depth)
        fc_width = positive_int("fc_width", fc_width)
        fc_kernel = odd_int("fc_kernel", fc_kernel)
        dropout = check_dropout(dropout)
        self.variant = variant
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 32)
        if self.backbone is None:
            self.stride = 2 ** len(widths)
            self.stages = nn.ModuleList()
            cin = in_channels
            for w in widths:
                self.stages.append(nn.Sequential(
                    *(conv_bn_relu(cin if i == 0 else w, w) for i in range(depth)),
                    nn.MaxPool2d(2),
                ))
                cin = w
        else:
            self.stride = 32
            widths = self.backbone.channels[1:]
            cin = widths[-1]
        self.fc = nn.Sequential(
            conv_bn_relu(cin, fc_width, kernel_size=fc_kernel), nn.Dropout2d(dropout),
            conv_bn_relu(fc_width, fc_width, kernel_size=1), nn.Dropout2d(dropout),
        )
        self.score = nn.Conv2d(fc_width, n_classes, 1)
        if variant == "32s":
            self.upscore_final = bilinear_upsampling(n_classes, self.stride)
            return
        self.score_pool4 = nn.Conv2d(widths[-2], n_classes, 1)
        self.upscore2 = bilinear_upsampling(n_classes, 2)
        nn.init.zeros_(self.score_pool4.weight)
        nn.init.zeros_(self.score_pool4.bias)
        if variant == "16s":
            self.upscore_final = bilinear_upsampling(n_classes, self.stride // 2)
            return
        self.score_pool3 = nn.Conv2d(widths[-3], n_classes, 1)
        nn.init.zeros_(self.score_pool3.weight)
        nn.init.zeros_(self.score_pool3.bias)
        self.upscore_pool4 = bilinear_upsampling(n_classes, 2)
        self.upscore_final = bilinear_upsampling(n_classes, self.stride // 4)

    def forward(self, x):
        if _backbone(self) is None:
            pools = []
            for stage in self.stages:
                x = stage(x)
                pools.append(x)
        else:
            pools = self.backbone(x)[1:]
            x = pools[-1]
        x = self.score(self.fc(x))
        variant = getattr(self, "variant", "8s")  # networks pickled before the variants
        if variant != "32s":
            x = self.upscore2(x) + self.score_pool4(pools[-2])
        if variant == "8s":
            x = self.upscore_pool4(x) + self.score_pool3(pools[-3])
        return self.upscore_final(x)


class _L2Scale(nn.Module):
    """L2 normalisation over the channels, then a learned scale per channel (ParseNet's
    way of putting maps of different magnitudes on one footing)."""

    def __init__(self, channels, init=10.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, channels, 1, 1), float(init)))

    def forward(self, x):
        return nn.functional.normalize(x, dim=1, eps=1e-6) * self.scale


@register_model("parsenet")
class ParseNet(nn.Module):
    """ParseNet (Liu et al., 2015, "Looking wider to see better"): an FCN whose scores see
    the whole image through global context.

    On a backbone of output stride 8, fc6 (3x3 dilated at rate 12) and fc7 (1x1) with ReLU
    and dropout give the local features, as in DeepLab-LargeFOV, the paper's baseline.
    Global average pooling of them gives the context vector; both are L2-normalised with a
    learned scale per channel (initialised to 10), the context is unpooled (copied to every
    position) and concatenated with the local features, and a 1x1 convolution scores the K
    classes; the scores are upsampled bilinearly.

    Faithful at ``preset="paper"``: VGG-16 (``backbone="vgg16_bn"``) with fc6 and fc7 of
    1024 channels and dropout 0.5, 20.5 M parameters at K = 21. ``preset="small"``: the
    light backbone and fc layers of 128 channels, 0.66 M parameters at K = 11.

    Parameters
    ----------
    in_channels, n_classes : int
    width : int, default=128
        Channels of fc6 and fc7 (the paper's 1024).
    rate : int, default=12
    dropout : float, default=0.1
    backbone : str, default="light"
        A ``build_backbone`` name, dilated to output stride 8 (the paper's ``"vgg16_bn"``).
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "vgg16_bn", "width": 1024,
                                      "dropout": 0.5}}

    def __init__(self, in_channels, n_classes, width=128, rate=12, dropout=0.1,
                 backbone="light", backbone_weights=None):
        super().__init__()
        width = positive_int("width", width)
        rate = positive_int("rate", rate)
        dropout = check_dropout(dropout)
        self.stride = 8
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 8)
        cin = self.backbone.channels[-1]
        self.fc = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True),
            nn.Dropout2d(dropout), nn.Conv2d(width, width, 1), nn.ReLU(inplace=True))
        self.norm_local = _L2Scale(width)
        self.norm_global = _L2Scale(width)
        self.dropout = nn.Dropout2d(dropout)
        self.score = nn.Conv2d(2 * width, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        local = self.fc(self.backbone(x)[-1])
        context = self.norm_global(local.mean(dim=(2, 3), keepdim=True))
        x = torch.cat([self.norm_local(local), context.expand_as(local)], dim=1)
        return nn.functional.interpolate(self.score(self.dropout(x)), size=size,
                                         mode="bilinear", align_corners=False)
