"""A pixel classifier and a dense CRF in one scikit-learn Pipeline, tuned by GridSearchCV.

    python examples/pipeline_gridsearch.py

Two stages of hybridseg make one scikit-learn ``Pipeline``: a ``PixelClassifier`` (a
random forest on hand-made features of every pixel) hands its per-pixel probabilities, as
``Unaries``, to a ``DenseCRF``. ``GridSearchCV`` then chooses the CRF's appearance kernel
(``crf__bilateral_srgb``, ``crf__bilateral_weight``) by cross-validation over the four
training images of the embedded CamVid sample, with hybridseg's mean-IoU scorer. The
pipeline caches its first step (``memory=``), so the forest is fitted once per fold, not
once per candidate. The best pipeline is refitted on the four images and scored on the
sample's two test images against the classifier alone.

The figure (``pipeline_gridsearch.png``, written to ``$HYBRIDSEG_GALLERY_OUT`` or the
current folder) shows each test image, its truth, and the labels of both. Under a minute on
two cores. See the guide page "Stages in a scikit-learn Pipeline".
"""

import os
import tempfile
import time
from pathlib import Path

from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from hybridseg import metrics
from hybridseg.classical import PixelClassifier
from hybridseg.crf import DenseCRF
from hybridseg.datasets import load_sample
from hybridseg.viz import comparison_figure, save_png

data = load_sample("camvid")  # 4 training and 2 test images, 360x480, 11 classes
train = [i for i, s in enumerate(data.split) if s == "train"]
test = [i for i, s in enumerate(data.split) if s == "test"]
X_train, y_train = [data.images[i] for i in train], [data.labels[i] for i in train]
X_test, y_test = [data.images[i] for i in test], [data.labels[i] for i in test]
k = data.n_classes

# %% The pipeline: segmenter -> refiner. Pipeline.fit calls the classifier's fit_transform,
# whose unaries are out of fold, so the CRF never sees scores of images the forest saw.
forest = RandomForestClassifier(n_estimators=25, max_depth=14, min_samples_leaf=5)
cache = tempfile.TemporaryDirectory()
pipe = Pipeline(
    [
        ("pixel", PixelClassifier(forest, max_samples=30_000, cv=2, random_state=0, n_jobs=2)),
        ("crf", DenseCRF(n_iter=5, learn="none", n_jobs=2)),
    ],
    memory=cache.name,  # the pixel step is fitted once per training fold, then reused
)

# %% Grid search over the CRF's nested parameters, scored by mean IoU.
grid = {"crf__bilateral_srgb": [5, 13, 30], "crf__bilateral_weight": [3, 10]}
search = GridSearchCV(pipe, grid, cv=KFold(2), scoring=metrics.mean_iou_scorer)
start = time.perf_counter()
search.fit(X_train, y_train)
print(f"grid search: {len(search.cv_results_['params'])} candidates x 2 folds, "
      f"{time.perf_counter() - start:.1f} s")
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"  cv mIoU {100 * score:5.1f}  {params}")
print("best:", search.best_params_)

# %% Score the refitted best pipeline on the held-out images, against its first step alone.
best = search.best_estimator_
pred = {"pixel": best[:-1].predict(X_test), "pixel + dense CRF": best.predict(X_test)}
for name, labels in pred.items():
    miou = metrics.mean_iou(y_test, labels, n_classes=k)
    acc = metrics.pixel_accuracy(y_test, labels)
    print(f"{name:<18} test mIoU {100 * miou:5.1f}   pixel accuracy {100 * acc:5.1f}")
cache.cleanup()

# %% A figure: image, truth, and each method's labels.
figure = comparison_figure(X_test, y_test, pred, colors=data.colors,
                           names=[data.filenames[i] for i in test],
                           class_names=data.class_names)
out = Path(os.environ.get("HYBRIDSEG_GALLERY_OUT", "."))
save_png(figure, out / "pipeline_gridsearch.png")
