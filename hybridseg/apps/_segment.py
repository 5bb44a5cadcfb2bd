"""``segment``: label every image of a folder (or a glob) with a saved model.

The front end of ``hybridseg segment``. It streams (one image at a time per worker, only a
small status per image comes back, so memory does not grow with the number of images),
resumes (outputs that exist are kept and skipped), never shows a partial file (each output
is written to a hidden temporary file in its folder and renamed), reports an image that
cannot be segmented by name and goes on with the others, and runs on local processes or on
a Dask cluster through joblib, with the same results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
import sys
import threading
import time

import numpy as np

from ..base import labels_from_proba
from ..datasets._raster import is_zarr_path, open_raster, raster_shape, read_raster
from ..utils._io import write_atomic
from ._common import add_python_path, check_device, place_on_device
from ._segment_tiles import assemble, plan_tiled, tiled_extension

__all__ = ["SegmentReport", "segment"]

#: Image files that ``segment`` reads (case-insensitive suffixes).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".btf", ".tf8", ".bmp", ".ppm",
                  ".pgm")
_REFINE = ("none", "dense", "grid")
# The temporary name of an output being written: ".<name>.png.<pid>.tmp" (never ends in
# .png or .npy, so that no reader mistakes it for an output); a zarr output's folder is
# ".<name>.zarr.<pid>.tmp" (and ".old" for the one it replaces).
_TMP_RE = re.compile(r"^\.(?P<name>.+\.(?:png|npy|tif|zarr))\.(?P<pid>[0-9]+)\.(?:tmp|old)$")
_MAX_MESSAGE = 300
_NO_MODEL = "cannot load the model: "

# Models loaded in this process, by (path, mtime_ns, size, refine): a worker loads the model
# once and keeps it for every image it is given (and for later runs while the file is the
# same). The lock keeps threads of one Dask worker from loading it twice at once.
_MODELS = {}
_MODELS_LOCK = threading.Lock()
# numba's "workqueue" threading layer aborts the process on parallel launches from several
# threads at once: with it (or before the layer is known) threads of one process predict
# one after the other.
_SERIAL = threading.Lock()


@dataclasses.dataclass
class SegmentReport:
    """What a ``segment`` run did.

    Attributes
    ----------
    output : str
        The output folder.
    n_inputs : int
        Images found under the input.
    written : int
        Images whose outputs this run wrote.
    skipped : int
        Images whose outputs existed already and were kept.
    failed : list of (str, str)
        ``(input path, message)`` of each image that could not be segmented: the path
        of the image as found under the input (``INPUT/sub/x.jpg``), so that it can be
        opened.
    seconds : float
        Wall-clock time of the run, setup included.
    """

    output: str
    n_inputs: int
    written: int = 0
    skipped: int = 0
    failed: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self):
        """True when no image failed."""
        return not self.failed

    @property
    def images_per_second(self):
        """Images written per second of wall-clock time (0 when none was written)."""
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def summary(self):
        """One line: ``N written, M skipped (existed), F failed: names...``."""
        line = (f"{self.written} written, {self.skipped} skipped (existed), "
                f"{len(self.failed)} failed")
        if self.failed:
            names = [rel for rel, _ in self.failed]
            shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)"
                                             if len(names) > 10 else "")
            line += f": {shown}"
        return (f"{line}; {self.seconds:.1f} s, {self.images_per_second:.2f} images/s; "
                f"outputs in {self.output}")

    def to_dict(self):
        """The report as a JSON-ready dict (with ``images_per_second``)."""
        d = dataclasses.asdict(self)
        d["failed"] = [list(f) for f in self.failed]
        d["images_per_second"] = self.images_per_second
        return d

    def __str__(self):
        return self.summary()


@dataclasses.dataclass(frozen=True)
class _Config:
    """What every task needs besides its image: small, pickled with each batch."""

    model: str          # absolute path of the model file
    model_stamp: tuple  # (mtime_ns, size) of the model file when the run started
    refine: str
    output: str         # absolute path of the output folder
    threads: int | None           # numba/torch threads per task; None leaves them alone
    host_threads: dict | None     # Dask: worker threads per host, to divide the cores
    parent: int | None = None     # local workers: the pid of the run, to die with it
    device: str | None = None     # where the networks run; None: where the file put them
    python_path: tuple = ()       # folders of the user's modules, put on each worker's path


# ----------------------------------------------------------------------------- inputs
def _is_image_name(name):
    return name.lower().endswith(IMAGE_SUFFIXES)


def _is_zarr_input(path):
    return path.lower().rstrip(os.sep).endswith(".zarr") and is_zarr_path(path)


def _has_magic(text):
    return re.search(r"[*?[]", text) is not None


def _inside(path, folder):
    """Whether ``path`` is ``folder`` or lies under it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _list_inputs(input, output):
    """The images of ``input`` as sorted ``(path, relative path)`` pairs.

    A folder is searched recursively (hidden files and folders, and the output folder
    when it lies inside, are left out); a glob pattern (``*``, ``?``, ``[...]``, and
    ``**`` for any depth) gives paths relative to its leading part without wildcards; a
    single image file is taken alone.
    """
    text = os.path.expanduser(os.fspath(input))
    out_real = os.path.realpath(output)
    pairs = []
    if _is_zarr_input(text):
        path = os.path.abspath(text.rstrip(os.sep))
        pairs.append((path, os.path.basename(path)))
        where = text
    elif os.path.isdir(text):
        root = os.path.abspath(text)
        if os.path.realpath(root) == out_real:
            raise ValueError(f"OUTPUT must not be the INPUT folder ({text}): the label maps "
                             "would mix with the images; choose another OUTPUT")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".")
                and os.path.realpath(os.path.join(dirpath, d)) != out_real)
            stores = [d for d in dirnames if _is_zarr_input(os.path.join(dirpath, d))]
            dirnames[:] = [d for d in dirnames if d not in stores]  # a zarr is one image
            for name in stores:
                path = os.path.join(dirpath, name)
                pairs.append((path, os.path.relpath(path, root)))
            for name in filenames:
                if name.startswith(".") or not _is_image_name(name):
                    continue
                path = os.path.join(dirpath, name)
                pairs.append((path, os.path.relpath(path, root)))
        where = f"under {text}"
    elif os.path.isfile(text) and not _has_magic(text):
        if not _is_image_name(text):
            raise ValueError(f"INPUT {text} is not an image file (expected one of "
                             f"{', '.join(IMAGE_SUFFIXES)}), a folder or a glob pattern")
        path = os.path.abspath(text)
        pairs.append((path, os.path.basename(path)))
        where = text
    elif _has_magic(text):
        parts = text.split(os.sep)
        lead = []
        for part in parts:
            if _has_magic(part):
                break
            lead.append(part)
        base = os.sep.join(lead) or (os.sep if lead else os.curdir)
        base = os.path.abspath(base)
        for path in glob.glob(text, recursive=True):
            if not ((_is_image_name(path) and not os.path.isdir(path))
                    or _is_zarr_input(path)):
                continue
            path = os.path.abspath(path)
            if _inside(os.path.realpath(path), out_real) or _through_dir_link(path, base):
                continue
            pairs.append((path, os.path.relpath(path, base)))
        where = f"matching {text}"
    else:
        raise FileNotFoundError(f"INPUT {text} does not exist (give a folder, an image file "
                                "or a glob pattern such as 'photos/**/*.jpg')")
    if not pairs:
        raise ValueError(f"no image ({', '.join(IMAGE_SUFFIXES)}) {where}")
    pairs.sort(key=lambda p: p[1])
    return pairs


