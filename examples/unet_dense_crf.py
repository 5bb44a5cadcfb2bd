"""The shipped CamVid U-Net, then a dense CRF on its scores.

    python examples/unet_dense_crf.py

hybridseg ships a small U-Net trained on CamVid (``load_pretrained("camvid-unet")``, a
fitted ``CNNSegmenter``, 1.9 MB, nothing downloaded). Its ``transform`` gives ``Unaries``,
the images with their per-pixel class probabilities, which any refiner takes: here
``DenseCRF`` with its default kernels, nothing fitted. Both are scored on the two test
images of the embedded CamVid sample, which the network never saw, with the metrics of
``hybridseg.metrics``: mean IoU, pixel accuracy, boundary F1 and the IoU of each class.

The figure (``unet_dense_crf.png``, written to ``$HYBRIDSEG_GALLERY_OUT`` or the current
folder) shows each image, its truth, the network's labels and the CRF's. Needs torch (the
``deep`` extra); a few seconds on two cores.
"""

import os
from pathlib import Path

from hybridseg import metrics
from hybridseg.crf import DenseCRF
from hybridseg.datasets import load_sample
from hybridseg.deep import load_pretrained
from hybridseg.viz import comparison_figure, save_png

data = load_sample("camvid")
test = [i for i, s in enumerate(data.split) if s == "test"]
X_test, y_test = [data.images[i] for i in test], [data.labels[i] for i in test]
k = data.n_classes

unet = load_pretrained("camvid-unet", device="cpu")  # a fitted CNNSegmenter
print(unet.model_.__class__.__name__, f"{sum(p.numel() for p in unet.model_.parameters()):,}",
      "parameters")

U = unet.transform(X_test)  # Unaries: images + (H, W, K) probabilities
print(U)

crf = DenseCRF(n_iter=5)  # default kernels; fit(U_val, y_val) would tune them
refined = crf.fit(U).predict(U)  # fit without labels only records K

pred = {"U-Net": [s.argmax(-1) for s in U.scores], "U-Net + DenseCRF": refined}
print(f"\n{'':<12}" + "".join(f"{name:>18}" for name in pred))
for what, score in [("mean IoU", metrics.mean_iou), ("pixel acc.", metrics.pixel_accuracy),
                    ("boundary F1", metrics.boundary_f1)]:
    print(f"{what:<12}" + "".join(f"{100 * score(y_test, p, n_classes=k):18.1f}"
                                  for p in pred.values()))
print("IoU per class")
iou = {name: metrics.per_class_iou(y_test, p, n_classes=k) for name, p in pred.items()}
for c, cls in enumerate(data.class_names):
    print(f"  {cls:<10}" + "".join(f"{100 * v[c]:18.1f}" for v in iou.values()))

figure = comparison_figure(X_test, y_test, pred, colors=data.colors,
                           names=[data.filenames[i] for i in test],
                           class_names=data.class_names)
out = Path(os.environ.get("HYBRIDSEG_GALLERY_OUT", "."))
save_png(figure, out / "unet_dense_crf.png")
