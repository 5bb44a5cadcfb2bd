"""compare's registry: each method name, what it is, and the unfitted stages it builds.

The classical stages come from ``hybridseg.classical.make_classical_stage`` (the stages of
the named classical pipelines), the networks from ``hybridseg.deep.CNNSegmenter`` with the
training settings compare uses on every architecture.
"""

from __future__ import annotations

import difflib
import os

#: Architectures of the model zoo (``hybridseg.deep.models.MODELS``; a test keeps the two
#: equal, as this module does not import torch).
ZOO = ("unet", "fcn", "segnet", "deconvnet", "parsenet", "dilatednet", "deeplabv1", "deeplabv2",
       "deeplabv3", "deeplabv3plus", "pspnet", "fcdensenet56", "fcdensenet67",
       "fcdensenet103", "refinenet", "encnet", "gcn", "fpn", "msd", "enet")

#: The registry: each method name with what it is. Every architecture of the zoo also
#: comes with ``+grid`` and ``+dense``, and ``crfrnn:ARCH`` trains the CRF-as-RNN layer on
#: another backbone.
COMPARE_METHODS = {
    "splitmerge": "split-and-merge regions, classes by rules on region statistics",
    "pixel": "pixel classifier (random forest) on hand-made features",
    "pixel+grid": "pixel classifier, then a contrast-sensitive grid CRF tuned on val",
    "pixel+dense": "pixel classifier, then the dense CRF, weights tuned on val",
    **{arch: f"{arch} CNN trained from scratch" for arch in ZOO},
    **{f"{arch}+grid": f"{arch}, then a contrast-sensitive grid CRF tuned on val"
       for arch in ZOO},
    **{f"{arch}+dense": f"{arch}, then the dense CRF, weights tuned on val" for arch in ZOO},
    "crfrnn": "unet, then its CRF-as-RNN layer trained end to end with it",
}


def method_names():
    """Every name the registry knows, ``crfrnn:ARCH`` spelled out for each architecture.

    Returns
    -------
    names : list of str
    """
    return [*COMPARE_METHODS, *(f"crfrnn:{arch}" for arch in ZOO)]


#: Architectures of the zoo that take a backbone (a test keeps this equal to those whose
#: class takes ``backbone``).
ON_BACKBONES = ("unet", "fcn", "parsenet", "dilatednet", "deeplabv1", "deeplabv2",
                "deeplabv3", "deeplabv3plus", "pspnet", "refinenet", "encnet", "gcn", "fpn")


def describe(method):
    """What a method name means, in words (None for the user's own estimator)."""
    base, refine = _parse(method)
    if method in COMPARE_METHODS:
        return COMPARE_METHODS[method]
    if base.startswith("model:"):
        what = f"the saved model {base[len('model:'):]}, used as it is"
    elif "@" in base:
        arch, _, backbone = base.partition("@")
        what = f"{arch} on an ImageNet-pretrained {backbone} backbone, fine-tuned"
    else:
        what = COMPARE_METHODS.get(base, base)
    if refine == "grid":
        return f"{what}, then a contrast-sensitive grid CRF tuned on val"
    if refine == "dense":
        return f"{what}, then the dense CRF, weights tuned on val"
    return what


def is_network(base):
    """Whether a method's base is a network (trained here, or a saved model)."""
    return base in ZOO or "@" in base or base.startswith("model:")


def _split_refine(name):
    for refine in ("grid", "dense"):
        if name.endswith("+" + refine):
            return name[: -len(refine) - 1], refine
    return name, None


def _parse(name):
    """``(base, refine)`` of a registry name: ``("pixel", "dense")``, ``("crfrnn:unet",
    None)``, ``("deeplabv3plus@resnet50", None)``, ``("model:/abs/m.hseg", "dense")``."""
    if name == "crfrnn":
        return "crfrnn:unet", None
    if name.startswith("crfrnn:") and name[len("crfrnn:"):] in ZOO:
        return name, None
    if name.startswith("model:"):
        path, refine = _split_refine(name[len("model:"):])
        if not path:
            raise ValueError(f"method {name!r}: give the model file, model:PATH")
        return "model:" + os.path.abspath(os.path.expanduser(path)), refine
    if "@" in name:
        head, refine = _split_refine(name)
        arch, _, backbone = head.partition("@")
        if arch not in ON_BACKBONES or not backbone:
            raise ValueError(f"method {name!r}: ARCH@BACKBONE takes ARCH among "
                             f"{', '.join(ON_BACKBONES)} and a backbone name "
                             "(hybridseg.deep.models.BACKBONES or timm:<name>)")
        return head, refine
    if name in COMPARE_METHODS:
        base, _, refine = name.partition("+")
        return base, refine or None
    close = difflib.get_close_matches(name, method_names(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown method {name!r}{hint}; methods are: "
                     f"{', '.join(method_names())}, ARCH@BACKBONE, model:PATH, or your "
                     "own estimator passed in a dict to hybridseg.compare")


def _working_scale(images):
    """The scale the networks work at: images whose long side exceeds 300 pixels are
    halved (360x480 CamVid frames train at 180x240, as the shipped U-Net did)."""
    side = max(max(im.shape[:2]) for im in images)
    return 0.5 if side > 300 else 1.0


def _cnn(arch, data, budget, seed, verbose, device=None):
    """The zoo network of ``arch`` (``ARCH@BACKBONE``: on an ImageNet-pretrained
    backbone) with the training settings compare uses."""
    from ..deep import CNNSegmenter

    arch, _, backbone = arch.partition("@")
    options = {"backbone": backbone, "backbone_weights": "imagenet"} if backbone else None
    # with a budget, the scale, crops and epochs are planned from timed steps
    plan = {"scale": "auto", "crop_size": "auto", "epochs": "auto"} if budget else {
        "scale": _working_scale(data["train"][0]), "crop_size": None, "epochs": 40}
    return CNNSegmenter(
        arch, model_options=options, lr=2e-3, batch_size=8,
        class_weight="median_frequency", early_stopping=True, n_iter_no_change=10_000,
        max_time=None if budget is None else 60 * budget, random_state=seed,
        device="auto" if device is None else device, verbose=int(verbose), **plan,
    )


def _refiner(kind, deep, n_jobs):
    """The CRF stage of ``<base>+grid`` or ``<base>+dense``, ready to be tuned on val: the
    classical pipelines' own, but for the dense CRF on a network's (calibrated)
    probabilities, which runs 5 mean-field iterations."""
    from ..classical import make_classical_stage

    crf = make_classical_stage(kind, n_jobs=n_jobs)
    if kind == "dense" and deep:
        crf.set_params(n_iter=5)
    return crf


def _base_estimator(base, data, budget, seed, n_jobs, verbose, device=None):
    """The unfitted base of a registry method (not ``crfrnn:ARCH``, built on its start)."""
    from ..classical import make_classical_pipeline, make_classical_stage

    if base == "splitmerge":
        return make_classical_pipeline("splitmerge", random_state=seed)
    if base == "pixel":
        return make_classical_stage("pixel", random_state=seed, n_jobs=n_jobs)
    return _cnn(base, data, budget, seed, verbose, device)
