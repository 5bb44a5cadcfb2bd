"""The training plan under a time budget: scale, crop and epochs from timed steps."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hybridseg.deep import CNNSegmenter, _budget  # noqa: E402


@pytest.fixture
def pixel_clock(monkeypatch):
    """Step times in proportion to the pixels of a batch (1 s per million), so that the
    plan's choices are exact."""
    def fake(self, crop):
        for c, t in self.timings:
            if c == tuple(crop):
                return t
        t = self.bs * crop[0] * crop[1] * 1e-6
        self.probes += 1
        self.timings.append((tuple(crop), t))
        return t

    monkeypatch.setattr(_budget._StepTimer, "time", fake)


def _plan(max_time, sizes=((360, 480),) * 100, **kw):
    net = torch.nn.Conv2d(3, 2, 3, padding=1)
    opts = dict(batch_size=8, stride=8, device=torch.device("cpu"), in_channels=3)
    opts.update(kw)
    return _budget.plan_training(net, list(sizes), max_time=max_time, **opts)


def test_target_steps_are_passes_within_bounds():
    assert _budget.target_steps(100, 8) == 30 * 13
    assert _budget.target_steps(10, 8) == _budget.MIN_STEPS
    assert _budget.target_steps(100_000, 8) == _budget.MAX_STEPS
    assert _budget.target_steps(3, 8) == _budget.MIN_STEPS  # a batch of 3, one a step


def test_an_ample_budget_keeps_full_resolution_and_whole_images(pixel_clock):
    want = _budget.target_steps(100, 8)
    step = 8 * 360 * 480 * 1e-6
    plan = _plan(want * step / _budget.STEP_SHARE * 1.05)
    assert plan.scale == 1.0 and plan.crop is None
    assert plan.steps >= want and plan.epochs == math.ceil(1.5 * plan.steps / 13)
    assert plan.budget_needed == pytest.approx(want * step / _budget.STEP_SHARE)
    assert "scale 1 (360x480), whole images" in plan.note


def test_a_smaller_budget_crops_first_then_lowers_the_scale(pixel_clock):
    want = _budget.target_steps(100, 8)
    full = want * 8 * 360 * 480 * 1e-6 / _budget.STEP_SHARE
    plan = _plan(full / 2)  # half the pixels per step: crops of about 0.7 of the side
    assert plan.scale == 1.0 and plan.crop is not None
    assert 0.5 <= plan.crop[0] / 360 < 1 and 0.5 <= plan.crop[1] / 480 < 1
    assert plan.crop[0] % 8 == 0 and plan.crop[1] % 8 == 0
    assert plan.step_time <= 1.1 * _budget.STEP_SHARE * full / 2 / want
    small = _plan(full / 10)  # less than a quarter: a lower scale
    assert small.scale < 1.0
    assert small.crop is None or small.crop[0] >= 0.5 * round(small.scale * 360)


def test_a_steps_fixed_cost_does_not_lower_the_scale(monkeypatch):
    """A step costs 0.1 s whatever its size, plus its pixels: extrapolated in proportion
    to the pixels, the tiny first probe makes full resolution look 8 times as dear as it
    is. The plan times the smallest crop allowed at full scale before it gives it up."""
    def clock(self, crop):
        for c, t in self.timings:
            if c == tuple(crop):
                return t
        t = 0.1 + self.bs * crop[0] * crop[1] * 1e-6
        self.probes += 1
        self.timings.append((tuple(crop), t))
        return t

    monkeypatch.setattr(_budget._StepTimer, "time", clock)
    want = _budget.target_steps(100, 8)
    plan = _plan(want * (0.1 + 8 * 200 * 260 * 1e-6) / _budget.STEP_SHARE)
    assert plan.scale == 1.0 and plan.crop is not None
    assert plan.crop[0] >= 0.5 * 360 and plan.step_time <= 1.1 * (0.1 + 8 * 200 * 260e-6)


def test_a_budget_too_small_for_anything_takes_the_smallest_work_and_says_so(pixel_clock):
    plan = _plan(1.0)
    assert plan.scale == min(s for s in _budget.SCALES if s * 360 >= 64)
    assert plan.steps < plan.target_steps
    assert f"of the {plan.target_steps} asked" in plan.note
    assert plan.budget_needed > 1.0


def test_given_values_are_kept(pixel_clock):
    plan = _plan(5.0, scale=0.5, crop=None, epochs=7)
    assert plan.scale == 0.5 and plan.crop is None and plan.epochs == 7
    plan = _plan(5.0, crop=(64, 96))
    assert plan.crop == (64, 96) and plan.scale == 1.0  # crops cost the same at any scale


