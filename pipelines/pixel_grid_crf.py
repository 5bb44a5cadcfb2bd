"""A pixel classifier followed by a contrast-sensitive grid CRF.

    python pipelines/pixel_grid_crf.py [--dataset sample|sample:membrane|camvid|isbi]
                                       [--connectivity 4|8]

``Pipeline.fit`` calls the pixel classifier's ``fit_transform``: each training image gets
class probabilities from a model fitted without it (cross fitting over images), and
``GridCRF.fit`` chooses its weight and contrast scale on those honest unaries, by mean IoU.
Prediction runs the classifier fitted on all training images, then alpha-expansion.
"""

from _common import fit_and_report, parser
from sklearn.pipeline import Pipeline

from hybridseg.classical import PixelClassifier
from hybridseg.crf import GridCRF


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--connectivity", type=int, choices=[4, 8], default=4)
    args = ap.parse_args(argv)
    pipe = Pipeline([
        ("pixel", PixelClassifier(n_jobs=args.n_jobs, random_state=args.seed)),
        ("crf", GridCRF(connectivity=args.connectivity, pairwise="contrast",
                        n_jobs=args.n_jobs)),
    ])
    fit_and_report(pipe, args, "pixel classifier + grid CRF")
    crf = pipe.named_steps["crf"]
    print(f"chosen: weight {crf.weight_:g}, beta scale {getattr(crf, 'beta_scale_', 1.0):g}")


if __name__ == "__main__":
    main()
