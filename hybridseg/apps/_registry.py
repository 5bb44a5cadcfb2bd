"""compare's registry: each method name, what it is, and the unfitted stages it builds.

The classical stages come from ``hybridseg.classical.make_classical_stage`` (the stages of
the named classical pipelines), the networks from ``hybridseg.deep.CNNSegmenter`` with the
training settings compare uses on every architecture.
"""

from __future__ import annotations

import difflib

#: Architectures of the model zoo (``hybridseg.deep.models.MODELS``).
ZOO = ("unet", "fcn", "segnet", "deeplabv3plus", "pspnet")

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


def _parse(name):
    """``(base, refine)`` of a registry name: ``("pixel", "dense")``, ``("crfrnn:unet",
    None)``."""
    if name == "crfrnn":
        return "crfrnn:unet", None
    if name.startswith("crfrnn:") and name[len("crfrnn:"):] in ZOO:
        return name, None
    if name in COMPARE_METHODS:
        base, _, refine = name.partition("+")
        return base, refine or None
    close = difflib.get_close_matches(name, method_names(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown method {name!r}{hint}; methods are: "
                     f"{', '.join(method_names())}, or your own estimator passed in a "
                     "dict to hybridseg.compare")


def _working_scale(images):
    """The scale the networks work at: images whose long side exceeds 300 pixels are
    halved (360x480 CamVid frames train at 180x240, as the shipped U-Net did)."""
    side = max(max(im.shape[:2]) for im in images)
    return 0.5 if side > 300 else 1.0


def _cnn(arch, data, budget, seed, verbose):
    from ..deep import CNNSegmenter

    return CNNSegmenter(
        arch, epochs=40, lr=2e-3, batch_size=8, class_weight="median_frequency",
        scale=_working_scale(data["train"][0]), early_stopping=True,
        n_iter_no_change=10_000, max_time=None if budget is None else 60 * budget,
        random_state=seed, verbose=int(verbose),
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


def _base_estimator(base, data, budget, seed, n_jobs, verbose):
    """The unfitted base of a registry method (not ``crfrnn:ARCH``, built on its start)."""
    from ..classical import make_classical_pipeline, make_classical_stage

    if base == "splitmerge":
        return make_classical_pipeline("splitmerge", random_state=seed)
    if base == "pixel":
        return make_classical_stage("pixel", random_state=seed, n_jobs=n_jobs)
    return _cnn(base, data, budget, seed, verbose)
