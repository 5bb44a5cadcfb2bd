"""Small networks the project trained itself and ships inside the package.

No weights are downloaded at run time. Each entry names the file (``hybridseg.save``'s
format), what it was trained on, and the committed command that reproduces it;
``load_pretrained`` checks the file's SHA-256 before unpickling it.
"""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["PRETRAINED", "load_pretrained"]

#: name -> (file in hybridseg/deep/data, sha256, description)
PRETRAINED = {
    "camvid-unet": (
        "camvid_unet.hseg",
        "dea7d84243e92bea07c29ea4b249977355c212324ff7bc7b9efa572eae995ef3",
        "U-Net (widths 16-128, 0.48 M parameters) trained from scratch on the 367 CamVid "
        "train images at half resolution (180x240) for 40 epochs (26 minutes on 2 CPU "
        "cores), median-frequency weighted cross-entropy, flips and scale jitter, the "
        "epoch with the best val mean IoU (54.2, epoch 39) kept; CamVid test mean IoU "
        "42.4 at 360x480, 46.6 with DenseCRF's default kernels. Reproduce with `python "
        "benchmarks/train_camvid.py --archs unet` (torch 2.13 CPU, 2 threads) and copy "
        "benchmarks/results/models/unet.pt here as camvid_unet.hseg. The embedded CamVid "
        "sample's two test images are CamVid test images, which it never saw.",
    ),
    "camvid-unet-crfrnn": (
        "camvid_unet_crfrnn.hseg",
        "116798bf39a3ba7c6387b0e5a5a5b45e93b8517527353aa6397848d304470865",
        "The camvid-unet U-Net with a CRFRNN layer (DenseCRF's default kernels at half "
        "resolution, Potts to start) trained end to end on the 367 CamVid train images: "
        "8 epochs of plain cross-entropy, network at 2e-5 and layer at 1e-2 (30 minutes on "
        "2 CPU cores), the epoch with the best val mean IoU kept (62.4, epoch 1; 59.3 at "
        "the start). CamVid test mean IoU 49.2 at 360x480 (the U-Net alone 42.4, with a "
        "post-hoc DenseCRF 46.6). Reproduce with `python benchmarks/train_crfrnn_camvid.py "
        "--epochs 8 --lr 2e-5 --crf-lr 1e-2 --class-weight none` (torch 2.13 CPU, 2 "
        "threads) and copy benchmarks/results/models/crfrnn_camvid_cpu_crfrnn.pt here as "
        "camvid_unet_crfrnn.hseg.",
    ),
}


def _file(name):
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; shipped: {sorted(PRETRAINED)}")
    return resources.files("hybridseg.deep").joinpath("data", PRETRAINED[name][0])


def load_pretrained(name="camvid-unet", *, device=None):
    """A fitted segmenter shipped with the package.

    Parameters
    ----------
    name : str, default="camvid-unet"
        One of ``PRETRAINED``.
    device : str or torch.device, optional
        Where to put the network (default: a GPU where there is one).

    Returns
    -------
    segmenter : CNNSegmenter or CRFRNNSegmenter
        ``"camvid-unet-crfrnn"`` is a ``CRFRNNSegmenter``, the others ``CNNSegmenter`` s.
    """
    from ._segmenter import _NetworkSegmenter

    path = _file(name)
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained model {name!r} is not in this installation "
                                f"({path}); {PRETRAINED[name][2]}")
    expected = PRETRAINED[name][1]
    if expected is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ValueError(f"{path} does not have the SHA-256 this release shipped "
                             f"({digest} != {expected}): reinstall hybridseg")
    with resources.as_file(path) as local:
        return _NetworkSegmenter.load(local, device=device)
