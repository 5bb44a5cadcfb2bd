"""Declared parameter constraints, checked once on entry to ``fit``.

Each estimator states what every parameter may be in a class attribute
``_parameter_constraints`` (a dict from parameter name to a list of constraints; a value is
valid when it satisfies any one of them), the pattern scikit-learn follows. scikit-learn's
own helper is private API, so this is a small one of ours with the same wording.

Constraints are:

- ``None``: the value ``None``;
- a type or a tuple of types, checked with ``isinstance`` (``bool`` does not count as
  ``numbers.Integral`` or ``numbers.Real``, as a ``True`` passed for a count is a mistake);
- ``Interval``: a real or integral number in a range;
- ``StrOptions``: one of a set of strings;
- ``"array-like"``, ``"boolean"``, ``"callable"``, ``"random_state"``: what the words say.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "validate_parameter_constraints",
]


class InvalidParameterError(ValueError, TypeError):
    """Raised when an estimator's or function's parameter has an invalid value or type.

    It subclasses both ``ValueError`` and ``TypeError``, like scikit-learn's, so
    callers may catch either.
    """


class Interval:
    """A range of numbers of one kind.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real}
        The kind of number; ``numbers.Real`` accepts integers too.
    left, right : float or None
        The bounds; ``None`` leaves that side open-ended.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds belong to the range.
    """

    def __init__(self, type, left, right, *, closed="both"):
        if type not in (numbers.Integral, numbers.Real):
            raise ValueError("Interval type must be numbers.Integral or numbers.Real")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}"
            )
        self.type = type
        self.left = left
        self.right = right
        self.closed = closed

    def is_satisfied_by(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        if isinstance(value, numbers.Real) and np.isnan(value):
            return False
        left_ok = (
            self.left is None
            or value > self.left
            or (value == self.left and self.closed in ("both", "left"))
        )
        right_ok = (
            self.right is None
            or value < self.right
            or (value == self.right and self.closed in ("both", "right"))
        )
        return bool(left_ok and right_ok)

    def __str__(self):
        kind = "an int" if self.type is numbers.Integral else "a float"
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        return f"{kind} in the range {lb}{left}, {right}{rb}"


class StrOptions:
    """One of a fixed set of strings.

    Parameters
    ----------
    options : set of str
        The allowed strings.
    """

    def __init__(self, options):
        self.options = frozenset(options)

    def is_satisfied_by(self, value):
        return isinstance(value, str) and value in self.options

    def __str__(self):
        return "a str among {" + ", ".join(repr(o) for o in sorted(self.options)) + "}"


def _satisfies(constraint, value):
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, StrOptions)):
        return constraint.is_satisfied_by(value)
    if constraint == "array-like":
        return (
            hasattr(value, "__array__")
            or hasattr(value, "__array_interface__")
            or (isinstance(value, (list, tuple)) and not isinstance(value, str))
        )
    if constraint == "boolean":
        return isinstance(value, (bool, np.bool_))
    if constraint == "callable":
        return callable(value)
    if constraint == "random_state":
        return (
            value is None
            or (isinstance(value, numbers.Integral) and not isinstance(value, bool))
            or isinstance(value, (np.random.RandomState, np.random.Generator))
        )
    if isinstance(constraint, type) or (
        isinstance(constraint, tuple) and all(isinstance(c, type) for c in constraint)
    ):
        types = constraint if isinstance(constraint, tuple) else (constraint,)
        if isinstance(value, (bool, np.bool_)) and not any(
            t in (bool, np.bool_, object) for t in types
        ):
            return False
        return isinstance(value, types)
    raise ValueError(f"unknown constraint {constraint!r}")


def _describe(constraint):
    if constraint is None:
        return "None"
    if isinstance(constraint, (Interval, StrOptions)):
        return str(constraint)
    if isinstance(constraint, str):
        return {
            "array-like": "an array-like",
            "boolean": "an instance of 'bool'",
            "callable": "a callable",
            "random_state": "an int, a numpy RandomState or Generator, or None",
        }[constraint]
    types = constraint if isinstance(constraint, tuple) else (constraint,)
    return " or ".join(f"an instance of {t.__qualname__!r}" for t in types)


def validate_parameter_constraints(constraints, params, caller_name):
    """Check ``params`` against ``constraints``; raise a clear error on the first misfit.

    Parameters
    ----------
    constraints : dict
        Parameter name to a list of constraints (see the module docstring) or the string
        ``"no_validation"``.
    params : dict
        Parameter name to value; names absent from ``constraints`` are not checked.
    caller_name : str
        The estimator's or function's name, used in the message.

    Raises
    ------
    ValueError
        When a refused value is a NaN or an infinity: a non-finite number is refused as
        non-finite array values are, with a plain ``ValueError`` naming the parameter.
    InvalidParameterError
        For every other misfit, naming the parameter, what it must be, and what it got.
    """
    for name, value in params.items():
        if name not in constraints or constraints[name] == "no_validation":
            continue
        allowed = constraints[name]
        if any(_satisfies(c, value) for c in allowed):
            continue
        descriptions = [_describe(c) for c in allowed]
        if len(descriptions) == 1:
            must = descriptions[0]
        else:
            must = ", ".join(descriptions[:-1]) + " or " + descriptions[-1]
        message = f"The {name!r} parameter of {caller_name} must be {must}. Got {value!r} instead."
        if _non_finite_number(value):
            # A NaN or an infinity is refused as non-finite array values are (check_image,
            # check_scores): a plain ValueError, whatever the parameter's constraints.
            raise ValueError(message[:-1] + ", which is not a finite number.")
        raise InvalidParameterError(message)


def _non_finite_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and not np.isfinite(value)
    )
