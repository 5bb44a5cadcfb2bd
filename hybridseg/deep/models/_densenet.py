"""The one hundred layers Tiramisu: FC-DenseNet56, 67 and 103 (Jégou et al., 2017)."""

from __future__ import annotations

import inspect

from .._torch import require_torch
from ._blocks import check_dropout, positive_int, positive_ints
from ._registry import register_model

torch = require_torch()
nn = torch.nn


class _DenseLayer(nn.Sequential):
    """BN, ReLU, 3x3 convolution giving ``growth`` new maps, dropout."""

    def __init__(self, cin, growth, dropout):
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, growth, 3, padding=1), nn.Dropout2d(dropout))


class _DenseBlock(nn.Module):
    """``n`` layers, each fed the block's input and every earlier layer's maps; returns
    the input and the new maps concatenated, or the new maps alone (``new_only``)."""

    def __init__(self, cin, growth, n, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            [_DenseLayer(cin + i * growth, growth, dropout) for i in range(n)])

    def forward(self, x, new_only=False):
        new = []
        for layer in self.layers:
            y = layer(x)
            x = torch.cat([x, y], dim=1)
            new.append(y)
        return torch.cat(new, dim=1) if new_only else x


class _TransitionDown(nn.Sequential):
    """BN, ReLU, 1x1 convolution, dropout, 2x2 max pooling."""

    def __init__(self, channels, dropout):
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 1), nn.Dropout2d(dropout),
                         nn.MaxPool2d(2))


class FCDenseNet(nn.Module):
    """FC-DenseNet, the "one hundred layers Tiramisu": DenseNet's dense blocks in a U-shaped
    network with skip connections.

    A 3x3 convolution of ``first_width`` maps; then, for each of the ``len(down_layers)``
    levels, a dense block (layers of BN, ReLU, 3x3 convolution of ``growth`` maps and
    dropout, each fed the concatenation of the block's input and all earlier layers' maps)
    whose input and output, concatenated, are kept as the skip and go through a transition
    down (BN, ReLU, 1x1 convolution, dropout, 2x2 max pooling). A bottleneck dense block
    follows. Going up, only the maps a dense block created (not its input: "to avoid a
    feature explosion") are upsampled by a transition up (a 3x3 transposed convolution of
    stride 2), concatenated with the skip of that level, and fed to the next dense block; a
    1x1 convolution on the last block's input and output gives the logits.

    Faithful: the blocks, transitions, growth rates, layer counts and dropout 0.2 of the
    paper's FC-DenseNet56 (growth 12, 4 layers a block), 67 (growth 16, 5) and 103 (growth
    16, 4-5-7-10-12 down, 15 in the bottleneck), registered as ``"fcdensenet56"``,
    ``"fcdensenet67"`` and ``"fcdensenet103"``: at ``preset="paper"`` they have 1.4, 3.5
    and 9.3 M parameters at K = 11 (the paper's 1.5, 3.5 and 9.4 M); ``preset="small"``
    (``build_model``'s default) lowers the growth rate (to 6, 8 and 5) for CPU training,
    0.4, 1.0 and 1.1 M parameters. Not reproduced: the paper's training recipe (RMSprop,
    random crops 224x224, then fine-tuning on full images).

    ``stride`` is ``2 ** len(down_layers)`` (32 for the paper's five levels).

    Parameters
    ----------
    in_channels : int
    n_classes : int
    down_layers : sequence of int, default=(4, 5, 7, 10, 12)
        Layers of the dense block at each level going down; the blocks going up mirror
        them.
    bottleneck_layers : int, default=15
    growth : int, default=16
        Maps each dense layer adds (the growth rate).
    first_width : int, default=48
        Maps of the first 3x3 convolution.
    dropout : float, default=0.2
    """

    def __init__(self, in_channels, n_classes, down_layers=(4, 5, 7, 10, 12),
                 bottleneck_layers=15, growth=16, first_width=48, dropout=0.2):
        super().__init__()
        down_layers = positive_ints("down_layers", down_layers)
        bottleneck_layers = positive_int("bottleneck_layers", bottleneck_layers)
        growth = positive_int("growth", growth)
        first_width = positive_int("first_width", first_width)
        dropout = check_dropout(dropout)
        self.stride = 2 ** len(down_layers)
        self.first = nn.Conv2d(in_channels, first_width, 3, padding=1)
        c = first_width
        self.down = nn.ModuleList()
        self.transitions_down = nn.ModuleList()
        skips = []
        for n in down_layers:
            self.down.append(_DenseBlock(c, growth, n, dropout))
            c += growth * n
            skips.append(c)
            self.transitions_down.append(_TransitionDown(c, dropout))
        self.bottleneck = _DenseBlock(c, growth, bottleneck_layers, dropout)
        new = growth * bottleneck_layers
        self.transitions_up = nn.ModuleList()
        self.up = nn.ModuleList()
        for n, skip in zip(down_layers[::-1], skips[::-1]):
            self.transitions_up.append(
                nn.ConvTranspose2d(new, new, 3, stride=2, padding=1, output_padding=1))
            self.up.append(_DenseBlock(new + skip, growth, n, dropout))
            last_in = new + skip
            new = growth * n
        self.head = nn.Conv2d(last_in + new, n_classes, 1)

    def forward(self, x):
        x = self.first(x)
        skips = []
        for block, down in zip(self.down, self.transitions_down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x, new_only=True)
        last = len(self.up) - 1
        for i, (up, block) in enumerate(zip(self.transitions_up, self.up)):
            x = torch.cat([up(x), skips.pop()], dim=1)
            x = block(x, new_only=i < last)
        return self.head(x)


