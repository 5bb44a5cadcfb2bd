"""GridSearchCV over nested parameters of a classical pipeline.

    python pipelines/classical_gridsearch.py [--dataset sample|camvid|isbi] [--folds 2]

Searches the pixel classifier's feature scales and the grid CRF's pairwise term
(``pixel__sigmas``, ``crf__pairwise``; add ``crf__connectivity`` and more to ``grid``) by
cross-validation over the training images with the mean-IoU scorer, refits the best on all
of them and scores it on the test images. On the embedded sample (4 training images, 2
folds, 4 candidates: 8 fits and the refit) it takes several minutes on two cores: each fit
cross-fits the pixel classifier and tries 7 CRF settings on the fold's images. Each fold's
Pipeline.fit cross-fits the pixel classifier inside that fold's training images, so the CRF
is never tuned on scores of images the classifier saw; so every fold needs at least two
training images (the membrane sample, with two in all, is too small).
"""

from _common import fit_and_report, parser
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from hybridseg.classical import PixelClassifier
from hybridseg.crf import GridCRF
from hybridseg.metrics import make_mean_iou_scorer


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--folds", type=int, default=2)
    args = ap.parse_args(argv)
    pipe = Pipeline([
        ("pixel", PixelClassifier(RandomForestClassifier(n_estimators=25, max_depth=16),
                                  n_jobs=args.n_jobs, random_state=args.seed)),
        ("crf", GridCRF(weight_grid=[0.5, 2.0, 8.0], n_jobs=args.n_jobs)),
    ])
    grid = {
        "pixel__sigmas": [(1, 4, 16), (1, 2, 4, 8, 16)],
        "crf__pairwise": ["potts", "contrast"],
    }
    search = GridSearchCV(pipe, grid, cv=KFold(args.folds), scoring=make_mean_iou_scorer(),
                          verbose=2)
    fit_and_report(search, args, "grid search, best refitted")
    print("best parameters:", search.best_params_)
    print(f"best cross-validated mean IoU: {100 * search.best_score_:.1f}")
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"]):
        print(f"  {100 * score:5.1f}  {params}")


if __name__ == "__main__":
    main()
