"""The one property every fuzzed entry must keep, its tally, and the hypothesis profiles.

Profiles: ``HYBRIDSEG_FUZZ=ci`` (default, about a minute) and ``HYBRIDSEG_FUZZ=long``
(thousands of cases; run it before a release: ``HYBRIDSEG_FUZZ=long python -m pytest
tests/fuzz -n 2``).
"""

import collections
import os

import numpy as np
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz-ci", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile(
    "fuzz-long", deadline=None, max_examples=1500, suppress_health_check=list(HealthCheck),
    print_blob=True)
PROFILE = "fuzz-long" if os.environ.get("HYBRIDSEG_FUZZ") == "long" else "fuzz-ci"

#: What the cases ended in: ``(entry, "result" | "error") -> count``.
TALLY = collections.Counter()

CLEAR = (ValueError, TypeError, MemoryError)


def finite(*arrays):
    """Whether every float array among ``arrays`` (nested lists too) is finite."""
    for a in arrays:
        if isinstance(a, (list, tuple)):
            if not finite(*a):
                return False
            continue
        a = np.asarray(a) if not np.isscalar(a) else np.asarray([a])
        if a.dtype.kind in "fc" and not np.isfinite(a.astype(np.float64)).all():
            return False
    return True


def outcome(entry, names, fn, *args, inputs=(), **kwargs):
    """``fn(*args, **kwargs)``, which must return a finite result (where ``inputs`` are
    finite) or raise a clear error: a ``ValueError``, ``TypeError`` or ``MemoryError``
    of Python's or hybridseg's own, whose message names one of ``names``. Anything else
    (a numba or torch exception, an AttributeError, a crash) fails the test."""
    try:
        out = fn(*args, **kwargs)
    except CLEAR as exc:
        kind, msg = type(exc), str(exc)
        home = kind.__module__.split(".")[0]
        assert home in ("builtins", "hybridseg"), \
            f"{entry}: a {kind.__module__}.{kind.__name__} reached the user: {msg[:300]}"
        assert not any(w in msg for w in ("Failed in nopython mode", "TypingError",
                                          "Traceback")), f"{entry}: a library message: {msg[:300]}"
        assert any(n in msg for n in names), \
            f"{entry}: the message names none of {names}: {msg[:300]}"
        TALLY[(entry, "error")] += 1
        return None
    if inputs is not None and finite(*inputs):
        assert finite(out), f"{entry}: non-finite output from finite input"
    TALLY[(entry, "result")] += 1
    return out
