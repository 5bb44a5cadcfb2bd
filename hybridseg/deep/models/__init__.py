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
- ``"deconvnet"`` (``DeconvNet``; Noh et al., 2015): VGG-16, fc6-fc7, and a mirrored
  decoder of unpooling and deconvolution layers;
- ``"parsenet"`` (``ParseNet``; Liu et al., 2015): LargeFOV's features with global
  average pooled context, L2-normalised, unpooled and fused;
- ``"dilatednet"`` (``DilatedNet``; Yu & Koltun, 2016): a dilated VGG front end and the
  basic or large context module, initialised to the identity;
- ``"deeplabv1"``, ``"deeplabv2"``, ``"deeplabv3"`` (``DeepLabV1``, ...; Chen et al.,
  2015 and 2017): LargeFOV's atrous fc6 at rate 12, ASPP as four summed fc branches, and
  ASPP with batch normalisation and image pooling on a multi-grid backbone;
- ``"deeplabv3plus"`` (``DeepLabV3Plus``; Chen et al., 2018): a residual backbone of output
  stride 16 (or 8), atrous spatial pyramid pooling with depthwise-separable branches, and a
  decoder that refines with stride-4 features;
- ``"pspnet"`` (``PSPNet``; Zhao et al., 2017): a dilated residual backbone of output
  stride 8 and a pyramid pooling module;
- ``"fcdensenet56"``, ``"fcdensenet67"``, ``"fcdensenet103"`` (``FCDenseNet56``, ...;
  Jégou et al., 2017, the Tiramisu): dense blocks in a U-shaped network, only the new maps
  upsampled;
- ``"refinenet"`` (``RefineNet``; Lin et al., 2017): residual conv units,
  multi-resolution fusion and chained residual pooling in four cascaded blocks;
- ``"encnet"`` (``EncNet``; Zhang et al., 2018): the context encoding module (learned
  codewords, channel-wise scaling) and a semantic-encoding head;
- ``"gcn"`` (``GCN``; Peng et al., 2017): global convolution (k x 1 + 1 x k, k = 15)
  and boundary refinement on four backbone maps;
- ``"fpn"`` (``FPN``; Kirillov et al., 2019, on Lin et al., 2017): the semantic FPN head
  on a feature pyramid, with ``path_aggregation`` PANet's bottom-up path;
- ``"msd"`` (``MSDNet``; Pelt & Sethian, 2018): the mixed-scale dense network, dilated
  3x3 convolutions of width 1 each fed all earlier maps;
- ``"enet"`` (``ENet``; Paszke et al., 2016): the small real-time network of bottlenecks
  with dilated and asymmetric convolutions.

``build_model(name, ..., preset="paper")`` builds the configuration of the paper (its
widths, depths and, where it has one, its ImageNet backbone); ``preset="small"``, the
default, sizes that train from scratch on a CPU.

``build_backbone(name, weights=...)`` (``BACKBONES``) gives feature pyramids at strides 4
to 32: the project's light backbone, torchvision's ResNets, VGG-16-BN and MobileNet v3
built with torchvision's parameter names (their ImageNet checkpoints load), and any timm
encoder as ``"timm:<name>"``.

The package has one file per family (``_unet.py``, ``_fcn.py``, ``_segnet.py``,
``_deeplab.py``, ``_pspnet.py``, ``_densenet.py``, ``_dilated.py``, ``_refinenet.py``,
``_encnet.py``, ``_gcn.py``, ``_fpn.py``, ``_msd.py``, ``_enet.py``), the shared building
blocks and option checks in ``_blocks.py``, the backbones in ``_backbones.py`` and the
registry in ``_registry.py``. A new architecture is a class in its
family's file decorated with ``@register_model("name")`` and imported here.
"""

from ._registry import MODELS, build_model, register_model  # isort: skip
from ._backbones import BACKBONES, build_backbone
from ._blocks import Residual as _Residual  # noqa: F401  (files pickled before the split)
from ._deeplab import DeepLabV1, DeepLabV2, DeepLabV3, DeepLabV3Plus
from ._densenet import FCDenseNet, FCDenseNet56, FCDenseNet67, FCDenseNet103
from ._dilated import DilatedNet
from ._encnet import EncNet
from ._enet import ENet
from ._fcn import FCN, ParseNet
from ._fpn import FPN
from ._gcn import GCN
from ._msd import MSDNet
from ._pspnet import PSPNet
from ._refinenet import RefineNet
from ._segnet import DeconvNet, SegNet
from ._unet import UNet

__all__ = [
    "BACKBONES",
    "FCN",
    "FPN",
    "GCN",
    "MODELS",
    "DeconvNet",
    "DeepLabV1",
    "DeepLabV2",
    "DeepLabV3",
    "DeepLabV3Plus",
    "DilatedNet",
    "ENet",
    "EncNet",
    "FCDenseNet",
    "FCDenseNet56",
    "FCDenseNet67",
    "FCDenseNet103",
    "MSDNet",
    "PSPNet",
    "ParseNet",
    "RefineNet",
    "SegNet",
    "UNet",
    "build_backbone",
    "build_model",
    "register_model",
]
