"""``fetch_dataset``: download and unpack the benchmark data sets whose terms allow it.

Downloads go to ``<data home>/downloads/`` (``get_data_home``) and resume: a file is
written as ``<name>.part`` and a rerun asks the server for the rest (an HTTP ``Range``
request; a server that ignores it sends the whole file again). A finished file is
checked against its published MD5 where one is known; for the others its SHA-256 is
recorded at the first download (``<name>.sha256``) and checked at every later use, so a
file changed on disk is caught. A truncated transfer, a checksum that does not match or an
archive that does not unpack raises an error that says what happened, and leaves what was
downloaded in place (the ``.part`` to resume, a bad file renamed ``<name>.bad``): nothing
is lost or half-unpacked, as each archive is unpacked into a temporary folder that is
renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ._base import get_data_home

__all__ = ["REMOTES", "fetch_dataset"]


@dataclass(frozen=True)
class Remote:
    """One file of a data set: where it is, its published MD5 (None when unknown) and
    the folder it unpacks to (relative to the data set's folder)."""

    filename: str
    url: str
    md5: str | None = None
    into: str = "."


#: Files of each data set that may be downloaded directly (their terms: VOC and
#: PASCAL-Context, images from Flickr under its terms; ADE20K, MIT's terms of the
#: SceneParsing benchmark; COCO-Stuff, COCO's images and CC BY 4.0 annotations).
REMOTES = {
    "voc": (Remote("VOCtrainval_11-May-2012.tar",
                   "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                   md5="6cd6e144f989b92b3379bac3b3de84fd"),),
    "pascal_context": (
        Remote("VOCtrainval_03-May-2010.tar",
               "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
               md5="da459979d0c395079b5c75ee67908abb"),
        Remote("trainval.tar.gz",
               "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
               into="VOCdevkit/VOC2010"),
    ),
    "ade20k": (Remote("ADEChallengeData2016.zip",
                      "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"),),
    "coco_stuff": (
        Remote("train2017.zip", "http://images.cocodataset.org/zips/train2017.zip",
               into="images"),
        Remote("val2017.zip", "http://images.cocodataset.org/zips/val2017.zip",
               into="images"),
        Remote("stuffthingmaps_trainval2017.zip",
               "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
               "stuffthingmaps_trainval2017.zip", into="annotations"),
    ),
}
#: Where each data set's loader root lies inside its folder.
ROOTS = {"voc": "VOCdevkit/VOC2012", "pascal_context": "VOCdevkit/VOC2010",
         "ade20k": "ADEChallengeData2016", "coco_stuff": "."}
_LOGIN = {
    "cityscapes": "Cityscapes is downloaded after logging in at "
                  "https://www.cityscapes-dataset.com/downloads/ (its licence allows no "
                  "direct download): get leftImg8bit_trainvaltest.zip and "
                  "gtFine_trainvaltest.zip, unzip both into one folder and pass that folder "
                  "to load_cityscapes (or as compare's --data-root).",
}


def _digest(path, algorithm, chunk=1 << 20):
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _say(progress, line):
    if progress:
        print(line, file=sys.stderr, flush=True)


def download(url, dest, *, md5=None, progress=True, timeout=60):
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an earlier try.

    Parameters
    ----------
    url : str
    dest : path-like
    md5 : str, optional
        Published checksum; without one, the SHA-256 is recorded in ``dest.sha256`` at
        the first download and checked when the file is used again.
    progress : bool, default=True
    timeout : float, default=60

    Returns
    -------
    path : Path
        ``dest``, complete and checked.

    Raises
    ------
    OSError
        A truncated transfer (the ``.part`` is kept: run again to resume), or a checksum
        that does not match (the file is kept as ``dest.bad``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        _check(dest, md5)
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have
                                     else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already whole
            response = None
        else:
            raise OSError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise OSError(f"downloading {url} failed: {exc.reason}; run again to resume"
                      + (f" from byte {have}" if have else "")) from exc
    if response is not None:
        with response:
            resumed = have and getattr(response, "status", 200) == 206
            if have and not resumed:
                have = 0  # the server sent the whole file again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            _say(progress, f"downloading {url}" + (f" (resuming at byte {have})"
                                                   if resumed else ""))
            with open(part, "ab" if resumed else "wb") as out:
                try:
                    shutil.copyfileobj(response, out, 1 << 20)
                except (OSError, http.client.HTTPException) as exc:
                    raise OSError(f"downloading {url} was interrupted ({exc}) after "
                                  f"{out.tell()} bytes; {part} is kept: run again to "
                                  "resume") from exc
                got = out.tell()
            if total is not None and got < total:
                raise OSError(f"downloading {url} stopped at {got} of {total} bytes (a "
                              f"truncated transfer); {part} is kept: run again to resume")
    os.replace(part, dest)
    _check(dest, md5)
    return dest


def _check(path, md5):
    """Check ``path`` against its MD5, or against the SHA-256 recorded at download."""
    record = path.with_name(path.name + ".sha256")
    if md5 is not None:
        expected, got, kind = md5, _digest(path, "md5"), "MD5"
    elif record.is_file():
        expected, got, kind = record.read_text().split()[0], _digest(path, "sha256"), \
            "SHA-256 recorded at download"
    else:
        record.write_text(_digest(path, "sha256") + "\n")
        return
    if got != expected:
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        raise OSError(f"{path.name}: {kind} {got} is not the expected {expected} (a "
                      f"corrupted or changed file); it is kept as {bad}, delete it and "
                      "run again to download it anew")


def _unpack(archive, into):
    """Unpack ``archive`` into ``into`` through a temporary folder renamed into place
    per top-level entry, so that an interrupted unpacking leaves nothing half-done."""
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".unpacking-{archive.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    if os.path.isabs(name) or ".." in Path(name).parts:
                        raise OSError(f"{archive} holds an unsafe path {name!r}")
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                if hasattr(tarfile, "data_filter"):
                    t.extractall(tmp, filter="data")
                else:  # Pythons before the extraction filters
                    for member in t.getmembers():
                        if (os.path.isabs(member.name) or ".." in Path(member.name).parts
                                or member.issym() or member.islnk()):
                            raise OSError(f"{archive} holds an unsafe entry "
                                          f"{member.name!r}")
                    t.extractall(tmp)
        else:
            raise OSError(f"{archive} is neither a zip nor a tar archive")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"unpacking {archive} failed: {exc}; the archive is kept") from exc
    for entry in tmp.iterdir():
        target = into / entry.name
        if target.is_dir() and entry.is_dir():
            shutil.copytree(entry, target, dirs_exist_ok=True)  # two archives, one tree
        else:
            os.replace(entry, target)
    shutil.rmtree(tmp)


def fetch_dataset(name, data_home=None, *, progress=True, remotes=None):
    """Download and unpack a benchmark data set; return the root its loader reads.

    Parameters
    ----------
    name : {"voc", "pascal_context", "ade20k", "coco_stuff", "cityscapes"}
        ``"cityscapes"`` raises a ValueError that says how to get it (a login is needed).
    data_home : str or path-like, optional
        See ``get_data_home``; the data set goes to ``<data_home>/<name>/``.
    progress : bool, default=True
        Say on stderr what is downloaded.
    remotes : sequence of Remote, optional
        Other files (mirrors, tests); by default ``REMOTES[name]``.

    Returns
    -------
    root : Path
        What ``load_<name>`` takes as ``root``.

    Notes
    -----
    Sizes: VOC 2012 2 GB; PASCAL-Context 1.3 GB of VOC 2010 and 30 MB of labels (the
    459-class ``.mat`` release, which ``load_pascal_context`` reads with its
    ``labels.txt``); ADE20K 0.9 GB; COCO-Stuff 19 GB of COCO images and 0.7 GB of maps.
    """
    if name in _LOGIN:
        raise ValueError(_LOGIN[name])
    if name not in REMOTES:
        raise ValueError(f"name must be one of {sorted([*REMOTES, *_LOGIN])}, got {name!r}")
    home = get_data_home(data_home)
    folder = home / name
    done = folder / ".complete"
    if not done.is_file():
        for remote in (REMOTES[name] if remotes is None else remotes):
            archive = download(remote.url, home / "downloads" / remote.filename,
                               md5=remote.md5, progress=progress)
            marker = folder / f".unpacked-{remote.filename}"
            if not marker.is_file():
                _say(progress, f"unpacking {archive.name} into {folder / remote.into}")
                _unpack(archive, folder / remote.into)
                marker.write_text("")
        done.write_text("")
    return folder / ROOTS[name]
