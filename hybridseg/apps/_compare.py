"""``hybridseg compare``: classical and deep baselines side by side on one data set.

Each method is fitted on the training split (the parameters of a CRF stage are tuned on the
validation split), scored on the test split and measured (seconds, peak memory), each in a
fresh process of its own so that one method's memory does not count against the next.
What a method leaves (its fitted model, its row of figures, its labels on a few test
images) is written to ``out`` as soon as it is done, so a rerun of the same configuration
skips what is finished and picks up after an interruption. The report (``results.csv``,
``results.json``, ``report.md``, ``report.html``, ``figure.png``) is written from those
files at the end.

The methods and the stages each builds are in ``_registry``; the report is ``_report``'s.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._common import (
    BOUNDARY_WIDTHS,
    CONFIDENCE,
    FEW_STEPS,
    N_SHOWN,
    _slug,
    _spread,
    _write_json,
    vs_base_text,
)
from ._registry import _base_estimator, _parse, _refiner, describe, is_network

__all__ = ["ComparisonResult", "compare", "load_data"]

#: Validation images a CRF stage is tuned on, at most (evenly spaced over the split). The
#: grid CRF's search runs alpha-expansion for each of its settings on each image, far
#: dearer per image than the dense CRF's few mean-field iterations, so it gets fewer
#: (``benchmarks/bench_grid_crf.py`` and ``bench_dense_crf.py`` time one solve of each).
MAX_TUNE_IMAGES = {"grid": 8, "dense": 24}
_RUN_FILE = "compare.json"
_FORMAT = 1


# ------------------------------------------------------------------------------ data
def load_data(dataset, data_root=None, *, limit_train=None, limit_test=None, seed=0):
    """The train, val and test splits of a data set, as ``compare`` reads them.

    The splits are ``hybridseg.datasets.load_splits``'s; ``limit_train`` cuts val too.

    Parameters
    ----------
    dataset : str or path-like
        ``"camvid"``, ``"isbi"``, ``"voc"``, ``"cityscapes"``, ``"ade20k"``,
        ``"pascal_context"``, ``"coco_stuff"``, ``"sample"``, ``"sample:camvid"``,
        ``"sample:membrane"`` or a folder: see ``hybridseg.datasets.load_splits``.
    data_root : str or path-like, optional
        Where CamVid or ISBI lie.
    limit_train, limit_test : int, optional
        Use only the first images of train and of test; val is then cut to a third of
        ``limit_train`` (at least one image).
    seed : int, default=0
        Seed of the draw of val from a folder that has none.

    Returns
    -------
    data : dict
        ``train``, ``val``, ``test``: ``(images, labels, filenames)``; ``class_names``,
        ``colors`` ((K, 3) uint8), ``ignore_index``, ``name``.
    """
    from ..datasets import load_splits
    from ..datasets._splits import BENCHMARKS

    name = str(dataset)
    if name == "isbi" and data_root is None:
        raise ValueError("dataset 'isbi' needs --data-root: the folder with image/ "
                         "and label/ (0.png ... 29.png)")
    if name in BENCHMARKS and data_root is None:
        raise ValueError(f"dataset {name!r} needs --data-root: the data set's folder in its "
                         f"official layout (see hybridseg.datasets.load_{name})")
    parts = load_splits(name, data_root, limit_train=limit_train, limit_test=limit_test,
                        seed=seed)
    splits = {s: (list(d.images), list(d.labels), list(d.filenames))
              for s, d in zip(("train", "val", "test"), parts)}
    if limit_train is not None:
        n_val = max(1, math.ceil(limit_train / 3))
        splits["val"] = tuple(v[:n_val] for v in splits["val"])
    meta = parts.test
    colors = meta.get("colors")
    if colors is None:
        colors = _palette(len(meta.class_names))
    return dict(splits, class_names=tuple(meta.class_names), colors=np.asarray(colors),
                ignore_index=int(meta.ignore_index), name=name)


def _palette(k):
    """K distinct colours (golden-angle hues) for classes that come without colours."""
    import colorsys

    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1, 0.65,
                                                                 0.95)] for i in range(k)],
                    np.uint8)


# --------------------------------------------------------------------------- methods
def _tune_on_val(kind, segmenter, deep, data, n_jobs, verbose=False, label=None):
    """A ``kind`` CRF stage fitted on ``segmenter``'s scores of val images (at most
    ``MAX_TUNE_IMAGES[kind]``, spread evenly), with the images used and the seconds; with
    ``verbose``, the CRF prints each setting it scores."""
    Xv, yv, _ = data["val"]
    idx = _spread(len(Xv), MAX_TUNE_IMAGES[kind])
    crf = _refiner(kind, deep, n_jobs).set_params(verbose=int(verbose))
    if verbose:
        print(f"  {label}: tuning the {kind} CRF on {len(idx)} val images",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    crf.fit(segmenter.transform([Xv[i] for i in idx]), [yv[i] for i in idx])
    return crf, len(idx), time.perf_counter() - t0


def _peak_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _fit_base(base, data, config, out, verbose):
    """The fitted base of a method, from ``out/models`` when an earlier method (or run)
    fitted it; with its fit seconds, peak memory and notes."""
    from .._persistence import load, save

    if base.startswith("model:"):
        return _saved_model(base[len("model:"):], data, config)
    model_file = out / "models" / f"{_slug(base)}.hseg"
    meta_file = model_file.with_suffix(".json")
    if model_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("config") == config:
            if verbose:
                print(f"  {base}: fitted earlier, read from {model_file}", file=sys.stderr)
            return load(model_file), meta
    X, y, _ = data["train"]
    Xv, yv, _ = data["val"]
    seed, budget, n_jobs = config["seed"], config["budget"], config["n_jobs"]
    notes = {}
    t0 = time.perf_counter()
    if base.startswith("crfrnn:"):
        from sklearn.frozen import FrozenEstimator

        from ..deep import CRFRNNSegmenter

        start, start_meta = _fit_base(base.split(":", 1)[1], data, config, out, verbose)
        t0 = time.perf_counter()
        # The layer starts from the kernel weights a dense CRF on the start network's
        # scores chose on val (as for <arch>+dense), not from the defaults, which were made
        # for road scenes and can smooth away thin structures (ISBI's membranes) more than
        # a few epochs of training win back.
        tuned, _, _ = _tune_on_val("dense", start, True, data, n_jobs, verbose, base)
        crf_params = dict(gaussian_weight=float(tuned.gaussian_weight_),
                          bilateral_weight=float(tuned.bilateral_weight_))
        notes["crf_start"] = {k: round(v, 3) for k, v in crf_params.items()}
        est = CRFRNNSegmenter(
            FrozenEstimator(start), epochs=8, end_to_end_lr=2e-5, crf_lr=1e-2, n_iter=5,
            crf_params=crf_params, train_params=dict(
                class_weight=None, early_stopping=True, n_iter_no_change=10_000,
                max_time=None if budget is None else 60 * budget, random_state=seed,
                verbose=int(verbose)))
        est.fit(X, y, X_val=Xv, y_val=yv)
        seconds = time.perf_counter() - t0 + start_meta["fit_seconds"]
        notes["start"] = f"{start_meta['notes'].get('epochs', '?')}-epoch {base[7:]}"
        notes["crf_parameters"] = {k: np.asarray(v).round(3).tolist()
                                   for k, v in est.crf_parameters().items()}
        peak = max(_peak_mb(), start_meta["peak_memory_mb"])
    else:
        est = _base_estimator(base, data, budget, seed, n_jobs, verbose,
                              config.get("device"))
        if is_network(base):
            est.fit(X, y, X_val=Xv, y_val=yv)
        else:
            est.fit(X, y)
        seconds = time.perf_counter() - t0
        peak = _peak_mb()
    if hasattr(est, "n_epochs_"):
        notes.update(epochs=int(est.n_epochs_), steps=int(getattr(est, "n_steps_", -1)),
                     best_epoch=int(est.best_epoch_),
                     best_val_miou=round(float(est.best_validation_score_), 4))
    plan = getattr(est, "training_plan_", None)
    if plan is not None:  # what the budget chose (CNNSegmenter under --budget)
        notes["training_plan"] = plan.note
    (out / "models").mkdir(exist_ok=True)
    save(est, model_file, overwrite=True)
    meta = dict(config=config, fit_seconds=seconds, peak_memory_mb=peak, notes=notes)
    _write_json(meta_file, meta)
    return est, meta


def _saved_model(path, data, config):
    """A fitted model a user saved (``model:PATH``), on the device asked, checked against
    the data set's classes; it is used as it is, with no fit."""
    from .._persistence import load
    from ._common import place_on_device

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model:{path}: no such file")
    t0 = time.perf_counter()
    est = place_on_device(load(path), config.get("device"))
    k = len(data["class_names"])
    k_model = getattr(est, "n_classes_", None)
    if k_model is not None and int(k_model) != k:
        raise ValueError(f"model:{path} predicts {k_model} classes, the data set has {k}")
    meta = dict(config=config, fit_seconds=0.0, peak_memory_mb=_peak_mb(),
                notes={"model": path, "load_seconds": round(time.perf_counter() - t0, 2)})
    return est, meta