def _tiramisu(name, paper, small, doc):
    """Register ``name``: FC-DenseNet at the paper's settings ``paper`` by default."""

    class Tiramisu(FCDenseNet):
        PRESETS = {"small": {**paper, **small}, "paper": paper}

        def __init__(self, in_channels, n_classes, **options):
            super().__init__(in_channels, n_classes, **{**paper, **options})

    Tiramisu.__name__ = Tiramisu.__qualname__ = name
    Tiramisu.__doc__ = doc
    base = inspect.signature(FCDenseNet)
    Tiramisu.__signature__ = base.replace(parameters=[
        p.replace(default=paper[p.name]) if p.name in paper else p
        for p in base.parameters.values()])
    return register_model(name.lower())(Tiramisu)


FCDenseNet56 = _tiramisu(
    "FCDenseNet56", {"down_layers": (4,) * 5, "bottleneck_layers": 4, "growth": 12},
    {"growth": 6},
    """FC-DenseNet56 (Jégou et al., 2017): ``FCDenseNet`` with 4 layers in every dense
    block and growth rate 12; 1.4 M parameters at K = 11 at ``preset="paper"`` (the
    paper's 1.5 M), about 0.4 M at ``preset="small"`` (growth 6).""")
FCDenseNet67 = _tiramisu(
    "FCDenseNet67", {"down_layers": (5,) * 5, "bottleneck_layers": 5, "growth": 16},
    {"growth": 8},
    """FC-DenseNet67 (Jégou et al., 2017): ``FCDenseNet`` with 5 layers in every dense
    block and growth rate 16; 3.5 M parameters at K = 11 at ``preset="paper"`` (the
    paper's 3.5 M), about 1.0 M at ``preset="small"`` (growth 8).""")
FCDenseNet103 = _tiramisu(
    "FCDenseNet103", {"down_layers": (4, 5, 7, 10, 12), "bottleneck_layers": 15,
                      "growth": 16},
    {"growth": 5},
    """FC-DenseNet103 (Jégou et al., 2017): ``FCDenseNet`` with 4, 5, 7, 10 and 12 layers
    going down, 15 in the bottleneck and growth rate 16; 9.3 M parameters at K = 11 at
    ``preset="paper"`` (the paper's 9.4 M), about 1.1 M at ``preset="small"`` (growth
    5).""")
