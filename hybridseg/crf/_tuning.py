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
        return self.batch([key], lambda todo, deadline: [compute()], lambda _: describe)[0]

    def batch(self, keys, compute, describe):
        """Scores of ``keys``, computing those not known in one call
        ``compute(todo, deadline)`` that returns a score, or None for one it did not
        finish by the ``perf_counter`` time ``deadline`` (None without ``max_time``); it
        always finishes the first. ``-inf`` for the keys left unscored."""
        todo = [key for key in dict.fromkeys(keys) if key not in self.scores]
        if todo and self.out_of_time():
            self.skipped.update(todo)
        elif todo:
            deadline = None if self.max_time is None else self.start + self.max_time
            t0 = time.perf_counter()
            values = compute(todo, deadline)
            seconds = (time.perf_counter() - t0) / len(todo)
            for key, value in zip(todo, values):
                if value is None:
                    self.skipped.add(key)
                    continue
                self.scores[key] = float(value)
                together = f" each, {len(todo)} scored together" if len(todo) > 1 else ""
                self.say(f"{describe(key)}: mean IoU {100 * value:.2f} "
                         f"({seconds:.1f} s{together})")
        return [self.scores.get(key, float("-inf")) for key in keys]

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