def _fit_method(name, estimator, data, config, out, verbose):
    """The fitted model of one method (a registry name, or ``estimator``, the user's own
    under the label ``name``), its fit seconds, peak memory and notes."""
    from .._persistence import save

    if estimator is not None:  # the user's own
        from sklearn.base import clone

        X, y, _ = data["train"]
        t0 = time.perf_counter()
        est = clone(estimator).fit(X, y)
        seconds = time.perf_counter() - t0
        save(est, out / "models" / f"{_slug(name)}.hseg", overwrite=True)
        return est, seconds, _peak_mb(), {}
    base, refine = _parse(name)
    est, meta = _fit_base(base, data, config, out, verbose)
    if refine is None:
        return est, meta["fit_seconds"], max(meta["peak_memory_mb"], _peak_mb()), \
            meta["notes"]
    from sklearn.pipeline import Pipeline

    crf, n_tuned, tune = _tune_on_val(refine, est, is_network(base), data, config["n_jobs"],
                                      verbose, name)
    pipe = Pipeline([("segmenter", est), ("crf", crf)])
    save(pipe, out / "models" / f"{_slug(name)}.hseg", overwrite=True)
    notes = dict(meta["notes"], crf_tuned_seconds=round(tune, 1),
                 crf_tuned_on=f"{n_tuned} val images",
                 crf_parameters={k: round(float(getattr(crf, k)), 3) for k in
                                 ("weight_", "beta_scale_", "gaussian_weight_",
                                  "bilateral_weight_") if hasattr(crf, k)})
    return pipe, meta["fit_seconds"] + tune, max(meta["peak_memory_mb"], _peak_mb()), notes


