"""Shared by the pipeline scripts: the data a script runs on, and its report."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
DATASETS = ("sample", "sample:membrane", "camvid", "isbi")
#: Where the real data sets lie under ``SHARED``.
ROOTS = {"camvid": "camvid", "isbi": "isbi2012_membrane"}
#: Old spellings of ``--dataset`` values, still accepted with a DeprecationWarning.
_RENAMED = {"membrane-sample": "sample:membrane"}


def _dataset(value):
    """``--dataset``'s value, an old spelling replaced by its new one (with a warning)."""
    if value in _RENAMED:
        # Shown on the command line too: a DeprecationWarning is hidden by default unless
        # it comes from __main__, and this one is raised inside argparse.
        with warnings.catch_warnings():
            warnings.simplefilter("always", DeprecationWarning)
            warnings.warn(f"--dataset {value} is deprecated and will be removed; use "
                          f"--dataset {_RENAMED[value]} (the name hybridseg compare and "
                          "hybridseg.datasets.load_splits use)", DeprecationWarning,
                          stacklevel=1)
        return _RENAMED[value]
    return value


def parser(doc):
    """An argument parser with the options every pipeline script takes."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=doc.split("\n", 1)[1] if "\n" in doc else None)
    ap.add_argument("--dataset", type=_dataset, choices=DATASETS, default="sample",
                    help="the embedded CamVid sample (default), the embedded membrane "
                         "sample, or the real CamVid / ISBI 2012 data in ../shared/data")
    ap.add_argument("--limit-train", type=int, default=None, metavar="N",
                    help="use only N training images")
    ap.add_argument("--limit-test", type=int, default=None, metavar="N",
                    help="score only N test images")
    ap.add_argument("--n-jobs", type=int, default=-1, help="parallel jobs (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def load(args):
    """``X_train, y_train, X_test, y_test, class_names`` of ``args.dataset``.

    The splits are ``hybridseg.datasets.load_splits``'s. The pipelines tune nothing on
    val (their CRFs are tuned on out-of-fold unaries of the images they fit), so they fit
    on train and val together and score on test: CamVid train + val (468 images) and
    test (233); ISBI 2012 slices 0-24 and 25-29; the samples their training and test
    images.
    """
    from hybridseg.datasets import load_splits

    root = SHARED / ROOTS[args.dataset] if args.dataset in ROOTS else None
    train, val, test = load_splits(args.dataset, root, limit_test=args.limit_test,
                                   n_jobs=args.n_jobs)
    X_tr = (train.images + val.images)[:args.limit_train]
    y_tr = (train.labels + val.labels)[:args.limit_train]
    print(f"{args.dataset}: {len(X_tr)} training and {len(test.images)} test images, "
          f"{len(test.class_names)} classes")
    return X_tr, y_tr, test.images, test.labels, list(test.class_names)


def fit_and_report(pipe, args, title):
    """Fit ``pipe`` on the training images, score it on the test images, print a report."""
    from hybridseg import metrics

    X_tr, y_tr, X_te, y_te, names = load(args)
    k = len(names)
    t0 = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = pipe.predict(X_te)
    pred_s = (time.perf_counter() - t0) / len(X_te)
    print(f"{title}: fit {fit_s:.1f} s, predict {pred_s:.2f} s per image")
    print(f"mean IoU {100 * metrics.mean_iou(y_te, pred, n_classes=k):.1f}, pixel accuracy "
          f"{100 * metrics.pixel_accuracy(y_te, pred, n_classes=k):.1f}, boundary F1 "
          f"{100 * metrics.boundary_f1(y_te, pred, n_classes=k):.1f}")
    print(metrics.segmentation_report(y_te, pred, class_names=names))
    return pipe
