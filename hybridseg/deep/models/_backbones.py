"""Backbones for the zoo: feature pyramids at strides 4, 8, 16 and 32, pretrained or not.

``build_backbone(name, in_channels=3, weights=None, output_stride=32)`` gives a module whose
``forward(x)`` returns four feature maps, at strides 4, 8, 16 and 32 of the input (8 or 16
where ``output_stride`` asks: the later stages keep the stride and dilate their
convolutions instead, as DeepLab and PSPNet need). Its ``channels`` and ``strides``
attributes say what the four maps are.

- ``"light"``: the project's small residual backbone (about 0.4 M parameters), for
  training from scratch on a CPU;
- ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"resnet152"``,
  ``"vgg16_bn"``,
  ``"mobilenet_v3_large"``: torchvision's ImageNet classifiers without their heads, built
  here in plain torch with torchvision's parameter names, so that a torchvision checkpoint
  loads with no missing or unexpected key (the classifier's keys are dropped) and gives
  torchvision's features;
- ``"timm:<name>"``: any timm encoder (``features_only``) where timm is installed.

``weights`` is a path to a checkpoint (a state dict, or a dict holding one under
``"state_dict"`` or ``"model"``), ``"imagenet"`` (fetched from torchvision's or timm's
address on a machine that can, into torch's cache), or None (random initialisation).
"""

from __future__ import annotations

import numbers
import os

from .._torch import require_torch
from ._blocks import conv_bn_relu, positive_ints, residual_stage

torch = require_torch()
nn = torch.nn

__all__ = ["BACKBONES", "IMAGENET_URLS", "build_backbone", "load_backbone_weights"]

#: torchvision's ImageNet checkpoints of the plain-torch backbones (IMAGENET1K_V1); the
#: file names end in the first hex digits of their SHA-256, which torch.hub checks.
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "vgg16_bn": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "mobilenet_v3_large": "https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
}

#: Keys of the classification head in each checkpoint, dropped when it is loaded.
_HEAD_PREFIXES = {"resnet": ("fc.",), "vgg16_bn": ("classifier.",),
                  "mobilenet_v3_large": ("classifier.",)}


