"""``hybridseg demo``: classical pipelines and a CNN compared on the embedded sample.

Fits each named classical pipeline on the sample's training images, predicts its test
images, prints a table (mean IoU, pixel accuracy, boundary F1, fit seconds, predict seconds
per image) and writes a figure: one row per test image with the image, the truth and each
method's labels. On the CamVid sample two deep rows join them: the U-Net the project trained
on CamVid train and ships (``hybridseg.deep.load_pretrained``; not fitted here, and the
sample's test images are CamVid test images it never saw), alone and with the dense CRF's
default kernels on its probabilities.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["DEMO_METHODS", "run_demo"]

#: The rows of the demo, in order: a label-statistics floor, the classical pipelines, then
#: the shipped CamVid U-Net alone, with a dense CRF, and with the CRF-as-RNN layer trained
#: end to end (CamVid sample only).
DEMO_METHODS = ("prior", "splitmerge", "pixel", "pixel+grid", "pixel+dense", "unet",
                "unet+dense", "unet+crfrnn")
#: Rows that use the shipped networks instead of fitting on the sample.
PRETRAINED_METHODS = ("unet", "unet+dense", "unet+crfrnn")

_TITLES = {
    "prior": "spatial prior (no pixels)",
    "splitmerge": "split-and-merge rules",
    "pixel": "pixel classifier",
    "pixel+grid": "pixel + grid CRF",
    "pixel+dense": "pixel + dense CRF",
    "unet": "U-Net (shipped)",
    "unet+dense": "U-Net + dense CRF",
    "unet+crfrnn": "U-Net + CRF-as-RNN (shipped)",
}


def default_methods(sample):
    """The demo's rows for a sample: the deep rows need the CamVid sample and torch."""
    import importlib.util

    deep = sample == "camvid" and importlib.util.find_spec("torch") is not None
    return tuple(m for m in DEMO_METHODS if deep or m not in PRETRAINED_METHODS)


class _Shipped:
    """A shipped CamVid network: the U-Net, optionally followed by a dense CRF with
    default kernels, or the U-Net with its CRF-as-RNN layer; nothing is fitted on the
    sample."""

    def __init__(self, name, n_jobs):
        from ..deep._pretrained import load_pretrained

        self.segmenter = load_pretrained("camvid-unet-crfrnn" if name == "unet+crfrnn"
                                         else "camvid-unet")
        self.crf = name == "unet+dense"
        self.n_jobs = n_jobs

    def fit(self, X, y):
        return self

    def predict(self, X):
        if not self.crf:
            return self.segmenter.predict(X)
        from ..crf import DenseCRF

        U = self.segmenter.transform(X)
        return DenseCRF(n_iter=5, n_jobs=self.n_jobs).fit(U).predict(U)


def free_path(path):
    """``path`` if nothing is there, else the first of ``stem-1.ext``, ``stem-2.ext``, ...

    Used for default output names, so that a rerun never writes over an earlier result.
    """
    path = Path(path)
    if not os.path.lexists(path):  # a dangling link counts as taken
        return path
    i = 1
    while True:
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
        i += 1


class _PixelCRF:
    """``pixel+grid`` or ``pixel+dense`` of ``make_classical_pipeline``, fitted as
    ``Pipeline.fit`` fits it (the CRF tuned on the pixel classifier's out-of-fold
    probabilities, the classifier then fitted on every training image), but with the
    work the rows have in common done once in ``shared``: the out-of-fold probabilities,
    and the classifier itself, which is the ``pixel`` row's (the same estimator with the
    same seed fitted on the same images)."""

    def __init__(self, name, shared, *, random_state, n_jobs):
        from ..classical import make_classical_pipeline

        self.pipeline = make_classical_pipeline(name, random_state=random_state,
                                                n_jobs=n_jobs)
        self.shared = shared

    def fit(self, X, y):
        pixel = self.pipeline.named_steps["pixel"]
        if "unaries" not in self.shared:
            self.shared["unaries"] = pixel._cross_fit(X, y)[0]
        if "pixel" not in self.shared:
            self.shared["pixel"] = pixel.fit(X, y)
        self.pipeline.steps[0] = ("pixel", self.shared["pixel"])
        self.pipeline.named_steps["crf"].fit(self.shared["unaries"], y)
        return self

    def predict(self, X):
        return self.pipeline.predict(X)


def _estimator(name, shared, *, random_state, n_jobs):
    from ..classical import make_classical_pipeline
    from ..dummy import DummySegmenter

    if name == "prior":
        return DummySegmenter("spatial_prior")
    if name in PRETRAINED_METHODS:
        return _Shipped(name, n_jobs=n_jobs)
    if name.startswith("pixel+"):
        return _PixelCRF(name, shared, random_state=random_state, n_jobs=n_jobs)
    return make_classical_pipeline(name, random_state=random_state, n_jobs=n_jobs)


