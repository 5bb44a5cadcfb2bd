"""Does GridCRF.fit help? Fitted against the default weight on held-out CamVid val images.

    python benchmarks/fit_grid_crf.py [--n-fit 12] [--n-iter 10] [--n-jobs 2]

The unaries are not the truth: ``hybridseg.datasets.make_noisy_scores`` simulates a
mediocre model from the val labels (the one-hot truth blurred by ``--blur`` pixels, noise,
wrong-class rectangles), seeded; they are passed as logits. CamVid val is one video: the
CRFs are fitted on ``--n-fit`` images spread over its first half and scored on every image
of its second half, so no held-out frame is a neighbour of a fitting frame (the split of
benchmarks/fit_dense_crf.py). Rows: the unaries alone, ``GridCRF()`` (4-connected Potts,
weight 1, alpha-expansion), ``GridCRF().fit(U, y)`` choosing the weight by mean IoU over
its default grid of 14 weights (0 and 0.05 to 20), and the same with
``pairwise="contrast"`` (which then also scales beta by the best of 0.25 to 4). Prints a
table and writes benchmarks/results/grid_crf_fit.csv and .json.
"""

import argparse
import os
import time
from pathlib import Path

from _heldout import add_arguments, heldout_split, segmentation_scores, write_results

from hybridseg.crf import GridCRF

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=SHARED / "camvid")
    ap.add_argument("--n-iter", type=int, default=10,
                    help="expansion cycles at most (GridCRF's n_iter)")
    ap.add_argument("--weight-grid", type=str, default=None,
                    help="comma-separated weights for fit (default: GridCRF's own grid)")
    ap.add_argument("--n-jobs", type=int, default=2, help="images refined in parallel")
    add_arguments(ap)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    U_fit, y_fit, U_test, y_test, k = heldout_split(args)
    grid = (None if args.weight_grid is None
            else [float(v) for v in args.weight_grid.split(",")])
    print(f"4-connected, alpha-expansion, n_iter={args.n_iter}")

    def scores(pred):
        return segmentation_scores(y_test, pred, k)

    rows = [dict(method="unaries only", fit_s=0.0, predict_s=0.0,
                 **scores([s.argmax(-1) for s in U_test.scores]))]
    common = dict(n_iter=args.n_iter, weight_grid=grid, n_jobs=args.n_jobs)
    variants = [
        ("GridCRF() (weight 1)", GridCRF(**common), False),
        ("fit: Potts", GridCRF(**common), True),
        ("fit: contrast", GridCRF(pairwise="contrast", **common), True),
    ]
    for name, crf, learn in variants:
        t0 = time.perf_counter()
        crf.fit(U_fit, y_fit if learn else None)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = crf.predict(U_test)
        predict_s = time.perf_counter() - t0
        row = dict(method=name, fit_s=fit_s, predict_s=predict_s, **scores(pred),
                   weight=float(crf.weight_ if learn else crf.weight))
        if learn:
            row["cv_scores"] = {str(w): s for w, s in crf.cv_scores_.items()}
        if hasattr(crf, "beta_scale_"):
            row["beta_scale"] = float(crf.beta_scale_)
            row["beta_scores"] = {str(f): s for f, s in crf.beta_scores_.items()}
        rows.append(row)
        print(f"  {name}: fit {fit_s:.0f} s, predict {predict_s:.0f} s", flush=True)

    print(f"\n{'method':<22} {'mIoU':>6} {'pix acc':>8} {'cls acc':>8} {'weight':>7} "
          f"{'fit s':>6} {'pred s':>7}")
    for r in rows:
        wt = f"{r['weight']:7.3g}" if "weight" in r else " " * 7
        print(f"{r['method']:<22} {r['miou']:6.3f} {r['pixel_acc']:8.3f} "
              f"{r['class_acc']:8.3f} {wt} {r['fit_s']:6.0f} {r['predict_s']:7.0f}")
    for r in rows:
        if "cv_scores" in r:
            print(f"{r['method']}: fit mIoU by weight: " + ", ".join(
                f"{float(w):.3g}: {s:.3f}" for w, s in r["cv_scores"].items()))
        if "beta_scores" in r:
            print(f"{r['method']}: fit mIoU by beta factor at that weight: " + ", ".join(
                f"{float(f):.3g}: {s:.3f}" for f, s in r["beta_scores"].items())
                + f" (chose {r['beta_scale']:g})")
    keys = ["method", "miou", "pixel_acc", "class_acc", "weight", "beta_scale", "fit_s",
            "predict_s"]
    write_results(args.out, "grid_crf_fit", args, rows, keys, n_fit=len(U_fit),
                  n_test=len(U_test))


if __name__ == "__main__":
    main()
