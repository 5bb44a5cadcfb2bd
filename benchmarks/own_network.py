"""Your own network through hybridseg, end to end, on CamVid: the networks of torchvision,
smp, Hugging Face and a plain module, each fine-tuned one epoch by ``CNNSegmenter``, put
before a ``DenseCRF`` in a ``Pipeline``, saved and loaded, and run by ``hybridseg segment``.

    python benchmarks/own_network.py [--data-root ../shared/data/camvid] [--n-train 8]
                                     [--n-val 4] [--networks a,b,...]

Run it in the interop environment (README, "Your own network": torch 2.14.1 with
torchvision 0.29.1, timm, smp and transformers). No weights are downloaded: every network
starts from random weights (``weights=None``; SegFormer from a small config), so the mIoU
after one epoch says only that training moved the network, not what a pretrained one would
reach. For each network the table gives: its parameters, the fine-tune's seconds and
loss, whether the instance given stayed unchanged (it must), whether the trained copy
changed (it must), the val mIoU of the network and of the Pipeline with the dense CRF
(the network frozen by scikit-learn's ``FrozenEstimator``, the CRF's weights tuned on the
training images by ``DenseCRF.fit``), whether ``hybridseg.load`` gives
identical probabilities, and the seconds per image of ``hybridseg segment --refine dense``
on the val images. Writes ``benchmarks/results/own_network.csv`` and ``.json``.
"""

import argparse
import csv
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

# A user's own network lives in a module of its own (benchmarks/ is on the path, as the
# script's folder), not in the script, module __main__: a file that refers to a class of
# the script can be read only by that script, not by hybridseg segment.
from _own_net import PlainNet
from PIL import Image
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

import hybridseg
from hybridseg import metrics
from hybridseg.crf import DenseCRF
from hybridseg.deep import CNNSegmenter

K = 11
HERE = os.path.dirname(os.path.abspath(__file__))


def networks():
    from torchvision.models import segmentation as tv

    def smp_unet():
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, classes=K)

    def segformer():
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        cfg = SegformerConfig(num_labels=K, depths=[2, 2, 2, 2],
                              hidden_sizes=[32, 64, 160, 256], decoder_hidden_size=256,
                              num_attention_heads=[1, 2, 5, 8])  # SegFormer-B0's sizes
        return SegformerForSemanticSegmentation(cfg)

    return {
        "torchvision deeplabv3_resnet50": lambda: tv.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=K),
        "torchvision fcn_resnet50": lambda: tv.fcn_resnet50(
            weights=None, weights_backbone=None, num_classes=K),
        "torchvision lraspp_mobilenet_v3_large": lambda: tv.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=K),
        "smp Unet(resnet34)": smp_unet,
        "transformers SegFormer-B0": segformer,
        "plain module": lambda: PlainNet(K),
    }


def read(root, split, n, scale):
    files = sorted(glob.glob(os.path.join(root, split, "*.png")))
    files = files[:: max(1, len(files) // n)][:n]
    X, y = [], []
    for f in files:
        im = Image.open(f).convert("RGB")
        lab = Image.open(f.replace(f"/{split}/", f"/{split}annot/"))
        size = (round(im.width * scale), round(im.height * scale))
        X.append(np.asarray(im.resize(size, Image.BILINEAR)))
        m = np.asarray(lab.resize(size, Image.NEAREST)).copy()
        m[m >= K] = 255
        y.append(m)
    return files, X, y


def digest(net):
    return [v.detach().clone() for v in net.state_dict().values()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


def run_one(name, make, data, tmp):
    (_, X, y), (_, Xv, yv) = data
    torch.manual_seed(0)
    net = make()
    before = digest(net)
    t0 = time.perf_counter()
    seg = CNNSegmenter(net, epochs=1, batch_size=4, lr=1e-3, device="cpu",
                       random_state=0).fit(X, y)
    fit_s = time.perf_counter() - t0
    row = {"network": name,
           "parameters_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
           "normalize": seg.normalize_, "fine_tune_s": round(fit_s, 1),
           "loss": round(seg.loss_curve_[-1], 3),
           "instance_unchanged": same(before, digest(net)),
           "copy_trained": not same(before, digest(seg.model_))}
    row["val_miou"] = round(float(metrics.mean_iou(yv, seg.predict(Xv), n_classes=K)), 4)
    pipe = Pipeline([("cnn", FrozenEstimator(seg)), ("crf", DenseCRF(n_iter=5))]).fit(X, y)
    row["val_miou_dense"] = round(float(metrics.mean_iou(yv, pipe.predict(Xv),
                                                         n_classes=K)), 4)
    path = os.path.join(tmp, "model.hseg")
    hybridseg.save(pipe, path, overwrite=True)
    back = hybridseg.load(path)
    row["load_identical"] = bool(np.array_equal(
        back.named_steps["cnn"].estimator.predict_proba(Xv[:1])[0],
        seg.predict_proba(Xv[:1])[0]))
    hybridseg.save(seg, path, overwrite=True)
    images = os.path.join(tmp, "images")
    out = os.path.join(tmp, "out-" + name.replace(" ", "_").replace("(", "").replace(")", ""))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hybridseg", "segment", images, out, "--model",
                        path, "--refine", "dense", "--quiet", "--python-path", HERE],
                       capture_output=True, text=True)
    row["segment_s_per_image"] = round((time.perf_counter() - t0) / len(Xv), 2)
    row["segment_ok"] = r.returncode == 0 and len(os.listdir(out)) == len(Xv)
    if not row["segment_ok"]:
        print(r.stderr[-2000:], file=sys.stderr)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                       "camvid"))
    p.add_argument("--n-train", type=int, default=8)
    p.add_argument("--n-val", type=int, default=4)
    p.add_argument("--scale", type=float, default=0.5, help="image scale (0.5: 180x240)")
    p.add_argument("--networks", default=None, help="comma-separated subset of the names")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    train = read(args.data_root, "train", args.n_train, args.scale)
    val = read(args.data_root, "val", args.n_val, args.scale)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "images"))
        for i, x in enumerate(val[1]):
            Image.fromarray(x).save(os.path.join(tmp, "images", f"{i}.png"))
        chosen = networks()
        if args.networks:
            chosen = {k: v for k, v in chosen.items() if k in args.networks.split(",")}
        for name, make in chosen.items():
            rows.append(run_one(name, make, (train, val), tmp))
            print(rows[-1], flush=True)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "own_network.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    meta = {"command": " ".join(["python", *sys.argv]), "args": vars(args),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
            "torch": torch.__version__, "n_train": len(train[1]), "n_val": len(val[1]),
            "size": list(train[1][0].shape[:2]), "cpu_count": os.cpu_count(), "rows": rows}
    with open(os.path.join(out, "own_network.json"), "w") as f:
        json.dump(meta, f, indent=2)
    bad = [r["network"] for r in rows if not (r["instance_unchanged"] and r["copy_trained"]
                                              and r["load_identical"] and r["segment_ok"])]
    print("all hold" if not bad else f"FAILED: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