def _evaluate(model, data, k, verbose, name):
    from .. import metrics
    from ..utils._progress import ProgressBar

    X, y, _ = data["test"]
    preds = []
    chunk = 8
    t0 = time.perf_counter()
    with ProgressBar(len(X), f"  {name}: test", enabled=verbose) as bar:
        for i in range(0, len(X), chunk):
            part = model.predict(X[i:i + chunk])
            preds.extend(np.asarray(p) for p in part)
            bar.update(len(part))
    per_image = (time.perf_counter() - t0) / len(X)
    ignore = data["ignore_index"]
    # per test image: intersections, true and predicted pixels of each class, kept for
    # the intervals and the paired tests the parent draws across methods; pooled, the
    # per-class IoU
    counts = metrics._image_counts(y, preds, k, ignore)
    inter, true, pred = (c.sum(0) for c in counts)
    iou = metrics._safe_div(inter, true + pred - inter)
    row = dict(miou=float(np.nanmean(iou)),
               pixel_accuracy=float(metrics.pixel_accuracy(y, preds, n_classes=k,
                                                           ignore_index=ignore)),
               boundary_f1=float(metrics.boundary_f1(y, preds, n_classes=k,
                                                     ignore_index=ignore)),
               predict_seconds_per_image=per_image)
    bands = metrics._boundary_mious(list(y), preds, k, BOUNDARY_WIDTHS, ignore)
    row.update({f"boundary_miou_{w}px": float(v) for w, v in zip(BOUNDARY_WIDTHS, bands)})
    row.update({f"iou_{c}": float(v) for c, v in zip(data["class_names"], iou)})
    return row, preds, counts


def _run_method(label, name, estimator, config, out, verbose, data=None):
    """Fit, score and measure one method (registry ``name``, or the user's ``estimator``)
    shown as ``label``; write ``methods/<label>.json`` and its labels of the shown test
    images. Runs in a child process of its own, which reads the data set, or in this one
    with the ``data`` already read.

    No warning is silenced here: the stages raise none in a normal run (torch's note that
    its sparse CSR tensors are beta is silenced where they are made, in
    ``crf/_torch_lattice.py``), and those that remain say something the user should see:
    a model fitted on a GPU read back without one, or the user's own estimator's
    ``ConvergenceWarning``."""
    out = Path(out)
    if data is None:
        data = load_data(config["dataset"], config["data_root"],
                         limit_train=config["limit_train"],
                         limit_test=config["limit_test"], seed=config["seed"])
    k = len(data["class_names"])
    model, fit_seconds, fit_peak, notes = _fit_method(
        label if estimator is not None else name, estimator, data, config, out, verbose)
    row, preds, counts = _evaluate(model, data, k, verbose, label)
    row = {"method": label, **row, "fit_seconds": fit_seconds,
           "peak_memory_mb": max(fit_peak, _peak_mb())}
    shown = _spread(len(preds), N_SHOWN)
    dtype = np.uint8 if k <= 255 else np.uint16
    np.savez_compressed(out / "methods" / f"{_slug(label)}.npz",
                        **{f"p{i}": preds[i].astype(dtype) for i in shown},
                        **{f"counts_{name}": c for name, c in
                           zip(("inter", "true", "pred"), counts)})
    record = dict(config=config, spec=_spec(name, estimator), row=row, notes=notes)
    _write_json(out / "methods" / f"{_slug(label)}.json", record)
    return record


