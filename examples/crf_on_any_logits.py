"""A CRF on any PyTorch model's logits, in two lines.

    python examples/crf_on_any_logits.py [--model shipped|torchvision] [--out FIG.png]

The model here is a plain ``torch.nn.Module``: the U-Net that hybridseg ships for CamVid,
taken out of its segmenter (``.model_``), so that nothing of hybridseg's training or
prediction code is involved: only its CRFs. With ``--model torchvision`` (where torchvision
is installed) it is torchvision's ``fcn_resnet50`` with random weights, whose dict output
``{"out": ...}`` goes through the same two lines; a real user would load their own weights.

The two lines are::

    scores = scores_from_logits(model(batch))            # (N, K, H, W) -> [(H, W, K)]
    proba = DenseCRF().refine(image, scores[0], kind="logits")

``GridCRF`` takes the same call. The script prints the mean IoU of the network alone and
with each CRF on the embedded sample's two CamVid test images (which the shipped network
never saw), and writes a figure when ``--out`` is given (never over an existing file) or,
without ``--out``, to ``crf_on_any_logits.png`` in ``$HYBRIDSEG_GALLERY_OUT`` when that is
set (as the docs build does for its gallery).
"""

import argparse
import os

import numpy as np
import torch

from hybridseg import metrics
from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.datasets import load_sample
from hybridseg.deep import load_pretrained, scores_from_logits


def shipped_model():
    """A plain nn.Module and the input normalisation it was trained with."""
    seg = load_pretrained("camvid-unet", device="cpu")
    net = seg.model_.eval()
    scale = seg.scale

    def prepare(images):
        x = np.stack([(im / 255.0 - seg.mean_) / seg.std_ for im in images]).astype(np.float32)
        x = torch.from_numpy(x).permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        small = (round(h * scale), round(w * scale))
        x = torch.nn.functional.interpolate(x, size=small, mode="bilinear", antialias=True)
        return x, (h, w)

    def run(images):
        x, size = prepare(images)
        # The U-Net takes sides that are multiples of its stride (8): pad, then crop.
        h, w = x.shape[-2:]
        ph, pw = -h % net.stride, -w % net.stride
        with torch.no_grad():
            logits = net(torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect"))
        logits = logits[..., :h, :w]
        # The network works at half resolution: its logits are resized to the image.
        return torch.nn.functional.interpolate(logits, size=size, mode="bilinear")

    return run


def torchvision_model(n_classes):
    from torchvision.models.segmentation import fcn_resnet50

    net = fcn_resnet50(weights=None, weights_backbone=None, num_classes=n_classes).eval()

    def run(images):
        x = torch.from_numpy(np.stack(images).astype(np.float32) / 255).permute(0, 3, 1, 2)
        with torch.no_grad():
            return net(x)  # {"out": (N, K, H, W), ...}

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["shipped", "torchvision"], default="shipped")
    ap.add_argument("--out", default=None, help="write a figure here (PNG)")
    args = ap.parse_args(argv)
    out = args.out
    if out is None and os.environ.get("HYBRIDSEG_GALLERY_OUT"):
        out = os.path.join(os.environ["HYBRIDSEG_GALLERY_OUT"], "crf_on_any_logits.png")
    data = load_sample("camvid")
    test = [i for i, s in enumerate(data.split) if s == "test"]
    images = [data.images[i] for i in test]
    truth = [data.labels[i] for i in test]
    k = len(data.class_names)
    model = shipped_model() if args.model == "shipped" else torchvision_model(k)

    # ---- the two lines: any model's logits, then a CRF on them
    scores = scores_from_logits(model(images))
    dense = [DenseCRF().refine(im, s, kind="logits") for im, s in zip(images, scores)]
    # ----
    grid = [GridCRF().refine(im, s, kind="logits") for im, s in zip(images, scores)]

    rows = {"network": [s.argmax(-1) for s in scores],
            "+ DenseCRF": [p.argmax(-1) for p in dense],
            "+ GridCRF": [p.argmax(-1) for p in grid]}
    for name, pred in rows.items():
        print(f"{name:<12} mIoU {100 * metrics.mean_iou(truth, pred, n_classes=k):5.1f}")
    if out:
        from hybridseg.viz import colorize, figure_grid, save_png, tile, with_legend

        if os.path.lexists(out):
            raise SystemExit(f"{out} exists: choose another --out")
        fig = [[(tile(im), "image"), (tile(colorize(t, data.colors), labels=True), "truth")]
               + [(tile(colorize(p[i], data.colors), labels=True), name)
                  for name, p in rows.items()]
               for i, (im, t) in enumerate(zip(images, truth))]
        save_png(with_legend(figure_grid(fig, ["image", "truth", *rows]), data.colors,
                             data.class_names), out)
        print(f"figure: {os.path.basename(out)}")
    return rows


if __name__ == "__main__":
    main()
