"""The model zoo: segmentation networks built from scratch in torch, each a registered name.

``build_model(name, in_channels, n_classes, **options)`` makes one; ``MODELS`` lists the
names. Every network maps ``(N, C, H, W)`` images to ``(N, K, H, W)`` logits at the input's
size when ``H`` and ``W`` are multiples of its ``stride`` (``model.stride``); the segmenter
pads other sizes. Sizes default to what trains from scratch on a CPU; widths and depths are
options.

- ``"unet"`` (``UNet``; Ronneberger et al., 2015): an encoder-decoder joined by skip
  connections at every level;
- ``"fcn"`` (``FCN``; Long et al., 2015, FCN-8s): a VGG-like encoder whose class scores at
  strides 8, 16 and 32 are fused by learned, bilinear-initialised upsampling;
- ``"segnet"`` (``SegNet``; Badrinarayanan et al., 2017): a decoder that unpools with the
  encoder's max-pooling indices;
- ``"deeplabv3plus"`` (``DeepLabV3Plus``; Chen et al., 2018): a residual backbone of output
  stride 16 (or 8), atrous spatial pyramid pooling with depthwise-separable branches, and a
  decoder that refines with stride-4 features;
- ``"pspnet"`` (``PSPNet``; Zhao et al., 2017): a dilated residual backbone of output
  stride 8 and a pyramid pooling module.

None of them loads pretrained weights: they all start from random initialisation.
"""

from __future__ import annotations

import numbers

from ._torch import require_torch

torch = require_torch()
nn = torch.nn

__all__ = [
    "FCN",
    "MODELS",
    "DeepLabV3Plus",
    "PSPNet",
    "SegNet",
    "UNet",
    "build_model",
    "register_model",
]

#: Registered architectures: name -> class taking ``(in_channels, n_classes, **options)``.
MODELS = {}


def register_model(name):
    """Register a network class under ``name`` (a decorator)."""

    def add(cls):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = cls
        return cls

    return add


def build_model(name, in_channels, n_classes, **options):
    """A fresh network of a registered architecture.

    Parameters
    ----------
    name : str
        One of ``MODELS``.
    in_channels : int
        Channels of the input images (1 gray, 3 colour).
    n_classes : int
        K, the number of output channels (logits).
    **options
        The architecture's own options (widths, depth, ...).

    Returns
    -------
    model : torch.nn.Module
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    for arg, value in (("in_channels", in_channels), ("n_classes", n_classes)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    return MODELS[name](int(in_channels), int(n_classes), **options)


def _conv_bn_relu(cin, cout, kernel_size=3, stride=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@register_model("unet")
class UNet(nn.Module):
    """U-Net: a contracting path of double 3x3 convolutions and 2x2 max pools, and an
    expanding path of 2x2 transposed convolutions, each joined to the contracting feature
    map of the same size (skip connections), then a 1x1 convolution to the class logits.

    Convolutions are padded (the output has the input's size, unlike the paper's valid
    convolutions) and followed by batch normalisation.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    widths : sequence of int, default=(16, 32, 64, 128)
        Channels at each level, top to bottom; ``len(widths) - 1`` pools, so the stride is
        ``2 ** (len(widths) - 1)``. The default has about 0.48 M parameters.
    dropout : float, default=0.0
        Dropout before the last convolution.
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), dropout=0.0):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must hold at least two positive channel counts, got "
                             f"{widths}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.stride = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(_conv_bn_relu(cin, w), _conv_bn_relu(w, w)))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, stride=2))
            self.merge.append(nn.Sequential(_conv_bn_relu(2 * w, w), _conv_bn_relu(w, w)))
        self.dropout = nn.Dropout2d(float(dropout))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(self.dropout(x))


# --- option checks and building blocks shared by the architectures below ---


def _positive_ints(option, values, count=None, at_least=1):
    """``values`` as a tuple of positive ints, or a ``ValueError`` naming ``option``."""
    how_many = f"{count}" if count is not None else f"at least {at_least}"
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{option} must hold {how_many} positive integers, got "
                         f"{values!r}") from None
    if (len(values) < at_least or (count is not None and len(values) != count)
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                   for v in values)):
        raise ValueError(f"{option} must hold {how_many} positive integers, got {values!r}")
    return tuple(int(v) for v in values)


