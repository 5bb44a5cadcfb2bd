"""CNNSegmenter: a PyTorch network trained as a segmenter with scikit-learn manners.

The class imports without torch (``clone``, ``get_params`` and pickling of the unfitted
estimator work anywhere); ``fit``, ``predict_proba`` and ``load`` import it and say how to
install it where it is missing.

Everything image-shaped is prepared once at the boundary: images become float32 tensors,
standardised per channel with the training set's mean and deviation (uint8 read as
``[0, 1]`` first, so uint8 and float images in ``[0, 1]`` mix), rescaled by ``scale``;
labels become int64 maps with void as ``ignore_index``.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import os
import time
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._unaries import Unaries
from ..base import BaseSegmenter
from ..metrics import mean_iou
from ..utils._param_validation import Interval, StrOptions
from ..utils._progress import ProgressBar
from ..utils._scores import softmax
from ..utils._validation import check_images, check_label_maps
from ._torch import require_torch, resolve_device

__all__ = ["CNNSegmenter"]

#: Version of the file layout written by ``CNNSegmenter.save``.
FORMAT_VERSION = 1
_MAGIC = "hybridseg.CNNSegmenter"


def _as_float01(image):
    """An image as float32 in the units it is read in: uint8 / 255, uint16 / 65535,
    floats as they are."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    return image.astype(np.float32)


def _channels(image):
    return 1 if image.ndim == 2 else image.shape[2]


def _median_frequency_weights(labels, n_classes, ignore_index):
    """SegNet's median frequency balancing: ``median(f) / f_c``, where ``f_c`` is the
    pixel count of class c over the pixel count of the images where c appears."""
    count = np.zeros(n_classes)
    total = np.zeros(n_classes)
    for y in labels:
        valid = y[y != ignore_index] if ignore_index is not None else y.ravel()
        c = np.bincount(valid.ravel(), minlength=n_classes)[:n_classes]
        count += c
        total += (c > 0) * valid.size
    freq = np.divide(count, total, out=np.zeros(n_classes), where=total > 0)
    present = freq > 0
    if not present.any():
        return np.ones(n_classes)
    med = np.median(freq[present])
    return np.where(present, med / np.where(present, freq, 1.0), 0.0)


def _balanced_weights(labels, n_classes, ignore_index):
    """scikit-learn's ``"balanced"``: ``n_pixels / (K * count_c)`` over present classes."""
    count = np.zeros(n_classes)
    for y in labels:
        valid = y[y != ignore_index] if ignore_index is not None else y.ravel()
        count += np.bincount(valid.ravel(), minlength=n_classes)[:n_classes]
    present = count > 0
    k = max(int(present.sum()), 1)
    return np.where(present, count.sum() / (k * np.where(present, count, 1.0)), 0.0)


def _is_shell(module):
    """Whether a network is an architecture without weights (tensors on torch's "meta"
    device), as a ``CRFRNNSegmenter`` file stores the network it started from."""
    return any(t.is_meta for t in module.state_dict().values())


