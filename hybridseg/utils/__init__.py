"""Validation helpers shared by every stage, and score conversions.

Stages call these once at their public boundary so that bad input gets a clear message that
names the argument. They are public so that users writing their own stages can give the same
messages.
"""

from ._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from ._scores import log_proba, softmax, to_logits, to_proba
from ._validation import (
    check_ignore_index,
    check_image,
    check_image_and_scores,
    check_images,
    check_kind,
    check_label_map,
    check_label_maps,
    check_labelled,
    check_matching_lengths,
    check_n_classes,
    check_scores,
)

__all__ = [
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "check_ignore_index",
    "check_image",
    "check_image_and_scores",
    "check_images",
    "check_kind",
    "check_label_map",
    "check_label_maps",
    "check_labelled",
    "check_matching_lengths",
    "check_n_classes",
    "check_scores",
    "log_proba",
    "softmax",
    "to_logits",
    "to_proba",
    "validate_parameter_constraints",
]
