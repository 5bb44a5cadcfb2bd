"""CRFRNNSegmenter: a unary network followed by a CRFRNN layer, trained end to end.

The staged schedule of Zheng et al. (ICCV 2015): the unary network is trained alone first
(``unary_epochs``; skipped when starting from a fitted ``CNNSegmenter``), then the network
and the CRF layer together at a lower learning rate (``epochs``, ``end_to_end_lr``).
Everything else (crops, augmentation, losses, validation, early stopping, devices, mixed
precision, padding and tiling at prediction, save/load) is ``CNNSegmenter``'s.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..utils._param_validation import Interval
from ._segmenter import CNNSegmenter, _is_shell
from ._torch import require_torch

__all__ = ["CRFRNNSegmenter"]

# The CRFRNN options a user may set through ``crf_params``.
_CRF_KEYS = ("gaussian_sxy", "gaussian_weight", "bilateral_sxy", "bilateral_srgb",
             "bilateral_weight", "compat", "trainable", "engine")


def __getattr__(name):
    # The wrapper class is built on first use (torch is imported only then), also when
    # pickle looks it up by name.
    if name == "_UnaryCRF":
        return _wrapper_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _wrapper_class():
    """The ``_UnaryCRF`` module class, built once."""
    if "_UnaryCRF" in globals():
        return globals()["_UnaryCRF"]
    torch = require_torch()
    nn = torch.nn

    class _UnaryCRF(nn.Module):
        """The unary network's logits refined by a CRFRNN layer that reads the images in
        their own units (the network's standardised input, un-standardised)."""

        def __init__(self, unary, crf, n_channels):
            super().__init__()
            self.unary = unary
            self.crf = crf
            self.use_crf = True
            self.stride = int(getattr(unary, "stride", 1) or 1)
            self.register_buffer("mean", torch.zeros(1, n_channels, 1, 1))
            self.register_buffer("std", torch.ones(1, n_channels, 1, 1))
            self.register_buffer("unit", torch.tensor(255.0))

        def set_stats(self, mean, std, unit):
            c = self.mean.shape[1]
            self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(1, c, 1, 1))
            self.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(1, c, 1, 1))
            self.unit.fill_(float(unit))

        def forward(self, x):
            z = self.unary(x)
            if isinstance(z, dict):
                z = z["out"]
            if z.shape[-2:] != x.shape[-2:]:
                z = nn.functional.interpolate(z, size=x.shape[-2:], mode="bilinear",
                                              align_corners=False)
            if not self.use_crf:
                return z
            images = (x.float() * self.std + self.mean) * self.unit
            with torch.autocast(x.device.type, enabled=False):
                return self.crf(z.float(), images)

    _UnaryCRF.__qualname__ = "_UnaryCRF"
    globals()["_UnaryCRF"] = _UnaryCRF
    return _UnaryCRF


