"""``DenseCRF``: the fully connected CRF of Krähenbühl & Koltun (2011) as a refiner."""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import NotFittedError

from ..base import BaseRefiner
from ..utils._memory import check_memory
from ..utils._param_validation import Interval, StrOptions
from ..utils._scores import log_proba, softmax
from ..utils._validation import check_image_and_scores, check_kind, check_label_maps
from ._kernels import DENSE_CRF_DEFAULTS, Kernel, builtin_kernels, compat_matrix, kernel_features
from ._tuning import Tuning

# A pairwise weight: beyond 1e6 the labels are constant anyway, and messages of a larger
# one overflow float32 into NaN.
_WEIGHT = Interval(numbers.Real, 0, 1e6)

__all__ = ["DenseCRF", "Kernel", "MeanFieldTrace"]


class _OutOfTime(Exception):
    """Raised inside ``fit``'s objective when ``max_time`` has passed."""


@dataclass
class MeanFieldTrace:
    """What a mean-field run went through (``DenseCRF.refine(..., return_trace=True)``).

    Attributes
    ----------
    energy : (n_iter + 1,) ndarray of float64
        Mean-field free energy ``F(Q) = E_Q[E] - H(Q)`` (``KL(Q || P)`` up to the
        constant ``log Z``) of the initial ``Q`` (the unary's softmax) and after each
        iteration, summed over pixels.
    seconds : (n_iter,) ndarray of float64
        Time of each iteration (filtering and update; the energy bookkeeping excluded).
    changed : (n_iter,) ndarray of float64
        Fraction of pixels whose most probable label changed in each iteration.
    build_seconds : float
        Time spent building the lattices (once per image and kernel).
    """

    energy: np.ndarray
    seconds: np.ndarray
    changed: np.ndarray
    build_seconds: float