def _through_dir_link(path, base):
    """Whether ``path`` lies below a symlinked folder under ``base``: ``**`` does not follow
    folder links (as a folder INPUT does not), so a link loop gives no image twice."""
    cur = base
    for part in os.path.relpath(os.path.dirname(path), base).split(os.sep):
        if part in ("", os.curdir):
            continue
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            return True
    return False


def _output_name(rel, ext=".png"):
    return os.path.splitext(rel.rstrip(os.sep))[0] + ext


def _plan(pairs, output, *, save_proba, overwrite, tiled=None):
    """Tasks ``(source, relative .png, write png, write npy)``, the ``(source, relative
    output)`` of the images segmented by tiles (``tiled``: their output suffixes by
    source) that need it, the number skipped, and the ``(input path, message)`` of
    images whose output path is taken by something that is not a file (a folder, a
    dangling link): failures, never skips.

    Refuses, before anything runs, two inputs that would write the same output, and an
    output that would be one of the inputs.
    """
    seen = {}
    tiled = tiled or {}
    inputs = {os.path.realpath(src) for src, _ in pairs}
    tasks, big, skipped, blocked = [], [], 0, []
    for src, rel in pairs:
        rel_png = _output_name(rel, tiled.get(src, ".png"))
        key = os.path.normcase(rel_png)
        if key in seen:
            raise ValueError(f"{seen[key]} and {rel} would both be written to "
                             f"{os.path.join(output, rel_png)}: rename one of them or "
                             "segment them into different OUTPUT folders")
        seen[key] = rel
        png = os.path.join(output, rel_png)
        npy = os.path.splitext(png)[0] + ".npy"
        if os.path.realpath(png) in inputs or (save_proba and os.path.realpath(npy) in inputs):
            raise ValueError(f"the output {png} would replace the input image {src}; "
                             "choose another OUTPUT")
        if src in tiled:
            if png.endswith(".zarr") and os.path.isfile(png):
                blocked.append((src, f"the output path {png} is a file, not a zarr store: "
                                     "move it away and run again"))
            elif png.endswith(".zarr") or not os.path.lexists(png) or os.path.isfile(png):
                if overwrite or not os.path.lexists(png):
                    big.append((src, rel_png))
                else:
                    skipped += 1
            else:
                blocked.append((src, f"the output path {png} is not a file: move it away "
                                     "and run again"))
            continue
        taken = [p for p in (png, npy if save_proba else None)
                 if p is not None and os.path.lexists(p) and not os.path.isfile(p)]
        if taken:
            what = "a folder" if os.path.isdir(taken[0]) else "a link to nothing"
            blocked.append((src, f"the output path {taken[0]} is {what}, not a file: "
                                 "move it away and run again"))
            continue
        write_png = overwrite or not os.path.lexists(png)
        write_npy = save_proba and (overwrite or not os.path.lexists(npy))
        if write_png or write_npy:
            tasks.append((src, rel_png, write_png, write_npy))
        else:
            skipped += 1
    return tasks, big, skipped, blocked