# ------------------------------------------------------------------------------ ResNet
class _BasicBlock(nn.Module):
    """torchvision's ``BasicBlock`` (dilation allowed, which torchvision refuses)."""

    expansion = 1

    def __init__(self, cin, width, stride=1, dilation=1, first_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, padding=first_dilation,
                               dilation=first_dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _Bottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (ResNet v1.5: the stride in the 3x3 convolution)."""

    expansion = 4

    def __init__(self, cin, width, stride=1, dilation=1, first_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=first_dilation,
                               dilation=first_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, width * 4, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNetBackbone(nn.Module):
    """torchvision's ResNet up to ``layer4``: ``forward`` gives ``layer1`` .. ``layer4``."""

    def __init__(self, block, layers, in_channels=3, output_stride=32, multi_grid=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin, stride, dilation = 64, 4, 1
        strides = []
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers)):
            s = 1 if i == 0 else 2
            first_dilation = dilation
            if s == 2 and stride >= output_stride:  # keep the stride, dilate instead
                dilation *= 2
                s = 1
            stride *= s
            grid = [1] * n
            if i == 3 and multi_grid is not None and dilation > 1:
                # DeepLab v3's multi-grid: the last stage's blocks at rates dilation * grid
                grid = [multi_grid[j % len(multi_grid)] for j in range(n)]
                first_dilation = dilation * grid[0]
            blocks = [block(cin, width, s, dilation * grid[0], first_dilation)]
            cin = width * block.expansion
            blocks += [block(cin, width, 1, dilation * g, dilation * g) for g in grid[1:]]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            strides.append(stride)
        self.channels = tuple(w * block.expansion for w in (64, 128, 256, 512))
        self.strides = tuple(strides)
        _init_like_torchvision(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


class _Tapped(nn.Module):
    """A ``features`` sequence whose outputs after the layers ``_taps`` are the maps."""

    def forward(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out.append(x)
        return out


# -------------------------------------------------------------------------------- VGG
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M")


class VGGBackbone(_Tapped):
    """torchvision's ``vgg16_bn`` ``features``: ``forward`` gives the outputs of the 2nd to
    5th max pools (strides 4 to 32). Past ``output_stride`` a pool keeps the stride (3x3,
    stride 1, as DeepLab-LargeFOV's) and the convolutions after it dilate."""

    def __init__(self, in_channels=3, output_stride=32):
        super().__init__()
        layers, taps, strides = [], [], []
        cin, stride, dilation = in_channels, 1, 1
        for v in _VGG16:
            if v == "M":
                if stride >= output_stride:
                    layers.append(nn.MaxPool2d(3, 1, padding=1))
                    dilation *= 2
                else:
                    layers.append(nn.MaxPool2d(2, 2))
                    stride *= 2
                if len(layers) > 7:  # from the second pool on
                    taps.append(len(layers) - 1)
                    strides.append(stride)
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=dilation, dilation=dilation),
                           nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self._taps = tuple(taps)
        self.channels = (128, 256, 512, 512)
        self.strides = tuple(strides)
        _init_like_torchvision(self)


# ----------------------------------------------------------------------- MobileNet v3
# (input, kernel, expanded, output, squeeze-excitation, hard-swish, stride) per block.
_MOBILENET_V3_LARGE = (
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1), (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)


def _conv_norm_act(cin, cout, kernel, stride=1, dilation=1, groups=1, act=nn.ReLU):
    """torchvision's ``Conv2dNormActivation`` (BN with eps 1e-3, momentum 0.01)."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2 * dilation,
                        dilation=dilation, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class _SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        s = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(s) * x


class _InvertedResidual(nn.Module):
    def __init__(self, cin, kernel, expanded, cout, se, hs, stride, dilation):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers = []
        if expanded != cin:
            layers.append(_conv_norm_act(cin, expanded, 1, act=act))
        layers.append(_conv_norm_act(expanded, expanded, kernel, stride, dilation,
                                     groups=expanded, act=act))
        if se:
            layers.append(_SqueezeExcitation(expanded, _divisible(expanded // 4)))
        layers.append(_conv_norm_act(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return out + x if self.use_res_connect else out


def _divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class MobileNetV3Backbone(_Tapped):
    """torchvision's ``mobilenet_v3_large`` ``features``: ``forward`` gives the outputs of
    blocks 3, 6, 12 and of the last 1x1 convolution (strides 4 to 32; 24, 40, 112 and 960
    channels)."""

    def __init__(self, in_channels=3, output_stride=32):
        super().__init__()
        layers = [_conv_norm_act(in_channels, 16, 3, 2, act=nn.Hardswish)]
        stride, dilation = 2, 1
        for cin, k, e, cout, se, hs, s in _MOBILENET_V3_LARGE:
            if s == 2 and stride >= output_stride:
                dilation *= 2
                s = 1
            stride *= s
            layers.append(_InvertedResidual(cin, k, e, cout, se, hs, s, dilation))
        layers.append(_conv_norm_act(160, 960, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self._taps = (3, 6, 12, 16)
        self.channels = (24, 40, 112, 960)
        self.strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
        _init_like_torchvision(self)


# ------------------------------------------------------------------------ light, timm
class LightBackbone(nn.Module):
    """The project's small residual backbone: a 3x3 conv-BN-ReLU stem of stride 2 (then
    one of stride 1) and four stages of basic residual blocks at strides 4, 8, 16 and 32
    (dilated past ``output_stride``)."""

    def __init__(self, in_channels=3, output_stride=32, widths=(16, 32, 64, 96, 128),
                 blocks=(1, 1, 1, 1)):
        super().__init__()
        widths = positive_ints("widths", widths, count=5)
        blocks = positive_ints("blocks", blocks, count=4)
        self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0], stride=2),
                                  conv_bn_relu(widths[0], widths[0]))
        stages, strides = [], []
        stride, dilation = 2, 1
        for cin, cout, n in zip(widths[:-1], widths[1:], blocks):
            if stride >= output_stride:
                dilation *= 2
                stages.append(residual_stage(cin, cout, n, dilation=dilation))
            else:
                stride *= 2
                stages.append(residual_stage(cin, cout, n, stride=2, dilation=dilation))
            strides.append(stride)
        self.stages = nn.ModuleList(stages)
        self.channels = widths[1:]
        self.strides = tuple(strides)

    def forward(self, x):
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class TimmBackbone(nn.Module):
    """A timm encoder (``features_only``) giving its last four feature maps."""

    def __init__(self, name, in_channels=3, output_stride=32, weights=None):
        super().__init__()
        try:
            import timm
        except ImportError as exc:
            raise ImportError(f"backbone 'timm:{name}' needs timm: pip install timm") from exc
        kwargs = {"features_only": True, "in_chans": in_channels}
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        if weights is not None and weights != "imagenet":
            kwargs["pretrained_cfg_overlay"] = {"file": os.fspath(weights)}
        try:
            self.model = timm.create_model(name, pretrained=weights is not None, **kwargs)
        except RuntimeError as exc:  # timm's own "Unknown model (...)"
            raise ValueError(f"backbone 'timm:{name}': {exc}") from exc
        info = self.model.feature_info
        n = len(info.channels())
        if n < 4:
            raise ValueError(f"backbone 'timm:{name}' gives {n} feature maps; four are needed")
        self._first = n - 4
        self.channels = tuple(info.channels()[-4:])
        self.strides = tuple(min(r, output_stride) for r in info.reduction()[-4:])

    def forward(self, x):
        return list(self.model(x))[self._first:]


#: Backbone names: name -> builder ``(in_channels, output_stride)``.
BACKBONES = {
    "light": lambda c, s: LightBackbone(c, s),
    "resnet18": lambda c, s, g=None: ResNetBackbone(_BasicBlock, (2, 2, 2, 2), c, s, g),
    "resnet34": lambda c, s, g=None: ResNetBackbone(_BasicBlock, (3, 4, 6, 3), c, s, g),
    "resnet50": lambda c, s, g=None: ResNetBackbone(_Bottleneck, (3, 4, 6, 3), c, s, g),
    "resnet101": lambda c, s, g=None: ResNetBackbone(_Bottleneck, (3, 4, 23, 3), c, s, g),
    "resnet152": lambda c, s, g=None: ResNetBackbone(_Bottleneck, (3, 8, 36, 3), c, s, g),
    "vgg16_bn": lambda c, s: VGGBackbone(c, s),
    "mobilenet_v3_large": lambda c, s: MobileNetV3Backbone(c, s),
}


def build_backbone(name, *, in_channels=3, weights=None, output_stride=32, multi_grid=None):
    """A backbone giving feature maps at strides 4, 8, 16 and 32.

    Parameters
    ----------
    name : str
        One of ``BACKBONES`` (``"light"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
        ``"resnet101"``, ``"vgg16_bn"``, ``"mobilenet_v3_large"``) or ``"timm:<name>"``
        for a timm encoder.
    in_channels : int, default=3
        Channels of the input images. Pretrained weights of a 3-channel first convolution
        are adapted: summed for one channel, repeated and rescaled for more.
    weights : str, path-like or None, default=None
        A checkpoint file of the backbone (torchvision's ImageNet files and state dicts of
        the same network load; the classifier's keys are dropped), ``"imagenet"`` to fetch
        torchvision's (or timm's) ImageNet weights, or None for random initialisation.
    output_stride : {32, 16, 8}, default=32
        Stride of the last feature map; below 32 the later stages keep the stride and
        dilate their convolutions.
    multi_grid : sequence of int, optional
        DeepLab v3's multi-grid, for the ResNets below output stride 32: the last stage's
        blocks dilate at the stage's rate times these (``(1, 2, 4)``).

    Returns
    -------
    backbone : torch.nn.Module
        ``forward(x)`` maps ``(N, in_channels, H, W)`` to a list of four ``(N, C_i, H /
        s_i, W / s_i)`` maps; ``backbone.channels`` are the ``C_i`` and
        ``backbone.strides`` the ``s_i``.

    Raises
    ------
    ValueError
        For an unknown name or output stride, or a checkpoint whose keys or shapes do not
        match (naming the first missing and unexpected keys).

    Examples
    --------
    >>> import torch
    >>> from hybridseg.deep.models import build_backbone
    >>> net = build_backbone("resnet18").eval()
    >>> [tuple(f.shape[1:]) for f in net(torch.zeros(1, 3, 64, 64))]
    [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a backbone name (str), got {type(name).__name__}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, numbers.Integral) \
            or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if isinstance(output_stride, bool) or output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    in_channels, output_stride = int(in_channels), int(output_stride)
    if multi_grid is not None:
        multi_grid = positive_ints("multi_grid", multi_grid)
        if not name.startswith("resnet"):
            raise ValueError(f"multi_grid applies to the ResNets, not to {name!r}")
    if name.startswith("timm:"):
        net = TimmBackbone(name[5:], in_channels, output_stride, weights)
    else:
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)} or "
                             "'timm:<name>'")
        net = (BACKBONES[name](in_channels, output_stride) if multi_grid is None
               else BACKBONES[name](in_channels, output_stride, multi_grid))
        if weights is not None:
            load_backbone_weights(net, weights, name=name)
    net.name = name
    net.weights = None if weights is None else (
        weights if weights == "imagenet" else os.fspath(weights))
    return net