class CRFRNNSegmenter(CNNSegmenter):
    """A CNN with a CRF-as-RNN layer on its logits, trained end to end (Zheng et al. 2015).

    Takes every parameter of ``CNNSegmenter`` (training, augmentation, validation, devices,
    prediction, save/load), plus the ones below. ``lr`` and ``unary_epochs`` are the first
    stage's (the unary network alone), ``epochs`` and ``end_to_end_lr`` the second's (the
    network and the layer together).

    Parameters
    ----------
    model : str, torch.nn.Module subclass or instance, or fitted CNNSegmenter, default="unet"
        The unary network, as ``CNNSegmenter`` takes it; or a fitted ``CNNSegmenter`` to
        start from (its network is copied, its input statistics and ``scale`` kept, and the
        first stage skipped). ``clone`` (and so ``GridSearchCV``) unfits a fitted
        estimator given as a parameter: wrap it in ``sklearn.frozen.FrozenEstimator`` to
        keep it.
    unary_epochs : int, default=30
        Epochs of the first stage (0 skips it).
    epochs : int, default=10
        Epochs of end-to-end training.
    end_to_end_lr : float, optional
        Peak learning rate of the network in the second stage; by default ``lr / 10``.
    crf_lr : float, default=1e-2
        Peak learning rate of the layer's kernel weights and compatibility matrix in the
        second stage (no weight decay on them). They are a handful of numbers of order 1
        to 10 that the network's small learning rate would barely move; 0 freezes them.
    n_iter : int, default=5
        Mean-field iterations of the layer, in training and prediction.
    crf_params : dict, optional
        ``CRFRNN`` options: ``gaussian_sxy``, ``gaussian_weight``, ``bilateral_sxy``,
        ``bilateral_srgb``, ``bilateral_weight``, ``compat``, ``trainable``, ``engine``
        (``CRFRNN``'s defaults otherwise: ``DenseCRF``'s). Spatial standard deviations are
        in pixels of the input images; with ``scale`` they are scaled to the working
        resolution.

    Attributes
    ----------
    model_ : torch.nn.Module
        The unary network (``model_.unary``) and the layer (``model_.crf``, a ``CRFRNN``
        whose learned weights and compatibility are its parameters).
    unary_loss_curve_, unary_validation_scores_ : list of float
        The first stage's curves (empty when it was skipped); ``loss_curve_`` and
        ``validation_scores_`` are the second stage's.
    initial_validation_score_ : float
        Validation mean IoU of the start of the second stage (its epoch 0); with
        ``early_stopping``, ``best_epoch_`` is 0 when no end-to-end epoch beat it and the
        start was kept.
    """

    _parameter_constraints = {
        **CNNSegmenter._parameter_constraints,
        "unary_epochs": [Interval(numbers.Integral, 0, None)],
        "end_to_end_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "crf_lr": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter": [Interval(numbers.Integral, 0, None)],
        "crf_params": [None, dict],
    }

    def __init__(
        self,
        model="unet",
        *,
        unary_epochs=30,
        end_to_end_lr=None,
        crf_lr=1e-2,
        n_iter=5,
        crf_params=None,
        model_options=None,
        epochs=10,
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
        super().__init__(
            model, model_options=model_options, epochs=epochs, batch_size=batch_size,
            lr=lr, lr_schedule=lr_schedule, warmup=warmup, optimizer=optimizer,
            weight_decay=weight_decay, loss=loss, class_weight=class_weight,
            crop_size=crop_size, augment=augment, scale_jitter=scale_jitter,
            color_jitter=color_jitter, scale=scale,
            validation_fraction=validation_fraction, early_stopping=early_stopping,
            n_iter_no_change=n_iter_no_change, max_time=max_time, device=device, amp=amp,
            tta=tta, tile_size=tile_size, unaries=unaries, cv=cv, n_classes=n_classes,
            ignore_index=ignore_index, random_state=random_state, verbose=verbose,
        )
        self.unary_epochs = unary_epochs
        self.end_to_end_lr = end_to_end_lr
        self.crf_lr = crf_lr
        self.n_iter = n_iter
        self.crf_params = crf_params

    def _start(self):
        """The fitted CNNSegmenter to start from (also inside scikit-learn's
        ``FrozenEstimator``), or None."""
        model = self.model
        if type(model).__name__ == "FrozenEstimator" and isinstance(
                getattr(model, "estimator", None), CNNSegmenter):
            model = model.estimator
        if isinstance(model, CNNSegmenter):
            check_is_fitted(model, "model_")
            return model
        return None

    def fit(self, X, y, *, X_val=None, y_val=None):
        start = self._start()
        if start is not None and _is_shell(start.model_):
            raise ValueError(
                "this CRFRNNSegmenter was read from a file, which keeps the network it "
                "started from without its weights: to fit again, pass the fitted "
                "CNNSegmenter itself as model")
        return super().fit(X, y, X_val=X_val, y_val=y_val)

    def _fixed_k(self):
        return self._start() is not None or super()._fixed_k()

    def _model_name(self):
        start = self._start()
        return "crfrnn:" + (start._model_name() if start is not None else
                            super()._model_name())

    def _crf(self, n_classes):
        from ._crfrnn import CRFRNN

        params = dict(self.crf_params or {})
        unknown = sorted(set(params) - set(_CRF_KEYS))
        if unknown:
            raise ValueError(f"crf_params has unknown keys {unknown}; allowed: "
                             f"{list(_CRF_KEYS)}")
        for key, default in (("gaussian_sxy", 3.0), ("bilateral_sxy", 80.0)):
            params[key] = float(params.get(key, default)) * float(self.scale)
        return CRFRNN(n_classes, n_iter=self.n_iter, **params)

    def _build_model(self, in_channels, n_classes):
        start = self._start()
        if start is not None:
            if start.n_channels_ != in_channels:
                raise ValueError(f"the CNNSegmenter to start from was fitted on "
                                 f"{start.n_channels_}-channel images, these have "
                                 f"{in_channels}")
            if float(start.scale) != float(self.scale):
                raise ValueError(f"scale={self.scale} but the CNNSegmenter to start from "
                                 f"works at scale={start.scale}: use the same scale")
            unary = copy.deepcopy(start.model_)
            if _is_shell(unary):
                # Read from a file: the start kept its architecture only (the weights are
                # in this segmenter's own state dict, loaded next).
                unary = unary.to_empty(device="cpu")
            else:
                unary = unary.cpu()
            k = start.n_classes_
        else:
            unary = super()._build_model(in_channels, n_classes)
            k = n_classes if n_classes is not None else self._out_channels(unary,
                                                                            in_channels)
        return _wrapper_class()(unary, self._crf(k), in_channels)

    @staticmethod
    def _out_channels(unary, in_channels):
        """K of a given module instance, from a dry run on a small input."""
        torch = require_torch()
        s = int(getattr(unary, "stride", 1) or 1)
        x = torch.zeros(1, in_channels, 2 * s, 2 * s)
        was = unary.training
        unary.eval()
        try:
            with torch.no_grad():
                out = unary(x)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"the network failed on a {tuple(x.shape)} input: {exc}") \
                from exc
        finally:
            unary.train(was)
        out = out["out"] if isinstance(out, dict) else out
        return int(out.shape[1])

    def _saved_params(self):
        params = super()._saved_params()
        start = self._start()
        if start is not None:
            # The start's network is a copy of this one's unary part before training:
            # store its architecture without its weights, not the weights twice.
            shell = copy.copy(start)
            shell.model_ = copy.deepcopy(start.model_).to("meta")
            params["model"] = shell
        return params

    def _fit_stats(self, images):
        start = self._start()
        if start is not None:
            self.mean_, self.std_ = start.mean_.copy(), start.std_.copy()
            self.input_unit_ = getattr(start, "input_unit_", 255.0)
        else:
            super()._fit_stats(images)
        self.model_.set_stats(self.mean_, self.std_, self.input_unit_)

    def _train(self, xs, ys, weight, val_images, val_labels, gen, **_):
        model = self.model_
        first = 0 if self._start() is not None else self.unary_epochs
        self.unary_loss_curve_, self.unary_validation_scores_ = [], []
        if first:
            model.use_crf = False
            super()._train(xs, ys, weight, val_images, val_labels, gen, epochs=first,
                           lr=self.lr, desc=f"fit {self._model_name()} (unary)")
            self.unary_loss_curve_ = self.loss_curve_
            self.unary_validation_scores_ = self.validation_scores_
        model.use_crf = True
        lr = self.end_to_end_lr if self.end_to_end_lr is not None else self.lr / 10
        if self.epochs:
            # The start (the fitted or first-stage network with the initial layer) is
            # scored as epoch 0: early stopping keeps it when no epoch beats it.
            super()._train(xs, ys, weight, val_images, val_labels, gen, epochs=self.epochs,
                           lr=lr, desc=f"fit {self._model_name()} (end to end)",
                           score_start=True)
        model.eval()

    def _param_groups(self, model, lr):
        crf = model.crf
        if not model.use_crf:
            return super()._param_groups(model, lr)
        own = {id(p) for p in crf.parameters()}
        net = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
        layer = [p for p in crf.parameters() if p.requires_grad]
        groups = [{"params": net}] if net else []
        if layer and self.crf_lr > 0:
            groups.append({"params": layer, "lr": self.crf_lr, "peak_lr": self.crf_lr,
                           "weight_decay": 0.0})
        return groups

    def crf_parameters(self):
        """The layer's kernel weights and compatibility matrix after training.

        Returns
        -------
        params : dict
            ``gaussian_weight``, ``bilateral_weight`` (float) and ``compat`` ((K, K)
            ndarray).
        """
        check_is_fitted(self, "model_")
        crf = self.model_.crf
        return {"gaussian_weight": float(crf.gaussian_weight.detach()),
                "bilateral_weight": float(crf.bilateral_weight.detach()),
                "compat": crf.compat.detach().cpu().numpy().astype(np.float64)}
