"""Fixtures shared by the deep tests."""

import numpy as np
import pytest

from hybridseg.datasets import load_sample, make_noisy_scores


@pytest.fixture(scope="session")
def scene():
    """A 90x120 crop of a CamVid sample image and noisy logits of its labels (K = 11)."""
    d = load_sample()
    im = np.ascontiguousarray(d.images[4][:90, :120])
    lab = d.labels[4][:90, :120]
    logits = make_noisy_scores([lab], 11, blur=6, noise=3, random_state=0)[0]
    return im, logits
