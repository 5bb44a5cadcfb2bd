"""The public entries that cannot take the process down, fuzzed in process (see
conftest.py); crash_prone_cases.py holds the rest, run in a child process below."""

import os
import subprocess
import sys

import numpy as np
import pytest
from _property import PROFILE, outcome
from _strategies import arrays, image_and_scores, label_pairs, numbers_any, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import hybridseg
from hybridseg import Unaries, metrics
from hybridseg.datasets import make_noisy_scores
from hybridseg.utils import check_image, check_scores
from hybridseg.viz import colorize

fuzz = settings.get_profile(PROFILE)
LABELS = ("y_true", "y_pred", "n_classes", "ignore_index", "tolerance", "label")


@fuzz
@given(label_pairs(), st.sampled_from([None, 6, 3, 1, 0, -1, 2.5, "3", 300]),
       st.sampled_from([255, None, 0, -1, 1.5]))
def test_metrics(pairs, n_classes, ignore_index):
    t, p = pairs
    # with no labelled pixel the scores are NaN, as the metrics document
    labelled = not isinstance(ignore_index, int) or any(
        (np.asarray(a) != ignore_index).any() for a in t)
    for fn in (metrics.mean_iou, metrics.confusion_matrix, metrics.pixel_accuracy):
        kw = {} if fn is metrics.pixel_accuracy else {"n_classes": n_classes}
        outcome(fn.__name__, LABELS, fn, t, p, ignore_index=ignore_index,
                inputs=() if labelled else None, **kw)


@fuzz
@given(label_pairs(max_side=8, max_images=2), numbers_any())
def test_boundary_f1(pairs, tolerance):
    t, p = pairs
    labelled = any((np.asarray(a) != 255).any() for a in t)  # else NaN, as documented
    outcome("boundary_f1", LABELS, metrics.boundary_f1, t, p, tolerance=tolerance,
            inputs=() if labelled else None)


@fuzz
@given(image_and_scores(), st.sampled_from([None, "log", 3]))
def test_validators_and_unaries(pair, odd_kind):
    image, scores, kind = pair
    kind = odd_kind if odd_kind is not None and image.size % 7 == 0 else kind
    names = ("image", "scores", "kind", "X", "images", "U")
    outcome("check_image", names, check_image, image, inputs=None)
    outcome("check_scores", names, check_scores, scores, kind=kind, inputs=None)
    outcome("Unaries", names, Unaries, [image], [scores], kind=kind, inputs=None)


@fuzz
@given(st.lists(arrays(shapes(1, 8, channels=(None,)), dtypes=["u1", "i4", ">i4", "f4", "?"],
                       high=4, special=False), max_size=3),
       st.sampled_from([5, 2, 1, 0, -1, None, 2.5]), numbers_any(), numbers_any())
def test_make_noisy_scores(y, n_classes, scale, patch_boost):
    names = ("y", "n_classes", "scale", "patch_boost", "ignore_index")
    outcome("make_noisy_scores", names, make_noisy_scores, y, n_classes, scale=scale,
            patch_boost=patch_boost, random_state=0)


@fuzz
@given(arrays(shapes(1, 8, channels=(None,)), dtypes=["u1", "i4", ">i4", "f4", "?", "i8"],
              high=3, special=False),
       st.sampled_from([[(0, 0, 0), (255, 0, 0)], [(0, 0, 0)], [], [(0, 0)], None]))
def test_colorize(label, colors):
    outcome("colorize", ("label", "colors"), colorize, label, colors, inputs=())


@fuzz
@given(st.binary(max_size=200), st.integers(1, 3) | st.just(0))
def test_load_refuses_any_bytes_clearly(tmp_path_factory, blob, how):
    path = tmp_path_factory.mktemp("files") / "m.hseg"
    if how == 0:  # random bytes
        path.write_bytes(blob)
    else:  # a real model file with bytes flipped or cut
        from hybridseg.dummy import DummySegmenter

        seg = DummySegmenter(strategy="prior").fit([np.zeros((2, 2))], [np.ones((2, 2), int)])
        hybridseg.save(seg, path, overwrite=True)
        data = bytearray(path.read_bytes())
        if how == 1:
            for i, b in enumerate(blob[:8]):
                data[(i * 7919 + b) % len(data)] ^= 0xFF
        else:
            data = data[: len(blob) * 5]
        path.write_bytes(bytes(data))
    outcome("hybridseg.load", ("m.hseg",), hybridseg.load, path, inputs=None)


def test_crash_prone_entries_in_a_child_process():
    """DenseCRF, GridCRF, CRFRNN and split-and-merge run numba and torch kernels that
    a bad input could once crash: their fuzz cases run in a child, so a crash fails this
    test with the case it died on instead of ending the run."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.join(here, "crash_prone_cases.py"), "-q",
         "-p", "no:cacheprovider", "-p", "no:randomly", "-x"],
        capture_output=True, text=True, timeout=3000, cwd=os.path.dirname(here),
        env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    tail = (r.stdout + r.stderr)[-4000:]
    if r.returncode < 0:
        pytest.fail(f"the child died with signal {-r.returncode}:\n{tail}")
    assert r.returncode == 0, tail
    print(tail.strip().splitlines()[-1])
