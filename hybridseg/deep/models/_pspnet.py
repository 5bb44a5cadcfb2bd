"""PSPNet (Zhao et al., 2017)."""

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
    upsample,
)
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("pspnet")
class PSPNet(nn.Module):
    """PSPNet: a dilated residual backbone of output stride 8 and a pyramid pooling module.

    The backbone is a 3x3 conv-BN-ReLU stem of stride 2 (then one of stride 1) and four
    stages of basic residual blocks: at strides 4 and 8, then two at stride 8 dilated by 2
    and 4 (where a ResNet would pool to 16 and 32). The pyramid pooling module average-pools
    the last map to ``b x b`` cells for each ``b`` in ``bins``, reduces each to
    ``width / len(bins)`` channels by a 1x1 conv-BN-ReLU (conv-ReLU with a bias at ``b = 1``:
    batch normalisation cannot train on a 1x1 map at batch size 1), upsamples them
    bilinearly and concatenates them with the map. A 3x3 conv-BN-ReLU, dropout and a 1x1
    classifier follow, and the logits are upsampled bilinearly to the input's size. The
    paper's auxiliary loss on the third stage is left out.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of five int, default=(16, 32, 64, 96, 128)
        Channels of the stem and of the four stages. The default has about 0.66 M
        parameters (K = 21).
    blocks : sequence of four int, default=(1, 1, 1, 1)
        Residual blocks in each stage.
    bins : sequence of int, default=(1, 2, 3, 6)
        Output sizes of the pyramid's adaptive average pools.
    head_width : int, default=64
        Channels of the 3x3 convolution after the pyramid (the paper's 512).
    dropout : float, default=0.1
        Dropout before the classifier.
    backbone : str, optional
        A backbone of ``build_backbone`` (``"resnet50"``, ``"mobilenet_v3_large"``,
        ``"timm:<name>"``, ...) in place of the small built-in encoder, dilated to output
        stride 8 (its last map feeds the pyramid; ``widths`` and ``blocks`` then do not
        apply).
    backbone_weights : str or path-like, optional
        The backbone's pretrained weights: a checkpoint path or ``"imagenet"``
        (``build_backbone``'s ``weights``).
    """

    #: The paper's dilated ResNet-50 (its ResNet-101 is ``backbone="resnet101"``) and a
    #: head of 512 channels.
    PRESETS = {"small": {}, "paper": {"backbone": "resnet50", "head_width": 512}}

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 96, 128),
                 blocks=(1, 1, 1, 1), bins=(1, 2, 3, 6), head_width=64, dropout=0.1,
                 backbone=None, backbone_weights=None):
        super().__init__()
        widths = positive_ints("widths", widths, count=5)
        blocks = positive_ints("blocks", blocks, count=4)
        bins = positive_ints("bins", bins)
        head_width = positive_int("head_width", head_width)
        dropout = check_dropout(dropout)
        self.stride = 8
        self.bins = bins
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 8)
        if self.backbone is None:
            self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0], stride=2),
                                      conv_bn_relu(widths[0], widths[0]))
            self.layers = nn.Sequential(
                residual_stage(widths[0], widths[1], blocks[0], stride=2),
                residual_stage(widths[1], widths[2], blocks[1], stride=2),
                residual_stage(widths[2], widths[3], blocks[2], dilation=2),
                residual_stage(widths[3], widths[4], blocks[3], dilation=4),
            )
            cin = widths[4]
        else:
            cin = self.backbone.channels[-1]
        reduced = max(1, cin // len(bins))
        self.pyramid = nn.ModuleList([pooled_branch(cin, reduced, b) for b in bins])
        self.head = nn.Sequential(
            conv_bn_relu(cin + reduced * len(bins), head_width),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_width, n_classes, 1),
        )

    def forward(self, x):
        size = x.shape[-2:]
        x = self.layers(self.stem(x)) if _backbone(self) is None else self.backbone(x)[-1]
        x = torch.cat([x, *(upsample(level(x), x.shape[-2:]) for level in self.pyramid)],
                      dim=1)
        return upsample(self.head(x), size)