def _spec(name, estimator):
    """What a method was, for deciding whether a result on disk is still this method (a
    saved model: the file as it is now)."""
    if estimator is not None:
        return f"{type(estimator).__name__}: {estimator!r}"
    base, _ = _parse(name)
    if base.startswith("model:") and os.path.isfile(base[len("model:"):]):
        st = os.stat(base[len("model:"):])
        return f"{name} ({st.st_size} bytes, modified {st.st_mtime_ns})"
    return name


def _child(job_file):  # pragma: no cover - runs in the method's own process
    """Entry point of a method's process: run the pickled job, return the exit status."""
    import pickle

    label, name, estimator, config, out, verbose = pickle.loads(Path(job_file).read_bytes())
    try:
        _run_method(label, name, estimator, config, out, verbose)
    except Exception as exc:  # reported by the parent
        (Path(out) / "methods" / f"{_slug(label)}.error").write_text(
            f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


# ---------------------------------------------------------------------------- result
class ComparisonResult:
    """What ``compare`` measured: one row per method, where the report lies.

    Attributes
    ----------
    rows : list of dict
        One per finished method, in the order asked: the ``results.csv`` columns.
    failed : dict
        ``{method: message}`` for the methods that raised.
    out : pathlib.Path
        The folder holding the report and the fitted models.
    class_names : tuple of str
    missing_bases : dict
        ``{method: base}`` for the refinements whose base is not in the run (no paired
        test).
    without_arrays : list of str
        Finished methods kept without their per-image arrays (``methods/*.npz``): no
        interval, no paired test, no panel in the figures.
    """

    def __init__(self, rows, failed, out, class_names, notes):
        self.rows = rows
        self.failed = failed
        self.out = out
        self.class_names = class_names
        self.notes = notes
        self.pairs = []
        self.missing_bases = {}
        self.without_arrays = []

    def paired_test(self, a, b, *, confidence=CONFIDENCE, n_boot=2000, random_state=0):
        """Paired test of two methods of the run on the same test images.

        Parameters
        ----------
        a, b : str
            Methods of the run.
        confidence : float, default=0.95
        n_boot : int, default=2000
        random_state : int, default=0

        Returns
        -------
        test : dict
            ``delta`` (mIoU of ``b`` minus ``a``), ``ci_low``, ``ci_high`` (paired
            bootstrap over the test images) and ``p_value`` (permutation).
        """
        from .. import metrics

        counts = []
        for m in (a, b):
            if m not in {r["method"] for r in self.rows}:
                raise ValueError(f"{m!r} is not a method of this run; it has "
                                 f"{', '.join(r['method'] for r in self.rows)}")
            c = _load_counts(self.out, m)
            if c is None:
                raise ValueError(f"{m!r} has no per-image counts in {self.out} (a result "
                                 "of an older version): run it again in a fresh out")
            counts.append(c)
        return metrics._paired_from_counts(counts[0], counts[1], confidence, n_boot,
                                           random_state)

    def __getitem__(self, method):
        for r in self.rows:
            if r["method"] == method:
                return r
        raise KeyError(method)

    def to_markdown(self):
        """The main table as Markdown (the one in ``report.md``)."""
        return _main_table(self.rows)

    def __repr__(self):
        return f"<ComparisonResult: {len(self.rows)} methods in {self.out}>\n" + \
            self.to_markdown()


def _check_pairs(pairs, labels):
    """``pairs`` as a list of ``(a, b)`` method names of the run."""
    if pairs is None:
        return []
    if isinstance(pairs, str):
        pairs = [p.strip() for p in pairs.split(",") if p.strip()]
    out = []
    for p in pairs:
        if isinstance(p, str):  # names hold colons too (crfrnn:unet): split where both fit
            cuts = [i for i, ch in enumerate(p) if ch == ":"]
            fits = [i for i in cuts if p[:i] in labels and p[i + 1:] in labels]
            cut = (fits or cuts or [None])[0]
            a, b = (None, None) if cut is None else (p[:cut], p[cut + 1:])
        else:
            a, b = tuple(p) if len(p) == 2 else (None, None)
        if a is None:
            raise ValueError(f"pairs must be 'A:B' strings or (A, B) pairs, got {p!r}")
        for m in (a, b):
            if m not in labels:
                raise ValueError(f"pairs names {m!r}, which is not among the methods "
                                 f"({', '.join(labels)})")
        out.append((a, b))
    return out


def _base_of(name):
    """The method a registry name refines (``pixel`` for ``pixel+dense``, ``unet`` for
    ``crfrnn:unet``), or None."""
    if name is None:
        return None
    if name == "crfrnn":
        return "unet"
    if name.startswith("crfrnn:"):
        return name[len("crfrnn:"):]
    try:
        base, refine = _parse(name)
    except ValueError:
        return None
    return base if refine else None


def _load_counts(out, label):
    f = Path(out) / "methods" / f"{_slug(label)}.npz"
    if not f.is_file():
        return None
    with np.load(f) as z:
        if "counts_inter" not in z.files:  # a result written before the counts were kept
            return None
        return tuple(z[f"counts_{name}"] for name in ("inter", "true", "pred"))


def _add_statistics(rows, items, out, seed):
    """Each row's bootstrap interval of its mIoU (over test images), and for a method
    that refines another of the run (``X+dense``, ``crfrnn:X``) the paired test against
    it: the mIoU difference, its interval and a permutation p-value. Empty where they do
    not apply (one test image, a base not in the run, a result from an older run).
    Returns ``{method: base}`` for the refinements whose base is not in the run, and
    the methods whose per-image counts are not on disk (a record kept without its
    ``.npz``: a folder copied without them, or a result of an older version)."""
    from .. import metrics

    registry = {label: reg for label, reg, _ in items}
    counts = {r["method"]: _load_counts(out, r["method"]) for r in rows}
    missing = {}
    for r in rows:
        label = r["method"]
        r.update(miou_ci_low=None, miou_ci_high=None, base=None, delta_vs_base=None,
                 delta_ci_low=None, delta_ci_high=None, p_vs_base=None)
        base = _base_of(registry.get(label))
        if base is not None and base not in counts:
            missing[label] = base
        c = counts[label]
        if c is None or len(c[0]) < 2:
            continue
        r["miou_ci_low"], r["miou_ci_high"] = metrics._interval_from_counts(
            c, CONFIDENCE, random_state=seed)
        if base is None or base not in counts:
            continue
        r["base"] = base
        if counts[base] is None or len(counts[base][0]) != len(c[0]):
            continue
        test = metrics._paired_from_counts(counts[base], c, CONFIDENCE, random_state=seed)
        r.update(delta_vs_base=test["delta"], delta_ci_low=test["ci_low"],
                 delta_ci_high=test["ci_high"], p_vs_base=test["p_value"])
    return missing, [label for label, c in counts.items() if c is None]


def _prior_miou(data):
    """Test mIoU of the label-prior baseline (``DummySegmenter("spatial_prior")``: class
    frequencies by image position, no pixel read), fitted on train."""
    from .. import metrics
    from ..dummy import DummySegmenter

    X, y, _ = data["train"]
    Xt, yt, _ = data["test"]
    k, ignore = len(data["class_names"]), data["ignore_index"]
    prior = DummySegmenter("spatial_prior", n_classes=k, ignore_index=ignore).fit(X, y)
    return float(metrics.mean_iou(yt, prior.predict(Xt), n_classes=k, ignore_index=ignore))


def _add_flags(rows, notes, prior_miou):
    """``flag``: what makes a row suspect, in words: an mIoU below the label-prior
    baseline, or a network (or the network under a CRF) trained for only a handful of
    optimiser steps; empty otherwise."""
    for r in rows:
        flags = []
        if prior_miou is not None and r["miou"] < prior_miou:
            flags.append(f"below the label-prior baseline ({100 * prior_miou:.1f} mIoU), "
                         "which reads no pixel")
        steps = notes.get(r["method"], {}).get("steps")
        if steps is not None and 0 <= steps < FEW_STEPS:
            flags.append(f"its network trained for only {steps} optimiser steps: give it "
                         "a larger --budget")
        r["flag"] = "; ".join(flags)


def _pct(v, digits=1):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else \
        f"{100 * v:.{digits}f}"


def _main_table(rows):
    head = (f"| method | mIoU [{100 * CONFIDENCE:.0f}% interval] | vs base: difference "
            "[interval], p | boundary mIoU 4/8/16 px | pixel acc. | boundary F1 | fit s | "
            "predict s/image | peak MB |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        miou = _pct(r["miou"])
        if r.get("miou_ci_low") is not None:
            miou += f" [{_pct(r['miou_ci_low'])}, {_pct(r['miou_ci_high'])}]"
        vs = vs_base_text(r)
        bands = " / ".join(_pct(r.get(f"boundary_miou_{w}px")) for w in BOUNDARY_WIDTHS)
        name = r["method"] + (" ⚠" if r.get("flag") else "")
        lines.append(
            f"| {name} | {miou} | {vs} | {bands} | {_pct(r['pixel_accuracy'])} | "
            f"{_pct(r['boundary_f1'])} | {r['fit_seconds']:.0f} | "
            f"{r['predict_seconds_per_image']:.3f} | {r['peak_memory_mb']:.0f} |\n")
    return head + "".join(lines)


# ---------------------------------------------------------------------------- public
def _check_methods(methods):
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if isinstance(methods, dict):
        items = []
        for name, est in methods.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"method names must be non-empty str, got {name!r}")
            if isinstance(est, str):
                _parse(est)
                items.append((name, est, None))
            elif hasattr(est, "fit") and hasattr(est, "predict"):
                items.append((name, None, est))
            else:
                raise TypeError(f"methods[{name!r}] must be a registry name or an "
                                f"estimator with fit and predict, got {type(est).__name__}")
    else:
        try:
            names = list(methods)
        except TypeError:
            raise TypeError("methods must be a list of names, a comma-separated str or a "
                            f"dict of names to estimators, got {type(methods).__name__}") \
                from None
        for m in names:
            if not isinstance(m, str):
                raise TypeError(f"method names must be str, got {type(m).__name__}")
            _parse(m)
        items = [(m, m, None) for m in names]
    if not items:
        raise ValueError("methods is empty: name at least one method")
    seen = {}
    for name, _, _ in items:
        if _slug(name) in seen:
            raise ValueError(f"methods {seen[_slug(name)]!r} and {name!r} would share "
                             "one file name in out; rename one")
        seen[_slug(name)] = name
    return items


def compare(methods, dataset, *, data_root=None, out=None, limit_train=None,
            limit_test=None, budget=None, seed=0, n_jobs=None, isolate=True, device=None,
            scheduler=None, pairs=None, verbose=True):
    """Fit, score and measure segmentation methods side by side on one data set.

    Each method is fitted on the training split, its CRF stage (if any) tuned on the
    validation split, and it is scored on the test split: mean IoU, IoU per class, pixel
    accuracy, boundary F1, fit seconds, predict seconds per image and peak memory (the
    resident set of the process the method ran in). ``out`` receives ``results.csv``,
    ``results.json``, ``report.md``, a self-contained ``report.html`` and ``figure.png``,
    and keeps the fitted models (``models/``, readable with ``hybridseg.load``) and each
    method's row (``methods/``): rerun the same configuration and finished methods are
    skipped, so an interrupted comparison resumes where it stopped.

    Parameters
    ----------
    methods : list of str, str, or dict
        Registry names (``method_names()``: ``splitmerge``, ``pixel``, ``pixel+grid``,
        ``pixel+dense``, each zoo architecture ``unet``, ``fcn``, ``segnet``,
        ``deeplabv3plus``, ``pspnet`` alone and with ``+grid`` / ``+dense``, ``crfrnn``
        and ``crfrnn:ARCH``; ``ARCH@BACKBONE`` for ``unet``, ``fcn``, ``deeplabv3plus``
        or ``pspnet`` on an ImageNet-pretrained backbone, ``deeplabv3plus@resnet50``;
        ``model:PATH`` for a fitted model saved by ``hybridseg.save``, used as it is,
        also with ``+grid`` / ``+dense``), comma-separated in one str, or a dict mapping
        names to your
        own estimators or Pipelines (fitted on train with ``fit(X, y)``; a clone, so
        yours stays untouched) or to registry names. Methods that share a base share its
        fit: ``pixel+dense`` reuses the fitted ``pixel``, ``crfrnn`` starts from ``unet``.
    dataset : {"camvid", "isbi", "sample", "sample:membrane"} or path-like
        The splits are those of ``hybridseg.datasets.load_splits`` (ISBI: slices 0-19
        train, 20-24 val, 25-29 test). A folder holds ``train/`` + ``trainannot/`` and
        ``test/`` + ``testannot/`` (and optionally ``val/`` + ``valannot/``), or
        ``train/images/`` + ``train/labels/`` and so on; ``classes.txt`` there names the
        classes, one per line.
    data_root : str or path-like, optional
        Where CamVid (default: the copy ``hybridseg.datasets.fetch_camvid`` downloaded)
        or the ISBI stack lies.
    out : str or path-like, optional
        The output folder (created); default ``hybridseg-compare-<dataset>``.
    limit_train, limit_test : int, optional
        Use only the first images of train (val is cut to a third as many) and of test.
    budget : float, optional
        Minutes of training each network may take (its learning-rate schedule runs on
        this budget when the epochs would take longer). The classical stages have no
        training loop to cut: their cost is set by their sample sizes.
    seed : int, default=0
        Seed of every random draw.
    n_jobs : int, optional
        Parallel jobs of the stages that take them.
    isolate : bool, default=True
        Run each method in a fresh process, so its peak memory is its own and a crash
        does not take the others down. Your estimators must then pickle.
    device : str, optional
        Where the networks train and run (``"cpu"``, ``"cuda"``, ``"auto"``); by default
        ``"auto"`` for the zoo and a saved model's own setting.
    scheduler : str or distributed.Client, optional
        Run the methods on a Dask cluster, each method a task: ``"local:N"`` starts a local
        cluster of N worker processes, ``"tcp://HOST:8786"`` joins a running one (its
        workers must read the data set and write ``out`` at the same paths). The results
        are those of a local run.
    pairs : sequence of (str, str) or str, optional
        More paired tests, between any two methods of the run (``"A:B"`` strings, comma
        separated, or pairs): the mIoU of B minus A on the same test images, its interval
        and p-value, in the report and ``results.json`` (``result.pairs``). Each
        refinement is tested against its base without asking.
    verbose : bool, default=True
        Progress bars and a line per method on stderr.

    Returns
    -------
    result : ComparisonResult
        ``rows`` (one dict per method, the ``results.csv`` columns), ``failed``, ``out``.

    Raises
    ------
    ValueError
        An unknown method, a data set that cannot be read, or an ``out`` folder that holds
        a comparison made with other settings.
    """
    items = _check_methods(methods)
    pairs = _check_pairs(pairs, [label for label, _, _ in items])
    from ._common import check_device

    check_device(device)
    from ..datasets._base import check_limit
    from ..datasets._splits import NAMED_DATASETS

    limit_train = check_limit(limit_train, "limit_train")
    limit_test = check_limit(limit_test, "limit_test")
    if budget is not None and (isinstance(budget, bool) or not isinstance(
            budget, (int, float)) or not budget > 0):
        raise ValueError(f"budget must be a positive number of minutes, got {budget!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    name = str(dataset)
    if name not in NAMED_DATASETS:
        name = os.path.abspath(os.fspath(dataset))
    config = dict(format=_FORMAT, dataset=name,
                  data_root=None if data_root is None else os.path.abspath(data_root),
                  limit_train=limit_train, limit_test=limit_test,
                  budget=None if budget is None else float(budget), seed=int(seed),
                  n_jobs=n_jobs, **({} if device is None else {"device": device}))
    if out is None:
        out = f"hybridseg-compare-{_slug(Path(name).name if os.sep in name else name)}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, and {out} is a file")
    data = load_data(name, data_root, limit_train=limit_train, limit_test=limit_test,
                     seed=seed)  # fail early on a data set that cannot be read
    _claim(out, config)
    if verbose:
        n = {s: len(data[s][0]) for s in ("train", "val", "test")}
        print(f"compare on {name}: {n['train']} train, {n['val']} val, {n['test']} test "
              f"images, {len(data['class_names'])} classes; out {out}", file=sys.stderr)
    records, failed = {}, {}
    if scheduler is not None:
        _run_on_cluster(scheduler, items, config, out, verbose, records, failed)
    for i, (label, registry, est) in enumerate(items, 1):
        if label in records or label in failed:
            continue
        method = registry if est is None else label
        rec = _kept_record(out, label, method, est, config)
        if rec is not None:
            if verbose:
                print(f"[{i}/{len(items)}] {label}: done earlier, kept", file=sys.stderr)
            records[label] = rec
            continue
        if verbose:
            print(f"[{i}/{len(items)}] {label}: {describe(method) if est is None else 'yours'}",
                  file=sys.stderr)
        error = out / "methods" / f"{_slug(label)}.error"
        error.unlink(missing_ok=True)
        try:
            rec = _launch(label, registry, est, config, out, verbose, isolate, data)
        except Exception as exc:  # one method failing does not stop the rest
            msg = error.read_text().strip() if error.is_file() else \
                f"{type(exc).__name__}: {exc}"
            failed[label] = msg
            if verbose:
                print(f"  {label} failed: {msg}", file=sys.stderr)
            continue
        rec["row"]["method"] = label
        records[label] = rec
        if verbose:
            r = rec["row"]
            print(f"  {label}: mIoU {100 * r['miou']:.1f}, fit {r['fit_seconds']:.0f} s, "
                  f"{r['predict_seconds_per_image']:.3f} s/image, "
                  f"{r['peak_memory_mb']:.0f} MB", file=sys.stderr)
    rows = [records[label]["row"] for label, _, _ in items if label in records]
    missing, without_arrays = _add_statistics(rows, items, out, config["seed"])
    notes = {label: records[label].get("notes", {}) for label in records}
    data["prior_miou"] = _prior_miou(data) if rows else None
    _add_flags(rows, notes, data["prior_miou"])
    for r in rows:
        if r["flag"] and verbose:
            print(f"  warning: {r['method']}: {r['flag']}", file=sys.stderr)
    result = ComparisonResult(rows, failed, out, data["class_names"], notes)
    result.pairs = [dict(a=a, b=b, **result.paired_test(a, b, random_state=config["seed"]))
                    for a, b in pairs if a in records and b in records]
    result.missing_bases = missing
    result.without_arrays = without_arrays
    if result.without_arrays and verbose:
        print(f"  note: {', '.join(result.without_arrays)}: kept without their per-image "
              "arrays (methods/*.npz): no interval, paired test or figure panel",
              file=sys.stderr)
    for method, base in missing.items():
        if verbose:
            print(f"  note: {method} refines {base}, which is not in this run: add {base} "
                  "to the methods for the paired test", file=sys.stderr)
    if rows:
        from ._report import write_report

        write_report(result, data, config)
    return result


def _kept_record(out, label, method, est, config):
    """The record a finished earlier run of this method left in ``out``, when its
    configuration and its method are this run's; else None."""
    done = out / "methods" / f"{_slug(label)}.json"
    if not done.is_file():
        return None
    rec = json.loads(done.read_text())
    if rec.get("config") == config and rec.get("spec") == _spec(method, est):
        return rec
    return None


def _run_on_cluster(scheduler, items, config, out, verbose, records, failed):
    """Each method not finished earlier as a task on a Dask cluster (the worker reads the
    data set itself and writes its files into ``out``); fills ``records`` and
    ``failed``. Methods whose estimator does not pickle are left to the local loop."""
    import contextlib
    import pickle

    from ._segment import _dask_client

    with contextlib.ExitStack() as stack:
        client = _dask_client(scheduler, stack)
        futures = {}
        for label, registry, est in items:
            if _kept_record(out, label, registry if est is None else label, est,
                            config) is not None:
                continue  # the local loop keeps it
            if est is not None:
                try:
                    pickle.dumps(est)
                except Exception:
                    continue
            (out / "methods" / f"{_slug(label)}.error").unlink(missing_ok=True)
            futures[label] = client.submit(_run_method, label, registry, est, config,
                                           str(out), False, pure=False,
                                           key=f"compare-{_slug(label)}-{os.getpid()}")
        if verbose and futures:
            print(f"  {len(futures)} methods sent to {client.scheduler.address}",
                  file=sys.stderr)
        for label, future in futures.items():
            try:
                rec = future.result()
            except Exception as exc:  # one method failing does not stop the rest
                failed[label] = f"{type(exc).__name__}: {exc}"
                if verbose:
                    print(f"  {label} failed on the cluster: {failed[label]}",
                          file=sys.stderr)
                continue
            rec["row"]["method"] = label
            records[label] = rec
            if verbose:
                r = rec["row"]
                print(f"  {label}: mIoU {100 * r['miou']:.1f} (on the cluster)",
                      file=sys.stderr)


def _claim(out, config):
    """Create ``out`` or check that it holds a run of this configuration."""
    run = out / _RUN_FILE
    if run.is_file():
        try:
            old = json.loads(run.read_text())
        except ValueError:
            old = None
        if old != config:
            diff = ([f"{k} {old.get(k)!r} there, {v!r} now" for k, v in config.items()
                     if old.get(k) != v] if isinstance(old, dict) else ["unreadable"])
            raise ValueError(f"{out} holds a comparison made with other settings "
                             f"({'; '.join(diff)}); choose another out folder")
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not a comparison folder; choose another out "
                         "folder (nothing in it is written over)")
    (out / "methods").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    if not run.is_file():
        _write_json(run, config)