def load_backbone_weights(net, weights, *, name):
    """Load a checkpoint (a path, ``"imagenet"`` or a state dict) into a backbone built by
    ``build_backbone(name)``; a clear ``ValueError`` where keys or shapes do not match."""
    if name == "light" and isinstance(weights, str) and weights == "imagenet":
        raise ValueError("the 'light' backbone has no ImageNet weights; give a checkpoint "
                         "path or None")
    state = _read_checkpoint(weights, name)
    if len(state) and all(k.startswith("module.") for k in state):  # DataParallel's
        state = {k[7:]: v for k, v in state.items()}
    head = _HEAD_PREFIXES.get("resnet" if name.startswith("resnet") else name, ())
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
        raise ValueError(f"the checkpoint's keys do not match backbone {name!r}: "
                         f"{', '.join(parts)}")
    first = next(k for k in own if k.endswith("weight") and own[k].ndim == 4)
    state[first] = _adapt_first_conv(state[first], own[first].shape[1])
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"the checkpoint's {k!r} has shape {tuple(state[k].shape)}, "
                             f"backbone {name!r} needs {tuple(v.shape)}")
    net.load_state_dict(state)
    return net


def _read_checkpoint(weights, name):
    if isinstance(weights, dict):
        state = weights
    elif isinstance(weights, str) and weights == "imagenet":
        if name not in IMAGENET_URLS:
            raise ValueError(f"no ImageNet weights are known for backbone {name!r}")
        state = torch.hub.load_state_dict_from_url(IMAGENET_URLS[name], map_location="cpu",
                                                   progress=True, check_hash=True)
    elif isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights: no checkpoint file at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds on a damaged file
            raise ValueError(f"weights: {path} is not a readable torch checkpoint: "
                             f"{exc}") from exc
    else:
        raise TypeError(f"weights must be a path, 'imagenet', a state dict or None, got "
                        f"{type(weights).__name__}")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError("weights: the checkpoint holds no state dict of tensors")
    return dict(state)


