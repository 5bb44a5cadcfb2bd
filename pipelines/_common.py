"""Shared by the pipeline scripts: the data a script runs on, and its report."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
DATASETS = ("sample", "membrane-sample", "camvid", "isbi")


def parser(doc):
    """An argument parser with the options every pipeline script takes."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=doc.split("\n", 1)[1] if "\n" in doc else None)
    ap.add_argument("--dataset", choices=DATASETS, default="sample",
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

    CamVid: train and test splits. ISBI 2012: slices 0-19 and 20-29. The samples: their
    own train and test images.
    """
    from hybridseg.datasets import load_camvid, load_isbi_membrane, load_sample

    if args.dataset in ("sample", "membrane-sample"):
        data = load_sample("camvid" if args.dataset == "sample" else "membrane")
        part = lambda s: [i for i, p in enumerate(data.split) if p == s]  # noqa: E731
        tr, te = part("train"), part("test")
        out = ([data.images[i] for i in tr], [data.labels[i] for i in tr],
               [data.images[i] for i in te], [data.labels[i] for i in te])
    elif args.dataset == "camvid":
        train = load_camvid(SHARED / "camvid", "train", n_jobs=args.n_jobs)
        test = load_camvid(SHARED / "camvid", "test", n_jobs=args.n_jobs)
        data = train
        out = (train.images, train.labels, test.images, test.labels)
    else:
        data = load_isbi_membrane(SHARED / "isbi2012_membrane", n_jobs=args.n_jobs)
        out = (data.images[:20], data.labels[:20], data.images[20:], data.labels[20:])
    X_tr, y_tr, X_te, y_te = out
    X_tr, y_tr = X_tr[:args.limit_train], y_tr[:args.limit_train]
    X_te, y_te = X_te[:args.limit_test], y_te[:args.limit_test]
    print(f"{args.dataset}: {len(X_tr)} training and {len(X_te)} test images, "
          f"{len(data.class_names)} classes")
    return X_tr, y_tr, X_te, y_te, list(data.class_names)


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