def _tiled_inputs(pairs, tile_above):
    """The shape of each input above ``tile_above`` pixels, by source (headers only; an
    unreadable file is left to the whole-image path, which reports it)."""
    if tile_above is None:
        return {}
    shapes = {}
    for src, _ in pairs:
        try:
            shape = raster_shape(src)
        except (ValueError, OSError, ImportError):
            continue
        if shape[0] * shape[1] > tile_above:
            shapes[src] = shape
    return shapes


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate the process there
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale_temps(output, outputs):
    """Delete ``.<name>.png.<pid>.tmp`` / ``.npy`` / ``.tif`` temporaries (and zarr
    temporary folders) a killed run left in ``output``: only those of outputs this run
    writes (``outputs``, relative paths), never a user's file that merely looks like one,
    and not those of a live process on this machine."""
    import shutil

    wanted = set()
    for rel in outputs:
        stem = os.path.normcase(os.path.normpath(rel))
        wanted.update((stem, os.path.splitext(stem)[0] + ".npy"))
    removed = 0
    for dirpath, dirnames, filenames in os.walk(output):
        for name in [*filenames, *dirnames]:
            m = _TMP_RE.match(name)
            if m is None or _pid_alive(int(m.group("pid"))):
                continue
            rel = os.path.relpath(os.path.join(dirpath, m.group("name")), output)
            if os.path.normcase(os.path.normpath(rel)) not in wanted:
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):
                if name in dirnames:
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                removed += 1
        dirnames[:] = [d for d in dirnames if not _TMP_RE.match(d)]
    return removed


# ------------------------------------------------------------------------------ model
def _model_stamp(path):
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _load_model(path, stamp, refine, device=None, python_path=()):
    """The model (and the refiner ``--refine`` adds), loaded once per process, its
    networks on ``device``; ``python_path`` goes on this process's path before the load
    (a reused worker started before the run never saw its ``PYTHONPATH``)."""
    key = (path, stamp, refine, device)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        if key not in _MODELS:
            from .._persistence import load

            if _model_stamp(path) != stamp:
                raise ValueError(f"the model file {path} changed during the run")
            add_python_path(python_path, environ=False)
            estimator = load(path)
            place_on_device(estimator, device)
            if not hasattr(estimator, "predict_proba"):
                raise ValueError(f"the model in {path} ({type(estimator).__name__}) has no "
                                 "predict_proba: save a fitted segmenter or a Pipeline "
                                 "ending in a refiner")
            refiner = None
            if refine == "dense":
                from ..crf import DenseCRF

                refiner = DenseCRF()
            elif refine == "grid":
                from ..crf import GridCRF

                refiner = GridCRF()
            for old in [k for k in _MODELS if k[0] == path]:  # an older version of the file
                del _MODELS[old]
            _MODELS[key] = (estimator, refiner)
        return _MODELS[key]


def _check_model_file(path, stamp, refine, device=None):
    """Refuse a file that is not a model, reading only its header where it can."""
    from .._persistence import read_header

    try:
        read_header(path)
    except ValueError:  # not ours, or a CNNSegmenter.save file: load tells which
        _load_model(path, stamp, refine, device)


