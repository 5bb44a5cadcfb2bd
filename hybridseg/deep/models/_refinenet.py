"""RefineNet (Lin et al., 2017): multi-path refinement on a ResNet."""

from __future__ import annotations

from .._torch import require_torch
from ._backbones import backbone_option
from ._blocks import check_dropout, positive_int, upsample
from ._registry import register_model

torch = require_torch()
nn = torch.nn


class _RCU(nn.Module):
    """Residual conv unit: x + conv3x3(ReLU(conv3x3(ReLU(x))))."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False))

    def forward(self, x):
        return x + self.body(x)


class _ChainedPooling(nn.Module):
    """Chained residual pooling: ReLU, then ``n`` times (5x5 max pool of stride 1, 3x3
    convolution) in a chain, each result added to the sum."""

    def __init__(self, channels, n=2):
        super().__init__()
        self.relu = nn.ReLU()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(5, stride=1, padding=2),
                          nn.Conv2d(channels, channels, 3, padding=1, bias=False))
            for _ in range(n))

    def forward(self, x):
        x = self.relu(x)
        path = x
        for stage in self.stages:
            path = stage(path)
            x = x + path
        return x


class _RefineBlock(nn.Module):
    """A RefineNet block: two RCUs on each input path, multi-resolution fusion (a 3x3
    convolution per path to ``width`` channels, upsampled to the finest and summed), chained
    residual pooling and an output RCU."""

    def __init__(self, in_widths, width):
        super().__init__()
        self.paths = nn.ModuleList(nn.Sequential(_RCU(c), _RCU(c)) for c in in_widths)
        self.fuse = (nn.ModuleList(nn.Conv2d(c, width, 3, padding=1, bias=False)
                                   for c in in_widths) if len(in_widths) > 1 else None)
        self.pool = _ChainedPooling(width)
        self.out = _RCU(width)

    def forward(self, *xs):
        xs = [p(x) for p, x in zip(self.paths, xs)]
        if self.fuse is None:
            x = xs[0]
        else:
            size = max((x.shape[-2:] for x in xs), key=lambda s: s[0] * s[1])
            x = sum(upsample(f(x), size) for f, x in zip(self.fuse, xs))
        return self.out(self.pool(x))


@register_model("refinenet")
class RefineNet(nn.Module):
    """RefineNet: four cascaded refinement blocks on a backbone's maps at strides 32, 16, 8
    and 4.

    Each map is first adapted by a 3x3 convolution (to ``top_width`` channels at stride 32,
    ``width`` elsewhere). RefineNet-4 refines the stride-32 path alone; each following
    block takes the previous block's output and the next finer map: residual conv units
    (RCU: two ReLU-3x3 layers and a shortcut) on each path, multi-resolution fusion (3x3
    convolutions, upsampling to the finer size, sum), chained residual pooling (a chain of
    5x5 max pools and 3x3 convolutions whose outputs are summed with the input) and an
    output RCU. Two more RCUs, dropout and a 1x1 convolution give the scores at stride 4,
    upsampled bilinearly.

    Faithful at ``preset="paper"``: ResNet-101 (``backbone="resnet101"``), 512 channels on
    the stride-32 path and 256 elsewhere, two pooling stages a chain: 109.8 M parameters at
    K = 21. ``preset="small"`` (the default): the light backbone, 48 and 32 channels, 1.24
    M parameters at K = 11.

    ``stride`` is 32.

    Parameters
    ----------
    in_channels, n_classes : int
    width : int, default=32
        (The paper's 256.)
    top_width : int, default=48
        Channels of the stride-32 path (the paper's 512).
    dropout : float, default=0.1
    backbone : str, default="light"
    backbone_weights : str or path-like, optional
    """

    PRESETS = {"small": {}, "paper": {"backbone": "resnet101", "width": 256,
                                      "top_width": 512, "dropout": 0.5}}

    def __init__(self, in_channels, n_classes, width=32, top_width=48, dropout=0.1,
                 backbone="light", backbone_weights=None):
        super().__init__()
        width = positive_int("width", width)
        top_width = positive_int("top_width", top_width)
        dropout = check_dropout(dropout)
        self.stride = 32
        self.backbone = backbone_option(backbone, backbone_weights, in_channels, 32)
        widths = (width, width, width, top_width)
        self.adapt = nn.ModuleList(nn.Conv2d(c, w, 3, padding=1, bias=False)
                                   for c, w in zip(self.backbone.channels, widths))
        self.refine4 = _RefineBlock((top_width,), top_width)
        self.refine3 = _RefineBlock((top_width, width), width)
        self.refine2 = _RefineBlock((width, width), width)
        self.refine1 = _RefineBlock((width, width), width)
        self.head = nn.Sequential(_RCU(width), _RCU(width), nn.Dropout2d(dropout),
                                  nn.Conv2d(width, n_classes, 1))

    def forward(self, x):
        size = x.shape[-2:]
        f1, f2, f3, f4 = (a(f) for a, f in zip(self.adapt, self.backbone(x)))
        x = self.refine4(f4)
        x = self.refine3(x, f3)
        x = self.refine2(x, f2)
        x = self.refine1(x, f1)
        return upsample(self.head(x), size)
