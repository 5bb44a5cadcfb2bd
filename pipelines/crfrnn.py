"""A CNN with a CRF-as-RNN layer on its logits, trained end to end, as one segmenter.

    python pipelines/crfrnn.py [--dataset sample|sample:membrane|camvid|isbi]
                               [--arch unet|fcn|segnet|deeplabv3plus|pspnet]
                               [--unary-epochs 30] [--epochs 10] [--scale 0.5]

``hybridseg.deep.CRFRNNSegmenter`` with the paper's staged schedule: the network alone for
``--unary-epochs`` (median-frequency class weights), then the network and the CRFRNN
layer together for ``--epochs`` at a tenth of the learning rate, the layer's kernel
weights and compatibility at their own rate. ``benchmarks/train_crfrnn_camvid.py`` is the
full CamVid protocol (against the same network with a post-hoc dense CRF, and a control
fine-tuned without the layer) with its figures.
"""

from _common import fit_and_report, parser

from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--unary-epochs", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--scale", type=float, default=0.5)
    args = ap.parse_args(argv)
    unary = CNNSegmenter(args.arch, epochs=args.unary_epochs, scale=args.scale,
                         class_weight="median_frequency", random_state=args.seed, verbose=1)
    seg = CRFRNNSegmenter(unary, epochs=args.epochs)
    fit_and_report(seg, args, f"{args.arch} + CRF-as-RNN")


if __name__ == "__main__":
    main()
