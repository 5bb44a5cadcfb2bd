"""Adversarial training (Luc et al., 2016) against the same network without it, on CamVid,
from scratch, in the same time budget.

    python benchmarks/adversarial_camvid.py [--arch unet] [--minutes 10]
                                            [--weights 0,0.1] [--seed 0]

Both runs train ``CNNSegmenter(arch)`` on the 367 CamVid train images as ``hybridseg
compare --budget`` does (median-frequency class weights, AdamW at 2e-3, flips and scale
jitter, the best val epoch kept), with ``adversarial_weight`` the only difference. The
working scale and crops are planned once, by the plain run, and given to every run, so
that the networks see the same images at the same size; each run then trains for the same
``--minutes`` (the adversarial one takes fewer steps in them, since its discriminator
trains too). Scored on the 233 test images at 360x480, void left out.

Writes benchmarks/results/adversarial_camvid.csv and .json.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _heldout import print_row, scores_with_classes, write_results

from hybridseg.datasets import load_camvid
from hybridseg.deep import CNNSegmenter

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--weights", default="0,0.1",
                    help="adversarial weights to compare (0: without)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", type=Path, default=SHARED / "camvid")
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = load_camvid(args.root, "train", n_jobs=2)
    val = load_camvid(args.root, "val", n_jobs=2)
    test = load_camvid(args.root, "test", limit=args.limit_test, n_jobs=2)
    names = list(train.class_names)
    k = len(names)
    print(f"CamVid: {len(train.images)} train, {len(val.images)} val, {len(test.images)} "
          f"test; {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
          flush=True)
    plan = None
    rows = []
    t_start = time.perf_counter()
    for weight in (float(w) for w in args.weights.split(",")):
        fixed = {} if plan is None else {"scale": plan.scale, "crop_size": plan.crop}
        seg = CNNSegmenter(
            args.arch, adversarial_weight=weight, lr=2e-3, batch_size=8,
            class_weight="median_frequency", early_stopping=True, n_iter_no_change=10_000,
            max_time=60 * args.minutes, random_state=args.seed, verbose=1, **fixed)
        seg.fit(train.images, train.labels, X_val=val.images, y_val=val.labels)
        plan = plan or seg.training_plan_
        steps = int(np.ceil(len(train.images) / 8)) * seg.n_epochs_
        t0 = time.perf_counter()
        pred = seg.predict(test.images)
        predict_s = (time.perf_counter() - t0) / len(test.images)
        rows.append(dict(method=f"{args.arch} adversarial_weight={weight:g}",
                         predict_s=predict_s, arch=args.arch,
                         adversarial_weight=weight, scale=seg.scale_,
                         crop=str(seg.crop_size_), epochs=seg.n_epochs_,
                         approx_steps=steps, best_epoch=seg.best_epoch_,
                         train_minutes=seg.fit_time_ / 60,
                         best_val_miou=seg.best_validation_score_,
                         final_discriminator_loss=(float(np.mean(
                             seg.discriminator_losses_[-50:]))
                             if seg.discriminator_losses_ else None),
                         **scores_with_classes(test.labels, pred, k, names)))
        print_row(rows[-1], 32)
        keys = ["method", "miou", "pixel_acc", "boundary_f1", "arch", "adversarial_weight",
                "scale", "crop", "epochs", "approx_steps", "best_epoch", "train_minutes",
                "best_val_miou", "final_discriminator_loss"] + [f"iou_{n}" for n in names]
        write_results(args.out, "adversarial_camvid", args, rows, keys,
                      total_seconds=time.perf_counter() - t_start)


if __name__ == "__main__":
    main()
