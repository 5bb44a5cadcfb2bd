"""Shared by the benchmark scripts."""

import time

import numpy as np


def median_time(func, repeats):
    """Median seconds of ``repeats`` calls of ``func()``, after one warm-up call."""
    func()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
