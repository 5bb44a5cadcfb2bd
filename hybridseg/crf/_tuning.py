"""What the CRFs' ``fit`` shares when it scores candidate settings: memoised scores, a
line per setting scored (``verbose``) and a time budget (``max_time``)."""

from __future__ import annotations

import sys
import time
import warnings

__all__ = ["Tuning"]


class Tuning:
    """Scores of candidate settings, each computed once, within a time budget.

    Calling it with a setting returns its score: computed (and printed with ``verbose``)
    the first time, remembered after; ``-inf`` without computing once ``max_time`` seconds
    have passed since the start (the first setting is always scored), so that the best
    of the scored settings wins. ``finish`` warns when some were left unscored.
    """

    def __init__(self, name, max_time=None, verbose=0):
        self.name = name
        self.max_time = max_time
        self.verbose = verbose
        self.start = time.perf_counter()
        self.scores = {}
        self.skipped = set()

    def elapsed(self):
        return time.perf_counter() - self.start

    def out_of_time(self):
        return (self.max_time is not None and bool(self.scores)
                and self.elapsed() > self.max_time)

    def __call__(self, key, compute, describe):
        if key in self.scores:
            return self.scores[key]
        if self.out_of_time():
            self.skipped.add(key)
            return float("-inf")
        t0 = time.perf_counter()
        value = float(compute())
        self.scores[key] = value
        self.say(f"{describe}: mean IoU {100 * value:.2f} ({time.perf_counter() - t0:.1f} s)")
        return value

    def say(self, line):
        if self.verbose:
            print(f"{self.name}.fit: {line}", file=sys.stderr, flush=True)

    def finish(self, choice):
        self.say(f"chose {choice} after {self.elapsed():.1f} s")
        if self.skipped:
            warnings.warn(
                f"{self.name}.fit reached max_time={self.max_time:g} s: "
                f"{len(self.skipped)} candidate settings were left unscored, and {choice} is "
                f"the best of the {len(self.scores)} scored", UserWarning, stacklevel=3)
