"""Your own trained network before a CRF, in a scikit-learn Pipeline.

    python examples/own_network.py [--network shipped|torchvision|smp|segformer]

A network trained elsewhere becomes a fitted hybridseg segmenter with
``CNNSegmenter.from_module(module, normalize=...)``: no training, its input normalisation
said once, its output unwrapped whatever its shape (a tensor, torchvision's
``{"out": ...}``, Hugging Face's ``.logits`` at a quarter of the size, a tuple). It then
goes before a ``DenseCRF`` in a ``Pipeline`` whose CRF weights ``GridSearchCV`` tunes,
and the network is never retrained on the way: ``from_module`` gives it ``epochs=0``.

The network here is a plain ``torch.nn.Module``: the U-Net hybridseg ships for CamVid,
taken out of its segmenter, with the normalisation it was trained with given as a
``(mean, std)`` pair, so the example runs wherever hybridseg does. ``--network
torchvision`` (``lraspp_mobilenet_v3_large``), ``smp`` (``Unet("resnet34")``) and
``segformer`` (Hugging Face, a small config) take the same calls where those libraries are
installed; they have random weights here, where a real user loads theirs. The script prints
the mean IoU of the network alone and with the tuned dense CRF on the embedded sample's two
CamVid test images, and the CRF weights chosen.
"""

import argparse

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from hybridseg import metrics
from hybridseg.crf import DenseCRF
from hybridseg.datasets import load_sample
from hybridseg.deep import CNNSegmenter, load_pretrained


def your_network(name, k):
    """A trained network and the ``from_module`` settings it needs."""
    if name == "shipped":
        seg = load_pretrained("camvid-unet", device="cpu")
        # A plain module and the normalisation and working scale it was trained with.
        return seg.model_, {"normalize": (seg.mean_, seg.std_), "scale": seg.scale}
    if name == "torchvision":
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=k)
        return net, {"normalize": "imagenet"}  # torchvision's convention
    if name == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, classes=k), {"normalize": "imagenet"}
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    cfg = SegformerConfig(num_labels=k, depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128],
                          decoder_hidden_size=64, num_attention_heads=[1, 2, 2, 4])
    return SegformerForSemanticSegmentation(cfg), {"normalize": "imagenet"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", choices=["shipped", "torchvision", "smp", "segformer"],
                    default="shipped")
    args = ap.parse_args(argv)
    data = load_sample("camvid")
    k = len(data.class_names)
    train = [i for i, s in enumerate(data.split) if s != "test"]
    test = [i for i, s in enumerate(data.split) if s == "test"]
    X, y = [data.images[i] for i in train], [data.labels[i] for i in train]
    X_test, y_test = [data.images[i] for i in test], [data.labels[i] for i in test]

    module, settings = your_network(args.network, k)
    torch.manual_seed(0)
    seg = CNNSegmenter.from_module(module, device="cpu", **settings)
    pipe = Pipeline([("net", seg), ("crf", DenseCRF(n_iter=5))])
    search = GridSearchCV(pipe, {"crf__bilateral_weight": [2.0, 5.0, 10.0]}, cv=2)
    search.fit(X, y)  # tunes the CRF; the network keeps its weights

    net_alone = seg.predict(X_test)
    with_crf = search.predict(X_test)
    for name, pred in (("network", net_alone), ("+ DenseCRF", with_crf)):
        miou = metrics.mean_iou(y_test, pred, n_classes=k)
        print(f"{name:<12} mIoU {100 * miou:5.1f}")
    print("chosen:", search.best_params_)
    kept = search.best_estimator_.named_steps["net"].model_
    same = all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(),
                                                 module.state_dict().values()))
    print("network weights unchanged by the search:", same)
    return np.asarray(with_crf[0])


if __name__ == "__main__":
    main()
