"""Does DenseCRF.fit help? Fitted against default parameters on held-out CamVid val images.

    python benchmarks/fit_dense_crf.py [--n-fit 12] [--max-iter 20] [--n-iter 10]

The unaries are not the truth: ``hybridseg.datasets.make_noisy_scores`` simulates a
mediocre model from the val labels (the one-hot truth blurred by ``--blur`` pixels, noise,
wrong-class rectangles), seeded. CamVid val is one video: the CRFs are fitted on
``--n-fit`` images spread over its first half and scored on every image of its second
half, so no held-out frame is a neighbour of a fitting frame. Rows: the unaries alone,
``DenseCRF()`` with pydensecrf's usual defaults, and ``DenseCRF().fit(U, y)`` learning the
kernel weights (Potts), with ``class_weight="balanced"``, and with ``compat="learn"``.
Prints a table and writes benchmarks/results/dense_crf_fit.csv and .json.
"""

import argparse
import os
import time
from pathlib import Path

from _heldout import add_arguments, heldout_split, segmentation_scores, write_results

from hybridseg.crf import DenseCRF

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=SHARED / "camvid")
    ap.add_argument("--n-iter", type=int, default=10, help="mean-field iterations")
    ap.add_argument("--max-iter", type=int, default=20, help="L-BFGS iterations of fit")
    add_arguments(ap)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    U_fit, y_fit, U_test, y_test, k = heldout_split(args)
    print(f"{args.n_iter} mean-field iterations")

    def scores(pred):
        return segmentation_scores(y_test, pred, k)

    rows = [dict(method="unaries only", fit_s=0.0,
                 **scores([s.argmax(-1) for s in U_test.scores]))]
    common = dict(n_iter=args.n_iter, max_iter=args.max_iter)
    variants = [
        ("DenseCRF defaults", DenseCRF(n_iter=args.n_iter), False),
        ("fit: weights (Potts)", DenseCRF(**common), True),
        ("fit: weights, balanced", DenseCRF(class_weight="balanced", **common), True),
        ("fit: weights + compat", DenseCRF(compat="learn", **common), True),
    ]
    for name, crf, learn in variants:
        t0 = time.perf_counter()
        crf.fit(U_fit, y_fit if learn else None)
        fit_s = time.perf_counter() - t0
        row = dict(method=name, fit_s=fit_s, **scores(crf.predict(U_test)))
        weights = (crf.gaussian_weight_, crf.bilateral_weight_) if learn else (
            crf.gaussian_weight, crf.bilateral_weight)
        row.update(gaussian_weight=float(weights[0]), bilateral_weight=float(weights[1]))
        if learn:
            row.update(loss_start=crf.loss_curve_[0], loss_end=crf.loss_curve_[-1],
                       lbfgs_iters=len(crf.loss_curve_) - 1)
        rows.append(row)
        print(f"  {name}: done in {fit_s:.0f} s", flush=True)

    print(f"\n{'method':<24} {'mIoU':>6} {'pix acc':>8} {'cls acc':>8} {'w_gauss':>8} "
          f"{'w_bilat':>8} {'fit s':>6}")
    for r in rows:
        wg = f"{r['gaussian_weight']:8.2f}" if "gaussian_weight" in r else " " * 8
        wb = f"{r['bilateral_weight']:8.2f}" if "bilateral_weight" in r else " " * 8
        print(f"{r['method']:<24} {r['miou']:6.3f} {r['pixel_acc']:8.3f} "
              f"{r['class_acc']:8.3f} {wg} {wb} {r['fit_s']:6.0f}")
    keys = ["method", "miou", "pixel_acc", "class_acc", "gaussian_weight",
            "bilateral_weight", "fit_s"]
    write_results(args.out, "dense_crf_fit", args, rows, keys, n_fit=len(U_fit),
                  n_test=len(U_test))


if __name__ == "__main__":
    main()
