"""Deep stages on PyTorch: CNN segmenters, their losses and networks, and CRF-as-RNN.

torch is the ``deep`` extra: ``import hybridseg.deep`` works without it, and so do
``CNNSegmenter(...)``, ``clone`` and ``get_params``; the first use that needs torch (a
``fit``, the ``losses`` or ``models`` submodule) raises an ``ImportError`` saying how to
install it.

- ``hybridseg.deep.CNNSegmenter``: a torch network trained and used as a segmenter;
- ``hybridseg.deep.CRFRNN``: the dense CRF's mean field as a differentiable layer, and
  ``CRFRNNSegmenter``: a unary ``CNNSegmenter`` with that layer, trained end to end
  (``CRFRNNSegmenter(unary=CNNSegmenter("unet"))``, tuned as ``unary__lr``);
- ``hybridseg.deep.scores_from_logits``: any torch model's ``(N, K, H, W)`` output as the
  ``(H, W, K)`` scores a CRF refiner takes;
- ``hybridseg.deep.load_pretrained``: small networks the project trained and ships
  (``PRETRAINED``);
- ``hybridseg.deep.losses``: pixel-wise (weighted) cross-entropy, focal and soft Dice
  losses and their weighted sums, all honouring ``ignore_index``;
- ``hybridseg.deep.models``: the model zoo (``build_model(name, ...)``, ``MODELS``):
  ``"fcn"``, ``"unet"``, ``"segnet"``, ``"deeplabv3plus"``, ``"pspnet"``, one file per
  family.

Files: ``hybridseg.save`` / ``hybridseg.load`` (``CNNSegmenter.save`` / ``load`` are the
same format); the earlier ``CNNSegmenter.save`` files still load.
"""

import lazy_loader as _lazy

# These import torch only when used; losses, models and CRFRNN need it at import.
from ._crfrnn_segmenter import CRFRNNSegmenter
from ._logits import scores_from_logits
from ._pretrained import PRETRAINED, load_pretrained
from ._segmenter import CNNSegmenter

__getattr__, __dir__, _lazy_all = _lazy.attach(
    __name__, submodules=["losses", "models"], submod_attrs={"_crfrnn": ["CRFRNN"]})
__all__ = ["PRETRAINED", "CNNSegmenter", "CRFRNNSegmenter", "load_pretrained",
           "scores_from_logits", *_lazy_all]
