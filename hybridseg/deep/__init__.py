"""Deep stages on PyTorch: losses and networks for segmentation (more to come:
``CNNSegmenter``, CRF-as-RNN).

torch is the ``deep`` extra: ``import hybridseg.deep`` works without it, and the first use
of a submodule that needs it raises an ``ImportError`` saying how to install it.

- ``hybridseg.deep.losses``: pixel-wise (weighted) cross-entropy, focal and soft Dice
  losses and their weighted sums, all honouring ``ignore_index``;
- ``hybridseg.deep.models``: the model zoo (``build_model(name, ...)``; so far ``"unet"``).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submodules=["losses", "models"])
