"""CRF-as-RNN trained end to end on CamVid against the same network alone and with a
post-hoc dense CRF, scored on CamVid test at full resolution.

    python benchmarks/train_crfrnn_camvid.py [--start camvid-unet] [--epochs 8]
                                             [--lr 2e-5] [--crf-lr 1e-2]
                                             [--class-weight none] [--minutes M]
                                             [--device auto] [--train both|crfrnn|control]
    python benchmarks/train_crfrnn_camvid.py --eval-only        # rescore kept models

Protocol (CamVid, 11 classes; train 367, val 101, test 233 images at 360x480):

- the unary network: ``--start`` (default the shipped ``camvid-unet``, the U-Net of
  ``train_camvid.py``: 40 epochs at 180x240); or, with ``--unary-epochs N``, a U-Net
  trained here from scratch for N epochs with ``train_camvid.py``'s settings;
- ``crfrnn``: ``CRFRNNSegmenter`` started from it, network and layer trained together on
  train for ``--epochs`` epochs, the network at ``--lr`` and the layer at ``--crf-lr``
  (cosine schedules), cross-entropy with ``--class-weight`` (default none: the
  median-frequency weights the U-Net trained with did not work end to end, see
  docs/guide/crfrnn.md), flips and scale jitter, 5 mean-field iterations, the layer
  initialised with DenseCRF's defaults (Potts), the best val epoch kept (epoch 0, the
  start, included);
- the control ``finetuned``: the very same second stage with ``n_iter=0`` (the layer
  passes the logits through), so that the network gets the same extra epochs without the
  CRF; a gain of ``crfrnn`` over ``finetuned`` is the CRF's, not the extra training's;
- test: mean IoU, pixel accuracy, boundary F1 and per-class IoU over all test pixels, void
  left out, for: the start network alone, + ``DenseCRF`` with its defaults, + ``DenseCRF``
  fitted (``learn="grid"`` on the network's scores of ``--n-val`` val images), the
  control alone and + default DenseCRF, ``crfrnn``, and ``crfrnn/no-crf`` (its network
  without the layer). The networks and the layer run at the working resolution (180x240)
  and their scores are resized to 360x480; post-hoc CRFs run at 360x480.

``--pre-shrunk`` reads a CamVid copy whose train and val images are already at the
working resolution (``--root``; for a machine that cannot hold the full set): training
then runs at ``scale=1`` with the CRF's spatial widths halved, and the saved models are
switched to ``scale=0.5`` so that they read 360x480 images like the others.
``--skip-test`` trains and saves only; ``--eval-only`` rescores the models in
``--models``. Rows are kept per ``--tag`` in benchmarks/results/train_crfrnn_camvid.csv
and .json, so that a CPU and a GPU run share one table.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _heldout import fitted_crf_params, print_row, scores_with_classes, write_results

from hybridseg.crf import DenseCRF
from hybridseg.datasets import load_camvid
from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter, load_pretrained

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def _common(args, scale):
    return dict(batch_size=args.batch_size, class_weight=args.class_weight, scale=scale,
                max_time=60 * args.minutes if args.minutes else None, early_stopping=True,
                n_iter_no_change=10_000, device=args.device, random_state=args.seed,
                verbose=1)


def _start(args, train_set, val_set, scale):
    if args.unary_epochs:
        # train_camvid.py's settings, median-frequency class weights included.
        seg = CNNSegmenter("unet", epochs=args.unary_epochs, lr=args.unary_lr,
                           **dict(_common(args, scale), class_weight="median_frequency"))
        seg.fit(train_set.images, train_set.labels, X_val=val_set.images,
                y_val=val_set.labels)
        print(f"unary U-Net: {seg.n_epochs_} epochs in {seg.fit_time_ / 60:.1f} min, best "
              f"val mIoU {100 * seg.best_validation_score_:.1f} at epoch {seg.best_epoch_}",
              flush=True)
        return seg
    if args.start == "camvid-unet":
        return load_pretrained("camvid-unet", device=args.device)
    seg = CNNSegmenter.load(args.start, device=args.device)
    if args.pre_shrunk:  # a start saved by a --pre-shrunk run: back to its own scale
        seg.set_params(scale=1.0)
    return seg


def _second_stage(start, n_iter, args, train_set, val_set, scale):
    crf_params = None
    if args.pre_shrunk:  # the working resolution is the input's: widths of 360x480 / 2
        crf_params = dict(gaussian_sxy=1.5, bilateral_sxy=40.0)
    seg = CRFRNNSegmenter(start, epochs=args.epochs, end_to_end_lr=args.lr, n_iter=n_iter,
                          crf_lr=args.crf_lr, crf_params=crf_params,
                          train_params=_common(args, scale))
    seg.fit(train_set.images, train_set.labels, X_val=val_set.images, y_val=val_set.labels)
    print(f"{'crfrnn' if n_iter else 'finetuned'}: {seg.n_epochs_} epochs in "
          f"{seg.fit_time_ / 60:.1f} min, best val mIoU "
          f"{100 * seg.best_validation_score_:.1f} at epoch {seg.best_epoch_}", flush=True)
    if n_iter:
        p = seg.crf_parameters()
        print(f"  learned: gaussian_weight {p['gaussian_weight']:.3g}, bilateral_weight "
              f"{p['bilateral_weight']:.3g}, compat diagonal "
              f"{np.round(np.diag(p['compat']), 2).tolist()}", flush=True)
    return seg


def _info(seg):
    return dict(epochs=getattr(seg, "n_epochs_", None), best_epoch=seg.best_epoch_,
                train_minutes=seg.fit_time_ / 60, best_val_miou=seg.best_validation_score_)


def _score(method, seg, images, labels, k, names, extra=None):
    t0 = time.perf_counter()
    U = seg.transform(images)
    seconds = (time.perf_counter() - t0) / len(images)
    row = dict(method=method, predict_s=seconds, **(extra or {}),
               **scores_with_classes(labels, [p.argmax(-1) for p in U.scores], k, names))
    print_row(row, 28)
    return row, U, seconds


def _post_hoc(method, crf, U_test, unary_s, labels, k, names, fit=None, extra=None):
    t0 = time.perf_counter()
    crf.fit(*fit) if fit else crf.fit(U_test)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = crf.predict(U_test)
    crf_s = (time.perf_counter() - t0) / len(labels)
    row = dict(method=method, predict_s=unary_s + crf_s, crf_fit_s=fit_s,
               crf_params=fitted_crf_params(crf) if fit else "defaults", **(extra or {}),
               **scores_with_classes(labels, pred, k, names))
    print_row(row, 28)
    return row


def evaluate(models, args, val_set, test_set, names):
    k = len(names)
    X, y = test_set.images, test_set.labels
    start, finetuned, crfrnn = models["unary"], models.get("finetuned"), models["crfrnn"]
    rows = []
    row, U_start, unary_s = _score("unet", start, X, y, k, names, _info(start))
    rows.append(row)
    idx = np.linspace(0, len(val_set.images) - 1, args.n_val).round().astype(int)
    fit = (start.transform([val_set.images[i] for i in idx]), [val_set.labels[i] for i in idx])
    rows.append(_post_hoc("unet+dense", DenseCRF(n_iter=5, n_jobs=args.n_jobs), U_start,
                          unary_s, y, k, names))
    rows.append(_post_hoc("unet+dense/fitted", DenseCRF(n_iter=5, learn="grid",
                                                        n_jobs=args.n_jobs),
                          U_start, unary_s, y, k, names, fit=fit))
    if finetuned is not None:
        row, U_ft, ft_s = _score("finetuned", finetuned, X, y, k, names, _info(finetuned))
        rows.append(row)
        rows.append(_post_hoc("finetuned+dense", DenseCRF(n_iter=5, n_jobs=args.n_jobs),
                              U_ft, ft_s, y, k, names, extra=_info(finetuned)))
    info = _info(crfrnn)
    info["crf_params"] = "; ".join(
        f"{key}={value:.3g}" for key, value in crfrnn.crf_parameters().items()
        if key != "compat")
    row, _, _ = _score("crfrnn", crfrnn, X, y, k, names, info)
    rows.append(row)
    crfrnn.model_.use_crf = False
    try:
        row, _, _ = _score("crfrnn/no-crf", crfrnn, X, y, k, names, _info(crfrnn))
    finally:
        crfrnn.model_.use_crf = True
    rows.append(row)
    return rows


def write_shrunk(root, out, scale=0.5):
    """Write CamVid train and val (images and labels) resized by ``scale`` the way
    ``CNNSegmenter`` resizes them (antialiased bilinear images rounded to uint8, nearest
    labels) to ``out``, in the data set's layout."""
    from skimage.io import imsave

    for split in ("train", "val"):
        data = load_camvid(root, split, n_jobs=2)
        for sub in (split, split + "annot"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for im, lab, name in zip(data.images, data.labels, data.filenames):
            h, w = lab.shape
            size = (round(h * scale), round(w * scale))
            t = torch.from_numpy(im.astype(np.float32)).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(t, size=size, mode="bilinear",
                                                align_corners=False, antialias=True)
            small = t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
            lab_t = torch.from_numpy(lab.astype(np.float32))[None, None]
            small_lab = torch.nn.functional.interpolate(lab_t, size=size,
                                                        mode="nearest-exact")
            small_lab = small_lab[0, 0].byte().numpy()
            small_lab[small_lab == 255] = 11  # void back to its id on disk
            base = Path(name).name
            imsave(out / split / base, small, check_contrast=False)
            imsave(out / (split + "annot") / base, small_lab, check_contrast=False)
        print(f"{split}: {len(data.images)} images written to {out}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="camvid-unet",
                    help="'camvid-unet' (shipped) or a saved CNNSegmenter file")
    ap.add_argument("--unary-epochs", type=int, default=0,
                    help="train the start U-Net here for this many epochs instead")
    ap.add_argument("--unary-lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=int, default=8, help="end-to-end epochs")
    ap.add_argument("--lr", type=float, default=2e-5,
                    help="the network's end-to-end peak learning rate")
    ap.add_argument("--crf-lr", type=float, default=1e-2,
                    help="the layer's peak learning rate (kernel weights, compatibility)")
    ap.add_argument("--class-weight", default="none",
                    type=lambda v: None if v == "none" else v,
                    help="loss class weights: median_frequency, balanced or none")
    ap.add_argument("--train", default="both", choices=("both", "crfrnn", "control"),
                    help="which second stages to train: the CRF-as-RNN, the fine-tuned "
                         "control, or both")
    ap.add_argument("--minutes", type=float, default=None,
                    help="also stop each training after this many minutes")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--n-val", type=int, default=24,
                    help="val images the post-hoc CRF is fitted on")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--n-jobs", type=int, default=2, help="CRF jobs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=SHARED / "camvid")
    ap.add_argument("--pre-shrunk", action="store_true",
                    help="--root holds train/val already at the working resolution")
    ap.add_argument("--tag", default="cpu", help="names this run's rows in the table")
    ap.add_argument("--models", type=Path, default=HERE / "results" / "models")
    ap.add_argument("--skip-test", action="store_true", help="train and save only")
    ap.add_argument("--eval-only", action="store_true",
                    help="score the models kept in --models for --tag")
    ap.add_argument("--limit-test", type=int, default=None,
                    help="first N test images only (a smoke run, not the benchmark)")
    ap.add_argument("--limit-train", type=int, default=None,
                    help="first N train images only (a smoke run, not the benchmark)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--write-shrunk", type=Path, default=None, metavar="DIR",
                    help="write train and val at half resolution to DIR (for --pre-shrunk "
                         "elsewhere) and stop")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.write_shrunk:
        write_shrunk(args.root, args.write_shrunk)
        return
    scale = 1.0 if args.pre_shrunk else 0.5
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
          flush=True)
    args.models.mkdir(parents=True, exist_ok=True)
    paths = {name: args.models / f"crfrnn_camvid_{args.tag}_{name}.pt"
             for name in ("unary", "finetuned", "crfrnn")}
    t_start = time.perf_counter()
    if args.eval_only:
        models = {"unary": CNNSegmenter.load(paths["unary"], device=args.device),
                  "crfrnn": CRFRNNSegmenter.load(paths["crfrnn"], device=args.device)}
        if paths["finetuned"].is_file():
            models["finetuned"] = CRFRNNSegmenter.load(paths["finetuned"],
                                                       device=args.device)
    else:
        train_set = load_camvid(args.root, "train", limit=args.limit_train, n_jobs=2)
        val_set = load_camvid(args.root, "val", n_jobs=2)
        print(f"CamVid: {len(train_set.images)} train, {len(val_set.images)} val images of "
              f"{train_set.images[0].shape[:2]}", flush=True)
        models = {"unary": _start(args, train_set, val_set, scale)}
        if args.train in ("both", "control"):
            models["finetuned"] = _second_stage(models["unary"], 0, args, train_set,
                                                val_set, scale)
        if args.train in ("both", "crfrnn"):
            models["crfrnn"] = _second_stage(models["unary"], 5, args, train_set,
                                             val_set, scale)
        for name, seg in list(models.items()):
            if args.pre_shrunk:  # read 360x480 images from now on, at 180x240 inside
                seg.set_params(scale=0.5)
            seg.save(paths[name], overwrite=True)
        print(f"models saved: {', '.join(str(paths[name]) for name in models)}", flush=True)
    if args.skip_test:
        return
    val_set = load_camvid(SHARED / "camvid", "val", n_jobs=2)
    test_set = load_camvid(SHARED / "camvid", "test", limit=args.limit_test, n_jobs=2)
    names = list(test_set.class_names)
    new = evaluate(models, args, val_set, test_set, names)
    for r in new:
        r["run"] = args.tag
    old = args.out / "train_crfrnn_camvid.json"
    rows = []
    if old.is_file() and args.limit_test is None:
        rows = [r for r in json.loads(old.read_text())["rows"] if r.get("run") != args.tag]
    keys = ["run", "method", "miou", "pixel_acc", "boundary_f1", "predict_s", "crf_params",
            "train_minutes", "epochs", "best_epoch", "best_val_miou"] + \
        [f"iou_{n}" for n in names]
    write_results(args.out, "train_crfrnn_camvid", args, rows + new, keys,
                  total_seconds=time.perf_counter() - t_start)


if __name__ == "__main__":
    main()
