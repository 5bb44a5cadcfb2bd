"""Reader of the earlier ``CNNSegmenter.save`` format, so that old files still load.

Until hybridseg's single model-file format (``hybridseg.save``), ``CNNSegmenter.save``
wrote a ``torch.save`` archive of its own: a dict with a magic string, a format version,
the constructor parameters, the fitted attributes, the network's state dict and the void
label. ``hybridseg.load`` and ``CNNSegmenter.load`` / ``CRFRNNSegmenter.load`` read such
files through ``read_legacy`` and the class's ``_restore``; nothing writes them any more
(``tools/convert_models.py`` rewrites one in the current format).
"""

from __future__ import annotations

import os

from ._torch import require_torch

__all__ = ["read_legacy"]

#: The magic string and the last version of the earlier format.
_MAGIC = "hybridseg.CNNSegmenter"
_VERSION = 1
# Parameters that only a CRFRNNSegmenter file holds.
_CRFRNN_KEYS = {"unary_epochs", "end_to_end_lr", "crf_lr", "n_iter", "crf_params"}


def read_legacy(path):
    """The class and contents of a file of the earlier format.

    Loading unpickles the file: load only files you trust.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    name : {"CNNSegmenter", "CRFRNNSegmenter"}
        The class that wrote it.
    parts : dict
        ``params`` (the constructor's keywords of the time), ``fitted`` (the fitted
        attributes), ``state_dict`` (the network's weights) and ``void``: the arguments of
        that class's ``_restore``.
    """
    torch = require_torch()
    path = os.fspath(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a hybridseg model file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("magic") != _MAGIC:
        raise ValueError(f"{path} is not a hybridseg model file (written by hybridseg.save "
                         "or the earlier CNNSegmenter.save)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > _VERSION:
        raise ValueError(f"{path} has format version {version}, newer than this hybridseg "
                         f"reads ({_VERSION}); upgrade hybridseg")
    params = dict(payload["params"])
    name = "CRFRNNSegmenter" if _CRFRNN_KEYS & set(params) else "CNNSegmenter"
    return name, {"params": params, "fitted": payload["fitted"],
                  "state_dict": payload["state_dict"], "void": payload["void"]}
