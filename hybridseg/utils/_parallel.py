"""Work over images on joblib threads: the one helper every stage and loader uses."""

from __future__ import annotations

__all__ = ["parallel_map"]


def parallel_map(func, items, n_jobs):
    """``[func(x) for x in items]``, on joblib threads when ``n_jobs`` asks for them.

    Threads, not processes: the per-image work (numba kernels, scipy filters, PIL decoding,
    scikit-learn prediction) releases the GIL, and images are not copied to workers. Under
    ``joblib.parallel_config(backend="dask")`` the same calls go to a cluster.
    """
    items = list(items)
    if n_jobs in (None, 1) or len(items) < 2:
        return [func(x) for x in items]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs, prefer="threads")(delayed(func)(x) for x in items)
