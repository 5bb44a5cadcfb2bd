"""Fuzz cases of the entries that run numba or torch kernels on user input (a bad layout or
range could once end the process): run by test_fuzz.py in a child process."""

import numpy as np
import pytest
from _property import PROFILE, outcome
from _strategies import arrays, image_and_scores, numbers_any, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridseg.classical import SplitMerge
from hybridseg.crf import DenseCRF, GridCRF

fuzz = settings.get_profile(PROFILE)
CRF_NAMES = ("image", "scores", "kind", "weight", "sxy", "srgb", "n_iter", "compat",
             "kernel", "dense CRF", "channels", "beta", "method", "connectivity",
             "pairwise", "n_classes")


@fuzz
@given(image_and_scores(), numbers_any(), numbers_any(), st.sampled_from([3, 1, 0]))
def test_dense_crf(pair, sxy, weight, n_iter):
    image, scores, kind = pair
    crf = DenseCRF(gaussian_sxy=sxy, bilateral_weight=weight, n_iter=n_iter)
    outcome("DenseCRF.refine", CRF_NAMES, crf.refine, image, scores, kind=kind,
            inputs=(image, scores))


@fuzz
@given(image_and_scores(max_side=8), numbers_any(),
       st.sampled_from(["expansion", "swap", "trws", "icm", "mean_field"]),
       st.sampled_from([4, 8]))
def test_grid_crf(pair, weight, method, connectivity):
    image, scores, kind = pair
    crf = GridCRF(weight=weight, method=method, connectivity=connectivity, n_iter=2)
    outcome("GridCRF.refine", CRF_NAMES, crf.refine, image, scores, kind=kind,
            inputs=(image, scores))


@fuzz
@given(arrays(shapes(0, 16, channels=(None, 1, 3))), numbers_any())
def test_split_merge(image, threshold):
    names = ("image", "threshold", "X", "channels", "min_region_size")
    seg = SplitMerge(threshold) if threshold is not None else SplitMerge()
    outcome("SplitMerge.segment", names, seg.segment, image, inputs=(image,))


@fuzz
@given(image_and_scores(max_side=8), numbers_any(), numbers_any(),
       st.sampled_from(["float32", "float64", "float16"]))
def test_crfrnn(pair, sxy, srgb, dtype):
    torch = pytest.importorskip("torch")
    from hybridseg.deep import CRFRNN

    image, scores, _ = pair
    names = (*CRF_NAMES, "logits", "images", "tensor", "n_classes")

    def run():
        layer = CRFRNN(max(scores.shape[-1], 1), n_iter=2, gaussian_sxy=sxy,
                       bilateral_srgb=srgb)
        im = np.asarray(image, np.float64)
        im = im[..., None] if im.ndim == 2 else im
        logits = torch.from_numpy(np.moveaxis(scores.astype(np.float64), -1, 0)[None].copy())
        images = torch.from_numpy(np.moveaxis(im, -1, 0)[None].copy())
        out = layer(logits.to(getattr(torch, dtype)), images.float())
        return out.detach().float().numpy()

    outcome("CRFRNN", names, run, inputs=(image, scores))
