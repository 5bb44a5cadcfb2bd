"""ENet (Paszke et al., 2016): a small network for real-time segmentation."""

from __future__ import annotations

from .._torch import require_torch
from ._blocks import check_dropout, positive_int
from ._registry import register_model

torch = require_torch()
nn = torch.nn


def _bn_prelu(channels):
    return nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))


class _Initial(nn.Module):
    """A 3x3 convolution of stride 2 (``width - in_channels`` maps) beside a 2x2 max pool
    of the input, concatenated, then BN and PReLU."""

    def __init__(self, cin, width):
        super().__init__()
        self.conv = nn.Conv2d(cin, width - cin, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.act = _bn_prelu(width)

    def forward(self, x):
        return self.act(torch.cat([self.conv(x), self.pool(x)], dim=1))


class _Bottleneck(nn.Module):
    """ENet's bottleneck: 1x1 projection to a quarter of the channels (2x2 of stride 2
    when downsampling), a main convolution (3x3 regular or dilated, 5x1 then 1x5
    asymmetric, or a 3x3 transposed convolution of stride 2 when upsampling), a 1x1
    expansion and spatial dropout, added to the shortcut (max pooling with its indices and
    zero channels when downsampling, 1x1 convolution and max unpooling with those indices
    when upsampling), then PReLU."""

    def __init__(self, cin, cout, kind="regular", dilation=1, dropout=0.1):
        super().__init__()
        mid = max(1, cout // 4)
        self.kind = kind
        stride = 2 if kind == "down" else 1
        k = 2 if kind == "down" else 1
        self.project = nn.Sequential(nn.Conv2d(cin, mid, k, stride=stride, bias=False),
                                     _bn_prelu(mid))
        if kind == "asymmetric":
            main = nn.Sequential(nn.Conv2d(mid, mid, (5, 1), padding=(2, 0), bias=False),
                                 nn.Conv2d(mid, mid, (1, 5), padding=(0, 2), bias=False))
        elif kind == "up":
            main = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1,
                                      bias=False)
        else:
            main = nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, bias=False)
        self.main = nn.Sequential(main, _bn_prelu(mid))
        self.expand = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                    nn.Dropout2d(dropout))
        self.pool = nn.MaxPool2d(2, return_indices=True) if kind == "down" else None
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                       nn.BatchNorm2d(cout)) if kind == "up" else None)
        self.unpool = nn.MaxUnpool2d(2) if kind == "up" else None
        self.extra = cout - cin if kind == "down" else 0
        self.act = nn.PReLU(cout)

    def forward(self, x, indices=None):
        branch = self.expand(self.main(self.project(x)))
        if self.kind == "down":
            skip, indices = self.pool(x)
            if self.extra:
                pad = skip.new_zeros(skip.shape[0], self.extra, *skip.shape[-2:])
                skip = torch.cat([skip, pad], dim=1)
            return self.act(branch + skip), indices
        if self.kind == "up":
            skip = self.unpool(self.shortcut(x), indices, output_size=branch.shape[-2:])
            return self.act(branch + skip)
        return self.act(branch + x)


@register_model("enet")
class ENet(nn.Module):
    """ENet: an efficient network for real-time segmentation, with a large encoder and a
    small decoder.

    An initial block (a strided 3x3 convolution beside a max pool, concatenated) halves the
    image; stage 1 downsamples to 64 channels (stride 4) and adds four regular
    bottlenecks; stage 2 downsamples to 128 channels (stride 8) and runs regular, dilated
    (2, 4, 8, 16) and asymmetric (5x1 + 1x5) bottlenecks in the paper's order; stage 3
    repeats stage 2 without its downsampling; stages 4 and 5 upsample (transposed
    convolutions, the shortcut unpooled with the indices of the matching downsampling) to
    64 and 16 channels; a transposed convolution gives the logits at the input's size.
    Bottlenecks use PReLU, batch normalisation and spatial dropout (0.01 in stage 1, 0.1
    after).

    Faithful: every block, its order, dilations and dropout, at the paper's widths (the
    default and ``preset="paper"``): 0.36 M parameters at K = 11 (the paper's 0.37 M).
    Simplified: the last transposed convolution is 2x2 of stride 2 (the paper's "fullconv"
    without a stated kernel), and there is no separate encoder pre-training stage.

    ``stride`` is 8: inputs must be multiples of it.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    width : int, default=16
        Channels of the initial block; stages 1-3 have 4x and 8x these, as in the paper.
    dropout : float, default=0.1
        Spatial dropout of stages 2-5 (stage 1 uses a tenth of it).
    """

    PRESETS = {"small": {}, "paper": {}}

    def __init__(self, in_channels, n_classes, width=16, dropout=0.1):
        super().__init__()
        w = positive_int("width", width)
        p = check_dropout(dropout)
        if w <= in_channels:
            raise ValueError(f"width must exceed in_channels ({in_channels}), got {w}")
        self.stride = 8
        self.initial = _Initial(in_channels, w)
        self.down1 = _Bottleneck(w, 4 * w, "down", dropout=p / 10)
        self.stage1 = nn.ModuleList(_Bottleneck(4 * w, 4 * w, dropout=p / 10)
                                    for _ in range(4))
        self.down2 = _Bottleneck(4 * w, 8 * w, "down", dropout=p)
        plan = (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16))
        self.stage23 = nn.ModuleList(
            _Bottleneck(8 * w, 8 * w, "asymmetric" if kind == "asymmetric" else "regular",
                        dilation=d, dropout=p) for _ in range(2) for kind, d in plan)
        self.up4 = _Bottleneck(8 * w, 4 * w, "up", dropout=p)
        self.stage4 = nn.ModuleList(_Bottleneck(4 * w, 4 * w, dropout=p) for _ in range(2))
        self.up5 = _Bottleneck(4 * w, w, "up", dropout=p)
        self.stage5 = _Bottleneck(w, w, dropout=p)
        self.fullconv = nn.ConvTranspose2d(w, n_classes, 2, stride=2)

    def forward(self, x):
        x = self.initial(x)
        x, idx1 = self.down1(x)
        for block in self.stage1:
            x = block(x)
        x, idx2 = self.down2(x)
        for block in self.stage23:
            x = block(x)
        x = self.up4(x, idx2)
        for block in self.stage4:
            x = block(x)
        x = self.up5(x, idx1)
        return self.fullconv(self.stage5(x))
