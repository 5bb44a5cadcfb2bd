import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from hybridseg.classical import (
    CLASSICAL_PIPELINES,
    CLASSICAL_STAGES,
    PixelClassifier,
    SplitMerge,
    make_classical_pipeline,
    make_classical_stage,
)
from hybridseg.crf import DenseCRF, GridCRF
from hybridseg.metrics import make_mean_iou_scorer


def _scenes(seed, n=4, size=(20, 24)):
    """Colour images: a bright band (class 1) on a dark noisy background (class 0)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        lab = np.zeros(size, np.uint8)
        r = rng.integers(2, size[0] - 8)
        lab[r:r + 6] = 1
        img = np.where(lab[..., None] == 1, 190, 60) + rng.normal(0, 25, (*size, 3))
        X.append(np.clip(img, 0, 255).astype(np.uint8))
        y.append(lab)
    return X, y


@pytest.mark.parametrize("name", sorted(CLASSICAL_PIPELINES))
def test_each_named_pipeline_fits_and_predicts(name):
    X, y = _scenes(0)
    pipe = make_classical_pipeline(name, random_state=0, n_jobs=1)
    assert isinstance(pipe, Pipeline)
    first = pipe.steps[0][1]
    assert isinstance(first, SplitMerge if name == "splitmerge" else PixelClassifier)
    if "+" in name:
        assert isinstance(pipe.named_steps["crf"], GridCRF if "grid" in name else DenseCRF)
        pipe.set_params(pixel__classifier=RandomForestClassifier(10, random_state=0))
    pipe.fit(X, y)
    Xt, yt = _scenes(1, n=2)
    proba = pipe.predict_proba(Xt)
    assert [p.shape for p in proba] == [(20, 24, 2)] * 2
    np.testing.assert_allclose([p.sum(-1) for p in proba], 1, atol=1e-5)
    assert pipe.score(Xt, yt) > 0.6


def test_refiner_is_fitted_on_out_of_fold_unaries(monkeypatch):
    X, y = _scenes(2)
    seen = {}
    original = GridCRF.fit

    def spy(self, U, y=None):
        seen["U"] = U
        return original(self, U, y)

    monkeypatch.setattr(GridCRF, "fit", spy)
    pipe = make_classical_pipeline("pixel+grid", random_state=0, n_jobs=1)
    pipe.set_params(pixel__classifier=RandomForestClassifier(10, random_state=0))
    pipe.fit(X, y)
    oof = pipe.named_steps["pixel"].fit_transform(X, y)
    for a, b in zip(seen["U"].scores, oof.scores):
        np.testing.assert_array_equal(a, b)
    in_sample = pipe.named_steps["pixel"].transform(X)
    assert any(not np.array_equal(a, b) for a, b in zip(seen["U"].scores, in_sample.scores))


def test_gridsearch_over_nested_parameters():
    X, y = _scenes(3, n=6)
    pipe = make_classical_pipeline("pixel+grid", random_state=0, n_jobs=1)
    pipe.set_params(pixel__classifier=RandomForestClassifier(10, random_state=0),
                    crf__weight_grid=[0.0, 1.0])
    search = GridSearchCV(
        pipe, {"pixel__sigmas": [(1, 2), (1, 4)], "crf__pairwise": ["potts", "contrast"]},
        cv=KFold(2), scoring=make_mean_iou_scorer(n_classes=2),
    ).fit(X, y)
    assert set(search.best_params_) == {"pixel__sigmas", "crf__pairwise"}
    assert len(search.cv_results_["mean_test_score"]) == 4


def test_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        make_classical_pipeline("pixel+crf")
    with pytest.raises(ValueError, match="name must be one of"):
        make_classical_stage("crf")


@pytest.mark.parametrize("name", sorted(CLASSICAL_PIPELINES))
def test_the_pipelines_are_built_of_the_named_stages(name):
    pipe = make_classical_pipeline(name, random_state=3, n_jobs=2)
    names = name.split("+")
    assert len(pipe.steps) == len(names) and set(names) <= set(CLASSICAL_STAGES)
    for (_, step), stage in zip(pipe.steps, names):
        made = make_classical_stage(stage, random_state=3, n_jobs=2)
        assert type(step) is type(made) and step.get_params() == made.get_params()

