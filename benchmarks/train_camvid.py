"""CNN segmenters of the model zoo trained from scratch on CamVid within a CPU budget,
scored on CamVid test at full resolution, alone and with a CRF on their outputs.

    python benchmarks/train_camvid.py [--archs unet,segnet,deeplabv3plus] [--epochs 40]
                                      [--minutes M] [--scale 0.5] [--threads 2] [--seed 0]

Protocol (CamVid, 11 classes, 360x480; train 367, val 101, test 233 images):

- each network is a ``CNNSegmenter`` trained on train for ``--epochs`` epochs (40: about
  26 minutes for the U-Net on 2 cores), or until ``--minutes`` of wall-clock time when
  given (``max_time``; the cosine learning-rate schedule then runs over that budget, and
  the run is no longer reproducible bit for bit), at ``--scale`` of the full resolution
  (0.5: 180x240), with median-frequency class weights, flips and scale jitter; val
  mean IoU is scored after every epoch and the best epoch's weights are kept
  (``early_stopping`` with a patience longer than the training);
- test: ``predict_proba`` on the 360x480 test images (the segmenter resizes to its working
  scale and its scores back; ``--tta 1`` adds flip test-time augmentation, with the
  ``/no-tta`` row for without), mean IoU, pixel accuracy, boundary F1 and per-class IoU
  over all test pixels, void left out;
- CRFs on the network's test probabilities: ``DenseCRF`` with its default kernels (5
  mean-field iterations, nothing fitted), ``DenseCRF(learn="grid")`` and ``GridCRF``
  fitted on the network's probabilities of ``--n-val`` val images spread over the val video
  (images the network did not train on).

Prints a table per network; writes benchmarks/results/train_camvid.csv/.json after every
network, and keeps each trained segmenter in ``--models`` (``<arch>.pt``) so that
``--eval-only`` rescores without training.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _heldout import fitted_crf_params, print_row, scores_with_classes, write_results

from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.datasets import load_camvid
from hybridseg.deep import CNNSegmenter

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def train(arch, args, train_set, val_set):
    seg = CNNSegmenter(
        arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        class_weight="median_frequency", scale=args.scale, color_jitter=args.color_jitter,
        max_time=60 * args.minutes if args.minutes else None,
        early_stopping=True, n_iter_no_change=10_000, device=args.device,
        random_state=args.seed, verbose=1,
    )
    seg.fit(train_set.images, train_set.labels, X_val=val_set.images, y_val=val_set.labels)
    n_params = sum(p.numel() for p in seg.model_.parameters())
    print(f"{arch}: {n_params / 1e6:.2f} M parameters, {seg.n_epochs_} epochs in "
          f"{seg.fit_time_ / 60:.1f} min, best val mIoU "
          f"{100 * seg.best_validation_score_:.1f} at epoch {seg.best_epoch_}", flush=True)
    return seg


def evaluate(arch, seg, args, val_set, test_set, names):
    k = len(names)
    rows = []
    if args.tta:
        t0 = time.perf_counter()
        pred = seg.set_params(tta=False).predict(test_set.images)
        rows.append(dict(method=arch + "/no-tta",
                         predict_s=(time.perf_counter() - t0) / len(test_set.images),
                         **scores_with_classes(test_set.labels, pred, k, names)))
        print_row(rows[-1], 24)
    seg.set_params(tta=args.tta)
    t0 = time.perf_counter()
    U_test = seg.transform(test_set.images)
    unary_s = (time.perf_counter() - t0) / len(test_set.images)
    info = dict(arch=arch, params_m=sum(p.numel() for p in seg.model_.parameters()) / 1e6,
                epochs=seg.n_epochs_, best_epoch=seg.best_epoch_,
                train_minutes=seg.fit_time_ / 60,
                best_val_miou=seg.best_validation_score_)
    rows.append(dict(method=arch, predict_s=unary_s, **info,
                     **scores_with_classes(test_set.labels,
                                           [p.argmax(-1) for p in U_test.scores], k, names)))
    print_row(rows[-1], 24)
    idx = np.linspace(0, len(val_set.images) - 1, args.n_val).round().astype(int)
    U_val = seg.transform([val_set.images[i] for i in idx])
    y_val = [val_set.labels[i] for i in idx]
    crfs = [
        ("+dense", DenseCRF(n_iter=5, n_jobs=args.n_jobs), False),
        ("+dense/fitted", DenseCRF(n_iter=5, learn="grid", n_jobs=args.n_jobs), True),
        ("+grid/fitted", GridCRF(n_jobs=args.n_jobs), True),
    ]
    for suffix, crf, fit in crfs:
        t0 = time.perf_counter()
        crf.fit(U_val, y_val) if fit else crf.fit(U_test)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = crf.predict(U_test)
        crf_s = (time.perf_counter() - t0) / len(test_set.images)
        rows.append(dict(method=arch + suffix, predict_s=unary_s + crf_s, crf_fit_s=fit_s,
                         crf_params=fitted_crf_params(crf) if fit else "defaults", **info,
                         **scores_with_classes(test_set.labels, pred, k, names)))
        print_row(rows[-1], 24)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="unet,segnet,deeplabv3plus")
    ap.add_argument("--epochs", type=int, default=40,
                    help="epochs per network (the learning-rate schedule spans them)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="also stop each network after this many minutes (the schedule "
                         "then spans the time); without it a run is reproducible")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--color-jitter", type=float, default=0.0)
    ap.add_argument("--tta", type=int, default=0,
                    help="1: score with flip test-time augmentation (and without, as the "
                         "/no-tta row); 0: without only")
    ap.add_argument("--n-val", type=int, default=24, help="val images the CRFs are fitted on")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--n-jobs", type=int, default=2, help="CRF jobs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=SHARED / "camvid")
    ap.add_argument("--models", type=Path, default=HERE / "results" / "models",
                    help="where trained segmenters are kept")
    ap.add_argument("--limit-test", type=int, default=None,
                    help="first N test images only (a smoke run, not the benchmark)")
    ap.add_argument("--eval-only", action="store_true",
                    help="score the segmenters already in --models")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    train_set = load_camvid(args.root, "train", n_jobs=2)
    val_set = load_camvid(args.root, "val", n_jobs=2)
    test_set = load_camvid(args.root, "test", limit=args.limit_test, n_jobs=2)
    names = list(train_set.class_names)
    print(f"CamVid: {len(train_set.images)} train, {len(val_set.images)} val, "
          f"{len(test_set.images)} test images; {platform.machine()}, {os.cpu_count()} "
          f"cores, torch {torch.__version__} with {torch.get_num_threads()} threads",
          flush=True)
    args.models.mkdir(parents=True, exist_ok=True)
    # Rows of other networks from earlier runs are kept, so that networks can be trained
    # in separate runs (one budget each) into one table.
    old = args.out / "train_camvid.json"
    rows = []
    if old.is_file() and args.limit_test is None:
        import json

        rows = [r for r in json.loads(old.read_text())["rows"] if r.get("arch") not in archs]
    t_start = time.perf_counter()
    for arch in archs:
        path = args.models / f"{arch}.pt"
        if args.eval_only:
            seg = CNNSegmenter.load(path, device=args.device)
        else:
            seg = train(arch, args, train_set, val_set)
            seg.save(path, overwrite=True)
        rows += evaluate(arch, seg, args, val_set, test_set, names)
        keys = ["method", "miou", "pixel_acc", "boundary_f1", "predict_s", "crf_params",
                "arch", "params_m", "train_minutes", "epochs", "best_epoch",
                "best_val_miou"] + [f"iou_{n}" for n in names]
        write_results(args.out, "train_camvid", args, rows, keys,
                      total_seconds=time.perf_counter() - t_start)


if __name__ == "__main__":
    main()