def _first_stage(model):
    """The stage that reads the images: the model, or a Pipeline's first step."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        for _, step in steps:
            if step is not None and step != "passthrough":
                return step
    return model


def _check_image_fits(model, image):
    """Refuse, with a clear message, an image the model cannot take."""
    first = _first_stage(model)
    c = 1 if image.ndim == 2 else image.shape[2]
    n_channels = getattr(first, "n_channels_", None)
    fixed = bool(first._fixed_channels()) if hasattr(first, "_fixed_channels") else False
    # Classical stages take a gray image for a colour model (they repeat the channel);
    # a network's first convolution takes exactly the channels it was trained on.
    if n_channels is not None and c != n_channels and (fixed or c != 1):
        raise ValueError(f"has {c} channel{'s' * (c != 1)}, the model takes "
                         f"{n_channels}")
    if hasattr(first, "_min_image_side"):
        side = int(first._min_image_side())
        h, w = image.shape[:2]
        if min(h, w) < side:
            raise ValueError(f"is {h}x{w}, smaller than the smallest side the model takes "
                             f"({side} pixels, the network's stride)")


# ----------------------------------------------------------------------------- worker
_WATCHING = []


def _die_with_parent(cfg):
    """In a local worker process, a daemon thread that ends the process within a second
    of the run's own death (a SIGKILL of ``hybridseg segment`` left its workers running
    for a minute or more, holding memory and the model)."""
    if cfg.parent is None or _WATCHING or os.getpid() == cfg.parent:
        return
    import threading

    parent = cfg.parent
    adopted = os.getppid() == parent  # a child of the run: reparented when it dies

    def watch():
        while True:
            time.sleep(0.5)
            if (adopted and os.getppid() != parent) or not _pid_alive(parent):
                os._exit(1)

    _WATCHING.append(threading.Thread(target=watch, name="die-with-run", daemon=True))
    _WATCHING[0].start()


def _limit_threads(cfg):
    """Give each task its share of the cores (numba, torch and BLAS), so that several
    worker processes do not oversubscribe them."""
    n = cfg.threads
    if cfg.host_threads is not None:
        try:
            from distributed import get_worker
            from distributed.comm import get_address_host

            worker = get_worker()
            total = cfg.host_threads.get(get_address_host(worker.address))
            total = total or worker.state.nthreads
        except (ImportError, ValueError, AttributeError):
            return
        from joblib import cpu_count

        n = max(1, cpu_count() // max(int(total), 1))
    if n is None:
        return
    from ..utils._parallel import limit_threads

    limit_threads(n)


def _numba_guard():
    """Whole predictions one at a time unless numba's layer is known to take threads (a
    user's own model may launch parallel kernels of its own)."""
    from ..utils._parallel import threading_layer

    layer = threading_layer()
    return contextlib.nullcontext() if layer not in (None, "workqueue") else _SERIAL


def _read_image(path):
    try:
        image = read_raster(path)
    except ValueError as exc:  # the report names the file: keep the reason only
        raise (exc.__cause__ or exc) from None
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"is not a 2-D image (array of shape {image.shape})")
    return image


def _predict(model, refiner, image):
    """``(H, W, K)`` float32 probabilities of one image."""
    with _numba_guard():
        proba = model.predict_proba([image])[0]
        if refiner is not None:
            proba = refiner.refine(image, proba, kind="proba")
    proba = np.asarray(proba)
    h, w = image.shape[:2]
    if proba.ndim != 3 or proba.shape[:2] != (h, w):
        raise ValueError(f"the model returned scores of shape {proba.shape} for a {h}x{w} "
                         "image; expected (H, W, K)")
    return proba


def _save_png(labels):
    """A label map as PNG: 8-bit labels as a palette image (the pixel values are the class
    ids, the palette VOC's colours, so that a viewer shows the classes instead of near
    black), wider ones as 16-bit gray."""
    from PIL import Image

    if labels.dtype != np.uint8:
        return lambda f: Image.fromarray(labels).save(f, format="PNG")
    image = Image.fromarray(labels, mode="P")
    image.putpalette(_PALETTE)
    return lambda f: image.save(f, format="PNG")


def _voc_palette():
    from ..datasets._benchmarks import voc_colormap

    return voc_colormap().ravel().tolist()


_PALETTE = _voc_palette()


def _save_npy(proba):
    return lambda f: np.save(f, proba.astype(np.float16), allow_pickle=False)


def _one_line(exc):
    """An exception as one short line (numba's and torch's messages run to pages)."""
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first or type(exc).__name__
    if len(first) > _MAX_MESSAGE:
        first = first[:_MAX_MESSAGE - 3] + "..."
    return first


def _worker_model(cfg):
    """The model and refiner of this process, which ends with the run and uses its share
    of the cores."""
    model, refiner = _load_model(cfg.model, cfg.model_stamp, cfg.refine, cfg.device,
                                 cfg.python_path)
    _die_with_parent(cfg)
    _limit_threads(cfg)
    return model, refiner


_FAILED = {
    "model": _NO_MODEL,
    "read": "cannot be read: ",
    "check": "",
    "predict": "failed in the model: ",
    "write": "cannot be written: ",
}


def _segment_one(task, cfg):
    """Segment one image and write its outputs; never raises (but on interrupts).

    Returns
    -------
    status : (str, str or None, float)
        The input's path, None or the error message, and the seconds spent.
    """
    src, rel_png, write_png, write_npy = task
    t0 = time.perf_counter()
    stage = "model"
    try:
        model, refiner = _worker_model(cfg)
        stage = "read"
        image = _read_image(src)
        stage = "check"
        _check_image_fits(model, image)
        stage = "predict"
        proba = _predict(model, refiner, image)
        labels = labels_from_proba(proba, wide_dtype=np.uint16)  # PNG: 8 or 16 bits
        stage = "write"
        png = os.path.join(cfg.output, rel_png)
        if write_npy:  # first, so that an existing .png means the image is done
            write_atomic(os.path.splitext(png)[0] + ".npy", _save_npy(proba))
        if write_png:
            write_atomic(png, _save_png(labels))
    except Exception as exc:
        return src, _FAILED[stage] + _one_line(exc), time.perf_counter() - t0
    return src, None, time.perf_counter() - t0


