import numbers

import numpy as np
import pytest

from hybridseg.utils import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

CONSTRAINTS = {
    "n_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    "weight": [Interval(numbers.Real, 0, 1, closed="right")],
    "method": [StrOptions({"icm", "trws"})],
    "compat": [StrOptions({"potts"}), "array-like"],
    "n_jobs": [None, numbers.Integral],
    "verbose": ["boolean"],
    "callback": [None, "callable"],
    "random_state": ["random_state"],
    "free": "no_validation",
}


def validate(**params):
    validate_parameter_constraints(CONSTRAINTS, params, "Est")


def test_valid_values_pass():
    validate(n_iter=1, weight=1.0, method="icm", compat="potts", n_jobs=None, verbose=True,
             callback=print, random_state=np.random.default_rng(0), free=object())
    validate(n_iter=np.int64(5), weight=0.5, compat=np.eye(2), n_jobs=-1, random_state=3)
    validate(compat=[[0, 1], [1, 0]], callback=None, random_state=None, unknown="x")


@pytest.mark.parametrize(("params", "msg"), [
    ({"n_iter": 0}, r"'n_iter' parameter of Est must be an int in the range \[1, inf\)"),
    ({"n_iter": 2.0}, "Got 2.0 instead"),
    ({"n_iter": True}, "Got True instead"),
    ({"weight": 0}, r"a float in the range \(0, 1\]"),
    ({"method": "ICM"}, r"a str among \{'icm', 'trws'\}"),
    ({"compat": "pots"}, "or an array-like"),
    ({"n_jobs": 1.5}, "None or an instance of 'Integral'"),
    ({"verbose": 1}, "an instance of 'bool'"),
    ({"callback": 3}, "a callable"),
    ({"random_state": "seed"}, "RandomState or Generator"),
])
def test_invalid_values_named(params, msg):
    with pytest.raises(InvalidParameterError, match=msg):
        validate(**params)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf, np.float32("nan")])
def test_non_finite_numbers_raise_a_plain_value_error(value):
    msg = r"'weight' parameter of Est .* not a finite number"
    with pytest.raises(ValueError, match=msg) as info:
        validate(weight=value)
    assert type(info.value) is ValueError


def test_accepted_infinity_passes():
    constraints = {"tol": [Interval(numbers.Real, 0, None)]}
    validate_parameter_constraints(constraints, {"tol": np.inf}, "Est")


def test_error_is_value_and_type_error():
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


def test_interval_construction_errors():
    with pytest.raises(ValueError):
        Interval(float, 0, 1)
    with pytest.raises(ValueError):
        Interval(numbers.Real, 0, 1, closed="open")
    assert str(Interval(numbers.Real, None, 0, closed="neither")) == (
        "a float in the range (-inf, 0)")
