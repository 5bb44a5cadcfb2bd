"""``GridCRF``: the 4/8-connected (6/26 in 3-D) CRF as a refiner."""

from __future__ import annotations

import numbers
import time

import numpy as np

from ..base import BaseRefiner
from ..utils._parallel import parallel_map
from ..utils._param_validation import Interval, StrOptions
from ..utils._scores import log_proba
from ..utils._validation import (
    check_image_and_scores,
    check_kind,
    check_label_maps,
    check_labelled,
)
from ._dense import _WEIGHT
from ._tuning import Tuning

__all__ = ["GridCRF"]


class GridCRF(BaseRefiner):
    """Grid CRF: unary costs plus pairwise terms between neighbouring pixels.

    ``E(x) = sum_i U_i(x_i) + sum_(i,j) w_ij mu(x_i, x_j)`` over the edges of the pixel
    grid, with ``U = -log p`` for probabilities and ``-logit`` for logits.

    Parameters
    ----------
    connectivity : {4, 8, 6, 26}, default=4
        Neighbours of a pixel: 4 or 8 for images, 6 or 26 for volumes (``(D, H, W, K)``
        scores).
    pairwise : "potts", "contrast" or (K, K) array_like, default="potts"
        ``"potts"``: ``w_ij = weight / dist_ij`` and ``mu(l, l') = [l != l']``.
        ``"contrast"``: contrast-sensitive Potts, ``w_ij = weight exp(-beta |I_i -
        I_j|^2) / dist_ij`` (Boykov & Jolly). An array: the compatibility ``mu`` itself
        (a penalty), with ``w_ij = weight / dist_ij``; ``method="expansion"`` needs a
        metric and ``"swap"`` a semi-metric (checked, with a message naming the
        alternatives).
    weight : float, default=1.0
        Scale of the pairwise terms, in the units of the unary costs; 0 returns the
        unary's own decision.
    beta : "auto" or float, default="auto"
        Contrast parameter; "auto" is ``1 / (2 <|I_i - I_j|^2>)`` over the image's edges.
    method : {"expansion", "swap", "trws", "icm", "mean_field"}, default="expansion"
        Alpha-expansion (metric compatibilities, within 2x of the optimum for Potts, exact
        for two labels), alpha-beta swap (semi-metrics), TRW-S (any compatibility, with a
        lower bound on the optimum: see ``lower_bound``), iterated conditional modes (any
        compatibility; a local minimum from the unary's decision) or sequential mean field
        (marginals).
    n_iter : int, default=10
        Cycles over the labels (expansion, swap), forward-backward passes (TRW-S) or
        sweeps over the pixels (ICM, mean field), at most.
    weight_grid : sequence of float, optional
        Candidate weights ``fit`` chooses from (default: 0 and 13 values from 0.05 to 20,
        evenly spaced in log scale).
    search : {"coarse_to_fine", "exhaustive"}, default="coarse_to_fine"
        How ``fit`` searches: ``"exhaustive"`` scores every candidate weight, then every
        beta factor; ``"coarse_to_fine"`` scores every third candidate and the largest,
        then the candidates between the best of those and its coarse neighbours, and for
        beta the factors 0.5 and 2, then outwards from the better one while it improves
        (``benchmarks/bench_grid_fit.py`` measures how often the two choose alike, and
        the time saved).
    max_time : float, optional
        Seconds ``fit`` may spend scoring settings: once they have passed it scores no
        more (the first setting is always scored), chooses the best of those scored and
        warns.
    verbose : int, default=0
        ``fit`` prints a line per setting scored (its mean IoU and seconds) on stderr.
    n_jobs : int, optional
        Images refined in parallel (joblib threads).

    Attributes
    ----------
    n_classes_ : int
    weight_ : float
        The weight chosen by ``fit(U, y)``; ``refine`` and ``predict`` then use it.
    cv_scores_ : dict of float to float
        Mean IoU on ``fit``'s images of each candidate weight it scored.
    beta_scale_ : float
        With ``pairwise="contrast"``: the factor on ``beta`` (on each image's automatic
        beta with ``beta="auto"``) that ``fit`` chose among 0.25, 0.5, 1, 2 and 4, at the
        chosen weight; ``beta_scores_`` holds the mean IoU of those it scored.

    Notes
    -----
    ``refine`` returns probabilities of shape ``(H, W, K)``: one-hot labellings for the
    MAP methods (expansion, swap, ICM) and the marginals for mean field.
    """

    _parameter_constraints = {
        "connectivity": [numbers.Integral],
        "pairwise": [StrOptions({"potts", "contrast"}), "array-like"],
        "weight": [_WEIGHT],
        "beta": [StrOptions({"auto"}), Interval(numbers.Real, 0, np.inf, closed="left")],
        "method": [StrOptions({"expansion", "swap", "trws", "icm", "mean_field"})],
        "n_iter": [Interval(numbers.Integral, 1, None)],
        "weight_grid": [None, "array-like"],
        "search": [StrOptions({"coarse_to_fine", "exhaustive"})],
        "max_time": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
        "n_jobs": [None, numbers.Integral],
    }

    def __init__(self, connectivity=4, pairwise="potts", weight=1.0, beta="auto",
                 method="expansion", n_iter=10, weight_grid=None, search="coarse_to_fine",
                 max_time=None, verbose=0, n_jobs=None):
        self.connectivity = connectivity
        self.pairwise = pairwise
        self.weight = weight
        self.beta = beta
        self.method = method
        self.n_iter = n_iter
        self.weight_grid = weight_grid
        self.search = search
        self.max_time = max_time
        self.verbose = verbose
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ model
    def _mu(self, k):
        if isinstance(self.pairwise, str):
            return 1.0 - np.eye(k)
        mu = np.asarray(self.pairwise, dtype=np.float64)
        if mu.shape != (k, k) or not np.isfinite(mu).all():
            raise ValueError(
                f"pairwise must be 'potts', 'contrast' or a finite (K, K) matrix with K = "
                f"{k}, got shape {mu.shape}"
            )
        return mu

    def _problem(self, image, s, kind, weight, beta_scale=None):
        """Costs ``(N, K)``, edges, edge weights and ``mu`` of one image."""
        from ._grid_graph import edge_weights, grid_edges

        spatial = s.shape[:-1]
        k = s.shape[-1]
        cost = -(log_proba(s) if kind == "proba" else s).reshape(-1, k).astype(np.float64)
        edges, dist = grid_edges(spatial, self.connectivity)
        pairwise = "contrast" if isinstance(self.pairwise, str) and (
            self.pairwise == "contrast") else "potts"
        pixels = (np.asarray(image, np.float64).reshape(cost.shape[0], -1)
                  if pairwise == "contrast" else None)  # Potts never reads the image
        if beta_scale is None:
            beta_scale = getattr(self, "beta_scale_", 1.0)
        w, _ = edge_weights(pixels, edges, dist, pairwise=pairwise, weight=float(weight),
                            beta=self.beta, beta_scale=beta_scale)
        return cost, edges, w, self._mu(k)

    def _launches_parallel_kernels(self):
        return self.method == "mean_field"

    def _weight(self):
        return self.weight_ if hasattr(self, "weight_") else self.weight

    # ------------------------------------------------------------------ inference
    def refine(self, image, scores, *, kind="proba"):
        """Refine one image's (or volume's) class scores.

        Parameters
        ----------
        image : (H, W), (H, W, C), (D, H, W) or (D, H, W, C) array_like
            Read by ``pairwise="contrast"`` only.
        scores : (H, W, K) or (D, H, W, K) array_like of float
        kind : {"proba", "logits"}, default="proba"

        Returns
        -------
        proba : (H, W, K) or (D, H, W, K) ndarray of float32
            One-hot for the MAP methods, marginals for mean field.
        """
        self._validate_params()
        check_kind(kind)
        image, s = check_image_and_scores(image, scores, kind=kind)
        k = s.shape[-1]
        labels, q = self._solve(image, s, kind, self._weight())
        if q is None:
            q = np.zeros((labels.size, k), np.float32)
            q[np.arange(labels.size), labels] = 1.0
        return np.ascontiguousarray(q.reshape(s.shape), dtype=np.float32)

    def _solve(self, image, s, kind, weight, beta_scale=None, flows=None):
        from ._expansion import alpha_beta_swap, alpha_expansion
        from ._grid_graph import adjacency, icm, mean_field_grid
        from ._trws import trws

        cost, edges, w, mu = self._problem(image, s, kind, weight, beta_scale)
        if self.method == "trws":
            return trws(cost, edges, w, mu, n_iter=self.n_iter)[0], None
        if self.method == "expansion":
            return alpha_expansion(cost, edges, w, mu, max_cycles=self.n_iter,
                                   state=flows)[0], None
        if self.method == "swap":
            return alpha_beta_swap(cost, edges, w, mu, max_cycles=self.n_iter)[0], None
        ptr, nbr, wgt = adjacency(cost.shape[0], edges, w)
        if self.method == "icm":
            return icm(cost, ptr, nbr, wgt, mu, max_sweeps=self.n_iter)[0], None
        q = mean_field_grid(cost, ptr, nbr, wgt, mu, self.n_iter)
        return q.argmax(1), q

    def lower_bound(self, image, scores, *, kind="proba", n_iter=None):
        """TRW-S's lower bound on the minimum energy of this model, and its labelling.

        Parameters
        ----------
        image, scores, kind
            As for ``refine``.
        n_iter : int, optional
            Passes (default ``n_iter``).

        Returns
        -------
        bound : float
            No labelling has a lower energy.
        energy : float
            Energy of TRW-S's labelling; ``energy - bound`` bounds its distance from the
            optimum.
        """
        from ._trws import trws

        self._validate_params()
        check_kind(kind)
        image, s = check_image_and_scores(image, scores, kind=kind)
        cost, edges, w, mu = self._problem(image, s, kind, self._weight())
        _, energies, bounds = trws(cost, edges, w, mu,
                                   n_iter=self.n_iter if n_iter is None else int(n_iter))
        return max(bounds), energies[-1]

    def energy(self, image, scores, labels, *, kind="proba"):
        """Energy ``E(labels)`` of any labelling under this model (fitted weight if any).

        Parameters
        ----------
        image : array_like
        scores : (H, W, K) or (D, H, W, K) array_like
        labels : (H, W) or (D, H, W) array_like of int
        kind : {"proba", "logits"}, default="proba"

        Returns
        -------
        energy : float
        """
        from ._grid_graph import labelling_energy

        self._validate_params()
        check_kind(kind)
        image, s = check_image_and_scores(image, scores, kind=kind)
        lab = np.asarray(labels)
        if lab.shape != s.shape[:-1] or lab.dtype.kind not in "iu":
            raise ValueError(
                f"labels must be an integer array of shape {s.shape[:-1]}, got "
                f"{lab.dtype} {lab.shape}"
            )
        if lab.size and (lab.min() < 0 or lab.max() >= s.shape[-1]):
            raise ValueError(f"labels must lie in [0, {s.shape[-1]}): a label is outside")
        cost, edges, w, mu = self._problem(image, s, kind, self._weight())
        return labelling_energy(cost, lab.ravel().astype(np.int64), edges, w, mu)

    # ------------------------------------------------------------------ learning
    def _search_scores(self, U, labels, k, settings, deadline=None):
        """Mean IoU over ``U``'s images of each ``(weight, beta_scale)`` of ``settings``
        (None for a setting left unfinished at ``deadline``, a ``perf_counter`` time).

        One task per image (joblib threads: the kernels release the GIL) solves the
        settings in turn, alpha-expansion keeping its flows from one to the next; past
        ``deadline`` it starts no more, but the first setting is always finished.
        """
        from ..metrics import _iou_from_cm, _nanmean
        from ._expansion import ExpansionFlows
        from ._grid_graph import grid_edges

        def image_counts(item):
            (image, s), truth = item
            flows = None
            if self.method == "expansion":
                edges, _ = grid_edges(s.shape[:-1], self.connectivity)
                flows = ExpansionFlows(truth.size, edges, k)
            known = truth.ravel() != 255
            true = truth.ravel()[known].astype(np.int64) * k
            out = []
            for j, (weight, beta_scale) in enumerate(settings):
                if deadline is not None and j > 0 and time.perf_counter() > deadline:
                    break
                pred = self._solve(image, s, U.kind, weight, beta_scale, flows)[0]
                out.append(np.bincount(true + pred[known], minlength=k * k))
            return out

        per_image = parallel_map(image_counts, zip(U, labels), self.n_jobs,
                                 numba_kernels=self._launches_parallel_kernels())
        out = []
        for j in range(len(settings)):
            if any(len(counts) <= j for counts in per_image):
                out.append(None)
                continue
            cm = np.sum([counts[j] for counts in per_image], axis=0).reshape(k, k)
            out.append(_nanmean(_iou_from_cm(cm)))
        return out

    def fit(self, U, y=None):
        """Choose ``weight`` (then, for contrast, ``beta``) by mean IoU on held-out images.

        The weight is the best of ``weight_grid`` (ties: the smaller); with
        ``pairwise="contrast"``, ``beta`` is then scaled by the best of 0.25, 0.5, 1, 2
        and 4 at that weight. ``search`` says which candidates are scored.

        Parameters
        ----------
        U : Unaries
            Images with scores the unary stage did not train on (with ``U.in_sample``
            set, ``fit`` warns and keeps ``weight`` as given).
        y : sequence of (H, W) label maps, optional
            Without labels, only the number of classes is recorded.

        Returns
        -------
        self
        """
        self._validate_params()
        U = self._check_unaries(U)
        for attr in ("weight_", "cv_scores_", "beta_scale_", "beta_scores_"):
            self.__dict__.pop(attr, None)
        if not self._tunes_on(U, y):
            return super().fit(U, y)
        k = U.n_classes
        labels = check_label_maps(y, name="y", shapes=[im.shape[:2] for im in U.images],
                                  n_classes=k, ignore_index=255)
        check_labelled(labels)
        grid = (np.concatenate([[0.0], np.geomspace(0.05, 20.0, 13)])
                if self.weight_grid is None else np.asarray(self.weight_grid, float).ravel())
        if grid.size == 0 or not (np.isfinite(grid) & (grid >= 0)).all():
            raise ValueError("weight_grid must hold one or more finite weights >= 0")
        grid = np.unique(grid)
        contrast = isinstance(self.pairwise, str) and self.pairwise == "contrast"
        tuning = Tuning(type(self).__name__, self.max_time, self.verbose)

        def evaluate(settings):
            settings = [(float(w), float(f)) for w, f in settings]
            return tuning.batch(
                settings, lambda todo, deadline: self._search_scores(
                    U, labels, k, todo, deadline),
                lambda key: f"weight {key[0]:.4g}, beta x{key[1]:g}")

        def score(weight, beta_scale=1.0):
            return evaluate([(weight, beta_scale)])[0]

        if self.search == "exhaustive":
            evaluate([(wt, 1.0) for wt in grid])
        else:
            # Every third candidate and the last; then the ones between the best of
            # those and its coarse neighbours.
            coarse = sorted(set(range(0, grid.size, 3)) | {grid.size - 1})
            values = evaluate([(grid[i], 1.0) for i in coarse])
            at = max(range(len(coarse)), key=lambda c: (values[c], -grid[coarse[c]]))
            low = coarse[at - 1] if at > 0 else coarse[at]
            high = coarse[at + 1] if at + 1 < len(coarse) else coarse[at]
            evaluate([(grid[i], 1.0) for i in range(low + 1, high) if i not in coarse])
        scores = tuning.scores
        self.cv_scores_ = {wt: sc for (wt, f), sc in sorted(scores.items()) if f == 1.0}
        self.weight_ = max(self.cv_scores_, key=lambda wt: (self.cv_scores_[wt], -wt))
        choice = f"weight {self.weight_:.4g}"
        if contrast and self.weight_ > 0:
            # Then beta, around the weight found: a coordinate step, not a full grid.
            factors = (0.25, 0.5, 1.0, 2.0, 4.0)
            if self.search == "exhaustive":
                evaluate([(self.weight_, f) for f in factors])
            else:
                # Both neighbours of 1, then outwards from the better one while it
                # keeps improving.
                half, double = evaluate([(self.weight_, 0.5), (self.weight_, 2.0)])
                step = -1 if half > double else 1
                i = 2 + step
                while (0 <= i + step < len(factors) and score(self.weight_, factors[i])
                       > score(self.weight_, factors[i - step])):
                    score(self.weight_, factors[i + step])
                    i += step
            at_weight = {f: sc for (wt, f), sc in sorted(scores.items())
                         if wt == self.weight_}
            self.beta_scores_ = at_weight
            self.beta_scale_ = max(at_weight, key=lambda f: (at_weight[f], f == 1.0))
            choice += f", beta x{self.beta_scale_:g}"
        tuning.finish(choice)
        self.n_classes_ = k
        return self
