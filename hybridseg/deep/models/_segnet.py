"""The unpooling encoder-decoders: SegNet (Badrinarayanan et al., 2017) and DeconvNet
(Noh et al., 2015)."""

from __future__ import annotations

from .._torch import require_torch
from ._blocks import conv_bn_relu, odd_int, positive_int, positive_ints
from ._registry import register_model

torch = require_torch()
nn = torch.nn


@register_model("segnet")
class SegNet(nn.Module):
    """SegNet: an encoder of conv-BN-ReLU blocks and 2x2 max pools, and a mirrored decoder
    that upsamples with ``nn.MaxUnpool2d`` at the positions of the encoder's maxima (its
    pooling indices, not learned weights nor skip features), then convolves the sparse map.

    Each encoder level is ``depth`` 3x3 conv-BN-ReLU and a pool; each decoder level unpools
    and applies ``depth`` 3x3 conv-BN-ReLU, the last of which goes to the next level's
    width; a 1x1 convolution gives the class logits.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of int, default=(16, 32, 64, 128)
        Channels at each level, top to bottom; every level pools, so the stride is
        ``2 ** len(widths)``. The default has about 0.59 M parameters (the paper's: 64-512
        channels, 2-3 convolutions a level, five levels).
    depth : int or sequence of int, default=2
        3x3 conv-BN-ReLU layers per level in the encoder and in the decoder (one count for
        every level, or one per level, top to bottom; VGG-16's are 2, 2, 3, 3, 3).
    """

    #: The paper's VGG-16 encoder (five levels, 2-2-3-3-3 convolutions) mirrored.
    PRESETS = {"small": {}, "paper": {"widths": (64, 128, 256, 512, 512),
                                      "depth": (2, 2, 3, 3, 3)}}

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), depth=2):
        super().__init__()
        widths, depths = _encoder(self, in_channels, widths, depth)
        self.unpool = nn.MaxUnpool2d(2)
        self.decoder = nn.ModuleList()
        for w, w_next, d in zip(widths[::-1], (*widths[-2::-1], widths[0]), depths[::-1]):
            self.decoder.append(nn.Sequential(
                *(conv_bn_relu(w, w_next if i == d - 1 else w) for i in range(d))))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x):
        trail = []
        for block in self.encoder:
            x = block(x)
            size = x.shape[-2:]
            x, indices = self.pool(x)
            trail.append((indices, size))
        x = self._middle(x)
        for block in self.decoder:
            indices, size = trail.pop()
            x = block(self.unpool(x, indices, output_size=size))
        return self.head(x)

    def _middle(self, x):
        """Between the last pool and the first unpooling: nothing in SegNet."""
        return x


def _encoder(net, in_channels, widths, depth):
    """The VGG-like encoder SegNet and DeconvNet share, set on ``net``: ``encoder`` (per
    level, ``depth`` 3x3 conv-BN-ReLU), ``pool`` (2x2, keeping its indices) and
    ``stride``; returns the checked widths and per-level depths."""
    widths = positive_ints("widths", widths)
    depths = ((positive_int("depth", depth),) * len(widths) if not hasattr(depth, "__len__")
              else positive_ints("depth", depth, count=len(widths)))
    net.stride = 2 ** len(widths)
    net.encoder = nn.ModuleList()
    cin = in_channels
    for w, d in zip(widths, depths):
        net.encoder.append(nn.Sequential(
            *(conv_bn_relu(cin if i == 0 else w, w) for i in range(d))))
        cin = w
    net.pool = nn.MaxPool2d(2, return_indices=True)
    return widths, depths


def _deconv_bn_relu(cin, cout, kernel_size=3):
    """A transposed convolution of stride 1 (DeconvNet's "deconvolution"), BN, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_model("deconvnet")
class DeconvNet(nn.Module):
    """DeconvNet (Noh et al., 2015): a VGG-16 encoder and a mirrored decoder of unpooling
    and deconvolution layers.

    The encoder is ``len(widths)`` levels of 3x3 conv-BN-ReLU and a 2x2 max pool that
    keeps its indices; fc6 (a 7x7 convolution of ``fc_width`` channels) and fc7 (1x1) with
    batch normalisation follow, and a 7x7 deconvolution (transposed convolution) brings the
    channels back. The decoder mirrors the encoder: at each level the map is unpooled with
    the indices of the matching pool, then deconvolved by 3x3 transposed convolutions with
    batch normalisation and ReLU; a 1x1 convolution scores the K classes.

    Faithful at ``preset="paper"``: VGG-16's widths and 2-2-3-3-3 layers, fc6 and fc7 of
    4096 channels, the mirrored deconvolution network: 251.8 M parameters at K = 21 (the
    paper's 252 M). Simplified: fc6 is padded ("same") instead of reducing a 224x224 input
    to 1x1, so that any size runs; the paper's two-stage training (easy then hard examples)
    and its proposal-wise inference are left out. ``preset="small"``: widths 16-128, two
    layers a level and fc layers of 128 channels (3x3), 0.90 M parameters at K = 11.

    ``stride`` is ``2 ** len(widths)``.

    Parameters
    ----------
    in_channels, n_classes : int
    widths : sequence of int, default=(16, 32, 64, 128)
    depth : int or sequence of int, default=2
    fc_width : int, default=128
    fc_kernel : int, default=3
        Kernel of fc6 and of the deconvolution after fc7 (the paper's 7).
    """

    PRESETS = {"small": {}, "paper": {"widths": (64, 128, 256, 512, 512),
                                      "depth": (2, 2, 3, 3, 3), "fc_width": 4096,
                                      "fc_kernel": 7}}

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), depth=2,
                 fc_width=128, fc_kernel=3):
        super().__init__()
        fc_width = positive_int("fc_width", fc_width)
        fc_kernel = odd_int("fc_kernel", fc_kernel)
        widths, depths = _encoder(self, in_channels, widths, depth)
        cin = widths[-1]
        self.fc = nn.Sequential(conv_bn_relu(cin, fc_width, kernel_size=fc_kernel),
                                conv_bn_relu(fc_width, fc_width, kernel_size=1),
                                _deconv_bn_relu(fc_width, cin, kernel_size=fc_kernel))
        self.unpool = nn.MaxUnpool2d(2)
        self.decoder = nn.ModuleList()
        for w, w_next, d in zip(widths[::-1], (*widths[-2::-1], widths[0]), depths[::-1]):
            self.decoder.append(nn.Sequential(
                *(_deconv_bn_relu(w, w_next if i == d - 1 else w) for i in range(d))))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    forward = SegNet.forward

    def _middle(self, x):
        """fc6, fc7 and the deconvolution after them."""
        return self.fc(x)