# Rasters open in this process (a worker reads many tiles of one image), by path.
_RASTERS = {}


def _raster(path):
    stamp = os.stat(path).st_mtime_ns
    held = _RASTERS.get(path)
    if held is not None and held[0] == stamp:
        return held[1]
    while len(_RASTERS) >= 2 or path in _RASTERS:
        _, (_, old) = _RASTERS.popitem()
        if hasattr(old, "close"):
            old.close()
    raster = open_raster(path)
    if raster.ndim not in (2, 3) or 0 in raster.shape:
        raise ValueError(f"is not a 2-D image (array of shape {raster.shape})")
    _RASTERS[path] = (stamp, raster)
    return raster


def _predict_tile(model, refiner, window, core, halo):
    """The labels of one tile's core, from the model's (and the CRF's) view of the tile
    with its margin; the CRF's tile sits at its place in the whole image."""
    from ..crf import refine_tile

    with _numba_guard():
        proba = np.asarray(model.predict_proba([window])[0])
        h, w = window.shape[:2]
        if proba.ndim != 3 or proba.shape[:2] != (h, w):
            raise ValueError(f"the model returned scores of shape {proba.shape} for a "
                             f"{h}x{w} tile; expected (H, W, K)")
        if refiner is not None:
            return refine_tile(refiner, window, proba, core, halo, kind="proba")
    inner = tuple(slice(c.start - h.start, c.stop - h.start) for c, h in zip(core, halo))
    return labels_from_proba(proba[inner], wide_dtype=np.uint16)


def _segment_tile(task, cfg):
    """Segment one tile of a large image into its file of the image's parts; never
    raises (but on interrupts). Returns ``(input path, message or None, seconds)``."""
    _, src, path, core, halo = task
    t0 = time.perf_counter()
    stage = "model"
    try:
        model, refiner = _worker_model(cfg)
        stage = "read"
        window = _raster(src)[halo]
        stage = "check"
        _check_image_fits(model, window)
        stage = "predict"
        labels = _predict_tile(model, refiner, window, core, halo)
        stage = "write"
        write_atomic(path, lambda f: np.save(f, labels, allow_pickle=False))
    except Exception as exc:
        where = f" (tile at row {core[0].start}, column {core[1].start})"
        return src, _FAILED[stage] + _one_line(exc) + where, time.perf_counter() - t0
    return src, None, time.perf_counter() - t0


def _run_task(task, cfg):
    return _segment_tile(task, cfg) if task[0] == "tile" else _segment_one(task, cfg)


# ------------------------------------------------------------------------------ runs
def _check_args(refine, overwrite, save_proba, n_jobs, verbose):
    if not isinstance(refine, str) or refine not in _REFINE:
        raise ValueError(f"refine must be one of {', '.join(map(repr, _REFINE))}, "
                         f"got {refine!r}")
    for name, value in (("overwrite", overwrite), ("save_proba", save_proba),
                        ("verbose", verbose)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(
            n_jobs, (int, np.integer)) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None, a positive int, or a negative int "
                         f"(-1: every core), got {n_jobs!r}")


def _check_paths(input, output, model):
    for name, value in (("input", input), ("output", output), ("model", model)):
        if not isinstance(value, (str, os.PathLike)):
            hint = (" (save a fitted estimator with hybridseg.save and pass its path)"
                    if name == "model" else "")
            raise TypeError(f"{name} must be a path, got {type(value).__name__}{hint}")
    output = os.path.abspath(os.path.expanduser(os.fspath(output)))
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"OUTPUT {output} exists and is not a folder; give a folder "
                         "(it is created when missing)")
    model = os.path.abspath(os.path.expanduser(os.fspath(model)))
    if not os.path.exists(model):
        raise FileNotFoundError(f"the model file {model} does not exist")
    if os.path.isdir(model):
        raise ValueError(f"the model {model} is a folder; give a file written by "
                         "hybridseg.save")
    return output, model


