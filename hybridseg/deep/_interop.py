"""What hybridseg needs to know of a network from another library, found from the module.

The libraries people train segmentation networks with (torchvision, timm,
segmentation_models_pytorch, Hugging Face transformers) each name and wrap things their own
way; the functions here read from a module, without importing those libraries:

- ``library_of``: which library built it;
- ``input_normalization``: a ``normalize`` setting as per-channel ``(mean, std)``;
- ``default_normalize``: what ``normalize="auto"`` means for a network;
- ``backbone_prefixes``: the parameter-name prefixes of its pretrained backbone (torchvision
  ``backbone.``, smp ``encoder.``, Hugging Face the ``base_model_prefix``, the zoo
  ``backbone.``), for a lower learning rate and freezing;
- ``input_multiple``: the multiple of the input's sides the network needs (smp's encoders
  32, a zoo network its ``stride``, otherwise 1);
- ``class_names_of``: the class names a Hugging Face config carries;
- ``portable`` / ``restored``: a Hugging Face model as its class, config and weights for a
  pickle (the library installs forward hooks that do not pickle), and back.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "backbone_prefixes",
    "class_names_of",
    "default_normalize",
    "input_multiple",
    "input_normalization",
    "library_of",
    "portable",
    "restored",
]

#: torchvision's ImageNet statistics, for images read in [0, 1] (8-bit divided by 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_LIBRARIES = {"torchvision": "torchvision", "timm": "timm",
              "segmentation_models_pytorch": "smp", "transformers": "transformers",
              "hybridseg": "hybridseg"}


def library_of(module):
    """``"torchvision"``, ``"timm"``, ``"smp"``, ``"transformers"``, ``"hybridseg"`` or
    None: the package the module's class comes from."""
    root = type(module).__module__.split(".")[0]
    return _LIBRARIES.get(root)


def default_normalize(module, pretrained_backbone=False):
    """What ``normalize="auto"`` means: ``"imagenet"`` for a network of torchvision, timm,
    smp or transformers (whose weights, pretrained, expect ImageNet's statistics) and for
    a zoo network on a pretrained backbone; ``"dataset"`` (the training images'
    statistics) for a network trained from scratch or of unknown origin."""
    if pretrained_backbone:
        return "imagenet"
    if module is not None and library_of(module) not in (None, "hybridseg"):
        return "imagenet"
    return "dataset"


def input_normalization(spec, n_channels, name="normalize"):
    """``(mean, std)`` float32 arrays of ``n_channels`` for a ``normalize`` setting, or
    None for ``"dataset"`` (statistics still to be measured on the training images).

    ``"imagenet"``: torchvision's ImageNet statistics (for one channel, their averages:
    a gray network adapted from RGB weights); ``"none"``: mean 0, std 1 (the
    image read in [0, 1] as it is); a ``(mean, std)`` pair of scalars or per-channel
    sequences, in the units of the image read in [0, 1].
    """
    if isinstance(spec, str):
        if spec == "dataset":
            return None
        if spec == "none":
            return np.zeros(n_channels, np.float32), np.ones(n_channels, np.float32)
        if spec == "imagenet":
            if n_channels == 1:  # a gray network from RGB weights (first conv summed)
                return (np.float32([np.mean(IMAGENET_MEAN)]),
                        np.float32([np.mean(IMAGENET_STD)]))
            if n_channels != 3:
                raise ValueError(f"{name}='imagenet' holds statistics of 3 channels (RGB) "
                                 f"or, averaged, of 1; the network takes {n_channels}: give "
                                 f"{name}=(mean, std) or 'none'")
            return (np.asarray(IMAGENET_MEAN, np.float32),
                    np.asarray(IMAGENET_STD, np.float32))
        raise ValueError(f"{name} must be 'imagenet', 'none', 'dataset', 'auto' or a (mean, "
                         f"std) pair, got {spec!r}")
    try:
        mean, std = spec
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'imagenet', 'none', 'dataset', 'auto' or a (mean, "
                         f"std) pair, got {spec!r}") from None
    out = []
    for what, v in (("mean", mean), ("std", std)):
        try:
            a = np.asarray(v, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{name}'s {what} must be numbers, got {v!r}") from None
        if a.size == 1:
            a = np.repeat(a, n_channels)
        if a.size != n_channels:
            raise ValueError(f"{name}'s {what} has {a.size} values, the network takes "
                             f"{n_channels} channels")
        if not np.isfinite(a).all():
            raise ValueError(f"{name}'s {what} must be finite, got {v!r}")
        out.append(a)
    mean, std = out
    if (std <= 0).any():
        raise ValueError(f"{name}'s std must be positive, got {std.tolist()}")
    if (np.abs(mean) > 1).any() or (std > 1).any():
        raise ValueError(f"{name}=(mean, std) is in the units of the image read in [0, 1] "
                         f"(8-bit values divided by 255, as torchvision's Normalize), got "
                         f"mean {mean.tolist()}, std {std.tolist()}: divide 0-255 statistics "
                         "(mmsegmentation's) by 255")
    return mean.astype(np.float32), std.astype(np.float32)


def backbone_prefixes(module):
    """Parameter-name prefixes of the network's backbone (empty when none is known)."""
    lib = library_of(module)
    prefix = getattr(module, "base_model_prefix", None) if lib == "transformers" else None
    candidates = ([prefix] if isinstance(prefix, str) and prefix else []) + [
        "backbone", "encoder"]
    for attr in candidates:
        child = getattr(module, attr, None)
        if child is not None and hasattr(child, "parameters") and any(
                True for _ in child.parameters()):
            return (attr + ".",)
    return ()


def input_multiple(module):
    """The multiple of the input's height and width the network needs: its ``stride``
    attribute (the zoo), an smp encoder's ``output_stride``, else 1."""
    for owner, attr in ((module, "stride"), (getattr(module, "encoder", None), "output_stride")):
        value = getattr(owner, attr, None) if owner is not None else None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
            return int(value)
    return 1


def class_names_of(module):
    """Class names a Hugging Face config carries (``id2label``), else None."""
    config = getattr(module, "config", None)
    id2label = getattr(config, "id2label", None)
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        names = [str(id2label[i]) for i in range(len(id2label))]
    except KeyError:
        return None
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)):  # the default: no names
        return None
    return names


class HuggingFaceNetwork:
    """A Hugging Face model in a pickle: its class, config and weights, as its own
    ``save_pretrained`` keeps it (the live model holds closures that do not pickle)."""

    def __init__(self, module):
        self.cls = type(module)
        self.config = module.config
        self.state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        self.training = module.training

    def build(self):
        model = self.cls(self.config)
        model.load_state_dict(self.state)
        return model.train(self.training)


def portable(module):
    """``module``, or a picklable stand-in where it is a Hugging Face model."""
    if library_of(module) == "transformers" and hasattr(module, "config") and hasattr(
            module, "state_dict"):
        return HuggingFaceNetwork(module)
    return module


def restored(obj):
    """The module a ``portable`` stand-in holds (other objects as they are)."""
    return obj.build() if isinstance(obj, HuggingFaceNetwork) else obj
