"""Files of the earlier ``CNNSegmenter.save`` format (a torch archive of parameters, fitted
attributes and a state dict) still load, through ``hybridseg.load`` and the classes'
``load``, with the predictions they were saved with."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hybridseg  # noqa: E402
from hybridseg.deep import CNNSegmenter, CRFRNNSegmenter  # noqa: E402

SMALL = {"widths": (4, 8)}


def _data(n=3, h=32, w=40):
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    return X, [(x[..., 0] > 127).astype(np.uint8) for x in X]


def _write_earlier_format(seg, params, path):
    """What the earlier CNNSegmenter.save wrote (format version 1)."""
    fitted = {k: v for k, v in vars(seg).items()
              if k.endswith("_") and not k.startswith("__")
              and k not in ("model_", "device_", "unary_")}
    torch.save({"magic": "hybridseg.CNNSegmenter", "format_version": 1,
                "hybridseg_version": "0.1.0.dev0", "torch_version": torch.__version__,
                "params": params, "fitted": fitted,
                "state_dict": {k: v.detach().cpu() for k, v in seg.model_.state_dict().items()},
                "void": seg._void}, path)


def test_an_earlier_cnn_file_loads_everywhere(tmp_path):
    X, y = _data()
    seg = CNNSegmenter("unet", model_options=SMALL, epochs=1, batch_size=2, device="cpu",
                       random_state=0).fit(X, y)
    _write_earlier_format(seg, seg.get_params(deep=False), tmp_path / "old.pt")
    expected = seg.predict_proba(X)
    for back in (hybridseg.load(tmp_path / "old.pt"), CNNSegmenter.load(tmp_path / "old.pt")):
        assert isinstance(back, CNNSegmenter) and back.n_classes_ == 2
        for a, b in zip(expected, back.predict_proba(X)):
            np.testing.assert_array_equal(a, b)
    # saving it again writes the one format
    hybridseg.save(hybridseg.load(tmp_path / "old.pt"), tmp_path / "new.hseg")
    assert hybridseg.load(tmp_path / "new.hseg").predict_proba(X[:1])[0].shape == (32, 40, 2)


def test_an_earlier_crfrnn_file_with_the_earlier_keywords_loads(tmp_path):
    X, y = _data()
    seg = CRFRNNSegmenter(CNNSegmenter("unet", model_options=SMALL, epochs=1, batch_size=2,
                                       device="cpu", random_state=0),
                          epochs=1, n_iter=2).fit(X, y)
    # the earlier CRFRNNSegmenter re-listed every CNNSegmenter parameter
    earlier = {**seg.unary.get_params(deep=False), "unary_epochs": 1, "epochs": 1,
               "end_to_end_lr": None, "crf_lr": 1e-2, "n_iter": 2, "crf_params": None}
    _write_earlier_format(seg, earlier, tmp_path / "old.pt")
    back = CRFRNNSegmenter.load(tmp_path / "old.pt")
    assert isinstance(back, CRFRNNSegmenter)
    assert back.unary.epochs == 1 and back.n_iter == 2
    for a, b in zip(seg.predict_proba(X), back.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="holds a CRFRNNSegmenter, not a CNNSegmenter"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CNNSegmenter.load(tmp_path / "old.pt")