def test_small_images_are_never_shrunk_below_the_floor(pixel_clock):
    plan = _plan(0.01, sizes=[(40, 50)] * 4)
    assert plan.scale == 1.0


def test_the_timer_leaves_the_network_and_the_random_state_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.Conv2d(4, 2, 1))
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.get_rng_state()
    timer = _budget._StepTimer(net, 2, 3, torch.device("cpu"), None, False)
    t = timer.time((16, 24))
    assert t > 0 and timer.time((16, 24)) == t and timer.probes == 1
    assert torch.equal(torch.get_rng_state(), state)
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def _data(n=6, size=(72, 96), seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n)]
    return X, [(x[..., 0] > 127).astype(np.uint8) for x in X]


def _seg(**kw):
    opts = dict(model_options={"widths": (4, 8)}, batch_size=2, device="cpu",
                random_state=0)
    opts.update(kw)
    return CNNSegmenter("unet", **opts)


def test_without_a_budget_auto_is_full_scale_whole_images_and_30_epochs():
    X, y = _data(n=2, size=(32, 40))
    seg = _seg().fit(X, y)
    assert seg.scale_ == 1.0 and seg.crop_size_ is None and seg.n_epochs_ == 30
    assert seg.training_plan_ is None
    assert seg.validation_epochs_ == []


def test_a_budget_plans_and_the_segmenter_predicts_at_the_input_size():
    X, y = _data()
    seg = _seg(max_time=3.0).fit(X, y)
    plan = seg.training_plan_
    assert seg.scale_ == plan.scale and seg.crop_size_ == plan.crop
    assert plan.planning_time > 0 and plan.timings
    assert seg.fit_time_ >= plan.planning_time
    p = seg.predict_proba([X[0][:67, :45]])[0]
    assert p.shape == (67, 45, 2) and np.allclose(p.sum(-1), 1, atol=1e-4)


def test_validation_under_a_budget_is_thinned_and_scores_the_last_epoch():
    X, y = _data()
    Xv, yv = _data(n=2, seed=1)
    seg = _seg(max_time=2.0, scale=1.0, crop_size=None).fit(X, y, X_val=Xv, y_val=yv)
    assert seg.validation_epochs_[-1] == seg.n_epochs_
    assert len(seg.validation_scores_) == len(seg.validation_epochs_) <= seg.n_epochs_
    assert seg.best_epoch_ in seg.validation_epochs_
    every = _seg(epochs=3).fit(X, y, X_val=Xv, y_val=yv)
    assert every.validation_epochs_ == [1, 2, 3]


def test_auto_parameters_are_validated_and_clone():
    from sklearn.base import clone

    seg = _seg(scale="auto", crop_size="auto", epochs="auto")
    assert clone(seg).get_params()["scale"] == "auto"
    for key in ("scale", "crop_size", "epochs"):
        with pytest.raises(ValueError, match=key):
            _seg(**{key: "fast"}).fit(*_data(n=2))


class _FixedSizeNet(torch.nn.Module):
    """Takes 64x64 inputs only."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x).view(x.shape[0], 2, 64, 64)


def test_a_network_that_fails_while_the_plan_times_it_gets_a_clear_error():
    X, y = _data(n=2)
    seg = CNNSegmenter(_FixedSizeNet(), max_time=5.0, device="cpu")
    with pytest.raises(ValueError, match="failed on a training batch of shape"):
        seg.fit(X, y)


def test_no_plan_without_training():
    X, y = _data(n=2)
    seg = _seg(epochs=0, max_time=5.0).fit(X, y)
    assert seg.training_plan_ is None and seg.scale_ == 1.0 and seg.n_epochs_ == 0


def test_the_zoo_tables_reading_of_a_plans_note(pixel_clock):
    """tools/zoo_table.py reads scale, crop and step time back from a run's records."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "tools" / "zoo_table.py"
    spec = importlib.util.spec_from_file_location("zoo_table", path)
    zoo_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo_table)
    want = _budget.target_steps(100, 8)
    ample = want * 8 * 360 * 480 * 1e-6 / _budget.STEP_SHARE * 1.05
    for budget, crop in ((ample, "whole"), (60.0, None)):
        plan = _plan(budget)
        m = zoo_table.PLAN.search(plan.note)
        assert m and float(m["scale"]) == plan.scale
        assert (m["crop"] or "whole") == (crop or "x".join(map(str, plan.crop)))
        assert float(m["step"]) == pytest.approx(plan.step_time, rel=1e-2)
