"""CRFRNNSegmenter: a unary segmenter followed by a CRFRNN layer, trained end to end.

The staged schedule of Zheng et al. (ICCV 2015): the unary ``CNNSegmenter`` is trained
alone first (its own ``fit``, with its own ``epochs`` and ``lr``; skipped when it is given
fitted), then its network and the CRF layer together at a lower learning rate
(``epochs``, ``end_to_end_lr``), with the unary's training settings (crops,
augmentation, loss, validation, early stopping, devices) updated by ``train_params``.
The segmenter composes the unary rather than re-listing its parameters: tune the first
stage as ``unary__lr``.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..utils._param_validation import Interval
from ._legacy import _CRFRNN_KEYS
from ._segmenter import (
    CNNSegmenter,
    _is_shell,
    _loadable_device,
    _NetworkSegmenter,
    _seed,
)
from ._torch import require_torch

__all__ = ["CRFRNNSegmenter"]

# The CRFRNN options a user may set through ``crf_params``.
_CRF_KEYS = ("gaussian_sxy", "gaussian_weight", "bilateral_sxy", "bilateral_srgb",
             "bilateral_weight", "compat", "trainable", "engine")
# CNNSegmenter parameters that describe the network and its data, not how the end-to-end
# stage trains: they belong to the unary, not to ``train_params``.
_NOT_TRAINING = ("model", "model_options", "n_classes")
# The fitted attributes of the unary's input and output that the segmenter shares.
_INPUT_STATE = ("mean_", "std_", "input_unit_", "input_range_", "n_channels_", "stride_",
                "n_classes_", "classes_")


def __getattr__(name):
    # Files pickled before the network moved to ``_crfrnn.UnaryCRF`` name it here.
    if name == "_UnaryCRF":
        from ._crfrnn import UnaryCRF

        return UnaryCRF
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _cnn_params():
    return [p for p in inspect.signature(CNNSegmenter.__init__).parameters if p != "self"]


def _unwrap(unary):
    """The ``CNNSegmenter`` inside scikit-learn's ``FrozenEstimator``, or ``unary``."""
    if type(unary).__name__ == "FrozenEstimator" and isinstance(
            getattr(unary, "estimator", None), CNNSegmenter):
        return unary.estimator
    return unary


def _shallow(est):
    """A copy of ``est`` sharing its attribute values (``copy.copy`` would pickle a CUDA
    network to the CPU and back)."""
    out = object.__new__(type(est))
    out.__dict__.update(est.__dict__)
    return out


