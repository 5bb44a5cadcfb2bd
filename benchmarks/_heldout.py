"""Shared by the fit_* benchmarks: CamVid val split in time, simulated unaries, scores."""

import numpy as np

from hybridseg import Unaries
from hybridseg.datasets import load_camvid, make_noisy_scores
from hybridseg.metrics import mean_class_accuracy, mean_iou, pixel_accuracy


def add_arguments(ap):
    """The options every fit_* benchmark takes for its data."""
    ap.add_argument("--n-fit", type=int, default=12, help="fitting images (first half)")
    ap.add_argument("--blur", type=float, default=8.0, help="blur of the simulated unaries")
    ap.add_argument("--noise", type=float, default=3.0, help="noise of the simulated unaries")
    ap.add_argument("--seed", type=int, default=0)


def heldout_split(args):
    """CamVid val with simulated unaries, split in time.

    CamVid val is one video: fit on ``args.n_fit`` images spread over its first half and
    score on every image of its second half, so that no held-out frame is a neighbour of a
    fitting frame. The unaries are ``make_noisy_scores`` of the labels, seeded.

    Returns
    -------
    U_fit, y_fit, U_test, y_test, n_classes
    """
    data = load_camvid(args.root, split="val")
    k = len(data.class_names)
    n = len(data.images)
    half = n // 2
    fit_idx = np.linspace(0, half - 1, args.n_fit).round().astype(int)
    test_idx = np.arange(half, n)
    logits = make_noisy_scores(data.labels, k, blur=args.blur, noise=args.noise,
                               random_state=args.seed)
    U = Unaries(data.images, logits, kind="logits")
    y = data.labels
    print(f"CamVid val: fit on {len(fit_idx)} images of the first half, score on "
          f"{len(test_idx)} images of the second half; simulated unaries blur={args.blur} "
          f"noise={args.noise}")
    return (U[fit_idx], [y[i] for i in fit_idx], U[test_idx], [y[i] for i in test_idx], k)


def scores_with_classes(y_true, y_pred, k, names):
    """Mean IoU, pixel accuracy, boundary F1 and ``iou_<class>`` per class, as a dict."""
    from hybridseg import metrics

    iou = metrics.per_class_iou(y_true, y_pred, n_classes=k)
    row = dict(
        miou=float(np.nanmean(iou)),
        pixel_acc=metrics.pixel_accuracy(y_true, y_pred, n_classes=k),
        boundary_f1=metrics.boundary_f1(y_true, y_pred, n_classes=k),
    )
    row.update({f"iou_{n}": float(v) for n, v in zip(names, iou)})
    return row


def fitted_crf_params(crf):
    """The parameters a CRF's ``fit`` chose, as ``"name=value; ..."`` ("" for None)."""
    keys = ("weight_", "beta_scale_", "gaussian_weight_", "bilateral_weight_")
    if crf is None:
        return ""
    return "; ".join(f"{key}={float(getattr(crf, key)):.3g}" for key in keys
                     if hasattr(crf, key))


def segmentation_scores(y_true, y_pred, n_classes):
    """Mean IoU, pixel accuracy and mean class accuracy as a dict."""
    return dict(
        miou=mean_iou(y_true, y_pred, n_classes=n_classes),
        pixel_acc=pixel_accuracy(y_true, y_pred, n_classes=n_classes),
        class_acc=mean_class_accuracy(y_true, y_pred, n_classes=n_classes),
    )


def print_row(r, width=24):
    """One result row of the CamVid training scripts: mIoU, pixel accuracy, boundary F1,
    prediction time and the fitted CRF's parameters."""
    print(f"{r['method']:<{width}} mIoU {100 * r['miou']:5.1f}  pixel acc "
          f"{100 * r['pixel_acc']:5.1f}  BF {100 * r['boundary_f1']:5.1f}  "
          f"predict {r['predict_s']:6.3f} s/image"
          + (f"  ({r['crf_params']})" if r.get("crf_params") else ""), flush=True)


def write_results(out, name, args, rows, keys, **meta):
    """Write ``rows`` to ``out/name.json`` (with the arguments and the machine) and the
    ``keys`` columns to ``out/name.csv``."""
    import json
    import os
    import platform

    import numba

    out.mkdir(parents=True, exist_ok=True)
    meta = dict(args={k: str(v) for k, v in vars(args).items()},
                machine=f"{platform.machine()}, {os.cpu_count()} cores, "
                        f"numba {numba.__version__}", **meta)
    (out / f"{name}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    lines = [",".join(keys)] + [",".join(str(r.get(c, "")) for c in keys) for r in rows]
    (out / f"{name}.csv").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out / name}.csv and .json")