def _dask_client(scheduler, stack):
    """A ``distributed.Client`` for ``scheduler`` (closed with ``stack``)."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("scheduler needs dask.distributed, which is not installed: "
                          "pip install 'hybridseg[dask]'") from exc
    if isinstance(scheduler, distributed.Client):
        return scheduler
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be None, an address such as 'tcp://HOST:8786', "
                        f"'local:N' or a distributed.Client, got {type(scheduler).__name__}")
    if scheduler == "local" or scheduler.startswith("local:"):
        n = scheduler.partition(":")[2]
        if n and (not n.isdigit() or int(n) < 1):
            raise ValueError(f"scheduler 'local:N' needs a positive number of workers N, "
                             f"got {scheduler!r}")
        from joblib import cpu_count

        cluster = stack.enter_context(distributed.LocalCluster(
            n_workers=int(n) if n else cpu_count(), threads_per_worker=1, processes=True,
            dashboard_address=None))
        return stack.enter_context(distributed.Client(cluster))
    if "://" not in scheduler:
        raise ValueError(f"scheduler must be an address such as 'tcp://HOST:8786', or "
                         f"'local:N' for a local cluster of N workers, got {scheduler!r}")
    return stack.enter_context(distributed.Client(scheduler))


def _host_threads(client):
    from distributed.comm import get_address_host

    totals = {}
    for address, n in client.nthreads().items():
        host = get_address_host(address)
        totals[host] = totals.get(host, 0) + int(n)
    return totals


def segment(input, output, model, *, refine="none", overwrite=False, save_proba=False,
            n_jobs=None, scheduler=None, device=None, python_path=(), verbose=True,
            tile_size=1024, tile_above=4096 * 4096):
    """Segment every image under ``input`` with a saved model; write label maps to
    ``output``.

    Each image ``input/<rel>.<ext>`` becomes ``output/<rel>.png``, a label map ``(H, W)``
    of uint8 (a palette PNG whose values are the class ids; uint16 gray when the model
    has more than 255 classes), the argmax of the
    model's ``(H, W, K)`` probabilities, i.e. what ``model.predict`` gives. The run
    streams: each worker reads, segments and writes one image at a time and sends back
    only a small status, so memory does not grow with the number of images.

    Outputs are written to a hidden temporary file in their folder
    (``.<name>.png.<pid>.tmp``) and renamed, so no partial file ever has a ``.png`` or
    ``.npy`` name; temporaries a killed run left behind are removed at the start of the
    next. Outputs that exist are kept as they are (same bytes, same modification time)
    unless ``overwrite``: running the same command again after an interruption finishes
    the rest. An image that cannot be read or segmented (a corrupt file, a gray image for
    a colour network, an image smaller than the network's stride) is reported by name and
    skipped; every other image is still written.

    Loading the model unpickles the file: use model files you trust only.

    Parameters
    ----------
    input : str or path-like
        A folder (searched recursively; hidden files and folders skipped), a glob pattern
        (``"photos/*.jpg"``, ``"data/**/*.png"``; output paths are relative to the
        pattern's leading part without wildcards) or one image file. Images are png,
        jpg/jpeg, tif/tiff, bmp, ppm and pgm files.
    output : str or path-like
        The output folder, created when missing; it must not be the input folder.
    model : str or path-like
        A file written by ``hybridseg.save``: a fitted segmenter (``predict_proba(X)``
        gives ``(H, W, K)`` probabilities) or a ``Pipeline`` ending in a refiner.
    refine : {"none", "dense", "grid"}, default="none"
        Add a ``DenseCRF()`` or a ``GridCRF()`` with default parameters on top of the
        model's probabilities (``refine(image, proba, kind="proba")``).
    overwrite : bool, default=False
        Recompute and replace outputs that exist.
    save_proba : bool, default=False
        Also write ``output/<rel>.npy``, the ``(H, W, K)`` probabilities as float16
        (written before the ``.png``, so an existing ``.png`` marks a finished image).
    n_jobs : int, optional
        Worker processes on this machine (joblib's default backend, loky; -1 for every
        core); each loads the model once and uses its share of the cores for numba and
        torch. None means 1 (in this process) unless a ``joblib.parallel_config`` context
        says otherwise; with ``scheduler``, None means every worker thread of the cluster.
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster through joblib's dask backend: ``"tcp://HOST:PORT"`` (a
        running ``dask scheduler``), ``"local:N"`` (a ``LocalCluster`` of N single-thread
        worker processes started for this run; ``"local"`` for one per core) or a
        ``distributed.Client``. The workers must see ``input``, ``output`` and ``model``
        under the same absolute paths (a shared filesystem) and have hybridseg installed.
        Needs the ``dask`` extra (``pip install 'hybridseg[dask]'``).
    device : str, optional
        Where the model's networks run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``);
        by default where the file puts them (its saved ``device``, or the CPU where that
        is not here).
    python_path : sequence of path-like, default=()
        Folders to import the user's own modules from (a network class or ``output``
        function the model file refers to), put on the path of this process and of every
        worker before the model is loaded.
    verbose : bool, default=True
        Print a progress bar, each failure as it happens and a summary on stderr.
    tile_size : int, default=1024
        Side of the tiles' cores for the images above ``tile_above``.
    tile_above : int or None, default=4096 * 4096
        Images of more pixels than this are segmented tile by tile: TIFF, BigTIFF,
        OME-TIFF and zarr inputs are read by windows (other images whole); each tile is
        read with a margin (240 pixels with ``refine="dense"``, 128 otherwise), predicted,
        refined at its place in the whole image, and its core's labels kept in
        ``output/.<name>.parts/``; once every tile is done the label map is written, as a
        tiled, zlib-compressed (Big)TIFF ``<rel>.tif`` with the VOC palette (a zarr store
        ``<rel>.zarr`` for a zarr input, a PNG for other images), and the parts are
        removed. A killed run resumes by tile; the tiles of one image are tasks of their
        own, so ``n_jobs`` and ``scheduler`` spread them. Peak memory per worker follows
        ``tile_size + 2 * margin``, not the image's size (``docs/guide/large-images.md``).
        ``save_proba`` writes nothing for these images. None: every image whole.

    Returns
    -------
    report : SegmentReport
        ``written``, ``skipped`` and ``failed`` (``(input path, message)`` pairs)
        counts, ``seconds`` and ``images_per_second``; ``report.ok`` is False when any
        image failed.

    Raises
    ------
    FileNotFoundError
        ``input`` or ``model`` does not exist.
    ValueError
        ``input`` holds no image, ``output`` is a file or the input folder, two inputs
        would write the same output (``a.jpg`` and ``a.png``), or ``model`` is not a
        hybridseg model file. Nothing is written then.
    ImportError
        ``scheduler`` is given and dask.distributed is not installed.

    Examples
    --------
    >>> import hybridseg
    >>> report = hybridseg.segment("photos", "labels", "unet.hseg",
    ...                            refine="dense", n_jobs=2)  # doctest: +SKIP
    >>> report.summary()  # doctest: +SKIP
    '233 written, 0 skipped (existed), 0 failed; 120.4 s, 1.94 images/s; ...'
    """
    t0 = time.perf_counter()
    _check_args(refine, overwrite, save_proba, n_jobs, verbose)
    _check_tiling(tile_size, tile_above, refine)
    check_device(device)
    python_path = tuple(os.path.abspath(os.fspath(d)) for d in python_path)
    add_python_path(python_path)
    output, model_path = _check_paths(input, output, model)
    pairs = _list_inputs(input, output)
    shapes = _tiled_inputs(pairs, tile_above)
    tiled = {src: tiled_extension(src) for src in shapes}
    tasks, big, skipped, blocked = _plan(pairs, output, save_proba=bool(save_proba),
                                         overwrite=bool(overwrite), tiled=tiled)
    stamp = _model_stamp(model_path)
    n_tasks = len(tasks) + sum(  # an upper bound until the parts are read
        len(range(0, shapes[src][0], tile_size)) * len(range(0, shapes[src][1], tile_size))
        for src, _ in big)
    import joblib

    active = None
    if scheduler is None:
        jobs = joblib.effective_n_jobs(n_jobs)
        in_process = jobs == 1 or n_tasks <= 1
        active = None if in_process else _active_dask_client()  # a parallel_config
    else:
        jobs = -1 if n_jobs is None else int(n_jobs)
        in_process = False
    # A file that is not a model is a setup error, reported before anything runs. The
    # in-process run loads the model here; workers load it themselves, so this process
    # reads only the file's header and never holds a copy of the model.
    if in_process:
        _load_model(model_path, stamp, refine, device)
    else:
        _check_model_file(model_path, stamp, refine, device)
    os.makedirs(output, exist_ok=True)
    _remove_stale_temps(output, [_output_name(rel, tiled.get(src, ".png"))
                                 for src, rel in pairs])
    report = SegmentReport(output=output, n_inputs=len(pairs), skipped=skipped,
                           failed=list(blocked))
    # Large images: their tiles not done by an earlier run become tasks; one whose tiles
    # are all done (a run killed while writing it) is written now.
    images, left, notes = {}, {}, []
    for src, rel_out in big:
        image, restarted = plan_tiled(src, rel_out, output, shapes[src],
                                      model_stamp=list(stamp), refine=refine,
                                      tile_size=tile_size, overwrite=bool(overwrite))
        images[src] = image
        left[src] = len(image.todo)
        if restarted:
            notes.append(f"{src}: the tiles of an earlier run with other settings were "
                         "discarded")
        if len(image.tiles) > len(image.todo):
            notes.append(f"{src}: {len(image.tiles) - len(image.todo)} of "
                         f"{len(image.tiles)} tiles done already (kept)")
        tasks.extend(("tile", src, image.tile_path(i), *image.tiles[i]) for i in image.todo)
    for src in [s for s, n in left.items() if n == 0]:
        _finish_tiled(images.pop(src), output, report)

    from ..utils._progress import ProgressBar

    err = sys.stderr
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            active = _dask_client(scheduler, stack)
            stack.enter_context(joblib.parallel_config(backend="dask", client=active))
        if in_process:
            where, threads, host_threads = "in this process", None, None
        elif active is not None:
            host_threads = _host_threads(active)
            where = f"on a Dask cluster ({sum(host_threads.values())} worker threads)"
            threads = None
        else:
            jobs = min(jobs, len(tasks))
            where = f"on {jobs} local worker processes"
            threads, host_threads = max(1, joblib.cpu_count() // jobs), None
        cfg = _Config(model=model_path, model_stamp=stamp, refine=refine, output=output,
                      threads=threads, host_threads=host_threads,
                      parent=None if in_process or host_threads is not None
                      else os.getpid(), device=device, python_path=python_path)
        if verbose:
            n_tiles = sum(len(image.todo) for image in images.values())
            by_tiles = (f" ({len(images)} by tiles of {tile_size} pixels: {n_tiles} "
                        "tiles)" if images else "")
            print(f"segment: {len(pairs)} images, {skipped} done already (kept), "
                  f"{len(tasks) - n_tiles + len(images)} to segment{by_tiles} {where}",
                  file=err, flush=True)
            for note in notes:
                print(f"segment: {note}", file=err, flush=True)
            if save_proba and images:
                print("segment: --save-proba writes no probabilities for the images "
                      "segmented by tiles", file=err, flush=True)
        bar = stack.enter_context(ProgressBar(len(tasks), "segment", file=err,
                                              enabled=verbose and bool(tasks)))
        failed_tiles = {}
        if in_process:
            results = (_run_task(t, cfg) for t in tasks)
        else:
            results = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(
                joblib.delayed(_run_task)(t, cfg) for t in tasks)
        try:
            for rel, message, _seconds in results:
                if rel in images and (message is None or not message.startswith(_NO_MODEL)):
                    left[rel] -= 1
                    if message is not None and rel not in failed_tiles:
                        failed_tiles[rel] = message
                        report.failed.append((rel, message))
                        bar.write(f"{rel}: {message}")
                    if left[rel] == 0 and rel not in failed_tiles:
                        _finish_tiled(images.pop(rel), output, report, bar)
                elif message is None:
                    report.written += 1
                elif message.startswith(_NO_MODEL) and not in_process:
                    raise RuntimeError(
                        f"the workers cannot load the model {model_path}: "
                        f"{message[len(_NO_MODEL):]} (workers must see the model, the "
                        "images and OUTPUT at the same paths as this machine)")
                else:
                    report.failed.append((rel, message))
                    bar.write(f"{rel}: {message}")
                bar.update(note=rel if len(rel) <= 40 else "..." + rel[-37:])
        except KeyboardInterrupt:
            report.seconds = time.perf_counter() - t0
            if verbose:
                bar.close()
                print(f"segment: interrupted after {report.summary()}; run the same "
                      "command again to finish the rest", file=err, flush=True)
            raise
        except Exception as exc:
            if not _is_worker_loss(exc):
                raise
            raise RuntimeError(
                f"a worker stopped ({type(exc).__name__}: {_one_line(exc)}; out of "
                f"memory?); {report.written} outputs were written and are kept: run "
                "the same command again to finish the rest") from exc
    report.failed.sort()
    report.seconds = time.perf_counter() - t0
    if verbose:
        print(f"segment: {report.summary()}", file=err, flush=True)
    return report


def _check_tiling(tile_size, tile_above, refine):
    from ._segment_tiles import tile_margin

    if (isinstance(tile_size, (bool, np.bool_)) or not isinstance(tile_size, (int, np.integer))
            or tile_size < 64):
        raise ValueError(f"tile_size must be an int of at least 64 pixels, got {tile_size!r}")
    if tile_above is not None and (isinstance(tile_above, (bool, np.bool_)) or not isinstance(
            tile_above, (int, np.integer)) or tile_above < 0):
        raise ValueError(f"tile_above must be None (never tile) or a number of pixels >= 0, "
                         f"got {tile_above!r}")
    if isinstance(refine, str) and refine in _REFINE and tile_size <= tile_margin(refine):
        raise ValueError(f"tile_size ({tile_size}) must be larger than the tiles' margin "
                         f"({tile_margin(refine)} pixels with refine={refine!r})")


def _finish_tiled(image, output, report, bar=None):
    """Write a large image's output from its tiles; a failure is the image's."""
    try:
        assemble(image, output, _save_png)
    except Exception as exc:
        message = "cannot be written: " + _one_line(exc)
        report.failed.append((image.src, message))
        if bar is not None:
            bar.write(f"{image.src}: {message}")
        return
    report.written += 1


def _active_dask_client():
    """The client of joblib's active backend when it is the dask one, else None."""
    try:
        from joblib.parallel import get_active_backend

        backend, _ = get_active_backend()
    except (ImportError, AttributeError):  # pragma: no cover - older joblib
        return None
    return getattr(backend, "client", None)


def _is_worker_loss(exc):
    """Whether ``exc`` says that a worker process died (not an error of one image)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker",
                         "CommClosedError"})
