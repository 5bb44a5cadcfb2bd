"""``hybridseg.save``, ``hybridseg.load`` and ``hybridseg.read_header``: one file for any
fitted stage or Pipeline.

The format itself (a zip archive with a JSON header, the pickled estimator and its torch
tensors apart) lives in ``utils/_serialize.py``, which every stage's own ``save`` uses too.
This module adds what needs the stages: files of the earlier ``CNNSegmenter.save`` format
(a torch archive) are read by ``deep/_legacy.py``. Loading runs ``pickle``: load only files
from people you trust.
"""

from __future__ import annotations

from .utils import _serialize
from .utils._serialize import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "load", "read_header", "save"]


def save(estimator, path, *, overwrite=False):
    """Write a fitted stage or ``Pipeline`` to one file.

    Any estimator works: hybridseg's segmenters and refiners, scikit-learn Pipelines of
    them, the user's own. Torch networks inside are stored as their tensors on the CPU
    (a state dict), apart from the pickled rest, together with the format version and the
    versions of hybridseg, scikit-learn and torch that wrote the file. The file is written
    to a temporary name in the same folder and renamed, so a crash never leaves half a
    file under ``path``.

    Parameters
    ----------
    estimator : object
        The fitted estimator or ``Pipeline``.
    path : str or path-like
        The file to write (``.hseg`` by convention).
    overwrite : bool, default=False
        Replace an existing file; without it an existing ``path`` raises
        ``FileExistsError``.

    Returns
    -------
    path : str
        The path written.

    See Also
    --------
    load : read the file back.

    Examples
    --------
    >>> import hybridseg, tempfile, os
    >>> import numpy as np
    >>> from hybridseg.dummy import DummySegmenter
    >>> seg = DummySegmenter(strategy="most_frequent", n_classes=2)
    >>> seg = seg.fit([np.zeros((4, 4))], [np.ones((4, 4), int)])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = hybridseg.save(seg, os.path.join(d, "model.hseg"))
    ...     hybridseg.load(f).predict([np.zeros((2, 3))])[0].tolist()
    [[1, 1, 1], [1, 1, 1]]
    """
    return _serialize.save(estimator, path, overwrite=overwrite)


def read_header(path):
    """What a model file holds, without unpickling anything.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    header : dict
        ``format_version``, ``versions`` (of hybridseg, Python, numpy, scikit-learn and
        torch that wrote it), ``estimator`` (its class), ``networks`` (class and parameter
        count of each torch network inside).
    """
    return _serialize.read_header(path)


def load(path):
    """Read an estimator written by ``save``.

    Loading unpickles the file, which can run any code the file's author chose: load only
    files you trust. Torch networks come back on the device their segmenter asks for
    (``device="auto"``: the GPU where there is one), or on the CPU with a warning when a
    file saved for CUDA is read on a machine without it. Files written by
    ``CNNSegmenter.save`` are read too.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator : object
        The estimator as it was saved, ready to predict.

    Raises
    ------
    ValueError
        The file is not a hybridseg model file, or it was written with a newer format.
    ImportError
        The file holds torch networks and torch is not installed.

    See Also
    --------
    save : write a file.
    read_header : what a file holds, without loading it.
    """
    if _serialize.is_legacy(path):
        from .deep import CNNSegmenter, CRFRNNSegmenter
        from .deep._legacy import read_legacy

        name, parts = read_legacy(path)
        cls = CRFRNNSegmenter if name == "CRFRNNSegmenter" else CNNSegmenter
        return cls._restore(**parts)
    return _serialize.load(path)
