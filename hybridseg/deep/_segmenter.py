"""CNNSegmenter: a PyTorch network trained as a segmenter with scikit-learn manners.

The estimator is thin: training (crops, augmentation, optimiser, schedule, the loop) is
``_training``'s, turning images into logits (preparation, padding, tiling, TTA) is
``_inference``'s, and the file format is ``hybridseg.save``'s. ``_NetworkSegmenter`` holds
what ``CNNSegmenter`` and ``CRFRNNSegmenter`` share once fitted: prediction, cross-fitted
unaries, devices, pickling and ``save``/``load``.

The class imports without torch (``clone``, ``get_params`` and pickling of the unfitted
estimator work anywhere); ``fit``, ``predict_proba`` and ``load`` import it and say how to
install it where it is missing.

Everything image-shaped is prepared once at the boundary: images become float32 tensors,
standardised per channel with the training set's mean and deviation (uint8 read as
``[0, 1]`` first, so uint8 and float images in ``[0, 1]`` mix), rescaled by ``scale``;
labels become int64 maps with void as ``ignore_index``. The reading rule is one: uint8 /
255, uint16 / 65535, floats as they are; an image whose values, read so, fall far outside
the range of the training images (8-bit values given as floats, say) gets a warning.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import numbers
import os
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..base import BaseSegmenter
from ..metrics import mean_iou
from ..utils import _serialize
from ..utils._param_validation import Interval, StrOptions
from ..utils._scores import softmax
from ..utils._unaries import Unaries
from ..utils._validation import (
    as_unit_float,
    check_images,
    check_label_maps,
    check_labelled,
    unit_of,
    warn_outside_range,
)
from . import _training
from ._inference import (
    amp_supported,
    n_channels,
    output_channels,
    predict_logits,
    prepare_images,
    rescale,
)
from ._interop import (
    class_names_of,
    default_normalize,
    input_multiple,
    input_normalization,
    portable,
    restored,
)
from ._torch import require_torch, resolve_device

__all__ = ["CNNSegmenter"]


def _is_shell(module):
    """Whether a network is an architecture without weights (tensors on torch's "meta"
    device), as a fitted ``CRFRNNSegmenter`` keeps the network it started from."""
    return any(t.is_meta for t in module.state_dict().values())


def _on_cpu(module):
    return all(t.device.type == "cpu" for t in module.state_dict().values())


class _NetworkSegmenter(BaseSegmenter):
    """What a fitted network segmenter does: logits, probabilities, unaries (cross-fitted
    with ``cv``), devices, pickling, ``save`` and ``load``.

    A subclass sets ``model_`` (the network, in eval mode on ``device_``), ``mean_``,
    ``std_``, ``n_channels_``, ``stride_``, ``n_classes_``, ``_use_amp`` at ``fit``, and
    ``_settings()`` returns the estimator whose parameters (``scale``, ``batch_size``,
    ``tile_size``, ``tta``, ``unaries``, ``cv``, ``device``) say how to predict.
    """

    def _settings(self):
        return self

    def _output(self):
        """The function unwrapping ``model_``'s output (None: the known wrappings)."""
        return self._settings().output

    def _scale(self):
        """The working scale: the one fitted (``scale_``), else the ``scale`` parameter
        (files written before ``scale_``; ``"auto"`` without a budget is 1)."""
        s = self._settings()
        fitted = getattr(s, "scale_", None)
        return fitted if fitted is not None else 1.0 if s.scale == "auto" else s.scale

    def _resolve_device(self):
        return resolve_device(self._settings().device)

    def _prepare(self, images, check_channels=True):
        """Images as standardised (C, H, W) float32 tensors at the working scale."""
        if check_channels:
            self._check_units(images)
        return prepare_images(images, mean=self.mean_, std=self.std_,
                              scale=self._scale(),
                              channels=self.n_channels_ if check_channels else None)

    def _check_units(self, images):
        """Warn where an image, read by the one rule, lands far outside the range the
        training images were read in (``utils.warn_outside_range``)."""
        fitted = getattr(self, "input_range_", None)
        if fitted is None:  # fitted before the range was recorded: from the statistics
            unit = getattr(self, "input_unit_", 1.0)
            if unit == 1.0 and np.max(self.mean_) > 1.0:
                return
            fitted = (0.0, 1.0)
        warn_outside_range(images, fitted, who="the network")

    def _check_size(self, tensors, name="X"):
        for i, t in enumerate(tensors):
            h, w = t.shape[-2:]
            if min(h, w) < self.stride_:
                scale = self._scale()
                extra = f" after scale={scale}" if scale != 1.0 else ""
                raise ValueError(
                    f"{name}[{i}] is {h}x{w}{extra}, smaller than the network's stride "
                    f"{self.stride_}: upsample it, or use a network with a smaller stride"
                )

    def _check_validation(self, X_val, y_val):
        """``(images, labels)`` of the validation set given to ``fit``, or None."""
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is None:
            return None
        return self._check_images_labels(X_val, y_val, n_classes=self.n_classes)

    def _check_channels(self, images, val):
        lo_hi = tuple(self.scale_jitter)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            raise ValueError(f"scale_jitter must be (low, high) with 0 < low <= high, got "
                             f"{self.scale_jitter!r}")
        channels = {n_channels(im) for im in images}
        if len(channels) > 1:
            raise ValueError(f"X mixes images of {sorted(channels)} channels; convert them "
                             "to one channel count")
        c = channels.pop()
        for i, im in enumerate(val[0] if val is not None else []):
            if n_channels(im) != c:
                raise ValueError(f"X_val[{i}] has {n_channels(im)} channels, X has {c}")
        return c

    def _fit_stats(self, images):
        """``mean_`` and ``std_`` per channel (of the images read by the one rule,
        ``utils.as_unit_float``), ``input_range_`` (the values' range, read so) and
        ``input_unit_``: what the rule divided by (255 for uint8)."""
        stats = np.concatenate([as_unit_float(im).reshape(-1, self.n_channels_)
                                for im in images[:: max(1, len(images) // 64)]])
        self.mean_ = stats.mean(0).astype(np.float32)
        self.std_ = np.maximum(stats.std(0), 1e-6).astype(np.float32)
        self.input_range_ = (float(stats.min()), float(stats.max()))
        self.input_unit_ = unit_of(images[0].dtype)

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
        s = self._settings()
        return predict_logits(self.model_, xs, [im.shape[:2] for im in images],
                              stride=self.stride_, tile_size=s.tile_size,
                              batch_size=s.batch_size, tta=s.tta, device=self.device_,
                              use_amp=amp_supported(self.device_, s.amp, training=False),
                              output=self._output())

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
        if self._settings().unaries == "logits":
            return Unaries(images, self.decision_function(images), kind="logits")
        return Unaries(images, self.predict_proba(images), kind="proba")

    def fit_transform(self, X, y, **fit_params):
        """Fit, and give the training images with scores for a refiner after this stage.

        With ``cv=None`` the scores of the fitted network on its own training images
        (marked ``in_sample``: a refiner's ``fit`` does not tune on them);
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
        s = self._settings()
        if s.cv is None:
            U = self.fit(images, y, **fit_params).transform(images)
            U.in_sample = True
            return U
        self._validate_params()
        labels = list(y) if y is not None else None
        if labels is None or len(labels) != len(images):
            raise ValueError("fit_transform needs y, one label map per image")
        n = len(images)
        if n < s.cv:
            raise ValueError(f"cv={s.cv} folds need at least {s.cv} images, got {n}")
        scores = [None] * n
        k = s.n_classes
        if k is None and not self._fixed_k():
            k = s._n_classes_from(check_label_maps(labels, name="y",
                                                   ignore_index=s.ignore_index))
        for test in np.array_split(np.arange(n), s.cv):
            train = np.setdiff1d(np.arange(n), test)
            part = self._clone_for_fold(k).fit([images[i] for i in train],
                                               [labels[i] for i in train], **fit_params)
            for i, z in zip(test, part.transform([images[i] for i in test]).scores):
                scores[i] = z
        self.fit(images, labels, **fit_params)
        return Unaries(images, scores, kind=s.unaries)

    def _record(self, h):
        """A training ``History`` as fitted attributes."""
        self.loss_curve_ = h.loss_curve
        self.validation_scores_ = h.validation_scores
        self.validation_epochs_ = h.validation_epochs
        self.best_validation_score_ = h.best_validation_score
        if h.initial_validation_score is not None:
            self.initial_validation_score_ = h.initial_validation_score
        self.best_epoch_ = h.best_epoch
        self.n_epochs_ = h.n_epochs
        self.n_steps_ = h.n_steps
        self.fit_time_ = h.fit_time

    # ---------------------------------------------------------------- persistence
    def save(self, path, *, overwrite=False):
        """Write the fitted segmenter to one file, as ``hybridseg.save`` does.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, default=False
            Replace an existing file; without it an existing file raises
            ``FileExistsError``.
        """
        check_is_fitted(self, "model_")
        _serialize.save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, device=None):
        """Read a segmenter written by ``save`` or ``hybridseg.save`` (files of the
        earlier ``CNNSegmenter.save`` format too).

        Loading unpickles the file: load only files you trust.

        Parameters
        ----------
        path : str or path-like
        device : str or torch.device, optional
            Where to put the network; by default the saved ``device`` parameter (``"auto"``
            is resolved on this machine).

        Returns
        -------
        segmenter : CNNSegmenter or CRFRNNSegmenter
        """
        require_torch()
        legacy = _serialize.is_legacy(path)
        if legacy:
            from ._legacy import read_legacy

            name, parts = read_legacy(path)
            fits = name == cls.__name__
        else:
            seg = _serialize.load(path)
            name, fits = type(seg).__name__, isinstance(seg, cls)
        if not fits:
            raise ValueError(f"{os.fspath(path)} holds a {name}, not a {cls.__name__}; read "
                             "it with hybridseg.load")
        if legacy:
            return cls._restore(**parts, device=device)
        if device is not None:
            seg._move_to(device)
        return seg

    def _move_to(self, device):
        """Put the fitted network on ``device`` (the parameter follows)."""
        settings = self._settings()
        settings.set_params(device=device)
        self.device_ = self._resolve_device()
        self._use_amp = amp_supported(self.device_, settings.amp)
        self.model_ = self.model_.to(self.device_)
        if settings is not self:  # its network is part of this one: same device
            settings.device_, settings._use_amp = self.device_, self._use_amp

    def _min_image_side(self):
        """The smallest image side ``predict_proba`` takes (for the estimator checks)."""
        check_is_fitted(self, "model_")
        return math.ceil(self.stride_ / self._scale())

    def _fixed_channels(self):
        return True

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.get("model_")
        if model is not None:
            # Device-free pickles: a CUDA network is copied to the CPU (one on the CPU is
            # pickled as it is, so that networks shared between attributes stay shared),
            # and the device is resolved again where the pickle is read.
            if not _is_shell(model) and not _on_cpu(model):
                state["model_"] = copy.deepcopy(model).cpu()
            state.pop("device_", None)
            given = state.get("model")
            if _same_network(given, model):
                # The network is the module given, unchanged (from_module, epochs=0):
                # written once, and copied from the parameter when read.
                state["model_"] = _SAME_AS_GIVEN
        given = state.get("model")
        if _is_module(given) and not _is_shell(given) and not _on_cpu(given):
            state["model"] = copy.deepcopy(given).cpu()
        for key in ("model", "model_"):
            if key in state:
                state[key] = portable(state[key])
        return state

    def __setstate__(self, state):
        state = {k: restored(v) if k in ("model", "model_") else v for k, v in state.items()}
        if state.get("model_") is _SAME_AS_GIVEN:
            state = {**state, "model_": copy.deepcopy(state["model"]).eval()}
        if isinstance(self, CNNSegmenter) and "normalize" not in state:
            # Written before normalize and the fine-tuning parameters: the training
            # images' statistics were the only normalisation.
            state = {**_EARLIER_DEFAULTS, **state}
            if "model_" in state:
                state.setdefault("normalize_", "dataset")
                state.setdefault("class_names_", None)
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
            self._use_amp = amp_supported(self.device_, self._settings().amp)


class CNNSegmenter(_NetworkSegmenter):
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
        or a module instance (torchvision's, smp's, a Hugging Face model, your own). A
        class is called with ``in_channels`` and ``n_classes`` where its signature takes
        them, and ``model_options``. An instance is copied at ``fit`` and never changed;
        its number of output channels fixes K: ``fit`` fine-tunes the copy. The network
        maps ``(N, C, H, W)`` to logits ``(N, K, h, w)``, as a tensor, a dict with
        ``"out"`` or ``"logits"``, an object with ``.logits`` (Hugging Face), or a tuple
        whose first entry is one (see ``output``); logits at another size than the input
        are resized bilinearly (``align_corners=False``). Inputs are padded to a multiple
        of its ``stride`` attribute (an smp encoder's ``output_stride``), where it has one.
        For a network already trained, ``CNNSegmenter.from_module`` gives a fitted
        segmenter without training.
    model_options : dict, optional
        Options of the architecture (widths, depth, ``backbone``, ``backbone_weights``,
        ...), for a name or a class.
    normalize : {"auto", "imagenet", "none", "dataset"} or (mean, std), default="auto"
        How images are standardised before the network, after the reading rule (uint8 /
        255, uint16 / 65535, floats as they are). ``"imagenet"``: torchvision's
        convention, subtract ``(0.485, 0.456, 0.406)`` and divide by ``(0.229, 0.224,
        0.225)``; ``"none"``: the image in [0, 1] as it is; ``"dataset"``: the training
        images' per-channel mean and deviation; a ``(mean, std)`` pair of scalars or
        per-channel sequences, in [0, 1] units. ``"auto"`` is ``"imagenet"`` for a
        network of torchvision, timm, smp or transformers and for a zoo network on a
        pretrained backbone (their weights expect it), ``"dataset"`` otherwise.
    output : callable, optional
        ``output(raw)`` returns the logits tensor from what the network returned, for a
        wrapping the known ones (above) do not cover. It must be importable (a function
        of a module, not a lambda) for the segmenter to be saved.
    class_names : sequence of str, optional
        Names of the K classes, kept as ``class_names_`` (by default a Hugging Face
        model's ``config.id2label``, where it names them).
    backbone_lr_mult : "auto" or float, default="auto"
        The backbone's learning rate as a multiple of ``lr`` (0 leaves it frozen). The
        backbone is found by parameter-name prefix (``backbone_prefix``, or for
        torchvision ``backbone.``, smp ``encoder.``, Hugging Face the model's
        ``base_model_prefix``, the zoo ``backbone.``). ``"auto"`` is 0.1 where the
        backbone is pretrained (a module instance given, or ``backbone_weights``), 1
        otherwise.
    backbone_prefix : str or sequence of str, optional
        Parameter-name prefixes of the backbone, where they are not found automatically.
    freeze_backbone_epochs : int, default=0
        Epochs at the start during which the backbone is frozen (no gradient, batch norm
        statistics kept): the head learns first.
    freeze_bn : bool, default=False
        Keep every batch normalisation's running statistics as they are (layers stay in
        eval mode while training; their scale and shift still learn), as fine-tunes on
        small batches do.
    se_loss_weight : "auto" or float, default="auto"
        Weight of EncNet's semantic-encoding loss (binary cross-entropy of the network's
        ``se_logits``, which classes the image holds), added to the segmentation loss for
        a network that has them; ``"auto"``: 0.2, the paper's, for such a network, else
        0.
    adversarial_weight : float, default=0.0
        Adversarial training (Luc et al., 2016): a small discriminator learns to tell the
        training label maps from the network's predictions, each beside its image, and
        the network's loss gains this weight times the discriminator's loss on its
        predictions called ground truth. 0 trains without it. The discriminator is not
        kept; its loss per step is ``discriminator_losses_``.
    epochs : int or "auto", default="auto"
        Passes over the training images; 0 builds the network and fits the input
        statistics without training it (a start for ``CRFRNNSegmenter``). ``"auto"``:
        30, or with ``max_time`` as many as the budget allows (see ``scale``).
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
    crop_size : "auto", int, (int, int) or None, default="auto"
        Size of the training crops, at the working scale. None: the largest training
        image, rounded up to the stride (whole images, smaller ones padded with void).
        ``"auto"``: None, or with ``max_time`` chosen with ``scale``.
    augment : bool, default=True
        Random horizontal flips and scale jitter (``scale_jitter``) of the training crops.
    scale_jitter : (float, float), default=(0.75, 1.25)
        Range of the random zoom factor when ``augment``.
    color_jitter : float, default=0.0
        When ``augment``, each crop's standardised channels are multiplied by a random gain
        in ``[1 - j, 1 + j]`` and shifted by a random offset in ``[-j, j]`` (brightness,
        contrast and a little colour cast), for robustness to lighting.
    scale : float or "auto", default="auto"
        Working resolution: images are resized by this factor before the network, for
        training and prediction, and the scores are resized back to the input's size. 0.5
        trains four times faster on images that do not need full resolution. ``"auto"``:
        1, or with ``max_time`` the plan's: before training, a few training steps of a
        copy of the network are timed, and the highest scale (1 down to 1/8, the working
        image at least 64 pixels a side) is chosen at which about 30 passes over the
        images (300 to 3000 steps) fit in ``max_time``, on crops (``crop_size="auto"``)
        no smaller than half the image side; ``training_plan_`` says what was chosen and
        what budget full resolution would need.
    validation_fraction : float, default=0.1
        Share of the training images held out to score mean IoU after every epoch, when
        ``early_stopping`` is on and no ``X_val`` is given to ``fit``.
    early_stopping : bool, default=False
        Score the validation images after every epoch, stop when mean IoU has not improved
        for ``n_iter_no_change`` epochs, and keep the weights of the best epoch.
    n_iter_no_change : int, default=5
    max_time : float, optional
        Training time limit in seconds (the timing of the plan included); training
        stops after the step that passes it, and the learning-rate schedule runs on the
        time budget when it is shorter than the epochs. With ``"auto"`` parameters the
        budget also chooses the scale, crop and epochs (see ``scale``), and validation
        is scored only as often as keeps it under a tenth of the time. The docs' deep
        guide tables the budget a data set of a given size needs.
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA where a GPU is available, else the CPU.
    amp : {"auto"} or bool, default="auto"
        Mixed precision: float16 on CUDA, bfloat16 on channels-last batches on the
        CPU. ``"auto"``: on CUDA, and for training on CPUs with AMX (see
        ``_inference.amp_supported``); CPU predictions stay float32. ``True``: also
        for CPU predictions, and on CPUs without AMX (emulated, slower).
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
        Validation mean IoU of each epoch scored (empty without validation).
    validation_epochs_ : list of int
        The epochs scored: every one, or under ``max_time`` as many as keep validation
        under a tenth of the time, and the last.
    best_validation_score_ : float or None
    best_epoch_ : int
        The epoch (from 1) whose weights were kept.
    n_epochs_ : int
        Epochs run.
    n_steps_ : int
        Optimiser steps run (batches).
    fit_time_ : float
        Seconds spent in training.
    scale_ : float
        The working scale (``scale``, or the plan's).
    crop_size_ : (int, int) or None
        The training crop (None: whole images).
    training_plan_ : TrainingPlan or None
        With ``max_time`` and an ``"auto"`` parameter, what the budget plan measured and
        chose (``.note`` says it in words).
    normalize_ : str
        The normalisation used: ``"imagenet"``, ``"none"``, ``"dataset"`` or
        ``"given"``.
    class_names_ : list of str or None
    discriminator_losses_ : list of float
        The discriminator's loss at each step (empty without ``adversarial_weight``).

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
        "normalize": [StrOptions({"auto", "imagenet", "none", "dataset"}), tuple, list],
        "output": [None, "callable"],
        "class_names": [None, "array-like"],
        "backbone_lr_mult": [StrOptions({"auto"}), Interval(numbers.Real, 0, None)],
        "backbone_prefix": [None, str, tuple, list],
        "freeze_backbone_epochs": [Interval(numbers.Integral, 0, None)],
        "freeze_bn": ["boolean"],
        "se_loss_weight": [StrOptions({"auto"}), Interval(numbers.Real, 0, None)],
        "adversarial_weight": [Interval(numbers.Real, 0, None)],
        "epochs": [StrOptions({"auto"}), Interval(numbers.Integral, 0, None)],
        "batch_size": [Interval(numbers.Integral, 1, None)],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"cosine", "poly", "constant"})],
        "warmup": [Interval(numbers.Real, 0, 1, closed="left")],
        "optimizer": [StrOptions({"adamw", "adam", "sgd"}), "callable"],
        "weight_decay": [Interval(numbers.Real, 0, None)],
        "loss": "no_validation",
        "class_weight": [None, StrOptions({"median_frequency", "balanced"}), "array-like"],
        "crop_size": [None, StrOptions({"auto"}), Interval(numbers.Integral, 1, None),
                      tuple, list],
        "augment": ["boolean"],
        "scale_jitter": [tuple, list],
        "color_jitter": [Interval(numbers.Real, 0, 1, closed="left")],
        "tta": ["boolean"],
        "scale": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither")],
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
        normalize="auto",
        output=None,
        class_names=None,
        backbone_lr_mult="auto",
        backbone_prefix=None,
        freeze_backbone_epochs=0,
        freeze_bn=False,
        se_loss_weight="auto",
        adversarial_weight=0.0,
        epochs="auto",
        batch_size=8,
        lr=1e-3,
        lr_schedule="cosine",
        warmup=0.03,
        optimizer="adamw",
        weight_decay=1e-4,
        loss="ce",
        class_weight=None,
        crop_size="auto",
        augment=True,
        scale_jitter=(0.75, 1.25),
        color_jitter=0.0,
        scale="auto",
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
        self.normalize = normalize
        self.output = output
        self.class_names = class_names
        self.backbone_lr_mult = backbone_lr_mult
        self.backbone_prefix = backbone_prefix
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.freeze_bn = freeze_bn
        self.se_loss_weight = se_loss_weight
        self.adversarial_weight = adversarial_weight
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

    def _model_name(self):
        if isinstance(self.model, str):
            return self.model
        if isinstance(self.model, type):
            return self.model.__name__
        return type(self.model).__name__

    # ----------------------------------------------------------------- training
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
        require_torch()  # a clear ImportError first
        images, labels = self._check_images_labels(X, y, n_classes=self.n_classes)
        val = self._check_validation(X_val, y_val)
        self.n_channels_ = self._check_channels(images, val)
        with self._seeded_fit() as gen:
            fixed = self._fixed_k()
            k_given = self.n_classes if fixed else self._n_classes_from(labels)
            model = self._build_model(self.n_channels_, None if fixed else k_given)
            first_in = _first_conv_channels(model)
            if first_in is not None and first_in != self.n_channels_:
                raise ValueError(
                    f"the network's first convolution takes {first_in} channels but the "
                    f"images have {self.n_channels_}"
                )
            self._set_network(model, images)
            epochs = self._plan(images, val)
            spent = self.training_plan_.planning_time if self.training_plan_ else 0.0
            xs = self._prepare(images)
            self._check_size(xs)
            self._set_classes(self._probe_classes(xs[0], k_given))
            data = self._training_data(xs, images, labels, val, gen)
            self.class_weight_ = data["weight"]
            tuning = _training.fine_tuning(
                self.model_, self, pretrained=self._fixed_k() or _pretrained_backbone(model))
            adversary = None
            if self.adversarial_weight > 0:
                from ._adversarial import Adversary

                adversary = Adversary(self.n_channels_, self.n_classes_,
                                      self.adversarial_weight, self._void, self.device_)
            history = self._run_training(self.model_, data, gen, epochs=epochs,
                                         lr=self.lr, desc=f"fit {self._model_name()}",
                                         adversary=adversary, time_spent=spent, **tuning)
            self.discriminator_losses_ = [] if adversary is None else adversary.losses
            if "on_epoch" in tuning:
                tuning["on_epoch"].restore()
        self._record(history)
        return self

    def _plan(self, images=None, val=None):
        """The epochs to run, with ``scale_``, ``crop_size_`` and ``training_plan_``: the
        ``"auto"`` parameters resolved, under ``max_time`` by ``_budget.plan_training``
        (not without ``images``: ``from_module``)."""
        plan = None
        if images is not None and self.max_time is not None and self.epochs != 0 and (
                "auto" in (self.scale, self.crop_size, self.epochs)):
            from ._budget import plan_training

            n = len(images) - (round(self.validation_fraction * len(images))
                               if val is None and self.early_stopping else 0)
            plan = plan_training(
                self.model_, [im.shape[:2] for im in images[:max(n, 1)]],
                max_time=self.max_time, batch_size=self.batch_size, stride=self.stride_,
                device=self.device_, in_channels=self.n_channels_, scale=self.scale,
                crop=self.crop_size, epochs=self.epochs, output=self.output,
                use_amp=self._use_amp, verbose=self.verbose)
        self.training_plan_ = plan
        auto = [v == "auto" for v in (self.scale, self.crop_size, self.epochs)]
        self.scale_ = plan.scale if plan else 1.0 if auto[0] else float(self.scale)
        self.crop_size_ = plan.crop if plan else None if auto[1] else self.crop_size
        return plan.epochs if plan else 30 if auto[2] else self.epochs

    @classmethod
    def from_module(cls, module, *, normalize="imagenet", n_classes=None, class_names=None,
                    device="auto", output=None, in_channels=None, **params):
        """A fitted segmenter from a network already trained, without training it.

        The network is copied (the instance given is never changed) and used as it is:
        ``predict``, ``predict_proba``, ``transform`` (``Unaries`` for a CRF after it),
        ``score``, ``hybridseg.save``/``load`` and ``hybridseg segment`` work at once.
        The segmenter has ``epochs=0``: fitting it again (in a ``Pipeline``, or the clones
        ``GridSearchCV`` fits while it tunes a later stage) copies the network and checks
        the labels against its K, and never trains it, so a CRF after it is tuned on the
        network as it is. ``set_params(epochs=n)`` turns it into a fine-tune.
        scikit-learn's ``FrozenEstimator`` around it also works.

        Parameters
        ----------
        module : torch.nn.Module
            The trained network: torchvision's segmentation models, an smp model, a Hugging
            Face ``...ForSemanticSegmentation``, or your own; any output wrapping that
            ``CNNSegmenter`` knows, or ``output``.
        normalize : {"imagenet", "none"} or (mean, std), default="imagenet"
            The input normalisation the weights expect: ``"imagenet"`` is exactly
            torchvision's (8-bit values divided by 255, then ``(x - (0.485, 0.456,
            0.406)) / (0.229, 0.224, 0.225)``); ``"none"`` divides by 255 only; a pair
            gives per-channel ``mean`` and ``std`` in [0, 1] units. (``"dataset"`` needs
            training images: use ``CNNSegmenter(module, normalize="dataset",
            epochs=0).fit(X, y)``.)
        n_classes : int, optional
            K, checked against the network's output channels (by default those).
        class_names : sequence of str, optional
            Names of the classes (by default a Hugging Face config's ``id2label``).
        device : str or torch.device, default="auto"
        output : callable, optional
            Unwraps an output of another shape (see ``CNNSegmenter``).
        in_channels : int, optional
            Channels of the input images, where the network has no convolution to read
            them from.
        **params
            Further ``CNNSegmenter`` parameters (``batch_size``, ``tile_size``, ``tta``,
            ``unaries``, ``scale``, ...).

        Returns
        -------
        segmenter : CNNSegmenter
            Fitted, with ``epochs=0``.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from hybridseg.deep import CNNSegmenter
        >>> net = torch.nn.Conv2d(3, 4, 3, padding=1)  # any trained network
        >>> seg = CNNSegmenter.from_module(net, device="cpu")
        >>> image = np.zeros((20, 30, 3), np.uint8)
        >>> seg.predict_proba([image])[0].shape
        (20, 30, 4)
        """
        torch = require_torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module instance, got "
                            f"{type(module).__name__}")
        if "epochs" in params or "model" in params:
            raise TypeError("from_module sets model (the module) and epochs (0) itself")
        if isinstance(normalize, str) and normalize == "dataset":
            raise ValueError("normalize='dataset' needs training images to measure: use "
                             "CNNSegmenter(module, normalize='dataset', epochs=0).fit(X, y)")
        seg = cls(module, epochs=0, normalize=normalize, n_classes=n_classes,
                  class_names=class_names, device=device, output=output, **params)
        seg._validate_params()
        c = _first_conv_channels(module) if in_channels is None else in_channels
        if c is None:
            raise ValueError("the network has no convolution to read its input channels "
                             "from: give in_channels")
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1:
            raise ValueError(f"in_channels must be a positive integer, got {c!r}")
        seg.n_channels_ = int(c)
        seg._plan()
        with seg._seeded_fit():
            seg._set_network(seg._build_model(seg.n_channels_, None))
            side = max(64, 2 * seg.stride_)
            seg._set_classes(seg._probe_classes(torch.zeros(seg.n_channels_, side, side),
                                                n_classes))
        seg.class_weight_ = None
        seg._record(_training.History([], [], None, None, 0, 0, 0.0))
        return seg

    def _set_network(self, model, images=None):
        """``model_`` (on ``device_``), ``stride_`` and the input normalisation
        (``mean_``, ``std_``, ``normalize_``, ``input_range_``, ``input_unit_``)."""
        self.model_ = model.to(self.device_)
        if images is None:
            self.model_.eval()
        self.stride_ = input_multiple(model)
        spec = self.normalize
        if isinstance(spec, str) and spec == "auto":
            spec = default_normalize(model, _pretrained_backbone(model))
        stats = input_normalization(spec, self.n_channels_)
        self.normalize_ = spec if isinstance(spec, str) else "given"
        if images is not None:
            self._fit_stats(images)
        else:
            self.input_range_, self.input_unit_ = (0.0, 1.0), 255.0
        if stats is not None:
            self.mean_, self.std_ = stats

    def _set_classes(self, k):
        self.n_classes_ = k
        self.classes_ = np.arange(k)
        names = self.class_names
        if names is None:
            names = class_names_of(self.model_)
        elif isinstance(names, str) or len(names) != k:
            raise ValueError(f"class_names must name the {k} classes the network outputs, "
                             f"got {names!r}")
        self.class_names_ = None if names is None else [str(n) for n in names]

    @contextlib.contextmanager
    def _seeded_fit(self):
        """The start of a training run with these settings: ``device_``, ``_use_amp`` and
        ``_void`` set, one seed drawn from ``random_state``, torch's random state forked
        and seeded with it; yields the numpy generator of the crops and the validation
        split (the same split for every run from the same settings)."""
        torch = require_torch()
        self.device_ = self._resolve_device()
        self._use_amp = amp_supported(self.device_, self.amp)
        self._void = -100 if self.ignore_index is None else int(self.ignore_index)
        seed = _seed(self.random_state)
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield np.random.default_rng(seed)

    def _training_data(self, xs, images, labels, val, gen):
        """What ``_run_training`` needs: the training tensors and labels at the working
        scale, the validation images (given, or ``validation_fraction`` held out under
        ``early_stopping``), the class weights."""
        torch = require_torch()
        k = self.n_classes_
        try:
            check_label_maps(labels, name="y", n_classes=k, ignore_index=self.ignore_index)
        except ValueError as exc:
            if not self._fixed_k():
                raise
            raise ValueError(f"{exc}: the network given outputs {k} channels, one per "
                             "class") from None
        check_labelled(labels, ignore_index=self.ignore_index)
        ys = [rescale(torch.from_numpy(self._void_labels(m))[None, None].float(),
                      self._scale(), "nearest-exact")[0, 0].long() for m in labels]
        train_labels = labels
        if val is None and self.early_stopping:
            n_val = round(self.validation_fraction * len(images))
            if n_val == 0 or n_val == len(images):
                raise ValueError(
                    f"early_stopping needs validation images: validation_fraction="
                    f"{self.validation_fraction} of {len(images)} images holds out "
                    f"{n_val}; give X_val and y_val, or more images")
            order = gen.permutation(len(images))
            val_idx, train_idx = order[:n_val], np.sort(order[n_val:])
            val = ([images[i] for i in val_idx], [labels[i] for i in val_idx])
            xs = [xs[i] for i in train_idx]
            ys = [ys[i] for i in train_idx]
            train_labels = [labels[i] for i in train_idx]
        elif val is not None:
            check_label_maps(val[1], name="y_val", n_classes=k,
                             ignore_index=self.ignore_index)
        weight = _training.class_weights(self.class_weight, train_labels, k,
                                         self.ignore_index)
        return {"xs": xs, "ys": ys, "val": val, "weight": weight}

    def _run_training(self, model, data, gen, *, epochs, lr, desc, param_groups=None,
                      score_start=False, predictor=None, on_epoch=None, adversary=None,
                      time_spent=0.0):
        """``_training.train`` with this estimator's settings; validation mean IoU from
        ``predictor`` (default: self) on ``data["val"]``."""
        val = data["val"]
        predictor = self if predictor is None else predictor
        validate = None
        if val is not None:
            def validate():
                return mean_iou(val[1], predictor.predict(val[0]), n_classes=self.n_classes_,
                                ignore_index=self.ignore_index)
        return _training.train(
            model, data["xs"], data["ys"], settings=self, rng=gen, weight=data["weight"],
            void=self._void, device=self.device_, use_amp=self._use_amp,
            stride=self.stride_, epochs=epochs, lr=lr, param_groups=param_groups,
            validate=validate, desc=desc, score_start=score_start,
            output=self.output if predictor is self else None, on_epoch=on_epoch,
            adversary=adversary, time_spent=time_spent)

    def _void_labels(self, m):
        m = np.asarray(m).astype(np.int64)
        if self.ignore_index is None:
            return m
        return np.where(m == self.ignore_index, self._void, m)

    def _probe_classes(self, x, k_given):
        """K from a dry run of the network on one training image (a clear error where
        the network does not take these images)."""
        k = output_channels(self.model_, x, stride=self.stride_, device=self.device_,
                            output=self.output)
        if k_given is not None and k != k_given:
            raise ValueError(f"the network outputs {k} channels but n_classes is {k_given}")
        return k

    def _clone_for_fold(self, k):
        from sklearn.base import clone

        return clone(self).set_params(cv=None, verbose=0, n_classes=k)

    @classmethod
    def _restore(cls, params, fitted, state_dict, void, device=None):
        """A fitted segmenter from its parameters, fitted attributes and network weights
        (what the earlier ``CNNSegmenter.save`` format stored), on ``device`` (default:
        the saved parameter's, or the CPU with a warning where that is not here)."""
        seg = cls(**params)
        for k, v in fitted.items():
            setattr(seg, k, v)
        seg._void = void
        k_given = None if seg._fixed_k() else seg.n_classes_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = seg._build_model(seg.n_channels_, k_given)
        model.load_state_dict(state_dict)
        seg.model_ = model.eval()
        seg._move_to(_loadable_device(seg.device, device))
        return seg

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


def _seed(random_state):
    """An int seed drawn from a ``random_state`` parameter."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _loadable_device(saved, given):
    """``given``, else ``saved`` where it exists on this machine, else the CPU (with a
    warning), for networks read from a file."""
    if given is not None:
        return given
    try:
        resolve_device(saved)
    except ValueError as exc:
        warnings.warn(f"{exc}: the network read from the file is put on the CPU",
                      UserWarning, stacklevel=3)
        return "cpu"
    return saved


#: Parameters added after files were first written, as those files' estimators had them.
_EARLIER_DEFAULTS = {"normalize": "dataset", "output": None, "class_names": None,
                     "backbone_lr_mult": "auto", "backbone_prefix": None,
                     "freeze_backbone_epochs": 0, "freeze_bn": False,
                     "se_loss_weight": "auto", "adversarial_weight": 0.0}


class _SameAsGiven:
    """Stands in a pickle for a fitted network equal to the ``model`` parameter."""

    def __reduce__(self):
        return "_SAME_AS_GIVEN"


_SAME_AS_GIVEN = _SameAsGiven()


def _is_module(obj):
    """Whether ``obj`` is a torch module instance (without importing torch)."""
    return (not isinstance(obj, type) and hasattr(obj, "state_dict")
            and hasattr(obj, "named_parameters"))


def _same_network(given, fitted):
    """Whether the fitted network is a copy of the module given, weights and buffers
    equal (then pickled once)."""
    if not (_is_module(given) and _is_module(fitted)) or type(given) is not type(fitted):
        return False
    if given is fitted or _is_shell(given) or _is_shell(fitted):
        return False
    torch = require_torch()
    a, b = given.state_dict(), fitted.state_dict()
    return list(a) == list(b) and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype
        and torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def _pretrained_backbone(model):
    """Whether a zoo network stands on a backbone with pretrained weights."""
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "weights", None) is not None


def _first_conv_channels(model):
    """Input channels of the network's first convolution (None without one)."""
    torch = require_torch()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return m.in_channels
    return None
