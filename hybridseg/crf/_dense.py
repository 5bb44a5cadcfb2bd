"""``DenseCRF``: the fully connected CRF of Krähenbühl & Koltun (2011) as a refiner."""

from __future__ import annotations

import numbers

import numpy as np

from ..base import BaseRefiner
from ..utils._param_validation import Interval, StrOptions
from ..utils._scores import log_proba, softmax
from ..utils._validation import check_image, check_kind, check_scores

__all__ = ["DenseCRF"]

# Lattice keys are int32: scaled features must stay well inside that range.
_MAX_LATTICE_COORD = 2.0**28


def _compat_matrix(compat, n_classes):
    """None for Potts; else the symmetric (K, K) label compatibility (a penalty)."""
    if isinstance(compat, str):
        return None
    mu = np.asarray(compat, dtype=np.float64)
    if not np.isfinite(mu).all():
        raise ValueError("compat holds NaN or infinite values")
    if mu.ndim == 1:
        if mu.shape[0] != n_classes:
            raise ValueError(f"compat has {mu.shape[0]} per-class weights for {n_classes} classes")
        return -np.diag(mu)
    if mu.ndim != 2 or mu.shape != (n_classes, n_classes):
        raise ValueError(
            f"compat must be 'potts', a (K,) vector or a (K, K) matrix with K = {n_classes}, "
            f"got shape {mu.shape}"
        )
    # Like pydensecrf's MatrixCompatibility: only the symmetric part defines an energy.
    return 0.5 * (mu + mu.T)


