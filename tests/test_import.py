"""``import hybridseg`` is light: no torch, no numba, no scikit-learn until used."""

import subprocess
import sys

import pytest


def run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_import_does_not_load_heavy_modules():
    out = run("import sys, hybridseg; "
              "print(sorted(m for m in ('torch', 'numba', 'sklearn', 'scipy', 'skimage') "
              "if m in sys.modules))")
    assert out == "[]"


def test_lazy_attributes_resolve():
    import hybridseg

    assert hybridseg.metrics.mean_iou is not None
    assert hybridseg.Unaries.__name__ == "Unaries"
    assert callable(hybridseg.show_versions)
    assert {"metrics", "datasets", "Unaries", "__version__"} <= set(hybridseg.__all__)
    assert "metrics" in dir(hybridseg)
    with pytest.raises(AttributeError):
        hybridseg.not_a_module  # noqa: B018


def test_metrics_import_does_not_load_torch():
    out = run("import sys, hybridseg.metrics, hybridseg.datasets, hybridseg.base, "
              "hybridseg.classical, hybridseg.crf, hybridseg.viz; "
              "print('torch' in sys.modules)")
    assert out == "False"


def test_version():
    import hybridseg
    from hybridseg._version import __version__

    assert hybridseg.__version__ == __version__


# Hides torch as an uninstalled package looks: an import finder that refuses it (a None in
# sys.modules would confuse scipy's array-API helpers, which look torch up there).
NO_TORCH = (
    "import sys\n"
    "class _NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    "sys.meta_path.insert(0, _NoTorch())\n"
)


def test_deep_without_torch_gives_a_clear_error():
    out = run(
        NO_TORCH +
        "import hybridseg, hybridseg.deep\n"
        "try:\n"
        "    hybridseg.deep.losses\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert "need PyTorch" in out and "pip install" in out


def test_deep_import_does_not_load_torch():
    assert run("import sys, hybridseg.deep; print('torch' in sys.modules)") == "False"


def test_cnn_segmenter_without_torch_is_an_estimator_until_fit():
    out = run(
        NO_TORCH +
        "import numpy as np\n"
        "from sklearn.base import clone\n"
        "from hybridseg.deep import CNNSegmenter\n"
        "seg = clone(CNNSegmenter('unet', epochs=3))\n"
        "print(seg.get_params()['epochs'])\n"
        "X = [np.zeros((16, 16, 3), np.uint8)]; y = [np.zeros((16, 16), np.uint8)]\n"
        "try:\n"
        "    seg.fit(X, y)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert out.startswith("3") and "need PyTorch" in out
