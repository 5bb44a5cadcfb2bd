"""Deep stages on PyTorch: CNN segmenters, their losses and networks (CRF-as-RNN to come).

torch is the ``deep`` extra: ``import hybridseg.deep`` works without it, and so do
``CNNSegmenter(...)``, ``clone`` and ``get_params``; the first use that needs torch (a
``fit``, the ``losses`` or ``models`` submodule) raises an ``ImportError`` saying how to
install it.

- ``hybridseg.deep.CNNSegmenter``: a torch network trained and used as a segmenter;
- ``hybridseg.deep.losses``: pixel-wise (weighted) cross-entropy, focal and soft Dice
  losses and their weighted sums, all honouring ``ignore_index``;
- ``hybridseg.deep.models``: the model zoo (``build_model(name, ...)``, ``MODELS``).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["losses", "models"],
    submod_attrs={"_segmenter": ["CNNSegmenter"]},
)