def _same(a, b):
    """Whether two parameter values are equal (arrays and odd types: not equal)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _is_fitted(est):
    return isinstance(est, CNNSegmenter) and hasattr(est, "model_")


def _from_earlier_keywords(unary, train_params, kwargs):
    """``(unary, train_params)`` from the keywords of the earlier CRFRNNSegmenter, which
    took every CNNSegmenter parameter itself (``model``, ``unary_epochs``, ``lr``, ...),
    with the meaning they had there."""
    allowed = {"unary_epochs", *_cnn_params()}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"CRFRNNSegmenter got unexpected keyword arguments {unknown}")
    kwargs = dict(kwargs)
    if "model" in kwargs:
        unary = kwargs.pop("model")
    warnings.warn(
        f"CRFRNNSegmenter's keywords {sorted(kwargs)} are deprecated and will be removed: "
        "pass the unary network's settings to its CNNSegmenter, "
        "CRFRNNSegmenter(unary=CNNSegmenter(model, epochs=..., lr=...), ...), and those of "
        "the end-to-end stage that differ in train_params={...}", FutureWarning,
        stacklevel=3)
    start = _unwrap(unary)
    if _is_fitted(start):
        # Starting from a fitted network the first stage was skipped and the keywords
        # were the end-to-end stage's settings, CNNSegmenter's defaults where not given.
        kwargs.pop("unary_epochs", None)
        for key in _NOT_TRAINING:  # the start's network decided these
            value = kwargs.pop(key, None)
            if key == "n_classes" and value not in (None, start.n_classes_):
                raise ValueError(f"n_classes={value} but the fitted CNNSegmenter to start "
                                 f"from has {start.n_classes_} classes")
        defaults = CNNSegmenter().get_params(deep=False)
        settings = {k: v for k, v in defaults.items()
                    if k not in (*_NOT_TRAINING, "epochs", "scale")}
        settings.update(train_params or {})
        settings.update(kwargs)
        own = start.get_params(deep=False)
        return unary, {k: v for k, v in settings.items() if not _same(own.get(k), v)}
    if "unary_epochs" in kwargs:
        kwargs["epochs"] = kwargs.pop("unary_epochs")
    if isinstance(unary, CNNSegmenter):
        from sklearn.base import clone

        return clone(unary).set_params(**kwargs), train_params
    return CNNSegmenter(unary, **kwargs), train_params


class CRFRNNSegmenter(_NetworkSegmenter):
    """A CNN with a CRF-as-RNN layer on its logits, trained end to end (Zheng et al. 2015).

    Training has two stages. The first is the unary segmenter's own ``fit`` (its
    ``epochs``, ``lr`` and every other setting; skipped when ``unary`` is fitted). The
    second trains its network and a ``CRFRNN`` layer together for ``epochs`` at
    ``end_to_end_lr``, with the unary's settings (batch size, crops, augmentation, loss,
    class weights, optimiser, schedule, validation and early stopping, device, random
    state), updated by ``train_params``. Prediction (scale, padding, tiling, TTA, batch
    size, ``unaries``, ``cv``) follows the same settings.

    The keywords of the earlier signature, which re-listed every ``CNNSegmenter``
    parameter (``CRFRNNSegmenter("unet", unary_epochs=30, lr=1e-3, batch_size=8, ...)``),
    still work with a ``FutureWarning``: they go to the unary (or, with a fitted unary, to
    ``train_params``).

    Parameters
    ----------
    unary : CNNSegmenter, str, torch.nn.Module subclass or instance, default="unet"
        The unary segmenter: a ``CNNSegmenter`` (trained in the first stage; tune it as
        ``unary__lr``), a fitted one to start from (its network is copied, its input
        statistics and ``scale`` kept; wrap it in ``sklearn.frozen.FrozenEstimator`` so
        that ``clone`` and ``GridSearchCV`` keep it fitted), or a network as
        ``CNNSegmenter`` takes it (short for ``CNNSegmenter(unary)``).
    epochs : int, default=10
        Epochs of end-to-end training (0: none, the layer keeps its initial parameters).
    end_to_end_lr : float, optional
        Peak learning rate of the network in the second stage; by default the unary's
        ``lr / 10``.
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
    train_params : dict, optional
        ``CNNSegmenter`` parameters of the second stage and of prediction that differ from
        the unary's (``{"batch_size": 4, "early_stopping": True, "device": "cuda"}``);
        not ``model``, ``model_options`` or ``n_classes``, and ``scale`` only at the
        unary's value.

    Attributes
    ----------
    model_ : torch.nn.Module
        The unary network (``model_.unary``) and the layer (``model_.crf``, a ``CRFRNN``
        whose learned weights and compatibility are its parameters).
    unary_ : CNNSegmenter
        The fitted unary segmenter with the second stage's settings; its network is
        ``model_.unary``, trained end to end (``unary_.predict`` gives its labels without
        the layer).
    n_classes_, classes_, n_channels_, mean_, std_, stride_, device_, class_weight_
        As ``CNNSegmenter``'s.
    loss_curve_, validation_scores_ : list of float
        The second stage's curves.
    unary_loss_curve_, unary_validation_scores_ : list of float
        The first stage's (empty when it was skipped).
    initial_validation_score_ : float
        Validation mean IoU of the start of the second stage (its epoch 0); with
        ``early_stopping``, ``best_epoch_`` is 0 when no end-to-end epoch beat it and the
        start was kept.
    best_validation_score_, best_epoch_, n_epochs_, fit_time_
        As ``CNNSegmenter``'s, of the second stage.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.integers(0, 255, (32, 40, 3), dtype=np.uint8) for _ in range(4)]
    >>> y = [(x[..., 0] > 127).astype(np.uint8) for x in X]
    >>> unary = CNNSegmenter("unet", model_options={"widths": (8, 16)}, epochs=1,
    ...                      batch_size=2, device="cpu", random_state=0)
    >>> seg = CRFRNNSegmenter(unary, epochs=1, n_iter=2).fit(X, y)
    >>> seg.predict_proba(X[:1])[0].shape
    (32, 40, 2)
    """

    _parameter_constraints = {
        "unary": "no_validation",
        "epochs": [Interval(numbers.Integral, 0, None)],
        "end_to_end_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "crf_lr": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter": [Interval(numbers.Integral, 0, None)],
        "crf_params": [None, dict],
        "train_params": [None, dict],
    }

    def __init__(self, unary="unet", *, epochs=10, end_to_end_lr=None, crf_lr=1e-2,
                 n_iter=5, crf_params=None, train_params=None, **kwargs):
        if kwargs:
            unary, train_params = _from_earlier_keywords(unary, train_params, kwargs)
        self.unary = unary
        self.epochs = epochs
        self.end_to_end_lr = end_to_end_lr
        self.crf_lr = crf_lr
        self.n_iter = n_iter
        self.crf_params = crf_params
        self.train_params = train_params

    # ------------------------------------------------------------------ the unary
    def _start(self):
        """The fitted CNNSegmenter to start from (also inside ``FrozenEstimator``), or
        None."""
        unary = _unwrap(self.unary)
        return unary if _is_fitted(unary) else None

    def _unary_estimator(self):
        """The unary as an (unfitted) ``CNNSegmenter`` of its own, never the user's."""
        from sklearn.base import clone

        unary = _unwrap(self.unary)
        if isinstance(unary, CNNSegmenter):
            return clone(unary)
        return CNNSegmenter(unary)

    def _output(self):
        return None  # model_ is a UnaryCRF: it unwraps its unary network's output itself

    def _settings(self):
        """The CNNSegmenter whose parameters say how to train the second stage and how
        to predict: ``unary_`` once fitted, else the unary with ``train_params``."""
        if hasattr(self, "unary_"):
            return self.unary_
        start = self._start()
        return self._with_train_params(start if start is not None else
                                       self._unary_estimator())

    def _with_train_params(self, est):
        """A shallow copy of ``est`` (fitted state shared) with ``train_params`` set."""
        params = dict(self.train_params or {})
        bad = sorted(set(params) & set(_NOT_TRAINING))
        if bad:
            raise ValueError(f"train_params may not set {bad}: they describe the unary "
                             "network; set them on the unary CNNSegmenter")
        if "epochs" in params:
            raise ValueError("train_params may not set 'epochs': the end-to-end stage's "
                             "epochs are CRFRNNSegmenter's epochs parameter")
        unknown = sorted(set(params) - set(_cnn_params()))
        if unknown:
            raise ValueError(f"train_params has unknown keys {unknown}; allowed: the "
                             "parameters of CNNSegmenter")
        if "scale" in params and params["scale"] != est._scale():
            raise ValueError(f"scale={params['scale']} but the unary CNNSegmenter works "
                             f"at scale={est._scale()}: use the same scale")
        return _shallow(est).set_params(**params)

    def _fixed_k(self):
        return self._start() is not None or self._settings()._fixed_k()

    def _model_name(self):
        return "crfrnn:" + self._settings()._model_name()

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Train the unary segmenter (unless it is fitted), then it and the layer end to
        end.

        Parameters
        ----------
        X : sequence of (H, W) or (H, W, C) array_like, or (N, H, W[, C]) ndarray
            Training images; sizes may differ.
        y : sequence of (H, W) array_like of int
            Their label maps; ``ignore_index`` marks void.
        X_val, y_val : sequences of images and label maps, optional
            Validation images for both stages (see ``CNNSegmenter.fit``).

        Returns
        -------
        self
        """
        self._validate_params()
        require_torch()  # a clear ImportError first
        start = self._start()
        if start is not None and _is_shell(start.model_):
            raise ValueError(
                "this CRFRNNSegmenter was read from a file, which keeps the network it "
                "started from without its weights: to fit again, pass the fitted "
                "CNNSegmenter itself as unary")
        self.unary_loss_curve_, self.unary_validation_scores_ = [], []
        if start is None:
            first = self._unary_estimator()
            if not isinstance(first.random_state, numbers.Integral):
                # One seed for both stages, so that both hold out the same images.
                first.set_params(random_state=_seed(first.random_state))
            start = first.fit(X, y, X_val=X_val, y_val=y_val)
            self.unary_loss_curve_ = start.loss_curve_
            self.unary_validation_scores_ = start.validation_scores_
        unary = self._with_train_params(start)
        unary._validate_params()  # the train_params values
        images, labels = unary._check_images_labels(X, y, n_classes=start.n_classes_)
        val = unary._check_validation(X_val, y_val)
        c = unary._check_channels(images, val)
        if c != start.n_channels_:
            raise ValueError(f"the unary CNNSegmenter was fitted on {start.n_channels_}-"
                             f"channel images, these have {c}")
        from ._crfrnn import UnaryCRF

        # the seed the first stage drew: the same validation split
        with unary._seeded_fit() as gen:
            net = copy.deepcopy(start.model_).cpu()
            model = UnaryCRF(net, self._crf(start.n_classes_, unary._scale()), c,
                             output=start.output, stride=start.stride_)
            model.set_stats(start.mean_, start.std_, getattr(start, "input_unit_", 255.0))
            self._adopt(unary, model.to(unary.device_))
            xs = unary._prepare(images)
            unary._check_size(xs)
            data = unary._training_data(xs, images, labels, val, gen)
            self.class_weight_ = data["weight"]
            lr = self.end_to_end_lr if self.end_to_end_lr is not None else unary.lr / 10
            history = unary._run_training(
                self.model_, data, gen, epochs=self.epochs, lr=lr, predictor=self,
                param_groups=self._param_groups(self.model_), score_start=self.epochs > 0,
                desc=f"fit {self._model_name()} (end to end)")
        self._record(history)
        return self

    def _adopt(self, unary, model):
        """Take ``model`` (a ``UnaryCRF``) as the fitted network, with ``unary`` (a fitted
        CNNSegmenter) as ``unary_`` sharing its unary part and input statistics."""
        unary.model_ = model.unary
        self.unary_ = unary
        self.model_ = model
        for name in (*_INPUT_STATE, "device_", "_use_amp", "_void"):
            if hasattr(unary, name):
                setattr(self, name, getattr(unary, name))
        self.stride_ = model.stride

    def _crf(self, n_classes, scale):
        from ._crfrnn import CRFRNN

        params = dict(self.crf_params or {})
        unknown = sorted(set(params) - set(_CRF_KEYS))
        if unknown:
            raise ValueError(f"crf_params has unknown keys {unknown}; allowed: "
                             f"{list(_CRF_KEYS)}")
        for key, default in (("gaussian_sxy", 3.0), ("bilateral_sxy", 80.0)):
            params[key] = float(params.get(key, default)) * float(scale)
        return CRFRNN(n_classes, n_iter=self.n_iter, **params)

    def _param_groups(self, model):
        """The network's parameters, and the layer's at ``crf_lr`` without weight decay
        (frozen at 0)."""
        own = {id(p) for p in model.crf.parameters()}
        net = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
        layer = [p for p in model.crf.parameters() if p.requires_grad]
        groups = [{"params": net}] if net else []
        if layer and self.crf_lr > 0:
            groups.append({"params": layer, "lr": self.crf_lr, "peak_lr": self.crf_lr,
                           "weight_decay": 0.0})
        return groups

    def _clone_for_fold(self, k):
        from sklearn.base import clone

        fold = clone(self)
        if fold._start() is None:
            fold.unary = fold._unary_estimator().set_params(n_classes=k)
        fold.train_params = {**(self.train_params or {}), "cv": None, "verbose": 0}
        return fold

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

    # ---------------------------------------------------------------- persistence
    @classmethod
    def _restore(cls, params, fitted, state_dict, void, device=None):
        """A fitted segmenter from the earlier file format's parameters (the earlier
        keywords), fitted attributes and ``UnaryCRF`` weights."""
        from ._crfrnn import UnaryCRF

        with warnings.catch_warnings():  # the file's keywords are the earlier ones
            warnings.simplefilter("ignore", FutureWarning)
            seg = cls(**params)
        start = seg._start()
        unary = seg._settings()
        for name in _INPUT_STATE:
            if name in fitted:
                setattr(unary, name, fitted[name])
        k, c = int(fitted["n_classes_"]), int(fitted["n_channels_"])
        if start is not None:  # the file keeps the start as an architecture
            net = copy.deepcopy(start.model_).to_empty(device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = unary._build_model(c, None if unary._fixed_k() else k)
        model = UnaryCRF(net, seg._crf(k, unary._scale()), c)
        model.load_state_dict(state_dict)
        for name, value in fitted.items():
            setattr(seg, name, value)
        unary._void = void
        seg._adopt(unary, model.eval())
        seg._move_to(_loadable_device(unary.device, device))
        return seg

    def set_params(self, **params):
        """Set parameters; the earlier keywords (``lr``, ``batch_size``, ...) still work,
        with a ``FutureWarning``, as in the constructor. A fitted segmenter predicts with
        the ``train_params`` set here (``tta``, ``tile_size``, ``batch_size``, ...)."""
        own = self.get_params(deep=False)
        earlier = {k: params.pop(k) for k in list(params)
                   if k not in own and "__" not in k}
        if earlier:
            unary, train_params = _from_earlier_keywords(
                params.pop("unary", self.unary), params.pop("train_params", self.train_params),
                earlier)
            params.update(unary=unary, train_params=train_params)
        super().set_params(**params)
        if "train_params" in params and hasattr(self, "unary_"):
            self.unary_ = self._with_train_params(self.unary_)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        unary = _unwrap(self.unary)
        seed = (self.train_params or {}).get(
            "random_state", getattr(unary, "random_state", None))
        tags.non_deterministic = seed is None
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:  # the whole network first, so that a file's header names it
            state = {"model_": state.pop("model_"), **state}
        if "unary_" in state:  # its network is model_.unary: pickled once, linked back
            unary = _shallow(state["unary_"])
            unary.__dict__.pop("model_", None)
            unary.__dict__.pop("device_", None)
            state["unary_"] = unary
        start = self._start()
        if "model_" in state and start is not None and not _is_shell(start.model_):
            # The fitted start is needed only to fit again; its trained copy is
            # model_.unary. Keep its architecture without weights, not the weights twice.
            shell = _shallow(start)
            shell.model_ = copy.deepcopy(start.model_).to("meta")
            if start is not self.unary:  # inside a FrozenEstimator
                frozen = _shallow(self.unary)
                frozen.estimator = shell
                shell = frozen
            state["unary"] = shell
        return state

    def __setstate__(self, state):
        if "unary" not in state and "model" in state:
            state = _from_earlier_state(state)
        super().__setstate__(state)
        unary = getattr(self, "unary_", None)
        if unary is not None and hasattr(self, "model_"):
            unary.model_ = self.model_.unary
            unary.device_, unary._use_amp = self.device_, self._use_amp


def _from_earlier_state(state):
    """The state of a CRFRNNSegmenter pickled before it composed its unary (it was a
    CNNSegmenter subclass holding every parameter itself)."""
    names = {*_CRFRNN_KEYS, *_cnn_params()}
    state = dict(state)
    params = {k: state.pop(k) for k in list(state) if k in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        seg = CRFRNNSegmenter(**params)
    state.update(vars(seg))
    if "model_" in state:
        unary = seg._settings()
        for name in (*_INPUT_STATE, "_void"):
            if name in state:
                setattr(unary, name, state[name])
        unary.model_ = state["model_"].unary
        state["unary_"] = unary
    return state
