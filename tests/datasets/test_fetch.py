"""fetch_camvid without a network: the shared copy served through a file:// URL."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import hybridseg.datasets._camvid as camvid_mod
from hybridseg.datasets import fetch_camvid, load_camvid

pytestmark = pytest.mark.data

SUBFOLDERS = ("train", "trainannot", "val", "valannot", "test", "testannot")


def _url(root):
    return Path(root).as_uri() + "/"


def _files(root):
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _val_files(camvid_root):
    return sorted(
        f"{sub}/{p.name}" for sub in ("val", "valannot") for p in (camvid_root / sub).glob("*.png")
    )


class Spy:
    """Wraps ``_download_one`` (or refuses every call) and records the destinations."""

    def __init__(self, monkeypatch, *, forbid=False):
        self.calls = []
        self._lock = threading.Lock()
        original = camvid_mod._download_one

        def spy(url, dest, size, sha256, *args, **kwargs):
            with self._lock:
                self.calls.append((url, Path(dest)))
            if forbid:
                raise AssertionError(f"unexpected download of {url}")
            return original(url, dest, size, sha256, *args, **kwargs)

        monkeypatch.setattr(camvid_mod, "_download_one", spy)


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    # _download_one sleeps between retries; the tests need the retries, not the waiting.
    fake_time = SimpleNamespace(sleep=lambda s: None, time=camvid_mod.time.time)
    monkeypatch.setattr(camvid_mod, "time", fake_time)


@pytest.fixture(scope="module")
def camvid_val(camvid_root):
    return load_camvid(camvid_root, "val")


@pytest.fixture(scope="module")
def fetched_home(tmp_path_factory, camvid_root):
    """A data home holding the val split, fetched once (read-only for the tests)."""
    home = tmp_path_factory.mktemp("fetched_home")
    fetch_camvid(home, split="val", base_url=_url(camvid_root), n_jobs=2, limit=1)
    return home


@pytest.fixture
def fresh_home(tmp_path, fetched_home):
    """A private copy of ``fetched_home`` that a test may damage."""
    home = tmp_path / "home"
    shutil.copytree(fetched_home, home)
    return home


def _assert_same(ds, ref):
    assert [Path(f).name for f in ds.filenames] == [Path(f).name for f in ref.filenames]
    for a, b in zip(ds.images, ref.images, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ds.labels, ref.labels, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- fetching
def test_fetch_val_downloads_exactly_the_val_files(
    tmp_path, camvid_root, camvid_val, monkeypatch
):
    spy = Spy(monkeypatch)
    ds = fetch_camvid(tmp_path, split="val", base_url=_url(camvid_root), n_jobs=2)
    expected = _val_files(camvid_root)
    assert len(expected) == 202
    cache = tmp_path / "camvid"
    assert len(spy.calls) == 202
    assert sorted(dest.relative_to(cache).as_posix() for _, dest in spy.calls) == expected
    assert all(url == _url(camvid_root) + dest.relative_to(cache).as_posix()
               for url, dest in spy.calls)
    # Exactly these files are in the cache, no temporary leftovers, byte-identical.
    assert _files(cache) == expected
    for rel in expected[::25]:
        assert (cache / rel).read_bytes() == (camvid_root / rel).read_bytes()
    assert ds.name == "camvid-val"
    assert [Path(f).parent for f in ds.filenames] == [cache / "val"] * 101
    _assert_same(ds, camvid_val)


def test_second_call_downloads_nothing(fetched_home, camvid_root, monkeypatch):
    spy = Spy(monkeypatch, forbid=True)
    # data_home=None reads $HYBRIDSEG_DATA_HOME.
    monkeypatch.setenv("HYBRIDSEG_DATA_HOME", str(fetched_home))
    ds = fetch_camvid(split="val", base_url=_url(camvid_root), n_jobs=2, limit=3)
    assert spy.calls == []
    ref = load_camvid(camvid_root, "val", limit=3)
    _assert_same(ds, ref)
    # Once cached, download_if_missing=False is fine, and return_X_y passes through.
    X, y = fetch_camvid(
        fetched_home, split="val", download_if_missing=False, limit=2, return_X_y=True
    )
    assert len(X) == len(y) == 2
    np.testing.assert_array_equal(y[1], ref.labels[1])
    # A split that is not cached is not silently loaded.
    with pytest.raises(OSError, match="download_if_missing"):
        fetch_camvid(fetched_home, split="test", download_if_missing=False)
    assert spy.calls == []


def test_download_if_missing_false_on_empty_home(tmp_path, camvid_root, monkeypatch):
    spy = Spy(monkeypatch, forbid=True)
    with pytest.raises(OSError, match="202 CamVid files"):
        fetch_camvid(
            tmp_path, split="val", download_if_missing=False, base_url=_url(camvid_root)
        )
    assert spy.calls == []
    assert not (tmp_path / "camvid").exists() or _files(tmp_path / "camvid") == []


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        fetch_camvid(tmp_path, split="nope", base_url=_url(tmp_path))


# --------------------------------------------------------------------------- integrity
def test_corrupted_source_is_rejected_and_not_kept(tmp_path, camvid_root):
    mirror = tmp_path / "mirror"
    for sub in ("val", "valannot"):
        shutil.copytree(camvid_root / sub, mirror / sub)
    victim = sorted((mirror / "valannot").glob("*.png"))[40]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    victim.write_bytes(bytes(data))
    home = tmp_path / "home"
    with pytest.raises(OSError, match="checksum") as exc:
        fetch_camvid(home, split="val", base_url=_url(mirror), n_jobs=2)
    assert victim.name in str(exc.value)
    cache = home / "camvid"
    assert not (cache / "valannot" / victim.name).exists()
    assert [p for p in cache.rglob("*") if p.name.endswith(".part")] == []
    # The files that did arrive are all good ones.
    for rel in _files(cache):
        assert (cache / rel).read_bytes() == (camvid_root / rel).read_bytes()


def test_missing_source_file_raises(tmp_path, camvid_root):
    mirror = tmp_path / "mirror"
    for sub in ("val", "valannot"):
        shutil.copytree(camvid_root / sub, mirror / sub)
    victim = sorted((mirror / "val").glob("*.png"))[3]
    victim.unlink()
    with pytest.raises(OSError, match="could not download"):
        fetch_camvid(tmp_path / "home", split="val", base_url=_url(mirror), n_jobs=2)
    assert not (tmp_path / "home" / "camvid" / "val" / victim.name).exists()


def test_truncated_cached_file_is_downloaded_again(fresh_home, camvid_root, monkeypatch):
    cache = fresh_home / "camvid"
    victim = cache / "val" / sorted(p.name for p in (cache / "val").iterdir())[10]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 3])
    spy = Spy(monkeypatch)
    # A base URL without its trailing slash works as well.
    ds = fetch_camvid(
        fresh_home, split="val", base_url=_url(camvid_root).rstrip("/"), n_jobs=2, limit=12
    )
    assert [dest for _, dest in spy.calls] == [victim]
    assert victim.read_bytes() == good
    ref = load_camvid(camvid_root, "val", limit=12)
    np.testing.assert_array_equal(ds.images[10], ref.images[10])


def test_verify_rehashes_same_size_corruption(fresh_home, camvid_root, monkeypatch):
    cache = fresh_home / "camvid"
    victim = cache / "valannot" / sorted(p.name for p in (cache / "valannot").iterdir())[5]
    good = victim.read_bytes()
    bad = bytearray(good)
    bad[-20] ^= 0x55
    victim.write_bytes(bytes(bad))
    # Without verify only the sizes are checked: nothing is downloaded.
    spy = Spy(monkeypatch)
    fetch_camvid(fresh_home, split="val", base_url=_url(camvid_root), n_jobs=2, limit=1)
    assert spy.calls == []
    assert victim.read_bytes() == bytes(bad)
    # With verify the file is re-hashed, found wrong, and replaced.
    fetch_camvid(
        fresh_home, split="val", base_url=_url(camvid_root), n_jobs=2, limit=1, verify=True
    )
    assert [dest for _, dest in spy.calls] == [victim]
    assert victim.read_bytes() == good
    assert [p for p in cache.rglob("*") if p.name.endswith(".part")] == []


# --------------------------------------------------------------------------- manifest
@pytest.fixture(scope="module")
def manifest():
    return camvid_mod._manifest()


def test_manifest_covers_the_shared_copy(manifest, camvid_root):
    assert len(manifest) == 1402
    paths = [rel for rel, _, _ in manifest]
    assert len(set(paths)) == 1402
    on_disk = sorted(
        f"{sub}/{p.name}" for sub in SUBFOLDERS for p in (camvid_root / sub).glob("*.png")
    )
    assert sorted(paths) == on_disk
    counts = {sub: sum(p.startswith(sub + "/") for p in paths) for sub in SUBFOLDERS}
    assert counts == {"train": 367, "trainannot": 367, "val": 101, "valannot": 101,
                      "test": 233, "testannot": 233}
    for rel, size, sha in manifest:
        assert size == (camvid_root / rel).stat().st_size, rel
        assert len(sha) == 64 and int(sha, 16) >= 0


def test_manifest_checksums_match_a_sample(manifest, camvid_root):
    rng = np.random.default_rng(0)
    picks = rng.choice(len(manifest), size=20, replace=False)
    for i in [*sorted(picks.tolist()), 0, len(manifest) - 1]:
        rel, size, sha = manifest[i]
        data = (camvid_root / rel).read_bytes()
        assert len(data) == size, rel
        assert hashlib.sha256(data).hexdigest() == sha, rel
        assert camvid_mod._sha256(camvid_root / rel) == sha


def test_write_manifest_reproduces_the_shipped_rows(tmp_path, manifest, camvid_root):
    # A small CamVid-shaped folder: write_manifest must give the shipped rows for it.
    root = tmp_path / "CamVid"
    for sub in ("val", "valannot"):
        (root / sub).mkdir(parents=True)
        for p in sorted((camvid_root / sub).glob("*.png"))[:3]:
            shutil.copy(p, root / sub / p.name)
    out = tmp_path / "m.csv"
    assert camvid_mod.write_manifest(root, out) == 6
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "path,size,sha256"
    shipped = {rel: (size, sha) for rel, size, sha in manifest}
    for line in lines[1:]:
        rel, size, sha = line.split(",")
        assert shipped[rel] == (int(size), sha)
