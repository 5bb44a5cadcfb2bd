"""The one model-file format of hybridseg, for any picklable estimator.

``hybridseg.save`` / ``hybridseg.load`` and every stage's ``save`` / ``load`` write and
read it through this module, which knows no estimator. A model file is a zip archive
(``unzip -l`` lists it) with three members:

- ``hybridseg-model.json``: what the file is (a magic string, the format version, the
  versions of hybridseg, Python, numpy, scikit-learn and torch that wrote it, the
  estimator's class and, for each torch network inside, its class and parameter count);
- ``estimator.pkl``: the estimator, pickled, with every torch tensor left out and replaced
  by a reference;
- ``tensors.pt``: those tensors, by reference, in one ``torch.save`` archive read back with
  ``weights_only=True`` (present only when the estimator holds torch tensors, so a classical
  model is read without torch installed).

So a network's weights are stored as its state dict's tensors on the CPU, never as CUDA
storages, and a file written on a GPU machine loads on a CPU-only one. Loading runs
``pickle`` on ``estimator.pkl``: load only files from people you trust.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import platform
import re
import sys
import types
import warnings
import zipfile
import zlib

from ._io import write_atomic

__all__ = ["FORMAT_VERSION", "is_legacy", "load", "read_header", "save"]

#: Version of the file layout written by ``save``; ``load`` refuses newer ones.
FORMAT_VERSION = 1
_MAGIC = "hybridseg-model"
_HEADER = "hybridseg-model.json"
_PICKLE = "estimator.pkl"
_TENSORS = "tensors.pt"


def _torch_if_loaded():
    """torch when it is already imported (an estimator holding tensors imported it)."""
    return sys.modules.get("torch")


class _Pickler(pickle.Pickler):
    """Pickles an estimator with each torch tensor replaced by a reference into a table."""

    def __init__(self, file, torch):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._torch = torch
        self.tensors = {}
        self._ids = {}
        self._inner = set()
        self._alive = []
        self.networks = []
        self.in_main = set()

    def persistent_id(self, obj):
        if isinstance(obj, (type, types.FunctionType)) and getattr(
                obj, "__module__", None) == "__main__":
            self.in_main.add(obj.__qualname__)
        torch = self._torch
        if torch is None:
            return None
        if isinstance(obj, torch.nn.Module):
            # Note each outermost network once, for the header (submodules come after).
            if id(obj) not in self._inner:
                self.networks.append(obj)
                self._inner.update(id(m) for m in obj.modules())
            return None
        if not isinstance(obj, torch.Tensor):
            return None
        key = self._ids.get(id(obj))
        if key is None:
            key = f"t{len(self.tensors)}"
            self._ids[id(obj)] = key
            self._alive.append(obj)  # an id is only unique while its object lives
            t = obj
            if t.device.type not in ("cpu", "meta"):
                t = (torch.nn.Parameter(t.detach().cpu(), requires_grad=t.requires_grad)
                     if isinstance(t, torch.nn.Parameter) else t.detach().cpu())
            self.tensors[key] = t
        return ("tensor", key)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, tensors):
        super().__init__(file)
        self._tensors = tensors

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "tensor"):
            raise pickle.UnpicklingError(f"unknown reference {pid!r} in the model file")
        try:
            return self._tensors[pid[1]]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                f"the model file refers to tensor {pid[1]!r}, which it does not hold"
            ) from None


def _versions(torch):
    import numpy
    import sklearn

    from .._version import __version__

    out = {"hybridseg": __version__, "python": platform.python_version(),
           "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}
    if torch is not None:
        out["torch"] = torch.__version__
    return out


def _class_path(obj):
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def save(estimator, path, *, overwrite=False):
    """Write ``estimator`` to ``path`` atomically (``hybridseg.save`` documents it)."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__}")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}") \
            from None
    if os.path.isdir(path):
        raise IsADirectoryError(f"path is a folder, not a file name: {path}")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"the folder to save into does not exist: {directory}")

    torch = _torch_if_loaded()
    buf = io.BytesIO()
    pickler = _Pickler(buf, torch)
    try:
        pickler.dump(estimator)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"cannot save {type(estimator).__name__}: it does not pickle "
                        f"({exc})") from exc
    if pickler.in_main:
        names = ", ".join(sorted(pickler.in_main))
        warnings.warn(f"{path} refers to {names} defined in the running script (module "
                      "__main__): only a script that defines them too can read it, not "
                      "hybridseg segment or compare; define them in a module you import",
                      UserWarning, stacklevel=3)
    header = {
        "magic": _MAGIC,
        "format_version": FORMAT_VERSION,
        "versions": _versions(torch if pickler.tensors else None),
        "estimator": _class_path(estimator),
        "networks": [{"class": _class_path(m),
                      "parameters": int(sum(p.numel() for p in m.parameters()))}
                     for m in pickler.networks
                     if any(not p.is_meta for p in m.parameters())],
        "n_tensors": len(pickler.tensors),
    }
    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr(_HEADER, json.dumps(header, indent=2) + "\n",
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(_PICKLE, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
            if pickler.tensors:
                tbuf = io.BytesIO()
                torch.save(pickler.tensors, tbuf)
                zf.writestr(_TENSORS, tbuf.getvalue(), compress_type=zipfile.ZIP_STORED)

    write_atomic(path, write)
    return path


def _open(path):
    """The open archive and its header, or a clear error for a file that is not ours."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}") \
            from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path is a folder, not a model file: {path}")
    not_ours = f"{path} is not a hybridseg model file (written by hybridseg.save)"
    if not zipfile.is_zipfile(path):
        raise ValueError(not_ours)
    # what zipfile raises on damaged archives: bad offsets, versions, sizes, compression
    damaged = (zipfile.BadZipFile, zlib.error, OSError, ValueError, NotImplementedError,
               EOFError, RuntimeError, UnicodeDecodeError)
    try:
        zf = zipfile.ZipFile(path)
        names = set(zf.namelist())
    except damaged as exc:
        raise ValueError(f"{path} is a damaged zip archive, not a readable model file "
                         f"({type(exc).__name__}: {exc})") from exc
    if _HEADER not in names:
        zf.close()
        if any(n.endswith("/data.pkl") for n in names):
            return None, None  # a torch archive: perhaps CNNSegmenter.save's own format
        raise ValueError(not_ours)
    try:
        header = json.loads(zf.read(_HEADER))
    except damaged:
        zf.close()
        raise ValueError(f"{not_ours}: its header is damaged or not JSON") from None
    if not isinstance(header, dict) or header.get("magic") != _MAGIC:
        zf.close()
        raise ValueError(not_ours)
    version = header.get("format_version")
    written = _written_by(header)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        zf.close()
        raise ValueError(f"{path} has format version {version!r} (written by hybridseg "
                         f"{written}), not a positive integer: the file is damaged")
    if version > FORMAT_VERSION:
        zf.close()
        raise ValueError(f"{path} has format version {version} (written by hybridseg "
                         f"{written}), newer than this hybridseg reads ({FORMAT_VERSION}); "
                         "upgrade hybridseg")
    return zf, header


def is_legacy(path):
    """Whether ``path`` is a torch archive (the earlier ``CNNSegmenter.save`` format), not
    a file of this format; other files raise as ``load`` does."""
    zf, _ = _open(path)
    if zf is None:
        return True
    zf.close()
    return False


def _open_ours(path):
    """``_open``, refusing a torch archive."""
    zf, header = _open(path)
    if zf is None:
        raise ValueError(f"{os.fspath(path)} is a torch archive, not a file written by "
                         "hybridseg.save")
    return zf, header


def read_header(path):
    """The JSON header of a model file, without unpickling anything."""
    zf, header = _open_ours(path)
    zf.close()
    return header


def load(path):
    """Read an estimator written by ``save`` (``hybridseg.load`` documents it)."""
    zf, header = _open_ours(path)
    torch = None
    if _TENSORS in zf.namelist():
        try:
            import torch
        except ImportError:
            zf.close()
            raise ImportError(f"{os.fspath(path)} holds torch networks; install torch "
                              "to load it") from None
    try:
        with zf:
            tensors = {}
            if torch is not None:
                tensors = torch.load(io.BytesIO(zf.read(_TENSORS)), map_location="cpu",
                                     weights_only=True)
            return _Unpickler(io.BytesIO(zf.read(_PICKLE)), tensors).load()
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"{os.fspath(path)} needs the module {exc.name!r}, which cannot be imported "
            f"here (written by hybridseg {_written_by(header)}): install it, run from its "
            "folder, or add the folder to sys.path (--python-path DIR in hybridseg "
            "segment and compare)") from exc
    except AttributeError as exc:
        found = re.match(r"Can't get attribute '([^']+)' on <module '([^']+)'", str(exc))
        if found is None:
            raise ValueError(f"{os.fspath(path)} is damaged and cannot be read "
                             f"(AttributeError: {exc}; written by hybridseg "
                             f"{_written_by(header)})") from exc
        name, module = found.groups()
        where = ("the script that wrote the file (module __main__)"
                 if module.endswith("__main__") else f"module {module!r}")
        raise ValueError(f"{os.fspath(path)} needs {name!r} from {where}, which is not "
                         f"there (written by hybridseg {_written_by(header)}): define it "
                         "in a module of its own and make that module importable "
                         "(--python-path DIR in hybridseg segment and compare)") from exc
    except Exception as exc:  # a damaged member: zip, zlib, pickle or torch errors
        raise ValueError(f"{os.fspath(path)} is damaged and cannot be read "
                         f"({type(exc).__name__}: {exc}; written by hybridseg "
                         f"{_written_by(header)})") from exc


def _written_by(header):
    """The hybridseg version a file's header names, for messages."""
    versions = header.get("versions")
    if isinstance(versions, dict) and isinstance(versions.get("hybridseg"), str):
        return versions["hybridseg"]
    return "an unknown version"
