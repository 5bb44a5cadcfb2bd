"""A pixel classifier followed by the dense CRF, its kernel weights fitted.

    python pipelines/pixel_dense_crf.py [--dataset sample|sample:membrane|camvid|isbi]
                                        [--n-iter 10] [--learn grid|weights]
                                        [--compat potts|learn]

``Pipeline.fit`` gives ``DenseCRF.fit`` the pixel classifier's out-of-fold unaries of the
training images. With ``--learn grid`` (default) the dense CRF picks its Gaussian and
bilateral kernel weights by mean IoU on them; with ``--learn weights`` it learns them (and,
with ``--compat learn``, a full label compatibility matrix) by gradient descent on the log
loss through the mean-field iterations. Prediction: the classifier fitted on all training
images, then ``--n-iter`` mean-field iterations.
"""

from _common import fit_and_report, parser
from sklearn.pipeline import Pipeline

from hybridseg.classical import PixelClassifier
from hybridseg.crf import DenseCRF


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--n-iter", type=int, default=10)
    ap.add_argument("--learn", choices=["grid", "weights"], default="grid")
    ap.add_argument("--compat", choices=["potts", "learn"], default="potts",
                    help="'learn' needs --learn weights")
    args = ap.parse_args(argv)
    pipe = Pipeline([
        ("pixel", PixelClassifier(n_jobs=args.n_jobs, random_state=args.seed)),
        ("crf", DenseCRF(n_iter=args.n_iter, learn=args.learn, compat=args.compat,
                         n_jobs=args.n_jobs)),
    ])
    fit_and_report(pipe, args, "pixel classifier + dense CRF")
    crf = pipe.named_steps["crf"]
    print(f"fitted: gaussian weight {crf.gaussian_weight_:.3g}, bilateral weight "
          f"{crf.bilateral_weight_:.3g}")


if __name__ == "__main__":
    main()
