"""Train one of torchvision's segmentation networks on CamVid with ``CNNSegmenter`` and save
it, as a user would bring their own network to ``hybridseg compare --methods model:PATH``.

    python benchmarks/finetune_torchvision.py OUT.hseg [--network lraspp_mobilenet_v3_large]
        [--minutes 10] [--data-root ../shared/data/camvid] [--pretrained-backbone PATH]

Run it in the interop environment (torchvision). The network starts from random weights
unless ``--pretrained-backbone`` gives torchvision's ImageNet checkpoint of its backbone
(nothing is downloaded). Training uses CamVid's train split at half resolution (180x240)
with early stopping on val, for ``--minutes`` of training; the file is written with
``hybridseg.save`` (never over an existing file). Then, for example::

    hybridseg compare --dataset camvid --data-root ../shared/data/camvid \\
        --methods unet,model:OUT.hseg,model:OUT.hseg+dense --budget 10
"""

import argparse
import os
import sys

import torch

import hybridseg
from hybridseg.datasets import load_splits
from hybridseg.deep import CNNSegmenter

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--network", default="lraspp_mobilenet_v3_large",
                   choices=["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                            "fcn_resnet50", "deeplabv3_resnet50"])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--data-root", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                       "camvid"))
    p.add_argument("--pretrained-backbone", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if os.path.lexists(args.out):
        sys.exit(f"{args.out} exists: choose another name")
    from torchvision.models import segmentation

    train, val, _ = load_splits("camvid", args.data_root)
    X, y, Xv, yv = train.images, train.labels, val.images, val.labels
    k = len(train.class_names)
    torch.manual_seed(args.seed)
    net = getattr(segmentation, args.network)(weights=None, weights_backbone=None,
                                              num_classes=k)
    if args.pretrained_backbone:
        state = torch.load(args.pretrained_backbone, map_location="cpu", weights_only=True)
        missing, _ = net.backbone.load_state_dict(state, strict=False)
        print(f"backbone weights read; {len(missing)} backbone keys not in the file")
    # A backbone from random weights learns at the head's rate; a pretrained one at a
    # tenth ("auto" assumes a module given is pretrained).
    mult = 0.1 if args.pretrained_backbone else 1.0
    seg = CNNSegmenter(net, epochs=200, lr=2e-3, batch_size=8, scale=0.5,
                       backbone_lr_mult=mult, normalize="imagenet",
                       class_weight="median_frequency", early_stopping=True,
                       n_iter_no_change=10_000, max_time=60 * args.minutes,
                       class_names=list(train.class_names), random_state=args.seed,
                       verbose=1)
    seg.fit(X, y, X_val=Xv, y_val=yv)
    print(f"{args.network}: {seg.n_epochs_} epochs in {seg.fit_time_:.0f} s, best val mIoU "
          f"{100 * seg.best_validation_score_:.1f} at epoch {seg.best_epoch_}")
    hybridseg.save(seg, args.out)
    print(f"saved: {args.out}")


if __name__ == "__main__":
    main()
