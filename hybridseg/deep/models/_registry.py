"""The registry of the zoo: ``MODELS``, ``register_model`` and ``build_model``."""

from __future__ import annotations

import inspect
import numbers

__all__ = ["MODELS", "build_model", "register_model"]

#: Registered architectures: name -> class taking ``(in_channels, n_classes, **options)``.
#: A class's ``PRESETS`` maps preset names to options: ``"small"`` (the default, what
#: trains from scratch on a CPU) and ``"paper"`` (the configuration its paper describes).
MODELS = {}


def register_model(name):
    """Register a network class under ``name`` (a decorator)."""

    def add(cls):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = cls
        return cls

    return add


def build_model(name, in_channels, n_classes, preset="small", **options):
    """A fresh network of a registered architecture.

    Parameters
    ----------
    name : str
        One of ``MODELS``.
    in_channels : int
        Channels of the input images (1 gray, 3 colour).
    n_classes : int
        K, the number of output channels (logits).
    preset : {"small", "paper"}, default="small"
        ``"small"``: sizes that train from scratch on a CPU; ``"paper"``: the
        configuration of the architecture's paper (its widths and depths, and its ImageNet
        backbone where it has one, with random weights unless ``backbone_weights``).
    **options
        The architecture's own options (widths, depth, ...), over the preset's.

    Returns
    -------
    model : torch.nn.Module
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    presets = getattr(MODELS[name], "PRESETS", {"small": {}})
    if not isinstance(preset, str) or preset not in presets:
        raise ValueError(f"unknown preset {preset!r} of {name!r}; presets: "
                         f"{sorted(presets)}")
    for arg, value in (("in_channels", in_channels), ("n_classes", n_classes)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    params = inspect.signature(MODELS[name]).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for option in ("backbone", "backbone_weights"):
        if option in options and option not in params and not takes_any:
            able = sorted(n for n, c in MODELS.items()
                          if "backbone" in inspect.signature(c).parameters)
            raise ValueError(f"{name!r} takes no {option}; the architectures that take a "
                             f"backbone are {able}")
    return MODELS[name](int(in_channels), int(n_classes), **{**presets[preset], **options})