def _positive_int(option, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{option} must be a positive integer, got {value!r}")
    return int(value)


def _dropout(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


def _upsample(x, size):
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _bilinear_kernel(size):
    """The ``size x size`` kernel of bilinear interpolation (FCN's ``upsample_filt``).

    A transposed convolution of stride ``f`` with this kernel of size ``2 f`` and padding
    ``f // 2`` is ``F.interpolate(..., scale_factor=f, mode="bilinear")`` away from the
    border.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return taps[:, None] * taps[None, :]


def _bilinear_upsampling(channels, factor):
    """A learned ``factor``-times upsampling (``nn.ConvTranspose2d``), initialised bilinear.

    Each channel is interpolated on its own at initialisation (the off-diagonal weights are
    zero); the output has exactly ``factor`` times the input's size.
    """
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                            bias=False)
    with torch.no_grad():
        up.weight.zero_()
        kernel = _bilinear_kernel(2 * factor)
        for c in range(channels):
            up.weight[c, c] = kernel
    return up


class _Residual(nn.Module):
    """A basic residual block: two 3x3 conv-BN (the first strided or both dilated), a 1x1
    projection on the shortcut where the shape changes, ReLU after the sum."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(cin, cout, stride=stride, dilation=dilation),
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def _residual_stage(cin, cout, blocks, stride=1, dilation=1):
    return nn.Sequential(_Residual(cin, cout, stride, dilation),
                         *(_Residual(cout, cout, 1, dilation) for _ in range(blocks - 1)))


def _separable(cin, cout, dilation=1):
    """Depthwise-separable 3x3 convolution: depthwise (dilated) conv-BN-ReLU, then
    pointwise 1x1 conv-BN-ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _pooled_branch(cin, cout, bins):
    """Adaptive average pooling to ``bins x bins`` and a 1x1 conv-ReLU. Batch normalisation
    follows the conv except at one bin: a 1x1 map has a single value per channel at batch
    size 1, which batch normalisation cannot train on, so that branch has a bias instead."""
    if bins == 1:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1),
                             nn.ReLU(inplace=True))
    return nn.Sequential(nn.AdaptiveAvgPool2d(bins), _conv_bn_relu(cin, cout, kernel_size=1))


@register_model("fcn")
class FCN(nn.Module):
    """FCN-8s: a VGG-like encoder, class scores at three strides and learned upsampling.

    The encoder is ``len(widths)`` stages of 3x3 conv-BN-ReLU and a 2x2 max pool (VGG-16 has
    five: stride 32); two "fully connected" layers as convolutions (3x3 and 1x1 conv-BN-ReLU,
    where VGG has 7x7 and 1x1 of 4096 channels) follow the last pool. 1x1 convolutions score
    the K classes on that map and on the outputs of the third- and second-last pools
    (``pool3`` and ``pool4`` of VGG-16, strides 8 and 16). The coarsest score is upsampled
    2x by a transposed convolution and added to the ``pool4`` score, the sum is upsampled 2x
    and added to the ``pool3`` score, and a last transposed convolution upsamples
    ``stride / 4`` times (8x) to the input's size. The three upsamplings are learned and
    initialised to bilinear interpolation, and the two skip scores to zero, as in the paper.

    Unlike the paper, convolutions are padded (no 100-pixel input padding and crop) and
    followed by batch normalisation, for training from scratch.

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
        Channels of the two convolutions after the last pool (VGG's fc6 and fc7).
    dropout : float, default=0.0
        Dropout after each of these two (the paper's is 0.5).
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 96, 128), depth=2,
                 fc_width=128, dropout=0.0):
        super().__init__()
        widths = _positive_ints("widths", widths, at_least=3)
        depth = _positive_int("depth", depth)
        fc_width = _positive_int("fc_width", fc_width)
        dropout = _dropout(dropout)
        self.stride = 2 ** len(widths)
        self.stages = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.stages.append(nn.Sequential(
                *(_conv_bn_relu(cin if i == 0 else w, w) for i in range(depth)),
                nn.MaxPool2d(2),
            ))
            cin = w
        self.fc = nn.Sequential(
            _conv_bn_relu(cin, fc_width), nn.Dropout2d(dropout),
            _conv_bn_relu(fc_width, fc_width, kernel_size=1), nn.Dropout2d(dropout),
        )
        self.score = nn.Conv2d(fc_width, n_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[-2], n_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[-3], n_classes, 1)
        for layer in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.upscore2 = _bilinear_upsampling(n_classes, 2)
        self.upscore_pool4 = _bilinear_upsampling(n_classes, 2)
        self.upscore_final = _bilinear_upsampling(n_classes, self.stride // 4)

    def forward(self, x):
        pools = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        x = self.upscore2(self.score(self.fc(x))) + self.score_pool4(pools[-2])
        x = self.upscore_pool4(x) + self.score_pool3(pools[-3])
        return self.upscore_final(x)


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
    depth : int, default=2
        3x3 conv-BN-ReLU layers per level in the encoder and in the decoder.
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), depth=2):
        super().__init__()
        widths = _positive_ints("widths", widths)
        depth = _positive_int("depth", depth)
        self.stride = 2 ** len(widths)
        self.encoder = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoder.append(nn.Sequential(
                *(_conv_bn_relu(cin if i == 0 else w, w) for i in range(depth))))
            cin = w
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.decoder = nn.ModuleList()
        for w, w_next in zip(widths[::-1], (*widths[-2::-1], widths[0])):
            self.decoder.append(nn.Sequential(
                *(_conv_bn_relu(w, w_next if i == depth - 1 else w) for i in range(depth))))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x):
        trail = []
        for block in self.encoder:
            x = block(x)
            size = x.shape[-2:]
            x, indices = self.pool(x)
            trail.append((indices, size))
        for block in self.decoder:
            indices, size = trail.pop()
            x = block(self.unpool(x, indices, output_size=size))
        return self.head(x)


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
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 128), blocks=(1, 2, 2),
                 output_stride=16, rates=None, aspp_width=64, low_level_width=16,
                 decoder_width=64, dropout=0.1):
        super().__init__()
        widths = _positive_ints("widths", widths, count=4)
        blocks = _positive_ints("blocks", blocks, count=3)
        if isinstance(output_stride, bool) or output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
        if rates is None:
            rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        rates = _positive_ints("rates", rates, count=3)
        aspp_width = _positive_int("aspp_width", aspp_width)
        low_level_width = _positive_int("low_level_width", low_level_width)
        decoder_width = _positive_int("decoder_width", decoder_width)
        dropout = _dropout(dropout)
        self.stride = int(output_stride)
        self.rates = rates
        self.stem = nn.Sequential(_conv_bn_relu(in_channels, widths[0], stride=2),
                                  _conv_bn_relu(widths[0], widths[0]))
        self.layer1 = _residual_stage(widths[0], widths[1], blocks[0], stride=2)
        self.layer2 = _residual_stage(widths[1], widths[2], blocks[1], stride=2)
        self.layer3 = (_residual_stage(widths[2], widths[3], blocks[2], stride=2)
                       if output_stride == 16 else
                       _residual_stage(widths[2], widths[3], blocks[2], dilation=2))
        cin = widths[3]
        self.aspp = nn.ModuleList([
            _conv_bn_relu(cin, aspp_width, kernel_size=1),
            *(_separable(cin, aspp_width, dilation=r) for r in rates),
            _pooled_branch(cin, aspp_width, 1),
        ])
        self.project = nn.Sequential(_conv_bn_relu(5 * aspp_width, aspp_width, kernel_size=1),
                                     nn.Dropout2d(dropout))
        self.reduce = _conv_bn_relu(widths[1], low_level_width, kernel_size=1)
        self.decoder = nn.Sequential(_separable(aspp_width + low_level_width, decoder_width),
                                     _separable(decoder_width, decoder_width))
        self.head = nn.Conv2d(decoder_width, n_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        low = self.layer1(self.stem(x))
        x = self.layer3(self.layer2(low))
        x = torch.cat([_upsample(branch(x), x.shape[-2:]) for branch in self.aspp], dim=1)
        x = _upsample(self.project(x), low.shape[-2:])
        x = self.decoder(torch.cat([x, self.reduce(low)], dim=1))
        return _upsample(self.head(x), size)


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
    """

    def __init__(self, in_channels, n_classes, widths=(16, 32, 64, 96, 128),
                 blocks=(1, 1, 1, 1), bins=(1, 2, 3, 6), head_width=64, dropout=0.1):
        super().__init__()
        widths = _positive_ints("widths", widths, count=5)
        blocks = _positive_ints("blocks", blocks, count=4)
        bins = _positive_ints("bins", bins)
        head_width = _positive_int("head_width", head_width)
        dropout = _dropout(dropout)
        self.stride = 8
        self.bins = bins
        self.stem = nn.Sequential(_conv_bn_relu(in_channels, widths[0], stride=2),
                                  _conv_bn_relu(widths[0], widths[0]))
        self.layers = nn.Sequential(
            _residual_stage(widths[0], widths[1], blocks[0], stride=2),
            _residual_stage(widths[1], widths[2], blocks[1], stride=2),
            _residual_stage(widths[2], widths[3], blocks[2], dilation=2),
            _residual_stage(widths[3], widths[4], blocks[3], dilation=4),
        )
        cin = widths[4]
        reduced = max(1, cin // len(bins))
        self.pyramid = nn.ModuleList([_pooled_branch(cin, reduced, b) for b in bins])
        self.head = nn.Sequential(
            _conv_bn_relu(cin + reduced * len(bins), head_width),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_width, n_classes, 1),
        )

    def forward(self, x):
        size = x.shape[-2:]
        x = self.layers(self.stem(x))
        x = torch.cat([x, *(_upsample(level(x), x.shape[-2:]) for level in self.pyramid)],
                      dim=1)
        return _upsample(self.head(x), size)
