"""A pixel classifier on multiscale features: the classical unary stage alone.

    python pipelines/pixel_classifier.py [--dataset sample|sample:membrane|camvid|isbi]
                                         [--superpixels N]

A random forest on per-pixel features (smoothed luminance, gradient magnitude and Hessian
eigenvalues at sigmas 1-16, Lab colour, position; with --superpixels, statistics of the
SLIC superpixel of each pixel), trained on a class-balanced sample of the labelled pixels.
"""

from _common import fit_and_report, parser
from sklearn.pipeline import Pipeline

from hybridseg.classical import PixelClassifier


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--superpixels", type=int, default=None, metavar="N",
                    help="add statistics of N SLIC superpixels to the features")
    args = ap.parse_args(argv)
    pipe = Pipeline([("pixel", PixelClassifier(superpixels=args.superpixels,
                                               n_jobs=args.n_jobs, random_state=args.seed))])
    fit_and_report(pipe, args, "pixel classifier")


if __name__ == "__main__":
    main()
