"""The classical pipelines on real data, held out: ISBI 2012 membranes and CamVid test.

    python benchmarks/heldout_classical.py --dataset isbi   [--n-jobs 2]
    python benchmarks/heldout_classical.py --dataset camvid [--n-val 24] [--n-jobs 2]

The splits are ``hybridseg.datasets.load_splits``'s, the same as ``hybridseg compare``'s.

ISBI 2012 (30 gray 512x512 slices, membrane vs cell): every method is fitted on the train
and val slices (0-24) and scored on the test slices (25-29). Rows: split-and-merge rules,
the pixel classifier, and the pixel classifier with a grid CRF and with a dense CRF, each
built by ``hybridseg.classical.make_classical_pipeline`` and fitted as a whole Pipeline, so
the CRFs are tuned on the pixel classifier's out-of-fold unaries of the 25 fitted slices
(nothing is tuned on val, so val is fitted on).

The row ``pixel+dense/weights`` is the dense CRF with ``learn="weights"`` (kernel weights
learned by log loss) instead of the pipeline's ``learn="grid"`` (chosen by mean IoU).

CamVid (11 classes, 360x480; train 367, val 101, test 233): the pixel classifier is fitted
on train; the CRFs are fitted on its unaries of ``--n-val`` val images spread over the val
video (held out from the classifier: the CamVid protocol of choosing parameters on val);
everything is scored on the whole test split. Split-and-merge rules are scored too.

Scores: mean IoU, pixel accuracy, boundary F1 (``metrics.boundary_f1`` defaults) and
per-class IoU, void pixels left out, over all test pixels together; fit seconds and
predict seconds per image.
Prints a table and writes benchmarks/results/heldout_classical_<dataset>.csv and .json.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _heldout import fitted_crf_params, scores_with_classes, write_results

from hybridseg.classical import make_classical_pipeline

HERE = Path(__file__).resolve().parent
METHODS = ("splitmerge", "pixel", "pixel+grid", "pixel+dense", "pixel+dense/weights")
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def _timed(func, *args):
    t0 = time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - t0


def run_isbi(args):
    from hybridseg.datasets import load_splits

    train, val, test = load_splits("isbi", args.root or SHARED / "isbi2012_membrane")
    names, k = list(test.class_names), len(test.class_names)
    X_fit, y_fit = train.images + val.images, train.labels + val.labels
    X_test, y_test = test.images, test.labels
    print(f"ISBI 2012: fit on the {len(X_fit)} train and val slices, score on the "
          f"{len(X_test)} test slices ({k} classes)")
    rows = []
    with _cache() as memory:
        for name in [m for m in METHODS if m in args.methods]:
            pipe = make_classical_pipeline(name.split("/")[0], random_state=args.seed,
                                           n_jobs=args.n_jobs)
            pipe.set_params(memory=memory)
            if name.endswith("/weights"):
                pipe.set_params(crf__learn="weights")
            _, fit_s = _timed(pipe.fit, X_fit, y_fit)
            pred, pred_s = _timed(pipe.predict, X_test)
            crf = dict(pipe.steps).get("crf")
            rows.append(dict(method=name, fit_s=fit_s, predict_s=pred_s / len(X_test),
                             crf_params=fitted_crf_params(crf),
                             **scores_with_classes(y_test, pred, k, names)))
            _print_row(rows[-1])
    return rows, names


def run_camvid(args):
    from sklearn.base import clone

    from hybridseg.datasets import load_splits

    train, val, test = load_splits("camvid", args.root or SHARED / "camvid",
                                   limit_train=args.n_train, limit_test=args.n_test,
                                   n_jobs=args.n_jobs)
    names, k = list(train.class_names), len(train.class_names)
    pick = np.linspace(0, len(val.images) - 1, args.n_val).round().astype(int)
    X_val, y_val = [val.images[i] for i in pick], [val.labels[i] for i in pick]
    print(f"CamVid: pixel classifier fitted on {len(train.images)} train images, CRFs on "
          f"{len(pick)} val images, scored on {len(test.images)} test images")
    rows = []
    if "splitmerge" in args.methods:
        sm = make_classical_pipeline("splitmerge", random_state=args.seed)
        _, fit_s = _timed(sm.fit, train.images, train.labels)
        pred, pred_s = _timed(sm.predict, test.images)
        rows.append(dict(method="splitmerge", fit_s=fit_s,
                         predict_s=pred_s / len(test.images),
                         **scores_with_classes(test.labels, pred, k, names)))
        _print_row(rows[-1])

    pipe = make_classical_pipeline("pixel", random_state=args.seed, n_jobs=args.n_jobs)
    pixel = pipe.named_steps["pixel"]
    _, pixel_fit_s = _timed(pixel.fit, train.images, train.labels)
    U_test, unary_s = _timed(pixel.transform, test.images)
    rows.append(dict(method="pixel", fit_s=pixel_fit_s,
                     predict_s=unary_s / len(test.images),
                     **scores_with_classes(test.labels, [p.argmax(-1) for p in U_test.scores],
                                           k, names)))
    _print_row(rows[-1])
    U_val = pixel.transform(X_val)
    for name in [m for m in METHODS[2:] if m in args.methods]:
        base = name.split("/")[0]
        crf = clone(make_classical_pipeline(base, n_jobs=args.n_jobs).named_steps["crf"])
        if name.endswith("/weights"):
            crf.set_params(learn="weights")
        _, crf_fit_s = _timed(crf.fit, U_val, y_val)
        pred, crf_s = _timed(crf.predict, U_test)
        rows.append(dict(method=name, fit_s=pixel_fit_s + crf_fit_s,
                         predict_s=(unary_s + crf_s) / len(test.images),
                         crf_params=fitted_crf_params(crf),
                         **scores_with_classes(test.labels, pred, k, names)))
        _print_row(rows[-1])
    return rows, names


def _cache():
    import tempfile

    return tempfile.TemporaryDirectory(prefix="hybridseg-heldout-")


def _print_row(r):
    print(f"{r['method']:<14} mIoU {100 * r['miou']:5.1f}  pixel acc "
          f"{100 * r['pixel_acc']:5.1f}  BF {100 * r['boundary_f1']:5.1f}  fit "
          f"{r['fit_s']:7.1f} s  predict {r['predict_s']:6.2f} s/image"
          + (f"  ({r['crf_params']})" if r.get("crf_params") else ""), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["isbi", "camvid"], required=True)
    ap.add_argument("--root", type=Path, default=None,
                    help="data folder (default: ../shared/data/<dataset>)")
    ap.add_argument("--n-train", type=int, default=None, help="CamVid: first N train images")
    ap.add_argument("--n-val", type=int, default=24, help="CamVid: val images the CRFs fit on")
    ap.add_argument("--n-test", type=int, default=None, help="CamVid: first N test images")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated rows (default: all); the pixel classifier always "
                         "runs. With a subset, results go to heldout_classical_<dataset>_"
                         "<methods>.csv so that a full run's file is kept")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    subset = set(args.methods) != set(METHODS)
    if "pixel" not in args.methods:
        args.methods.append("pixel")
    t0 = time.perf_counter()
    rows, names = run_isbi(args) if args.dataset == "isbi" else run_camvid(args)
    base = next(r for r in rows if r["method"] == "pixel")
    for r in rows:
        r["miou_vs_pixel"] = r["miou"] - base["miou"]
    print("\nmIoU change over the pixel classifier: " + ", ".join(
        f"{r['method']} {100 * r['miou_vs_pixel']:+.1f}" for r in rows if r is not base))
    keys = ["method", "miou", "miou_vs_pixel", "pixel_acc", "boundary_f1", "fit_s",
            "predict_s", "crf_params"] + [f"iou_{n}" for n in names]
    name = f"heldout_classical_{args.dataset}"
    if subset:
        name += "_" + "_".join(m.replace("+", "-").replace("/", "-") for m in args.methods)
    write_results(args.out, name, args, rows, keys,
                  total_seconds=time.perf_counter() - t0)


if __name__ == "__main__":
    main()
