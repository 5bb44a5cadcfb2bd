"""fetch_dataset and its downloader, against a local HTTP server: resuming a truncated
transfer with a Range request, checksums, unpacking into place, the Cityscapes message."""

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from hybridseg import datasets as ds
from hybridseg.datasets._fetch import Remote, download


@pytest.fixture
def server():
    """Serves ``files`` (path -> bytes), honours ``Range``; a path in ``cut`` is sent
    once with its full Content-Length but only its first half (a dropped connection)."""
    files, cut, ranges = {}, set(), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            header = self.headers.get("Range")
            ranges.append(header)
            if header:
                start = int(header.split("=")[1].split("-")[0])
                self.send_response(206)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if self.path in cut:
                cut.discard(self.path)
                self.wfile.write(body[start:start + len(body) // 2])
                self.wfile.flush()
                self.connection.close()
                return
            self.wfile.write(body[start:])

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", files, cut, ranges
    httpd.shutdown()


def test_a_truncated_download_is_kept_and_resumed(server, tmp_path):
    url, files, cut, ranges = server
    body = np.random.default_rng(0).bytes(200_000)
    files["/a.bin"] = body
    cut.add("/a.bin")
    dest = tmp_path / "a.bin"
    with pytest.raises(OSError, match=r"truncated transfer.*run again to resume"):
        download(url + "/a.bin", dest, progress=False)
    part = tmp_path / "a.bin.part"
    assert not dest.exists() and part.stat().st_size == 100_000
    download(url + "/a.bin", dest, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert ranges[-1] == "bytes=100000-" and dest.read_bytes() == body
    assert not part.exists()


def test_checksums_catch_corrupted_files_and_keep_them(server, tmp_path):
    url, files, _, _ = server
    files["/b.bin"] = b"hello" * 1000
    dest = tmp_path / "b.bin"
    with pytest.raises(OSError, match=r"MD5 .* is not the expected 0+"):
        download(url + "/b.bin", dest, md5="0" * 32, progress=False)
    assert (tmp_path / "b.bin.bad").read_bytes() == files["/b.bin"] and not dest.exists()
    # Without a published checksum the first download's SHA-256 is recorded ...
    download(url + "/b.bin", dest, progress=False)
    recorded = (tmp_path / "b.bin.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(files["/b.bin"]).hexdigest()
    download(url + "/b.bin", dest, progress=False)  # reused, checked
    # ... and a file changed on disk afterwards is caught, not used.
    dest.write_bytes(b"changed")
    with pytest.raises(OSError, match="SHA-256 recorded at download"):
        download(url + "/b.bin", dest, progress=False)


def _ade_tarball():
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, stem in (("training", "ADE_train_1"), ("validation", "ADE_val_1")):
            for kind, array, ext in (
                    ("images", rng.integers(0, 255, (8, 10, 3), dtype=np.uint8), "jpg"),
                    ("annotations", np.full((8, 10), 3, np.uint8), "png")):
                data = io.BytesIO()
                Image.fromarray(array).save(data, format="JPEG" if ext == "jpg" else "PNG")
                info = tarfile.TarInfo(f"ADEChallengeData2016/{kind}/{split}/{stem}.{ext}")
                info.size = data.tell()
                data.seek(0)
                tar.addfile(info, data)
    return buf.getvalue()


def test_fetch_dataset_unpacks_into_place_and_the_loader_reads_it(server, tmp_path):
    url, files, _, _ = server
    files["/ade.tar.gz"] = _ade_tarball()
    remotes = [Remote("ade.tar.gz", url + "/ade.tar.gz")]
    root = ds.fetch_dataset("ade20k", tmp_path, progress=False, remotes=remotes)
    assert root == tmp_path / "ade20k" / "ADEChallengeData2016"
    data = ds.load_ade20k(root, split="train")
    assert len(data.images) == 1 and (data.labels[0] == 2).all()
    # A second call finds it complete: no request, the same root.
    files.clear()
    assert ds.fetch_dataset("ade20k", tmp_path, progress=False, remotes=remotes) == root


def test_an_archive_that_does_not_unpack_leaves_nothing_half_done(server, tmp_path):
    url, files, _, _ = server
    files["/bad.zip"] = b"PK\x03\x04 not really a zip" * 10
    with pytest.raises(OSError, match=r"neither a zip nor a tar|unpacking"):
        ds.fetch_dataset("ade20k", tmp_path, progress=False,
                         remotes=[Remote("bad.zip", url + "/bad.zip")])
    folder = tmp_path / "ade20k"
    assert not (folder / ".complete").exists()
    assert [p.name for p in folder.iterdir()] == []  # no temporary folder left
    assert (tmp_path / "downloads" / "bad.zip").is_file()  # the download is kept


def test_cityscapes_needs_a_login_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"logging in at https://www\.cityscapes"):
        ds.fetch_dataset("cityscapes", tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        ds.fetch_dataset("imagenet", tmp_path)