class DenseCRF(BaseRefiner):
    """Fully connected CRF with Gaussian and bilateral kernels, mean-field inference.

    The model of Krähenbühl & Koltun (NIPS 2011), computed like pydensecrf computes it
    (same permutohedral lattice, same symmetric kernel normalisation, same parallel mean
    field), so that the same parameters give the same answers, in numba, with no compiled
    extension, on arrays of any layout and dtype; with 3-D volumes, extra kernels on any
    features, energy traces, and the kernel weights and label compatibility learnable by
    ``fit`` (gradient descent through the unrolled mean field, Krähenbühl & Koltun, ICML
    2013).

    The energy of a labelling ``x`` is ``sum_i U_i(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)``
    with ``k = gaussian_weight * exp(-|p_i - p_j|^2 / 2 gaussian_sxy^2) + bilateral_weight *
    exp(-|p_i - p_j|^2 / 2 bilateral_sxy^2 - |I_i - I_j|^2 / 2 bilateral_srgb^2)`` (+ the
    ``extra_kernels``; each kernel symmetrically normalised), ``p`` pixel positions, ``I``
    pixel values (any number of channels: gray, RGB, or other per-pixel features).

    Parameters
    ----------
    n_iter : int, default=10
        Mean-field iterations (0 returns the unary's softmax).
    gaussian_sxy : float, default=3.0
        Spatial standard deviation of the appearance-free (smoothness) kernel, in pixels.
    gaussian_weight : float, default=3.0
        Its weight (pydensecrf's ``compat`` of ``addPairwiseGaussian``); 0 drops it.
    bilateral_sxy : float, default=80.0
        Spatial standard deviation of the bilateral (appearance) kernel, in pixels.
    bilateral_srgb : float, default=13.0
        Its standard deviation in pixel values (0-255 units for 8-bit images). A float
        image with all values in [0, 1] meets a deviation above 2 with a warning (it
        would see almost no colour difference): pass it times 255.
    bilateral_weight : float, default=10.0
        Its weight; 0 drops it.
    compat : "potts", "learn", (K,) array_like or (K, K) array_like, default="potts"
        Label compatibility ``mu``. ``"potts"``: ``mu(l, l') = [l != l']``. A vector ``c``:
        per-class Potts weights (``mu = -diag(c)``, the same up to a per-pixel constant as
        Potts scaled by ``c_l``). A matrix: ``mu`` itself, a penalty for labelling similar
        pixels ``l`` and ``l'`` (pydensecrf's ``MatrixCompatibility`` convention), used
        through its symmetric part. ``"learn"``: a full symmetric matrix learned by
        ``fit``, starting from Potts.
    extra_kernels : list of Kernel, optional
        More Gaussian kernels, on the image or on any per-pixel features (depth, a
        network's embeddings, another colour space): see ``Kernel``.
    spacing : sequence of float, optional
        Physical size of a pixel along each axis (``(dy, dx)``, or ``(dz, dy, dx)`` for a
        volume); the spatial standard deviations are then in those units. Default: 1 on
        every axis.
    backend : {"numba", "torch", "pydensecrf", "exact"}, default="numba"
        ``"numba"``: the permutohedral lattice, O(N). ``"torch"``: the same lattice and
        mean field in torch tensor operations, on ``device`` (a GPU where there is one:
        the fastest way to refine a large batch of logits; needs the ``deep`` extra).
        ``"pydensecrf"``: the reference implementation (needs the ``peers`` extra; 2-D RGB
        uint8 images and the two built-in kernels only). ``"exact"``: explicit O(N^2)
        Gaussian kernels, for tiny images and tests. ``fit`` learns with the numba
        lattice for ``"torch"``.
    device : str or torch.device, default="auto"
        Where ``backend="torch"`` runs: ``"auto"`` is CUDA where available, else the CPU.
        Ignored by the other backends.
    learn : {"weights", "grid", "none"}, default="weights"
        What ``fit(U, y)`` learns. ``"weights"``: the weights of the kernels (of those
        with a non-zero weight; a kernel with weight 0 stays dropped) and, with
        ``compat="learn"``, the compatibility matrix, by minimising the log loss.
        ``"grid"``: the Gaussian and bilateral weights that give the best mean IoU on
        ``U``, searched over ``weight_grid`` (the bilateral weight first, at the given
        Gaussian weight, then the Gaussian weight at the best bilateral one), as
        ``GridCRF.fit`` does; it suits unaries whose probabilities are poorly calibrated
        (random forests), where the log loss picks cautious weights. ``"none"`` keeps the
        parameters as given.
    weight_grid : sequence of float, optional
        Candidate weights of each of the two kernels for ``learn="grid"``; by default
        ``(0, 0.5, 1, 2, 3, 5, 10)`` (the given weights are tried too).
    max_iter : int, default=30
        L-BFGS iterations of ``fit``.
    alpha : float, default=1e-4
        L2 penalty of ``fit`` on the distance of the learned parameters from their
        starting values (the given weights, Potts).
    class_weight : None, "balanced" or (K,) array_like, default=None
        Weight of each class's pixels in the log loss ``fit`` minimises. ``"balanced"``
        weighs classes inversely to their pixel counts, which favours mean IoU.
    max_time : float, optional
        Seconds ``fit`` may spend learning: L-BFGS then stops at the best parameters it
        has evaluated, and the grid search scores no more candidates (the first is always
        scored) and keeps the best of those scored; either warns.
    verbose : int, default=0
        ``fit`` prints a line per L-BFGS iteration (the loss) or per candidate scored
        (its mean IoU) on stderr, with the seconds taken.
    n_jobs : int, optional
        Images refined (and, in ``fit``, differentiated) in parallel (joblib threads; the
        numba kernels release the GIL and are themselves parallel).

    Attributes
    ----------
    n_classes_ : int
        K, set by ``fit``.
    gaussian_weight_, bilateral_weight_ : float
        Learned kernel weights (``fit`` with ``learn="weights"`` or ``"grid"`` and
        labels); ``refine`` and ``predict_proba`` use them instead of the given ones.
    cv_scores_ : dict
        With ``learn="grid"``: mean IoU on ``U`` of every ``(gaussian_weight,
        bilateral_weight)`` tried.
    extra_weights_ : (n_extra,) ndarray of float64
        Learned weights of the ``extra_kernels``.
    compat_ : (K, K) ndarray of float64
        The compatibility used after fitting (learned with ``compat="learn"``, else the
        given one as a matrix; Potts as ``1 - I``).
    loss_curve_ : list of float
        ``fit``'s objective (mean log loss of the final marginals plus the penalty) at the
        start and after each L-BFGS iteration.

    Notes
    -----
    Mean field here updates all pixels at once (parallel updates, as pydensecrf and
    CRF-as-RNN do). That is guaranteed to lower the free energy only when the pairwise
    term is concave: positive semi-definite kernels with a negative semi-definite
    compatibility, as with Potts (``mu = -I`` up to a constant) and exact Gaussian kernels.
    The lattice kernels are only nearly symmetric and positive semi-definite, and a learned
    or given matrix need not be negative semi-definite, so the energy from
    ``return_trace=True`` can rise a little there; with Potts it falls in practice.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.crf import DenseCRF
    >>> rng = np.random.default_rng(0)
    >>> image = np.zeros((40, 60, 3), np.uint8); image[:, 30:] = 200
    >>> logits = rng.normal(size=(40, 60, 2)).astype(np.float32)
    >>> logits[:, :30, 0] += 1.0; logits[:, 30:, 1] += 1.0   # noisy, right on average
    >>> proba = DenseCRF(n_iter=5).refine(image, logits, kind="logits")
    >>> proba.shape, bool(np.allclose(proba.sum(-1), 1, atol=1e-5))
    ((40, 60, 2), True)
    >>> labels = proba.argmax(-1)
    >>> int(labels[:, :30].sum()), int((1 - labels[:, 30:]).sum())
    (0, 0)
    """

    _parameter_constraints = {
        "n_iter": [Interval(numbers.Integral, 0, None)],
        "gaussian_sxy": [Interval(numbers.Real, 0, None, closed="neither")],
        "gaussian_weight": [_WEIGHT],
        "bilateral_sxy": [Interval(numbers.Real, 0, None, closed="neither")],
        "bilateral_srgb": [Interval(numbers.Real, 0, None, closed="neither")],
        "bilateral_weight": [_WEIGHT],
        "compat": [StrOptions({"potts", "learn"}), "array-like"],
        "extra_kernels": [None, list, tuple],
        "spacing": [None, "array-like"],
        "backend": [StrOptions({"numba", "torch", "pydensecrf", "exact"})],
        "device": "no_validation",
        "learn": [StrOptions({"weights", "grid", "none"})],
        "weight_grid": [None, "array-like"],
        "max_iter": [Interval(numbers.Integral, 0, None)],
        "alpha": [Interval(numbers.Real, 0, None)],
        "class_weight": [None, StrOptions({"balanced"}), "array-like"],
        "max_time": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
        "n_jobs": [None, numbers.Integral],
    }

    def __init__(
        self,
        n_iter=10,
        gaussian_sxy=DENSE_CRF_DEFAULTS["gaussian_sxy"],
        gaussian_weight=DENSE_CRF_DEFAULTS["gaussian_weight"],
        bilateral_sxy=DENSE_CRF_DEFAULTS["bilateral_sxy"],
        bilateral_srgb=DENSE_CRF_DEFAULTS["bilateral_srgb"],
        bilateral_weight=DENSE_CRF_DEFAULTS["bilateral_weight"],
        compat="potts",
        extra_kernels=None,
        spacing=None,
        backend="numba",
        device="auto",
        learn="weights",
        weight_grid=None,
        max_iter=30,
        alpha=1e-4,
        class_weight=None,
        max_time=None,
        verbose=0,
        n_jobs=None,
    ):
        self.n_iter = n_iter
        self.gaussian_sxy = gaussian_sxy
        self.gaussian_weight = gaussian_weight
        self.bilateral_sxy = bilateral_sxy
        self.bilateral_srgb = bilateral_srgb
        self.bilateral_weight = bilateral_weight
        self.compat = compat
        self.extra_kernels = extra_kernels
        self.spacing = spacing
        self.backend = backend
        self.device = device
        self.learn = learn
        self.weight_grid = weight_grid
        self.max_iter = max_iter
        self.alpha = alpha
        self.class_weight = class_weight
        self.max_time = max_time
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _validate_params(self):
        super()._validate_params()
        for i, kernel in enumerate(self.extra_kernels or ()):
            if not isinstance(kernel, Kernel):
                raise TypeError(
                    f"extra_kernels[{i}] must be a hybridseg.crf.Kernel, got "
                    f"{type(kernel).__name__}"
                )
            kernel._check(f"extra_kernels[{i}]")

    # ------------------------------------------------------------------ kernels
    def _kernel_specs(self):
        """Every kernel as a ``Kernel`` (the built-in two first), with the given weights."""
        specs = builtin_kernels(self.gaussian_sxy, self.gaussian_weight, self.bilateral_sxy,
                                self.bilateral_srgb, self.bilateral_weight)
        return specs + list(self.extra_kernels or ())

    def _check_memory(self, spatial, k):
        """The memory plan of one ``refine`` on the CPU, before anything is allocated:
        ``python benchmarks/bench_dense_crf_memory.py`` (random colour images of
        1000x1000 and 1500x1500, K = 5 and 21) fits the peak to about 35 bytes per pixel
        and class (the mean field's ``(N, K)`` arrays) and 235 per pixel (the lattices);
        the plan counts 36 and 240. The exact backend holds an ``(N, N)`` kernel."""
        n = int(np.prod(spatial))
        size = "x".join(str(d) for d in spatial)
        if self.backend == "exact":
            need, how = 8 * n * n, "use backend='numba' (the exact backend is for tiny images)"
        else:
            need = n * (36 * k + 240)
            how = ("refine it tile by tile with hybridseg.crf.refine_tiles (memory set by the "
                   "tile, not the image), or with fewer classes")
        check_memory(need, f"a dense CRF on a {size} image with {k} classes", how)

    def _weights(self):
        """The kernel weights in use: learned ones once fitted, else the given ones."""
        given = np.array([spec.weight for spec in self._kernel_specs()], dtype=np.float64)
        if hasattr(self, "kernel_weights_"):
            if len(self.kernel_weights_) != len(given):
                raise ValueError(
                    f"fit learned {len(self.kernel_weights_)} kernel weights but there are "
                    f"now {len(given)} kernels (extra_kernels changed): fit again"
                )
            return self.kernel_weights_
        return given

    @staticmethod
    def _kernel_name(index):
        return ("gaussian", "bilateral")[index] if index < 2 else f"extra_kernels[{index - 2}]"

    def _spec_features(self, index, spec, image, spatial_shape, features, device=None,
                       origin=None):
        """``(N, d)`` float32 features of one kernel on one image (torch on ``device``)."""
        return kernel_features(spec, image, spatial_shape,
                               spacing=self._spacing(len(spatial_shape)), features=features,
                               name=self._kernel_name(index), device=device, origin=origin)

    def _spacing(self, ndim):
        if self.spacing is None:
            return None
        sp = np.asarray(self.spacing, dtype=np.float64).ravel()
        if sp.size != ndim or not (np.isfinite(sp) & (sp > 0)).all():
            raise ValueError(
                f"spacing must hold {ndim} positive numbers (one per spatial axis of the "
                f"input), got {self.spacing!r}"
            )
        return tuple(sp)

    def _build_kernels(self, image, spatial_shape, features, weights, origin=None):
        """The unit-weight kernels with non-zero weight, built on this image (at
        ``origin`` in a larger one): ``[(index, kernel)]``."""
        if self.backend == "exact":
            from ._exact import ExactKernel as kernel_class

            n = int(np.prod(spatial_shape))
            if n > 4096:
                raise ValueError(
                    f"backend='exact' builds an N x N kernel: {n} pixels is too many (at "
                    "most 4096); use backend='numba'"
                )
        else:
            from ._meanfield import LatticeKernel as kernel_class
            from ._meanfield import position_kernel
        out = []
        for index, spec in enumerate(self._kernel_specs()):
            if weights[index] <= 0:
                continue
            if (spec.features is None and spec.sxy is not None and self.backend != "exact"
                    and origin is None):
                # positions only: the same for every image of this shape (kept)
                out.append((index, position_kernel(spatial_shape, spec.sxy,
                                                   self._spacing(len(spatial_shape)))))
                continue
            f = self._spec_features(index, spec, image, spatial_shape, features,
                                    origin=origin)
            out.append((index, kernel_class(f)))
        return out

    def _mu(self, n_classes):
        """None for Potts (the fast path); else the symmetric ``(K, K)`` matrix in use."""
        if isinstance(self.compat, str) and self.compat == "learn":
            if not hasattr(self, "compat_"):
                raise NotFittedError(
                    "compat='learn' needs fit(U, y) before refine or predict: the "
                    "compatibility matrix is learned from labelled images"
                )
            if self.compat_.shape[0] != n_classes:
                raise ValueError(
                    f"the scores have {n_classes} classes but compat_ was learned for "
                    f"{self.compat_.shape[0]}"
                )
            return self.compat_
        return compat_matrix(self.compat, n_classes)

    # ------------------------------------------------------------------ inference
    def refine(self, image, scores, *, kind="proba", features=None, return_trace=False,
               origin=None):
        """Refine one image's (or volume's) class scores.

        Unfitted, the estimator uses the parameters as given; fitted with labels, the
        learned weights and compatibility.

        Parameters
        ----------
        image : (H, W), (H, W, C), (D, H, W) or (D, H, W, C) array_like
            The image (a volume when ``scores`` are 4-D) the bilateral kernel reads, in
            the units of ``bilateral_srgb`` (0-255 for 8-bit images); any dtype and
            memory layout.
        scores : (H, W, K) or (D, H, W, K) array_like of float
            Class scores, class axis last.
        kind : {"proba", "logits"}, default="proba"
            Probabilities (unary ``-log p``, zeros floored at 1e-30) or logits (unary
            ``-logit``).
        features : mapping of str to array_like, optional
            Named per-pixel features that ``extra_kernels`` read, each ``(H, W)`` or
            ``(H, W, F)`` (``(D, H, W[, F])`` for a volume).
        return_trace : bool, default=False
            Also return a ``MeanFieldTrace`` (energy and time per iteration).
        origin : tuple of int, optional
            Index of the image's first pixel in a larger image it is a tile of
            (``refine_tiles`` passes it): the kernels' positions are counted from there,
            so that the lattice (backend ``"numba"``) is the whole image's.

        Returns
        -------
        proba : (H, W, K) or (D, H, W, K) ndarray of float32
            Mean-field marginals after ``n_iter`` iterations.
        trace : MeanFieldTrace
            Only with ``return_trace=True``.
        """
        self._validate_params()
        check_kind(kind)
        if features is not None and not isinstance(features, Mapping):
            raise TypeError(
                f"features must be a mapping of names to arrays, got {type(features).__name__}"
            )
        image, s = check_image_and_scores(image, scores, kind=kind)
        spatial = s.shape[:-1]
        k = s.shape[-1]
        n = int(np.prod(spatial))
        if origin is not None:
            if (len(origin) != len(spatial) or not all(
                    isinstance(o, numbers.Integral) and o >= 0 for o in origin)):
                raise ValueError(f"origin must be {len(spatial)} ints >= 0, got {origin!r}")
            origin = None if not any(origin) else tuple(int(o) for o in origin)
        if origin is not None and self.backend not in ("numba", "exact"):
            raise ValueError(f"origin needs backend='numba' or 'exact', not "
                             f"{self.backend!r}")
        mu = self._mu(k)
        if k == 1 and not return_trace:
            return np.ones((*spatial, 1), np.float32)
        if self.backend == "pydensecrf":
            if return_trace:
                raise ValueError("return_trace needs backend='numba' or 'exact'")
            neg_unary = (log_proba(s) if kind == "proba" else s).reshape(n, k)
            q = self._refine_pydensecrf(image, -neg_unary, mu, spatial, k)
            return np.ascontiguousarray(q.reshape(*spatial, k), dtype=np.float32)
        if self.n_iter == 0 and not return_trace:
            neg_unary = (log_proba(s) if kind == "proba" else s).reshape(n, k)
            return softmax(neg_unary).reshape(*spatial, k).astype(np.float32)
        if self.backend == "torch":
            if return_trace:
                raise ValueError("return_trace needs backend='numba' or 'exact'")
            neg_unary = (log_proba(s) if kind == "proba" else s).reshape(n, k)
            q = self._refine_torch(image, neg_unary, mu, spatial, features)
            return q.reshape(*spatial, k)
        from ._meanfield import mean_field

        self._check_memory(spatial, k)
        start = time.perf_counter()
        weights = self._weights()
        kernels = self._build_kernels(image, spatial, features, weights, origin)
        build = time.perf_counter() - start
        trace = {} if return_trace else None
        # The scores go in as they are (read only): no (N, K) intermediate arrays.
        q = mean_field(s.reshape(n, k), [kern for _, kern in kernels],
                       [weights[i] for i, _ in kernels], mu, self.n_iter, trace=trace,
                       unary_kind=kind)
        q = np.ascontiguousarray(q.reshape(*spatial, k), dtype=np.float32)
        if not return_trace:
            return q
        return q, MeanFieldTrace(
            energy=np.asarray(trace["energy"], dtype=np.float64),
            seconds=np.asarray(trace["seconds"], dtype=np.float64),
            changed=np.asarray(trace["changed"], dtype=np.float64),
            build_seconds=build,
        )

    def _refine_torch(self, image, neg_unary, mu, spatial, features):
        """The mean field in torch on ``device``: (N, K) float32 marginals.

        The built-in kernels' features are computed on the device from the image, and
        the scores travel through page-locked buffers: at 720x960 and K = 21 the copies
        and the features on the host otherwise cost more than the GPU's mean field.
        """
        from ..utils._torch import require_torch, resolve_device

        torch = require_torch()
        from ._meanfield_torch import forward_torch
        from ._torch_lattice import NormalizedKernel

        device = resolve_device(self.device)
        cuda = device.type == "cuda"

        def upload(a):
            a = np.ascontiguousarray(a)
            # torch warns on a read-only array (a loaded sample's image); it is only read
            t = torch.from_numpy(a if a.flags.writeable else a.copy())
            return (t.pin_memory() if cuda else t).to(device, non_blocking=True)

        weights = self._weights()
        image_t = None
        kernels = []
        for index, spec in enumerate(self._kernel_specs()):
            if weights[index] <= 0:
                continue
            if spec.features is None or (isinstance(spec.features, str)
                                         and spec.features == "image"):
                if image_t is None and spec.features is not None:
                    image_t = upload(image)
                f = self._spec_features(index, spec, image_t, spatial, None, device)
            else:
                f = upload(self._spec_features(index, spec, image, spatial, features))
            kernels.append((float(weights[index]),
                            NormalizedKernel(f, torch.float32, "torch")))
        a = upload(np.asarray(neg_unary, dtype=np.float32))
        mu_t = None if mu is None else torch.as_tensor(
            np.asarray(mu, dtype=np.float32)).to(device)
        with torch.no_grad():  # the engine's torch execution
            q = forward_torch(a, [kern for _, kern in kernels], [w for w, _ in kernels], mu_t,
                              self.n_iter, "proba")
            if not cuda:
                return q.numpy()
            staging = torch.empty(q.shape, dtype=q.dtype, pin_memory=True)
            staging.copy_(q, non_blocking=True)
            torch.cuda.current_stream(device).synchronize()
            return staging.numpy().copy()  # the caller's array is not page-locked

    def _refine_pydensecrf(self, image, unary, mu, spatial, k):
        try:
            import pydensecrf.densecrf as dcrf
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "backend='pydensecrf' needs pydensecrf: pip install 'hybridseg[peers]'"
            ) from exc
        if len(spatial) != 2 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("backend='pydensecrf' needs an (H, W, 3) RGB image")
        if self.extra_kernels or self.spacing is not None:
            raise ValueError("backend='pydensecrf' has no extra_kernels and no spacing")
        h, w = spatial
        d = dcrf.DenseCRF2D(w, h, k)
        d.setUnaryEnergy(np.ascontiguousarray(unary.T))
        rgb = np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        gaussian_weight, bilateral_weight = self._weights()[:2]

        def compat_for(weight):
            return float(weight) if mu is None else np.ascontiguousarray(
                weight * mu, dtype=np.float32)

        if gaussian_weight > 0:
            d.addPairwiseGaussian(sxy=self.gaussian_sxy, compat=compat_for(gaussian_weight))
        if bilateral_weight > 0:
            d.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb, rgbim=rgb,
                                   compat=compat_for(bilateral_weight))
        return np.array(d.inference(self.n_iter), dtype=np.float32).T

    # ------------------------------------------------------------------ learning
    def _reset_fitted(self):
        for attr in ("kernel_weights_", "gaussian_weight_", "bilateral_weight_",
                     "extra_weights_", "compat_", "loss_curve_", "cv_scores_", "n_classes_"):
            self.__dict__.pop(attr, None)

    def fit(self, U, y=None):
        """Learn the kernel weights (and, with ``compat="learn"``, the compatibility).

        Minimises the mean log loss of the marginals after ``n_iter`` mean-field
        iterations on the labelled pixels (plus ``alpha`` times a squared distance from
        the starting values) by L-BFGS, with exact gradients back through the iterations.
        Without ``y``, or with ``learn="none"``, only records the number of classes.

        Parameters
        ----------
        U : Unaries
            Images with class scores that the unary stage did not see in training (its
            scores on its own training images are overconfident, and a CRF fitted on them
            learns to trust them too much: with ``U.in_sample`` set, ``fit`` warns and
            keeps the weights as given).
        y : sequence of (H, W) label maps, optional
            Their labels; 255 marks void pixels, which are left out.

        Returns
        -------
        self
        """
        self._validate_params()
        U = self._check_unaries(U)
        self._reset_fitted()
        learning = self.compat == "learn" if isinstance(self.compat, str) else False
        if learning and (y is None or self.learn != "weights"):
            raise ValueError("compat='learn' needs fit(U, y) with labels and learn='weights'")
        if y is None or self.learn == "none" or self.n_iter == 0 or U.n_classes == 1:
            return super().fit(U, y)
        if not self._tunes_on(U, y):
            if learning:
                raise ValueError("compat='learn' cannot be learned from in-sample scores "
                                 "(U.in_sample): fit on held-out images")
            return super().fit(U, y)
        if self.backend == "pydensecrf":
            raise ValueError("fit learns with backend='numba' or 'exact', not 'pydensecrf'")
        k = U.n_classes
        labels = check_label_maps(y, name="y", shapes=[im.shape[:2] for im in U.images],
                                  n_classes=k, ignore_index=255)
        if self.learn == "grid":
            self._search(U, labels, k)
            return self
        class_weights = self._class_weights(labels, k)
        problems = self._learning_problems(U, labels)
        total = sum(float(class_weights[np.clip(p.labels, 0, None)][p.labels >= 0].sum())
                    for p in problems)
        if total == 0:
            raise ValueError("y has no labelled pixels (all void) to learn from")
        self._optimise(problems, k, class_weights, total, learning)
        self.n_classes_ = k
        return self

    def _search(self, U, labels, k):
        """``learn="grid"``: the two built-in kernels' weights of best mean IoU on ``U``."""
        from ..metrics import mean_iou

        grid = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0) if self.weight_grid is None else (
            self.weight_grid)
        grid = np.asarray(grid, dtype=np.float64).ravel()
        if grid.size == 0 or not (np.isfinite(grid) & (grid >= 0)).all():
            raise ValueError("weight_grid must hold one or more finite weights >= 0")
        given = np.array([spec.weight for spec in self._kernel_specs()], dtype=np.float64)
        if not any((lab != 255).any() for lab in labels):
            raise ValueError("y has no labelled pixels (all void) to choose weights on")
        self.n_classes_ = k
        tuning = Tuning(type(self).__name__, self.max_time, self.verbose)

        def compute(g, b):
            self.kernel_weights_ = np.concatenate([[g, b], given[2:]])
            return mean_iou(labels, self.predict(U), n_classes=k)

        def score(g, b):
            return tuning((g, b), lambda: compute(g, b),
                          f"gaussian weight {g:g}, bilateral weight {b:g}")

        def best(candidates):  # ties go to the smaller weights
            return max(candidates, key=lambda gb: (score(*gb), -gb[0] - gb[1]))

        g0 = float(given[0])
        _, b = best([(g0, float(v)) for v in sorted({*grid, float(given[1])})])
        g, b = best([(float(v), b) for v in sorted({*grid, g0})])
        weights = np.concatenate([[g, b], given[2:]])
        self.kernel_weights_ = weights
        self.gaussian_weight_ = g
        self.bilateral_weight_ = b
        self.extra_weights_ = weights[2:].copy()
        mu = self._mu(k)
        self.compat_ = (1.0 - np.eye(k)) if mu is None else np.array(mu, dtype=np.float64)
        self.cv_scores_ = dict(tuning.scores)
        tuning.finish(f"gaussian weight {g:g}, bilateral weight {b:g}")

    def _class_weights(self, labels, k):
        if self.class_weight is None:
            return np.ones(k)
        if isinstance(self.class_weight, str):
            counts = np.zeros(k)
            for lab in labels:
                valid = lab[lab != 255]
                counts += np.bincount(valid.ravel(), minlength=k)[:k]
            weights = np.zeros(k)
            present = counts > 0
            weights[present] = counts.sum() / (present.sum() * counts[present])
            return weights
        weights = np.asarray(self.class_weight, dtype=np.float64)
        if weights.shape != (k,) or not (np.isfinite(weights) & (weights >= 0)).all():
            raise ValueError(
                f"class_weight must be None, 'balanced' or {k} non-negative numbers, got "
                f"shape {weights.shape}"
            )
        return weights

    def _learning_problems(self, U, labels):
        from ._learn import LearningProblem

        weights = self._weights()
        problems = []
        for (image, scores), lab in zip(U, labels):
            h, w, k = scores.shape
            unary = -(log_proba(scores) if U.kind == "proba" else scores)
            kernels = self._build_kernels(image, (h, w), None, weights)
            flat = lab.reshape(-1).astype(np.int32)
            flat[flat == 255] = -1
            problems.append(LearningProblem(unary.reshape(h * w, k), flat,
                                            [kern for _, kern in kernels]))
        return problems

    def _optimise(self, problems, k, class_weights, total, learning):
        from scipy.optimize import minimize

        from ._learn import loss_and_gradient

        given = self._weights()
        active = np.flatnonzero(given > 0)  # the kernels _build_kernels keeps
        m = len(active)
        w0 = given[active]
        mu_given = self._mu(k) if not learning else None
        mu0 = (1.0 - np.eye(k)) if learning or mu_given is None else mu_given
        # Potts runs as mu = -I (equivalent to 1 - I: the difference is a per-pixel constant).
        mu_fixed = -np.eye(k) if mu_given is None and not learning else mu0
        alpha = float(self.alpha)
        curve = []
        last = {}
        best = {"f": np.inf}
        tuning = Tuning(type(self).__name__, self.max_time, self.verbose)

        def unpack(theta):
            if not learning:
                return theta[:m], mu_fixed
            half = theta[m:].reshape(k, k)
            return theta[:m], 0.5 * (half + half.T)

        def objective(theta):
            if self.max_time is not None and best["f"] < np.inf and (
                    tuning.elapsed() > self.max_time):
                raise _OutOfTime
            w, mu = unpack(theta)
            loss, g_w, g_mu = loss_and_gradient(problems, w, mu, self.n_iter, class_weights,
                                                learning, self.n_jobs)
            value = loss / total + 0.5 * alpha * float(np.sum((w - w0) ** 2))
            grad = [g_w / total + alpha * (w - w0)]
            if learning:
                value += 0.5 * alpha * float(np.sum((mu - mu0) ** 2))
                g = g_mu / total + alpha * (mu - mu0)
                grad.append((0.5 * (g + g.T)).ravel())
            last["x"], last["f"] = theta.copy(), value
            if value < best["f"]:
                best["x"], best["f"] = theta.copy(), value
            return value, np.concatenate(grad)

        theta0 = np.concatenate([w0, mu0.ravel()]) if learning else w0.copy()
        curve.append(objective(theta0)[0])

        tuning.say(f"start: loss {curve[0]:.5f}")

        def record(xk):
            curve.append(last["f"] if np.array_equal(last.get("x"), xk) else objective(xk)[0])
            tuning.say(f"iteration {len(curve) - 1}: loss {curve[-1]:.5f} "
                       f"({tuning.elapsed():.1f} s)")

        bounds = [(0.0, None)] * m + [(None, None)] * (k * k if learning else 0)
        try:
            theta = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                             callback=record, options={"maxiter": int(self.max_iter)}).x
        except _OutOfTime:
            theta = best["x"]
            warnings.warn(
                f"{type(self).__name__}.fit reached max_time={self.max_time:g} s after "
                f"{len(curve) - 1} L-BFGS iterations: it keeps the best parameters "
                f"evaluated (loss {best['f']:.5f})", UserWarning, stacklevel=3)
        w, mu = unpack(theta)
        weights = np.zeros(len(given))
        weights[active] = w
        self.kernel_weights_ = weights
        self.gaussian_weight_ = float(weights[0])
        self.bilateral_weight_ = float(weights[1])
        self.extra_weights_ = weights[2:].copy()
        self.compat_ = np.array(mu if learning else mu0, dtype=np.float64)
        self.loss_curve_ = curve