def _adapt_first_conv(weight, channels):
    """A first convolution's ``(out, 3, k, k)`` weights for ``channels`` inputs: summed for
    one (a gray image of equal channels gives the same response), repeated and rescaled by
    ``3 / channels`` for more."""
    have = weight.shape[1]
    if have == channels:
        return weight
    if channels == 1:
        return weight.sum(1, keepdim=True)
    reps = -(-channels // have)
    return weight.repeat(1, reps, 1, 1)[:, :channels] * (have / channels)


def _init_like_torchvision(net):
    """Kaiming-normal convolutions (fan-out), unit BN, as torchvision initialises."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def backbone_option(backbone, backbone_weights, in_channels, output_stride,
                    multi_grid=None):
    """A zoo architecture's ``backbone``/``backbone_weights`` options as a backbone module,
    or None where the architecture keeps its own encoder (``backbone=None``)."""
    if backbone is None:
        if backbone_weights is not None:
            raise ValueError("backbone_weights needs a backbone: give backbone='resnet50' "
                             "(or another name of build_backbone)")
        return None
    return build_backbone(backbone, in_channels=in_channels, weights=backbone_weights,
                          output_stride=output_stride, multi_grid=multi_grid)


def backbone_of(net):
    """A zoo network's backbone, or None (also for networks pickled before the option)."""
    return net.__dict__.get("_modules", {}).get("backbone")
