"""What this installation runs on: versions, numba threading, torch and CUDA, data cache."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys

__all__ = ["show_versions"]

_DEPENDENCIES = (
    "numpy", "scipy", "scikit-image", "scikit-learn", "numba", "llvmlite", "joblib",
    "pillow", "lazy_loader",
)
_OPTIONAL = ("torch", "pydensecrf2", "PyMaxflow", "gco-wrapper", "dask", "distributed",
             "torchvision", "timm", "segmentation-models-pytorch", "transformers")


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _numba_info(probe):
    import numba

    info = {
        "threading_layer_requested": numba.config.THREADING_LAYER,
        "num_threads": numba.get_num_threads(),
        "cache_dir": numba.config.CACHE_DIR or "(next to each module, or the user cache)",
    }
    if probe:
        # The layer in use is only known once a parallel function has run.
        from numba import njit, prange

        @njit(parallel=True)
        def _probe(n):
            s = 0
            for i in prange(n):
                s += i
            return s

        _probe(8)
        info["threading_layer"] = numba.threading_layer()
    return info


def _torch_info():
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    import torch

    info = {
        "installed": True,
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "cuda_available": bool(torch.cuda.is_available()),
        "cuda_version": torch.version.cuda,
    }
    if info["cuda_available"]:
        info["devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    mps = getattr(torch.backends, "mps", None)
    info["mps_available"] = bool(mps is not None and mps.is_available())
    return info


def collect_info(*, probe_numba=True, torch=True):
    """Everything ``hybridseg info`` prints, as a dict of dicts."""
    from . import __version__
    from .datasets._base import get_data_home

    data_home = get_data_home(create=False)
    return {
        "hybridseg": {"version": __version__, "location": os.path.dirname(__file__)},
        "system": {
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "dependencies": {d: _version(d) for d in _DEPENDENCIES},
        "optional": {d: _version(d) for d in _OPTIONAL},
        "numba": _numba_info(probe_numba),
        "torch": _torch_info() if torch else {"installed": "not checked"},
        "data": {
            "data_home": str(data_home),
            "data_home_env": os.environ.get("HYBRIDSEG_DATA_HOME"),
            "cached": sorted(p.name for p in data_home.iterdir() if p.is_dir())
            if data_home.is_dir() else [],
        },
    }


def format_info(info):
    lines = []
    for section, values in info.items():
        lines.append(f"{section}:")
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            if value is None:
                value = "not installed" if section in ("dependencies", "optional") else "-"
            elif isinstance(value, (list, tuple)):
                value = ", ".join(map(str, value)) or "(none)"
            lines.append(f"  {key:>{width}}: {value}")
    return "\n".join(lines)


def show_versions(*, probe_numba=True):
    """Print the versions of hybridseg and its dependencies, numba's threading, torch and
    CUDA availability, and the data cache folder (for bug reports).

    Parameters
    ----------
    probe_numba : bool, default=True
        Run a tiny parallel numba function to report the threading layer in use (it
        compiles once, about a second).
    """
    print(format_info(collect_info(probe_numba=probe_numba)))
