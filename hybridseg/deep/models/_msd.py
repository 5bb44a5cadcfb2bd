"""The mixed-scale dense network (Pelt & Sethian, 2018)."""

from __future__ import annotations

from .._torch import require_torch
from ._blocks import positive_int
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("msd")
class MSDNet(nn.Module):
    """Mixed-scale dense network: no pooling and no upsampling, only dilated 3x3
    convolutions of a few channels, each fed every earlier map.

    Layer ``i`` (from 0) is a 3x3 convolution dilated by ``(i mod max_dilation) + 1`` that
    takes the input image and the maps of all earlier layers and gives ``width`` new maps,
    with batch normalisation and ReLU; a 1x1 convolution on the image and every layer's
    maps scores the K classes. Every scale is present in every layer (the "mixed-scale"),
    and reusing all maps keeps the parameter count tiny.

    Faithful at ``preset="paper"``: width 1, depth 100, dilations cycling 1-10, about
    49 K parameters for a 3-channel image and K = 11. Simplified: batch normalisation after
    each convolution (the paper has a bias and ReLU only), which trains faster from scratch
    on small batches. ``preset="small"`` (the default): width 1, depth 50, about 13 K
    parameters; it works at full resolution (``stride`` 1), so it is slower per image than
    its size suggests.

    Parameters
    ----------
    in_channels, n_classes : int
    depth : int, default=50
    width : int, default=1
        New maps per layer.
    max_dilation : int, default=10
    """

    PRESETS = {"small": {}, "paper": {"depth": 100}}

    def __init__(self, in_channels, n_classes, depth=50, width=1, max_dilation=10):
        super().__init__()
        depth = positive_int("depth", depth)
        width = positive_int("width", width)
        max_dilation = positive_int("max_dilation", max_dilation)
        self.stride = 1
        self.layers = nn.ModuleList()
        for i in range(depth):
            d = i % max_dilation + 1
            self.layers.append(nn.Sequential(
                nn.Conv2d(in_channels + i * width, width, 3, padding=d, dilation=d),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
        self.head = nn.Conv2d(in_channels + depth * width, n_classes, 1)

    def forward(self, x):
        maps = x
        for layer in self.layers:
            maps = torch.cat([maps, layer(maps)], dim=1)
        return self.head(maps)
