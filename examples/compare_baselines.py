"""Classical baselines side by side, with hybridseg.compare.

    python examples/compare_baselines.py

``hybridseg.compare`` fits each method on the training images, tunes its CRF stage on the
validation images, scores it on the test images and measures it (fit seconds, predict
seconds per image, peak memory), each in a process of its own; then it writes a report:
``results.csv``, ``results.json``, ``report.md``, ``report.html`` and ``figure.png``.

Here it runs on the embedded CamVid sample (3 training images, 1 for validation, 2 for
testing: a check that everything runs, not a benchmark) with one method of the registry,
``splitmerge``, and two of our own, passed in a dict: a small pixel classifier, and the
same followed by a dense CRF with its default kernels, in a ``Pipeline``. Run again with
the same settings, it keeps the finished methods instead of fitting them again. The
comparison goes to ``compare-sample/`` in ``$HYBRIDSEG_GALLERY_OUT`` (or the current
folder), and its ``figure.png`` is copied beside it as ``compare_baselines.png``. See the
guide page "Comparing classical and deep baselines" and ``hybridseg compare --help``.
"""

import os
import shutil
import time
from pathlib import Path

from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

import hybridseg
from hybridseg.classical import PixelClassifier
from hybridseg.crf import DenseCRF


def main():
    def pixel():
        forest = RandomForestClassifier(n_estimators=20, max_depth=14, min_samples_leaf=5)
        return PixelClassifier(forest, max_samples=20_000, cv=2, random_state=0)

    methods = {
        "splitmerge": "splitmerge",  # a registry name
        "small forest": pixel(),  # your own estimators
        "small forest + dense CRF": Pipeline([
            ("pixel", pixel()), ("crf", DenseCRF(n_iter=5, learn="none"))]),
    }
    out = Path(os.environ.get("HYBRIDSEG_GALLERY_OUT", ".")) / "compare-sample"
    result = hybridseg.compare(methods, "sample", out=out, verbose=False)
    print(result.to_markdown())
    for method, message in result.failed.items():
        print(f"{method} failed: {message}")
    print("written:", ", ".join(sorted(p.name for p in out.iterdir())))
    shutil.copyfile(out / "figure.png", out.parent / "compare_baselines.png")

    start = time.perf_counter()
    again = hybridseg.compare(methods, "sample", out=out, verbose=False)
    print(f"\nthe same again: {len(again.rows)} methods kept, "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