class CNNSegmenter(BaseSegmenter):
    """A convolutional network from PyTorch, trained and used as a segmenter.

    ``fit`` trains the network on images and label maps (random crops, flips and scale
    jitter; class-weighted loss; optional early stopping on validation mean IoU); the
    trained network is ``model_``. ``predict_proba`` gives ``(H, W, K)`` probabilities at
    each input's own size, whatever the size: images are padded to the network's stride,
    large ones are cut into overlapping tiles, and images of one size run in batches.
    ``transform`` gives ``Unaries`` for a CRF refiner after it in a ``Pipeline``.

    Parameters
    ----------
    model : str, torch.nn.Module subclass or instance, default="unet"
        The network: a name registered in ``hybridseg.deep.models.MODELS`` (``"unet"``,
        ``"fcn"``, ``"segnet"``, ``"deeplabv3plus"``, ``"pspnet"``, ...), a module class,
        or a module instance. A class is called with ``in_channels`` and ``n_classes``
        where its signature takes them, and ``model_options``. An instance is copied at
        ``fit`` and never changed; its number of output channels fixes K. The network maps
        ``(N, C, H, W)`` to logits ``(N, K, h, w)``, as a tensor or a dict with key
        ``"out"`` (torchvision's segmentation models); logits at another size than the
        input are resized bilinearly. Its ``stride`` attribute, where it has one, is the
        multiple inputs are padded to.
    model_options : dict, optional
        Options of the architecture (widths, depth, ...), for a name or a class.
    epochs : int, default=30
        Passes over the training images.
    batch_size : int, default=8
        Images (crops) per optimisation step; also the batch size of prediction.
    lr : float, default=1e-3
        Peak learning rate.
    lr_schedule : {"cosine", "poly", "constant"}, default="cosine"
        How the learning rate falls over training: cosine annealing to zero, the
        ``(1 - t) ** 0.9`` "poly" decay of DeepLab, or flat. ``t`` is the fraction of
        training done: of the epochs, or of ``max_time`` when that is reached first.
    warmup : float, default=0.03
        Fraction of training over which the learning rate rises linearly from zero.
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimiser; ``"sgd"`` has Nesterov momentum 0.9. A callable is called as
        ``optimizer(parameters, lr=lr)`` and returns a ``torch.optim.Optimizer``.
    weight_decay : float, default=1e-4
    loss : str or torch.nn.Module, default="ce"
        ``"ce"``, ``"focal"``, ``"dice"`` or sums such as ``"ce+dice"``
        (``hybridseg.deep.losses.make_loss``), or a module called as
        ``loss(logits, target)`` that honours ``ignore_index`` itself.
    class_weight : {"median_frequency", "balanced"}, (K,) array_like or None, default=None
        Weights of the classes in a named loss: SegNet's median frequency balancing,
        scikit-learn's inverse frequency, given weights, or none.
    crop_size : int or (int, int), optional
        Size of the training crops. By default the largest training image (after
        ``scale``), rounded up to the stride: whole images, smaller ones padded with void.
    augment : bool, default=True
        Random horizontal flips and scale jitter (``scale_jitter``) of the training crops.
    scale_jitter : (float, float), default=(0.75, 1.25)
        Range of the random zoom factor when ``augment``.
    color_jitter : float, default=0.0
        When ``augment``, each crop's standardised channels are multiplied by a random gain
        in ``[1 - j, 1 + j]`` and shifted by a random offset in ``[-j, j]`` (brightness,
        contrast and a little colour cast), for robustness to lighting.
    scale : float, default=1.0
        Working resolution: images are resized by this factor before the network, for
        training and prediction, and the scores are resized back to the input's size. 0.5
        trains four times faster on images that do not need full resolution.
    validation_fraction : float, default=0.1
        Share of the training images held out to score mean IoU after every epoch, when
        ``early_stopping`` is on and no ``X_val`` is given to ``fit``.
    early_stopping : bool, default=False
        Score the validation images after every epoch, stop when mean IoU has not improved
        for ``n_iter_no_change`` epochs, and keep the weights of the best epoch.
    n_iter_no_change : int, default=5
    max_time : float, optional
        Training time limit in seconds; training stops after the step that passes it, and
        the learning-rate schedule runs on the time budget when it is shorter than the
        epochs.
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA where a GPU is available, else the CPU.
    amp : {"auto"} or bool, default="auto"
        Mixed precision (float16 autocast with gradient scaling); ``"auto"`` turns it on
        on CUDA only. It has no effect on the CPU.
    tta : bool, default=False
        Test-time augmentation: average the logits of each image and of its mirror image
        (twice the prediction time).
    tile_size : int, default=1024
        Images larger than this on a side (after ``scale``) are predicted in overlapping
        tiles of this size, blended with a smooth window.
    unaries : {"proba", "logits"}, default="proba"
        What ``transform`` gives a refiner.
    cv : int, optional
        Folds of the cross fitting in ``fit_transform`` (what a ``Pipeline`` calls before a
        refiner): each fold's scores come from a network trained on the other folds, so a
        refiner tuned on them sees the network's scores as they are on new images. None
        (default) gives the scores of the network trained on all images, which are
        overconfident on its own training images: fine for a refiner with fixed
        parameters, not for one that tunes them. Costs ``cv`` extra trainings.
    n_classes : int, optional
        K; by default one more than the largest label (or the output channels of a given
        module instance).
    ignore_index : int or None, default=255
        Label of void pixels, left out of the loss and the scores.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialisation, the crops and augmentation, the validation
        split and dropout. With an int, two fits on the CPU give identical weights.
    verbose : int, default=0
        1 draws a progress bar over the epochs with the loss and validation mean IoU.

    Attributes
    ----------
    model_ : torch.nn.Module
        The trained network (in eval mode), on ``device_``.
    n_classes_ : int
    classes_ : (K,) ndarray of int
    n_channels_ : int
        Channels of the training images (1 gray).
    mean_, std_ : (C,) ndarray of float32
        Per-channel statistics used to standardise the images.
    class_weight_ : (K,) ndarray or None
    stride_ : int
    device_ : torch.device
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_scores_ : list of float
        Validation mean IoU of each epoch (empty without validation).
    best_validation_score_ : float or None
    best_epoch_ : int
        The epoch (from 1) whose weights were kept.
    n_epochs_ : int
        Epochs run.
    fit_time_ : float
        Seconds spent in training.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.deep import CNNSegmenter
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.integers(0, 255, (32, 40, 3), dtype=np.uint8) for _ in range(4)]
    >>> y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    >>> seg = CNNSegmenter("unet", model_options={"widths": (8, 16)}, epochs=2,
    ...                    batch_size=2, device="cpu", random_state=0).fit(X, y)
    >>> proba = seg.predict_proba([X[0][:29, :31]])[0]
    >>> proba.shape, proba.dtype
    ((29, 31, 2), dtype('float32'))
    """

    _parameter_constraints = {
        "model": "no_validation",
        "model_options": [None, dict],
        "epochs": [Interval(numbers.Integral, 1, None)],
        "batch_size": [Interval(numbers.Integral, 1, None)],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"cosine", "poly", "constant"})],
        "warmup": [Interval(numbers.Real, 0, 1, closed="left")],
        "optimizer": [StrOptions({"adamw", "adam", "sgd"}), "callable"],
        "weight_decay": [Interval(numbers.Real, 0, None)],
        "loss": "no_validation",
        "class_weight": [None, StrOptions({"median_frequency", "balanced"}), "array-like"],
        "crop_size": [None, Interval(numbers.Integral, 1, None), tuple, list],
        "augment": ["boolean"],
        "scale_jitter": [tuple, list],
        "color_jitter": [Interval(numbers.Real, 0, 1, closed="left")],
        "tta": ["boolean"],
        "scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None)],
        "max_time": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "device": "no_validation",
        "amp": [StrOptions({"auto"}), "boolean"],
        "tile_size": [Interval(numbers.Integral, 16, None)],
        "unaries": [StrOptions({"proba", "logits"})],
        "cv": [None, Interval(numbers.Integral, 2, None)],
        "n_classes": [None, Interval(numbers.Integral, 1, None)],
        "ignore_index": [None, numbers.Integral],
        "random_state": ["random_state"],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
    }

    def __init__(
        self,
        model="unet",
        *,
        model_options=None,
        epochs=30,
        batch_size=8,
        lr=1e-3,
        lr_schedule="cosine",
        warmup=0.03,
        optimizer="adamw",
        weight_decay=1e-4,
        loss="ce",
        class_weight=None,
        crop_size=None,
        augment=True,
        scale_jitter=(0.75, 1.25),
        color_jitter=0.0,
        scale=1.0,
        validation_fraction=0.1,
        early_stopping=False,
        n_iter_no_change=5,
        max_time=None,
        device="auto",
        amp="auto",
        tta=False,
        tile_size=1024,
        unaries="proba",
        cv=None,
        n_classes=None,
        ignore_index=255,
        random_state=None,
        verbose=0,
    ):
        self.model = model
        self.model_options = model_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.loss = loss
        self.class_weight = class_weight
        self.crop_size = crop_size
        self.augment = augment
        self.scale_jitter = scale_jitter
        self.color_jitter = color_jitter
        self.scale = scale
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.max_time = max_time
        self.device = device
        self.amp = amp
        self.tta = tta
        self.tile_size = tile_size
        self.unaries = unaries
        self.cv = cv
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ building
    def _resolve_device(self):
        return resolve_device(self.device)

    def _build_model(self, in_channels, n_classes):
        """A fresh network (``n_classes`` None: a given instance decides K)."""
        torch = require_torch()
        options = dict(self.model_options or {})
        model = self.model
        if isinstance(model, str):
            from .models import MODELS, build_model

            if model not in MODELS:
                raise ValueError(f"model {model!r} is not a registered architecture; "
                                 f"registered: {sorted(MODELS)}")
            return build_model(model, in_channels, n_classes, **options)
        if isinstance(model, type) and issubclass(model, torch.nn.Module):
            params = inspect.signature(model).parameters
            for key, value in (("in_channels", in_channels), ("n_classes", n_classes)):
                if key in params and key not in options:
                    options[key] = value
            return model(**options)
        if isinstance(model, torch.nn.Module):
            if options:
                raise ValueError("model_options apply to a model name or class, not to a "
                                 "module instance")
            return copy.deepcopy(model)
        raise TypeError(f"model must be a registered name, a torch.nn.Module subclass or "
                        f"an instance, got {type(model).__name__}")

    def _fixed_k(self):
        """Whether the network given fixes K (a module instance), not the labels."""
        return not isinstance(self.model, (str, type))

    @staticmethod
    def _first_conv_channels(model):
        torch = require_torch()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.conv._ConvNd):
                return m.in_channels
        return None

    # ------------------------------------------------------------- preparation
    def _prepare(self, images, check_channels=True):
        """Images as standardised (C, H, W) float32 tensors at the working scale."""
        torch = require_torch()
        out = []
        for i, im in enumerate(images):
            c = _channels(im)
            if check_channels and c != self.n_channels_:
                raise ValueError(
                    f"X[{i}] has {c} channel{'s' * (c != 1)} but the network was fitted on "
                    f"{self.n_channels_}-channel images"
                )
            a = _as_float01(im).reshape(im.shape[0], im.shape[1], c)
            a = (a - self.mean_) / self.std_
            t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
            out.append(self._rescale_image(t))
        return out

    def _rescale_image(self, t):
        return self._rescale(t[None], "bilinear")[0]

    def _rescale_label(self, t):
        return self._rescale(t[None, None].float(), "nearest-exact")[0, 0].long()

    def _rescale(self, t, mode):
        """A (1, C, H, W) tensor resized by ``scale`` (antialiased when shrinking)."""
        torch = require_torch()
        if self.scale == 1.0:
            return t
        h, w = t.shape[-2:]
        size = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))
        if mode == "bilinear":
            return torch.nn.functional.interpolate(t, size=size, mode=mode,
                                                   align_corners=False,
                                                   antialias=self.scale < 1.0)
        return torch.nn.functional.interpolate(t, size=size, mode=mode)

    def _check_size(self, tensors, name="X"):
        for i, t in enumerate(tensors):
            h, w = t.shape[-2:]
            if min(h, w) < self.stride_:
                extra = f" after scale={self.scale}" if self.scale != 1.0 else ""
                raise ValueError(
                    f"{name}[{i}] is {h}x{w}{extra}, smaller than the network's stride "
                    f"{self.stride_}: upsample it, or use a network with a smaller stride"
                )

    def _crop_hw(self, tensors):
        s = self.stride_
        if self.crop_size is None:
            h = max(t.shape[-2] for t in tensors)
            w = max(t.shape[-1] for t in tensors)
        else:
            cs = self.crop_size
            if isinstance(cs, numbers.Integral):
                h = w = int(cs)
            else:
                if len(cs) != 2 or not all(isinstance(v, numbers.Integral) and v > 0
                                           for v in cs):
                    raise ValueError(f"crop_size must be an int or (height, width), got "
                                     f"{cs!r}")
                h, w = int(cs[0]), int(cs[1])
        # At least two strides a side: batch norm cannot train on a 1x1 deepest map of a
        # single crop (the extra rows and columns are void).
        return max(-(-h // s) * s, 2 * s), max(-(-w // s) * s, 2 * s)

    # ----------------------------------------------------------------- training
    def _sample(self, x, y, ch, cw, rng):
        """One training crop of size (ch, cw): zoom, crop (void padding), flip."""
        torch = require_torch()
        F = torch.nn.functional
        h, w = x.shape[-2:]
        zoom = 1.0
        if self.augment:
            lo, hi = self.scale_jitter
            zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        rh, rw = max(1, round(ch / zoom)), max(1, round(cw / zoom))
        y0 = int(rng.integers(0, h - rh + 1)) if h >= rh else -int(rng.integers(0, rh - h + 1))
        x0 = int(rng.integers(0, w - rw + 1)) if w >= rw else -int(rng.integers(0, rw - w + 1))
        xc = x.new_zeros((x.shape[0], rh, rw))
        yc = y.new_full((rh, rw), self._void)
        sy, sx = max(y0, 0), max(x0, 0)
        ey, ex = min(y0 + rh, h), min(x0 + rw, w)
        xc[:, sy - y0:ey - y0, sx - x0:ex - x0] = x[:, sy:ey, sx:ex]
        yc[sy - y0:ey - y0, sx - x0:ex - x0] = y[sy:ey, sx:ex]
        if (rh, rw) != (ch, cw):
            xc = F.interpolate(xc[None], size=(ch, cw), mode="bilinear",
                               align_corners=False)[0]
            yc = F.interpolate(yc[None, None].float(), size=(ch, cw),
                               mode="nearest-exact")[0, 0].long()
        if self.augment and rng.random() < 0.5:
            xc, yc = xc.flip(-1), yc.flip(-1)
        if self.augment and self.color_jitter > 0:
            j = float(self.color_jitter)
            c = xc.shape[0]
            gain = torch.from_numpy(rng.uniform(1 - j, 1 + j, c).astype(np.float32))
            shift = torch.from_numpy(rng.uniform(-j, j, c).astype(np.float32))
            xc = xc * gain[:, None, None] + shift[:, None, None]
        return xc, yc

    def _lr_factor(self, progress):
        if self.warmup > 0 and progress < self.warmup:
            return progress / self.warmup
        t = 0.0 if self.warmup >= 1 else (progress - self.warmup) / (1 - self.warmup)
        t = min(max(t, 0.0), 1.0)
        if self.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if self.lr_schedule == "poly":
            return (1 - t) ** 0.9
        return 1.0

    def _make_optimizer(self, params, lr):
        torch = require_torch()
        if callable(self.optimizer):
            opt = self.optimizer(params, lr=lr)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError("optimizer, when a callable, must return a "
                                "torch.optim.Optimizer")
            return opt
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=self.weight_decay)

    def _class_weights(self, labels, n_classes):
        cw = self.class_weight
        if cw is None:
            return None
        if isinstance(cw, str):
            fn = _median_frequency_weights if cw == "median_frequency" else _balanced_weights
            return fn(labels, n_classes, self.ignore_index).astype(np.float32)
        w = np.asarray(cw, dtype=np.float64)
        if w.shape != (n_classes,):
            raise ValueError(f"class_weight must have one weight per class, shape "
                             f"({n_classes},), got shape {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("class_weight must hold finite non-negative weights")
        return w.astype(np.float32)

    def _forward(self, x):
        """The network's logits at the input's size (tensor or ``{"out": ...}``)."""
        torch = require_torch()
        out = self.model_(x)
        if isinstance(out, dict):
            if "out" not in out:
                raise TypeError(f"the network returned a dict without an 'out' key "
                                f"(keys: {sorted(out)})")
            out = out["out"]
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise TypeError("the network must return (N, K, H, W) logits, as a tensor or a "
                            "dict with key 'out'")
        if out.shape[-2:] != x.shape[-2:]:
            out = torch.nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear",
                                                  align_corners=False)
        return out

    def _autocast(self):
        torch = require_torch()
        import contextlib

        if self._use_amp:
            return torch.autocast(self.device_.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def fit(self, X, y, *, X_val=None, y_val=None):
        """Train the network.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Training images; sizes may differ.
        y : sequence of (H, W) array_like of int
            Their label maps; ``ignore_index`` marks void.
        X_val, y_val : sequences of images and label maps, optional
            Validation images, scored (mean IoU) after every epoch; with
            ``early_stopping`` they decide when to stop and which weights to keep.
            Without them, ``early_stopping`` holds out ``validation_fraction`` of ``X``.

        Returns
        -------
        self
        """
        self._validate_params()
        torch = require_torch()
        images, labels = self._check_images_labels(X, y, n_classes=self.n_classes)
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is not None:
            val_images, val_labels = self._check_images_labels(X_val, y_val,
                                                               n_classes=self.n_classes)
        lo_hi = tuple(self.scale_jitter)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            raise ValueError(f"scale_jitter must be (low, high) with 0 < low <= high, got "
                             f"{self.scale_jitter!r}")
        channels = {_channels(im) for im in images}
        if len(channels) > 1:
            raise ValueError(f"X mixes images of {sorted(channels)} channels; convert them "
                             "to one channel count")
        self.n_channels_ = channels.pop()
        if X_val is not None:
            for i, im in enumerate(val_images):
                if _channels(im) != self.n_channels_:
                    raise ValueError(f"X_val[{i}] has {_channels(im)} channels, X has "
                                     f"{self.n_channels_}")

        self.device_ = self._resolve_device()
        amp = self.amp if self.amp != "auto" else self.device_.type == "cuda"
        self._use_amp = bool(amp) and self.device_.type == "cuda"
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        gen = np.random.default_rng(seed)
        self._void = -100 if self.ignore_index is None else int(self.ignore_index)

        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            k_given = self.n_classes
            if self._fixed_k():
                model = self._build_model(self.n_channels_, None)
            else:
                k_given = self._n_classes_from(labels)
                model = self._build_model(self.n_channels_, k_given)
            first_in = self._first_conv_channels(model)
            if first_in is not None and first_in != self.n_channels_:
                raise ValueError(
                    f"the network's first convolution takes {first_in} channels but the "
                    f"images have {self.n_channels_}"
                )
            self.model_ = model.to(self.device_)
            self.stride_ = int(getattr(model, "stride", 1) or 1)

            self._fit_stats(images)

            xs = self._prepare(images)
            self._check_size(xs)
            ys = [self._rescale_label(torch.from_numpy(self._void_labels(m)))
                  for m in labels]
            n_classes = self._probe_classes(xs[0], k_given)
            self.n_classes_ = n_classes
            self.classes_ = np.arange(n_classes)
            check_label_maps(labels, name="y", n_classes=n_classes,
                             ignore_index=self.ignore_index)

            if X_val is None and self.early_stopping:
                n_val = round(self.validation_fraction * len(images))
                if n_val == 0 or n_val == len(images):
                    raise ValueError(
                        f"early_stopping needs validation images: validation_fraction="
                        f"{self.validation_fraction} of {len(images)} images holds out "
                        f"{n_val}; give X_val and y_val, or more images")
                order = gen.permutation(len(images))
                val_idx, train_idx = order[:n_val], np.sort(order[n_val:])
                val_images = [images[i] for i in val_idx]
                val_labels = [labels[i] for i in val_idx]
                xs = [xs[i] for i in train_idx]
                ys = [ys[i] for i in train_idx]
                train_labels = [labels[i] for i in train_idx]
            else:
                train_labels = labels
                if X_val is None:
                    val_images = val_labels = None
            if X_val is not None:
                check_label_maps(val_labels, name="y_val", n_classes=n_classes,
                                 ignore_index=self.ignore_index)
            weight = self._class_weights(train_labels, n_classes)
            self.class_weight_ = weight
            self._train(xs, ys, weight, val_images, val_labels, gen)
        return self

    def _fit_stats(self, images):
        """``mean_`` and ``std_`` per channel (of the images read as ``_as_float01``), and
        ``input_unit_``: what ``_as_float01`` divided by (255 for uint8)."""
        stats = np.concatenate([_as_float01(im).reshape(-1, self.n_channels_)
                                for im in images[:: max(1, len(images) // 64)]])
        self.mean_ = stats.mean(0).astype(np.float32)
        self.std_ = np.maximum(stats.std(0), 1e-6).astype(np.float32)
        units = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
        self.input_unit_ = units.get(images[0].dtype, 1.0)

    def _void_labels(self, m):
        m = np.asarray(m).astype(np.int64)
        if self.ignore_index is None:
            return m
        return np.where(m == self.ignore_index, self._void, m)

    def _probe_classes(self, x, k_given):
        """K from a dry run of the network on one training image (a clear error where
        the network does not take these images)."""
        torch = require_torch()
        s = self.stride_
        h, w = x.shape[-2:]
        probe = x[None, :, : max(s, (min(h, 64) // s) * s), : max(s, (min(w, 64) // s) * s)]
        was_training = self.model_.training
        self.model_.eval()
        try:
            with torch.no_grad():
                out = self._forward(probe.to(self.device_))
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"the network failed on a {tuple(probe.shape)} batch of the "
                             f"training images: {exc}") from exc
        finally:
            self.model_.train(was_training)
        k = int(out.shape[1])
        if k_given is not None and k != k_given:
            raise ValueError(f"the network outputs {k} channels but n_classes is {k_given}")
        return k

    def _param_groups(self, model, lr):
        """What the optimizer trains: parameters, or groups whose ``"peak_lr"`` replaces
        ``lr`` in the schedule."""
        return [p for p in model.parameters() if p.requires_grad]

    def _train(self, xs, ys, weight, val_images, val_labels, gen, *, epochs=None, lr=None,
               desc=None, score_start=False):
        """Train ``model_`` for ``epochs`` (default: the parameter) at peak ``lr``.

        ``score_start`` scores the network on the validation images before the first
        epoch, as epoch 0: early stopping then keeps the start when no epoch beats it."""
        torch = require_torch()
        from .losses import make_loss

        epochs = self.epochs if epochs is None else epochs
        lr = self.lr if lr is None else lr

        model = self.model_
        loss_fn = make_loss(self.loss, weight=weight, ignore_index=self._void)
        if isinstance(loss_fn, torch.nn.Module):
            loss_fn = loss_fn.to(self.device_)
        opt = self._make_optimizer(self._param_groups(model, lr), lr)
        scaler = torch.amp.GradScaler("cuda", enabled=self._use_amp)
        ch, cw = self._crop_hw(xs)
        n = len(xs)
        bs = min(self.batch_size, n)
        steps_per_epoch = -(-n // bs)
        total_steps = epochs * steps_per_epoch
        self.loss_curve_, self.validation_scores_ = [], []
        self.best_validation_score_ = None
        best_state, best_epoch, since_best = None, 0, 0
        step, start = 0, time.perf_counter()
        if score_start and val_images is not None:
            model.eval()
            self.best_validation_score_ = float(mean_iou(
                val_labels, self.predict(val_images), n_classes=self.n_classes_,
                ignore_index=self.ignore_index))
            self.initial_validation_score_ = self.best_validation_score_
            if self.early_stopping:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if self.verbose:
                print(f"{desc or 'fit'}: epoch 0 (the start) val mIoU "
                      f"{100 * self.best_validation_score_:.1f}", flush=True)
        stop = False
        with ProgressBar(epochs, desc or f"fit {self._model_name()}",
                         enabled=bool(self.verbose)) as bar:
            for epoch in range(1, epochs + 1):
                model.train()
                order = gen.permutation(n)
                losses = []
                # A last batch of one image is skipped (batch norm cannot train on it);
                # the order is reshuffled every epoch, so no image is left out for good.
                end = n - 1 if n > bs and n % bs == 1 else n
                for b in range(0, end, bs):
                    idx = order[b:b + bs]
                    pairs = [self._sample(xs[i], ys[i], ch, cw, gen) for i in idx]
                    xb = torch.stack([p[0] for p in pairs]).to(self.device_)
                    yb = torch.stack([p[1] for p in pairs]).to(self.device_)
                    elapsed = time.perf_counter() - start
                    progress = step / total_steps
                    if self.max_time is not None:
                        progress = max(progress, elapsed / self.max_time)
                    for g in opt.param_groups:
                        g["lr"] = g.get("peak_lr", lr) * self._lr_factor(progress)
                    opt.zero_grad(set_to_none=True)
                    with self._autocast():
                        loss = loss_fn(self._forward(xb).float(), yb)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"the training loss became {float(loss)} at epoch {epoch}; "
                            "lower lr")
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    losses.append(float(loss.detach()))
                    step += 1
                    if self.max_time is not None and (time.perf_counter() - start
                                                      >= self.max_time):
                        stop = True
                        break
                self.loss_curve_.append(float(np.mean(losses)) if losses else float("nan"))
                note = f"loss {self.loss_curve_[-1]:.3f}"
                if val_images is not None:
                    model.eval()
                    score = mean_iou(val_labels, self.predict(val_images),
                                     n_classes=self.n_classes_,
                                     ignore_index=self.ignore_index)
                    self.validation_scores_.append(float(score))
                    note += f" val mIoU {100 * score:.1f}"
                    if self.best_validation_score_ is None or score > self.best_validation_score_:
                        self.best_validation_score_ = float(score)
                        best_epoch, since_best = epoch, 0
                        if self.early_stopping:
                            best_state = {k: v.detach().clone()
                                          for k, v in model.state_dict().items()}
                    else:
                        since_best += 1
                bar.update(note=note)
                if self.early_stopping and since_best >= self.n_iter_no_change:
                    bar.write(f"early stop after epoch {epoch}: no better validation mIoU "
                              f"for {self.n_iter_no_change} epochs")
                    break
                if stop:
                    bar.write(f"stopped after epoch {epoch}: max_time {self.max_time:g} s "
                              "reached")
                    break
        self.n_epochs_ = len(self.loss_curve_)
        if best_state is not None:
            model.load_state_dict(best_state)
            self.best_epoch_ = best_epoch
        else:
            self.best_epoch_ = self.n_epochs_
        model.eval()
        self.fit_time_ = time.perf_counter() - start

    def _model_name(self):
        if isinstance(self.model, str):
            return self.model
        if isinstance(self.model, type):
            return self.model.__name__
        return type(self.model).__name__

    # --------------------------------------------------------------- prediction
    def decision_function(self, X):
        """Logits of every image at its own size.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray

        Returns
        -------
        logits : list of (H, W, K) ndarray of float32
        """
        check_is_fitted(self, "model_")
        images = check_images(X)
        xs = self._prepare(images)
        self._check_size(xs)
        return self._logits(xs, [im.shape[:2] for im in images])

    def predict_proba(self, X):
        """Class probabilities of every pixel, at each image's own size.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Images with the channel count of the training images; any size at least the
            network's stride (after ``scale``).

        Returns
        -------
        proba : list of (H, W, K) ndarray of float32
        """
        return [softmax(z) for z in self.decision_function(X)]

    def transform(self, X):
        """The images with their class scores, as input for a refiner.

        Parameters
        ----------
        X : sequence of images

        Returns
        -------
        U : Unaries
            Probabilities, or logits when ``unaries="logits"``.
        """
        images = check_images(X)
        if self.unaries == "logits":
            return Unaries(images, self.decision_function(images), kind="logits")
        return Unaries(images, self.predict_proba(images), kind="proba")

    def fit_transform(self, X, y, **fit_params):
        """Fit, and give the training images with scores for a refiner after this stage.

        With ``cv=None`` the scores of the fitted network on its own training images;
        with ``cv=k``, out-of-fold scores: the images are split into ``k`` folds (in
        order, as CamVid's videos should be, so that neighbouring frames share a fold) and
        each fold is scored by a clone trained on the others. The estimator ends fitted on
        all images, as after ``fit(X, y)``.

        Parameters
        ----------
        X : sequence of images
        y : sequence of (H, W) label maps
        **fit_params
            Passed to every ``fit`` (``X_val``, ``y_val``).

        Returns
        -------
        U : Unaries
            Probabilities, or logits when ``unaries="logits"``.
        """
        images = check_images(X)
        if self.cv is None:
            return self.fit(images, y, **fit_params).transform(images)
        self._validate_params()
        labels = list(y) if y is not None else None
        if labels is None or len(labels) != len(images):
            raise ValueError("fit_transform needs y, one label map per image")
        n = len(images)
        if n < self.cv:
            raise ValueError(f"cv={self.cv} folds need at least {self.cv} images, got {n}")
        folds = np.array_split(np.arange(n), self.cv)
        scores = [None] * n
        k = self.n_classes
        if k is None and isinstance(self.model, (str, type)):
            k = self._n_classes_from(check_label_maps(labels, name="y",
                                                      ignore_index=self.ignore_index))
        for test in folds:
            train = np.setdiff1d(np.arange(n), test)
            part = self._clone_for_fold(k).fit([images[i] for i in train],
                                               [labels[i] for i in train], **fit_params)
            U = part.transform([images[i] for i in test])
            for i, s in zip(test, U.scores):
                scores[i] = s
        self.fit(images, labels, **fit_params)
        return Unaries(images, scores, kind=self.unaries)

    def _clone_for_fold(self, k):
        from sklearn.base import clone

        return clone(self).set_params(cv=None, verbose=0, n_classes=k)

    def _logits(self, xs, sizes):
        """Logits (H, W, K) float32 of prepared tensors, back at the original sizes."""
        torch = require_torch()
        F = torch.nn.functional
        out = [None] * len(xs)
        groups = {}
        for i, t in enumerate(xs):
            groups.setdefault(tuple(t.shape[-2:]), []).append(i)
        self.model_.eval()
        bs = max(1, int(self.batch_size))
        with torch.no_grad():
            for idx in groups.values():
                for b in range(0, len(idx), bs):
                    chunk = idx[b:b + bs]
                    batch = torch.stack([xs[i] for i in chunk])
                    z = self._predict_batch(batch)
                    for j, i in enumerate(chunk):
                        zi = z[j:j + 1]
                        if tuple(zi.shape[-2:]) != tuple(sizes[i]):
                            zi = F.interpolate(zi, size=tuple(sizes[i]), mode="bilinear",
                                               align_corners=False)
                        out[i] = np.ascontiguousarray(
                            zi[0].permute(1, 2, 0).float().cpu().numpy())
        return out

    def _predict_batch(self, batch):
        """Logits of a (N, C, h, w) batch on the CPU: padded to the stride, tiled."""
        h, w = batch.shape[-2:]
        t = self.tile_size
        if max(h, w) > t:
            return self._predict_tiled(batch)
        return self._padded_forward(batch)

    def _padded_forward(self, batch):
        torch = require_torch()
        F = torch.nn.functional
        h, w = batch.shape[-2:]
        s = self.stride_
        ph, pw = (-h) % s, (-w) % s
        x = batch.to(self.device_)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        with self._autocast():
            z = self._forward(x)
            if self.tta:
                z = 0.5 * (z + self._forward(x.flip(-1)).flip(-1))
        return z[..., :h, :w].float().cpu()

    def _predict_tiled(self, batch):
        torch = require_torch()
        n, _, h, w = batch.shape
        s = self.stride_
        t = max(s, (self.tile_size // s) * s)
        step = max(s, ((3 * t // 4) // s) * s)
        ys = list(range(0, max(h - t, 0) + 1, step))
        xs = list(range(0, max(w - t, 0) + 1, step))
        if ys[-1] + t < h:
            ys.append(h - t)
        if xs[-1] + t < w:
            xs.append(w - t)
        acc = None
        norm = torch.zeros((1, 1, h, w))
        for y0 in ys:
            for x0 in xs:
                tile = batch[..., y0:y0 + t, x0:x0 + t]
                th, tw = tile.shape[-2:]
                z = self._padded_forward(tile)
                win = self._window(th, tw)
                if acc is None:
                    acc = torch.zeros((n, z.shape[1], h, w))
                acc[..., y0:y0 + th, x0:x0 + tw] += z * win
                norm[..., y0:y0 + th, x0:x0 + tw] += win
        return acc / norm

    @staticmethod
    def _window(h, w):
        """A smooth blending window, highest in the middle, never zero (tiles at the
        border keep their edge pixels)."""
        torch = require_torch()

        def ramp(n):
            r = torch.minimum(torch.arange(n) + 1.0, torch.arange(n, 0, -1).float())
            return torch.clamp(r / max(n / 4, 1.0), max=1.0)

        return (ramp(h)[:, None] * ramp(w)[None, :])[None, None]

    # ---------------------------------------------------------------- persistence
    def save(self, path, *, overwrite=False):
        """Write the fitted segmenter (parameters, fitted attributes, network weights).

        The file is a ``torch.save`` archive: the network as a state dict, the rest as
        plain values, with the format and package versions. It is written to a temporary
        file and renamed, so a crash never leaves half a file.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, default=False
            Replace an existing file; without it an existing file raises
            ``FileExistsError``.
        """
        torch = require_torch()
        from .. import __version__

        check_is_fitted(self, "model_")
        path = os.fspath(path)
        if os.path.lexists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        params = self._saved_params()
        fitted = {k: v for k, v in vars(self).items()
                  if k.endswith("_") and not k.startswith("__") and k not in
                  ("model_", "device_")}
        payload = {
            "magic": _MAGIC,
            "format_version": FORMAT_VERSION,
            "hybridseg_version": __version__,
            "torch_version": torch.__version__,
            "params": params,
            "fitted": fitted,
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "void": self._void,
        }
        directory = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _saved_params(self):
        """The constructor parameters ``save`` stores."""
        params = self.get_params(deep=False)
        if not isinstance(self.model, str):
            params["model"] = self.model  # a class or an unfitted instance: pickled
        return params

    @classmethod
    def load(cls, path, *, device=None):
        """Read a segmenter written by ``save``.

        Loading unpickles the file: load only files you trust.

        Parameters
        ----------
        path : str or path-like
        device : str or torch.device, optional
            Where to put the network; by default the saved ``device`` parameter (``"auto"``
            is resolved on this machine).

        Returns
        -------
        segmenter : CNNSegmenter
        """
        torch = require_torch()
        path = os.fspath(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a file written by CNNSegmenter.save: {exc}") \
                from exc
        if not isinstance(payload, dict) or payload.get("magic") != _MAGIC:
            raise ValueError(f"{path} is not a file written by CNNSegmenter.save")
        version = payload.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {version}, newer than this "
                             f"hybridseg reads ({FORMAT_VERSION}); upgrade hybridseg")
        params = dict(payload["params"])
        if device is not None:
            params["device"] = device
        seg = cls(**params)
        for k, v in payload["fitted"].items():
            setattr(seg, k, v)
        seg._void = payload["void"]
        seg.device_ = seg._resolve_device()
        amp = seg.amp if seg.amp != "auto" else seg.device_.type == "cuda"
        seg._use_amp = bool(amp) and seg.device_.type == "cuda"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k_given = None if not isinstance(seg.model, (str, type)) else seg.n_classes_
            model = seg._build_model(seg.n_channels_, k_given)
        model.load_state_dict(payload["state_dict"])
        seg.model_ = model.to(seg.device_).eval()
        return seg

    def _min_image_side(self):
        """The smallest image side ``predict_proba`` takes (for the estimator checks)."""
        check_is_fitted(self, "model_")
        return math.ceil(self.stride_ / self.scale)

    def _fixed_channels(self):
        return True

    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state and not _is_shell(self.model_):  # keep pickles device-free
            state["model_"] = copy.deepcopy(self.model_).cpu()
            state.pop("device_", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "model_" in state and "device_" not in state and not _is_shell(self.model_):
            try:
                self.device_ = self._resolve_device()
            except ValueError as exc:  # e.g. pickled with device="cuda", read without one
                torch = require_torch()
                warnings.warn(f"{exc}: the unpickled {type(self).__name__}'s network is "
                              "put on the CPU", UserWarning, stacklevel=2)
                self.device_ = torch.device("cpu")
            self.model_ = self.model_.to(self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
