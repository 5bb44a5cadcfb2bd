"""hybridseg: semantic image segmentation with classical and deep methods on one footing.

Submodules load on first use (``import hybridseg`` imports neither torch nor numba):

- ``hybridseg.metrics``: confusion matrix, the IoU family, boundary F1, scorers;
- ``hybridseg.datasets``: CamVid, ISBI 2012 membranes, any folder, the embedded sample;
- ``hybridseg.base``: the segmenter and refiner base classes;
- ``hybridseg.dummy``: label-statistics baselines;
- ``hybridseg.classical``: split-and-merge, pixel classifiers, the classical pipelines;
- ``hybridseg.crf``: the dense and grid CRFs;
- ``hybridseg.deep``: the PyTorch stages (torch needed only when they are used);
- ``hybridseg.viz``: coloured label maps and figure grids (PIL only);
- ``hybridseg.utils``: validation helpers and score conversions.

The data contract: images are ``(H, W)`` or ``(H, W, C)`` arrays, label maps ``(H, W)``
integer arrays with ``ignore_index`` (255) for void pixels, class scores ``(H, W, K)``
float32 arrays with the class axis last, and ``Unaries`` carries images with their
scores from a segmenter to a refiner.
"""

import lazy_loader as _lazy

from ._version import __version__

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
__all__ = [*__all__, "__version__"]
