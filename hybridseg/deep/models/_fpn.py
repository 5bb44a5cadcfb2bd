"""The semantic FPN (Kirillov et al., 2019) on Lin et al.'s feature pyramid (2017), with
PANet's bottom-up path (Liu et al., 2018) as an option."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_option
from ._blocks import check_dropout, positive_int, upsample
from ._registry import register_model

torch = require_torch()
nn = torch.nn


def _conv_gn_relu(cin, cout, groups, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


@register_model("fpn")
class FPN(nn.Module):
    """Semantic FPN: a feature pyramid (P2-P5) and the panoptic FPN's semantic head.

    The pyramid: 1x1 lateral convolutions bring the backbone's maps at strides 4, 8, 16 and
    32 to ``width`` channels; from the coarsest, each is upsampled (nearest) and added to
    the next finer lateral, and a 3x3 convolution smooths each sum. With
    ``path_aggregation``, PANet's bottom-up path follows: N2 = P2, and each N(i+1) is a 3x3
    convolution of (a strided 3x3 convolution of N(i)) + P(i+1). The semantic head brings
    every level to stride 4 by stages of 3x3 conv, group norm, ReLU and 2x bilinear
    upsampling (P5 three, P4 two, P3 one, P2 a conv alone), sums them, and a 1x1
    convolution gives the scores, upsampled 4x bilinearly.

    Faithful at ``preset="paper"``: ResNet-50 (``backbone="resnet50"``), a pyramid of 256
    channels, a head of 128 with group norm of 32 groups: 28.5 M parameters at K = 21.
    ``preset="small"`` (the default): the light backbone, a pyramid of 64 and a head of 32
    channels (8 groups), 0.76 M parameters at K = 11.

    ``stride`` is 32.

    Parameters
    ----------
    in_channels, n_classes : int
    width : int, default=64
        Channels of the pyramid (the paper's 256).
    head_width : int, default=32
        Channels of the semantic head (the paper's 128).
    groups : int, default=8
        Groups of the group norms (the paper's 32).
    path_aggregation : bool, default=False
        PANet's bottom-up path augmentation.
    dropout : float, default=0.0
        Before the 1x1 classifier.
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet50", "width": 256,
                                      "head_width": 128, "groups": 32}}

    def __init__(self, in_channels, n_classes, width=64, head_width=32, groups=8,
                 path_aggregation=False, dropout=0.0, backbone="light",
                 backbone_weights=None):
        super().__init__()
        width = positive_int("width", width)
        head_width = positive_int("head_width", head_width)
        groups = positive_int("groups", groups)
        if width % groups or head_width % groups:
            raise ValueError(f"groups ({groups}) must divide width ({width}) and head_width "
                             f"({head_width})")
        if not isinstance(path_aggregation, bool):
            raise ValueError(f"path_aggregation must be True or False, got "
                             f"{path_aggregation!r}")
        dropout = check_dropout(dropout)
        self.stride = 32
        self.path_aggregation = path_aggregation
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 32)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.backbone.channels)
        self.smooth = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(4))
        if path_aggregation:
            self.down = nn.ModuleList(_conv_gn_relu(width, width, groups, stride=2)
                                      for _ in range(3))
            self.fuse = nn.ModuleList(_conv_gn_relu(width, width, groups) for _ in range(3))
        self.head = nn.ModuleList(
            nn.ModuleList(_conv_gn_relu(width if j == 0 else head_width, head_width, groups)
                          for j in range(max(1, level)))
            for level in range(4))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(head_width, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        feats = self.backbone(x)
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in (2, 1, 0):
            laterals[i] = laterals[i] + nn.functional.interpolate(
                laterals[i + 1], size=laterals[i].shape[-2:], mode="nearest")
        pyramid = [s(p) for s, p in zip(self.smooth, laterals)]
        if self.path_aggregation:
            out = [pyramid[0]]
            for i in range(3):
                d = self.down[i](out[-1])
                p = pyramid[i + 1]
                out.append(self.fuse[i](d[..., :p.shape[-2], :p.shape[-1]] + p))
            pyramid = out
        target = pyramid[0].shape[-2:]
        total = 0
        for level, (p, stages) in enumerate(zip(pyramid, self.head)):
            for j, stage in enumerate(stages):
                p = stage(p)
                if level > 0:
                    p = upsample(p, target if j == len(stages) - 1 else
                                 (p.shape[-2] * 2, p.shape[-1] * 2))
            total = total + p
        return upsample(self.classifier(self.dropout(total)), size)