def _features(image, sxy, srgb=None):
    """``(H*W, d)`` float32 features: position / sxy, then each channel / srgb."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    cols = [xx.ravel() / sxy, yy.ravel() / sxy]
    if srgb is not None:
        chans = image.reshape(h * w, -1).astype(np.float64)
        cols.extend(chans[:, c] / srgb for c in range(chans.shape[1]))
    f = np.stack(cols, axis=1)
    # The lattice scales features by at most sqrt(2/3)(d+1); keep the keys in int32.
    bound = np.abs(f).max() * np.sqrt(2.0 / 3.0) * (f.shape[1] + 1)
    if bound > _MAX_LATTICE_COORD:
        raise ValueError(
            "a kernel standard deviation is too small for this image: features reach "
            f"{np.abs(f).max():.3g} standard deviations (sxy={sxy}, srgb={srgb}); use a "
            "larger sigma (below about 1e-5 of the image's range nothing is smoothed anyway)"
        )
    return np.ascontiguousarray(f, dtype=np.float32)


class DenseCRF(BaseRefiner):
    """Fully connected CRF with Gaussian and bilateral kernels, mean-field inference.

    The model of Krähenbühl & Koltun (NIPS 2011), computed like pydensecrf computes it
    (same permutohedral lattice, same symmetric kernel normalisation, same parallel mean
    field), so that the same parameters give the same answers, in numba, with no compiled
    extension, on arrays of any layout and dtype.

    The energy of a labelling ``x`` is ``sum_i U_i(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)``
    with ``k = gaussian_weight * exp(-|p_i - p_j|^2 / 2 gaussian_sxy^2) + bilateral_weight *
    exp(-|p_i - p_j|^2 / 2 bilateral_sxy^2 - |I_i - I_j|^2 / 2 bilateral_srgb^2)`` (each
    kernel symmetrically normalised), ``p`` pixel positions, ``I`` pixel values (any number
    of channels: gray, RGB, or other per-pixel features).

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
        Its standard deviation in pixel values (0-255 units for 8-bit images).
    bilateral_weight : float, default=10.0
        Its weight; 0 drops it.
    compat : "potts", (K,) array_like or (K, K) array_like, default="potts"
        Label compatibility ``mu``. ``"potts"``: ``mu(l, l') = [l != l']``. A vector ``c``:
        per-class Potts weights (``mu = -diag(c)``, the same up to a per-pixel constant as
        Potts scaled by ``c_l``). A matrix: ``mu`` itself, a penalty for labelling similar
        pixels ``l`` and ``l'`` (pydensecrf's ``MatrixCompatibility`` convention), used
        through its symmetric part.
    backend : {"numba", "pydensecrf", "exact"}, default="numba"
        ``"numba"``: the permutohedral lattice, O(N). ``"pydensecrf"``: the reference
        implementation (needs the ``peers`` extra; 2-D RGB uint8 images only).
        ``"exact"``: explicit O(N^2) Gaussian kernels, for tiny images and tests.
    n_jobs : int, optional
        Images refined in parallel by ``predict_proba`` (joblib threads; the numba
        kernels release the GIL and are themselves parallel).

    Attributes
    ----------
    n_classes_ : int
        K, set by ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridseg.crf import DenseCRF
    >>> rng = np.random.default_rng(0)
    >>> image = np.zeros((40, 60, 3), np.uint8); image[:, 30:] = 200
    >>> logits = rng.normal(size=(40, 60, 2)).astype(np.float32)
    >>> logits[:, 30:, 1] += 1.0
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
        "gaussian_weight": [Interval(numbers.Real, 0, None)],
        "bilateral_sxy": [Interval(numbers.Real, 0, None, closed="neither")],
        "bilateral_srgb": [Interval(numbers.Real, 0, None, closed="neither")],
        "bilateral_weight": [Interval(numbers.Real, 0, None)],
        "compat": [StrOptions({"potts"}), "array-like"],
        "backend": [StrOptions({"numba", "pydensecrf", "exact"})],
        "n_jobs": [None, numbers.Integral],
    }

    def __init__(
        self,
        n_iter=10,
        gaussian_sxy=3.0,
        gaussian_weight=3.0,
        bilateral_sxy=80.0,
        bilateral_srgb=13.0,
        bilateral_weight=10.0,
        compat="potts",
        backend="numba",
        n_jobs=None,
    ):
        self.n_iter = n_iter
        self.gaussian_sxy = gaussian_sxy
        self.gaussian_weight = gaussian_weight
        self.bilateral_sxy = bilateral_sxy
        self.bilateral_srgb = bilateral_srgb
        self.bilateral_weight = bilateral_weight
        self.compat = compat
        self.backend = backend
        self.n_jobs = n_jobs

    def refine(self, image, scores, *, kind="proba"):
        """Refine one image's class scores; no fitting needed.

        Parameters
        ----------
        image : (H, W) or (H, W, C) array_like
            The image the bilateral kernel reads, in the units of ``bilateral_srgb``
            (0-255 for 8-bit images); any dtype and memory layout.
        scores : (H, W, K) array_like of float
            Class scores of the image, class axis last.
        kind : {"proba", "logits"}, default="proba"
            Probabilities (unary ``-log p``, zeros floored at 1e-30) or logits (unary
            ``-logit``).

        Returns
        -------
        proba : (H, W, K) ndarray of float32
            Mean-field marginals after ``n_iter`` iterations.
        """
        self._validate_params()
        check_kind(kind)
        image = check_image(image, name="image")
        s = check_scores(scores, kind=kind, spatial_shape=image.shape[:2])
        h, w, k = s.shape
        unary = -(log_proba(s) if kind == "proba" else s)
        unary = np.ascontiguousarray(unary.reshape(h * w, k), dtype=np.float32)
        if k == 1:
            return np.ones((h, w, 1), np.float32)
        mu = _compat_matrix(self.compat, k)
        if self.backend == "pydensecrf":
            q = self._refine_pydensecrf(image, unary, mu, h, w, k)
        elif self.backend == "exact":
            q = self._refine_exact(image, unary, mu)
        else:
            q = self._refine_numba(image, unary, mu)
        return np.ascontiguousarray(q.reshape(h, w, k), dtype=np.float32)

    # ----------------------------------------------------------------- backends
    def _kernel_features(self, image):
        out = []
        if self.gaussian_weight > 0:
            out.append((_features(image, self.gaussian_sxy), self.gaussian_weight))
        if self.bilateral_weight > 0:
            out.append((_features(image, self.bilateral_sxy, self.bilateral_srgb),
                        self.bilateral_weight))
        return out

    def _refine_numba(self, image, unary, mu):
        from ._meanfield import PairwiseKernel, mean_field

        if self.n_iter == 0:
            return softmax(-unary)
        kernels = [PairwiseKernel(f, wt) for f, wt in self._kernel_features(image)]
        return mean_field(unary, kernels, mu, self.n_iter)

    def _refine_exact(self, image, unary, mu):
        from ._exact import exact_mean_field

        n = unary.shape[0]
        if n > 4096:
            raise ValueError(
                f"backend='exact' builds an N x N kernel: {n} pixels is too many (at most "
                "4096); use backend='numba'"
            )
        return exact_mean_field(unary, self._kernel_features(image), mu, self.n_iter)

    def _refine_pydensecrf(self, image, unary, mu, h, w, k):
        try:
            import pydensecrf.densecrf as dcrf
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "backend='pydensecrf' needs pydensecrf: pip install 'hybridseg[peers]'"
            ) from exc
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("backend='pydensecrf' needs an (H, W, 3) RGB image")
        d = dcrf.DenseCRF2D(w, h, k)
        d.setUnaryEnergy(np.ascontiguousarray(unary.T))
        rgb = np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))

        def compat_for(weight):
            return float(weight) if mu is None else np.ascontiguousarray(
                weight * mu, dtype=np.float32)

        if self.gaussian_weight > 0:
            d.addPairwiseGaussian(sxy=self.gaussian_sxy, compat=compat_for(self.gaussian_weight))
        if self.bilateral_weight > 0:
            d.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb, rgbim=rgb,
                                   compat=compat_for(self.bilateral_weight))
        return np.array(d.inference(self.n_iter), dtype=np.float32).T
