"""A CNN from the model zoo, alone or followed by a dense or grid CRF, as one Pipeline.

    python pipelines/cnn_crf.py [--dataset sample|sample:membrane|camvid|isbi]
                                [--arch unet|fcn|segnet|deeplabv3plus|pspnet]
                                [--crf none|dense|grid] [--epochs 40] [--scale 0.5]
                                [--cv 3]

The CNN (``hybridseg.deep.CNNSegmenter``) trains from scratch on the training images at
``--scale`` of their resolution, with median-frequency class weights. With a CRF, the
Pipeline hands the CRF the CNN's ``fit_transform`` scores of the training images:
out-of-fold ones with ``--cv k`` (``k`` extra trainings, so the CRF is tuned on scores as
they are on new images), the trained network's own with ``--cv 0`` (then the CRF keeps its
default kernels instead of fitting them). ``benchmarks/train_camvid.py`` is the full CamVid
protocol (CRFs tuned on val) with its figures.
"""

from _common import fit_and_report, parser
from sklearn.pipeline import Pipeline

from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.deep import CNNSegmenter


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--crf", choices=["none", "dense", "grid"], default="dense")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--cv", type=int, default=0, help="folds of the cross fitting (0: none)")
    args = ap.parse_args(argv)
    cnn = CNNSegmenter(args.arch, epochs=args.epochs, scale=args.scale,
                       class_weight="median_frequency", cv=args.cv or None,
                       random_state=args.seed, verbose=1)
    steps = [("cnn", cnn)]
    # Without cross fitting the CRFs keep their default parameters: the network's scores
    # on its own training images are too confident to tune on.
    if args.crf == "dense":
        steps.append(("crf", DenseCRF(n_iter=5, learn="grid" if args.cv else "none",
                                      n_jobs=args.n_jobs)))
    elif args.crf == "grid":
        crf = GridCRF(n_jobs=args.n_jobs)
        if not args.cv:
            crf.set_params(weight_grid=[crf.weight])
        steps.append(("crf", crf))
    pipe = Pipeline(steps)
    fit_and_report(pipe, args, f"{args.arch}" + ("" if args.crf == "none" else
                                                 f" + {args.crf} CRF"))


if __name__ == "__main__":
    main()