def run_demo(sample="camvid", *, methods=None, out=None, random_state=0,
             n_jobs=-1, verbose=True, style="flat"):
    """Fit the pipelines on the embedded sample and compare them on its test images.

    Parameters
    ----------
    sample : {"camvid", "membrane"}, default="camvid"
        Which embedded sample (``hybridseg.datasets.load_splits("sample:<name>")``).
    methods : sequence of str, optional
        Rows of the comparison, from ``DEMO_METHODS``; by default all of them on the CamVid
        sample (the deep rows where torch is installed), the classical ones on the
        membrane sample.
    out : str or path-like, optional
        Where to write the figure (PNG); no figure when None.
    random_state : int, default=0
        Seed of every stage.
    n_jobs : int or None, default=-1
        Parallel jobs (joblib) of every stage; -1 uses every core.
    verbose : bool, default=True
        Draw a progress bar on stderr.
    style : {"flat", "overlay"}, default="flat"
        The figure's label maps in flat colours or blended on the images.

    Returns
    -------
    results : list of dict
        Per method: ``method``, ``miou``, ``pixel_accuracy``, ``boundary_f1``,
        ``fit_seconds``, ``predict_seconds_per_image``.
    """
    from .. import metrics
    from ..datasets import load_splits
    from ..utils._progress import ProgressBar

    if style not in ("flat", "overlay"):
        raise ValueError(f"style must be 'flat' or 'overlay', got {style!r}")
    if methods is None:
        methods = default_methods(sample)
    unknown = [m for m in methods if m not in DEMO_METHODS]
    if unknown:
        raise ValueError(f"methods must be among {list(DEMO_METHODS)}, got {unknown}")
    if not methods:
        raise ValueError("methods is empty: name at least one of " + ", ".join(DEMO_METHODS))
    shipped = [m for m in methods if m in PRETRAINED_METHODS]
    if shipped and sample != "camvid":
        raise ValueError(f"{shipped} use the network shipped for CamVid; they run on the "
                         "camvid sample only")
    # The pipelines tune their CRFs on out-of-fold unaries, not on val: they fit on the
    # sample's train and val splits together (all its training images).
    train, val, test = load_splits(f"sample:{sample}")
    k = len(test.class_names)
    X_train, y_train = train.images + val.images, train.labels + val.labels
    X_test, y_test = test.images, test.labels
    results, predictions = [], {}
    shared = {}
    with ProgressBar(2 * len(methods), f"demo on the embedded {sample} sample",
                     enabled=verbose) as bar:
        for name in methods:
            est = _estimator(name, shared, random_state=random_state, n_jobs=n_jobs)
            bar.update(0, note=f"fitting {name}")
            t0 = time.perf_counter()
            est.fit(X_train, y_train)
            fit_s = time.perf_counter() - t0
            if name == "pixel":
                shared["pixel"] = est.named_steps["pixel"]
            bar.update(1, note=f"predicting {name}")
            t0 = time.perf_counter()
            pred = est.predict(X_test)
            pred_s = (time.perf_counter() - t0) / len(X_test)
            bar.update(1, note=f"{name} done")
            predictions[name] = pred
            results.append({
                "method": name,
                "miou": metrics.mean_iou(y_test, pred, n_classes=k),
                "pixel_accuracy": metrics.pixel_accuracy(y_test, pred, n_classes=k),
                "boundary_f1": metrics.boundary_f1(y_test, pred, n_classes=k),
                "fit_seconds": fit_s,
                "predict_seconds_per_image": pred_s,
            })
    if out is not None:
        _figure(test, X_test, y_test, test.filenames, predictions, results, out, style)
    return results


def format_table(results, title=None):
    """The results as a plain-text table, one row per method.

    A note under the table says what the CRF rows' fit times hold: the out-of-fold
    probabilities are computed once, in the first of them, and the classifier is the
    pixel row's when that row ran.
    """
    lines = [] if title is None else [title]
    lines.append(f"{'method':<28} {'mIoU':>6} {'pixel acc':>9} {'BF':>6} {'fit s':>7} "
                 f"{'s/image':>8}")
    for r in results:
        lines.append(
            f"{_TITLES.get(r['method'], r['method']):<28} {100 * r['miou']:>6.1f} "
            f"{100 * r['pixel_accuracy']:>9.1f} {100 * r['boundary_f1']:>6.1f} "
            f"{r['fit_seconds']:>7.1f} {r['predict_seconds_per_image']:>8.2f}"
        )
    crf_rows = [r["method"] for r in results if r["method"].startswith("pixel+")]
    if crf_rows:
        reused = any(r["method"] == "pixel" for r in results)
        lines.append(
            f"(fit s of {' and '.join(crf_rows)}: the CRF, tuned on the pixel classifier's "
            f"out-of-fold probabilities, which {crf_rows[0]}'s time includes"
            + (", once" if len(crf_rows) > 1 else "")
            + ("; the classifier itself is the pixel row's)" if reused else
               " with the classifier's fit)"))
    if any(r["method"] in PRETRAINED_METHODS for r in results):
        lines.append("(U-Net and CRF-as-RNN: shipped, trained on the 367 CamVid train "
                     "images, not fitted here; the sample's test images are CamVid test "
                     "images)")
    return "\n".join(lines)


def _figure(data, X_test, y_test, names, predictions, results, out, style="flat"):
    from ..viz import comparison_figure, save_png

    methods = [r["method"] for r in results]
    save_png(comparison_figure(X_test, y_test, {m: predictions[m] for m in methods},
                               colors=data.colors, names=[Path(f).stem for f in names],
                               titles=_TITLES, n_classes=len(data.class_names),
                               class_names=data.class_names, style=style), out)