@contextlib.contextmanager
def _terminate_raises():
    """While a method's process runs, SIGTERM to this one raises ``SystemExit(143)``
    here, so that the method's process is ended with it (a ``kill`` of the parent alone
    would leave the child training on). Only the main thread can set a handler; in
    another the signal keeps its own."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _launch(label, name, est, config, out, verbose, isolate, data):
    """Run one method in a fresh Python process (``isolate``), else in this one.

    The child is a plain ``python -c`` that reads a pickled job, not a ``multiprocessing``
    spawn, so a script calling ``compare`` needs no ``if __name__ == "__main__"`` guard.
    An estimator whose class lives in the calling script cannot be unpickled there: such
    a method runs in this process.
    """
    import pickle
    import subprocess

    job = None
    if isolate:
        try:
            job = pickle.dumps((label, name, est, config, str(out), bool(verbose)))
        except Exception as exc:  # a lambda, a local class: no child can read it
            reason = f"it does not pickle ({exc})"
        else:
            reason = "its class is defined in __main__"
            if b"__main__" in job:
                job = None
        if job is None and verbose:
            print(f"  {label}: runs in this process, as {reason}", file=sys.stderr)
    if job is None:
        return _run_method(label, name, est, config, out, verbose, data)
    job_file = out / "methods" / f".{_slug(label)}.job"
    job_file.write_bytes(job)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = "import sys; from hybridseg.apps._compare import _child; sys.exit(_child(sys.argv[1]))"
    try:
        proc = subprocess.Popen([sys.executable, "-c", code, str(job_file)], env=env)
        with _terminate_raises():
            try:
                status = proc.wait()
            except BaseException:  # Ctrl-C, SIGTERM: the method's process ends too
                proc.terminate()
                proc.wait()
                raise
    finally:
        job_file.unlink(missing_ok=True)
    done = out / "methods" / f"{_slug(label)}.json"
    if status != 0 or not done.is_file():
        raise RuntimeError(f"the method's process ended with status {status}")
    return json.loads(done.read_text())

