"""Work over images on joblib threads: the one helper every stage and loader uses."""

from __future__ import annotations

__all__ = ["numba_threads_safe", "parallel_map"]


def parallel_map(func, items, n_jobs, *, numba_kernels=False):
    """``[func(x) for x in items]``, on joblib threads when ``n_jobs`` asks for them.

    Threads, not processes: the per-image work (numba kernels, scipy filters, PIL decoding,
    scikit-learn prediction) releases the GIL, and images are not copied to workers. Under
    ``joblib.parallel_config(backend="dask")`` the same calls go to a cluster.

    With ``numba_kernels=True`` (``func`` launches numba's parallel kernels), the first
    item runs alone, so that numba's threading layer is known, and the rest run in threads
    only if that layer takes launches from several threads (``numba_threads_safe``);
    otherwise one after the other, rather than abort the process.
    """
    items = list(items)
    if n_jobs in (None, 1) or len(items) < 2:
        return [func(x) for x in items]
    from joblib import Parallel, delayed

    if not numba_kernels:
        return Parallel(n_jobs=n_jobs, prefer="threads")(delayed(func)(x) for x in items)
    first = func(items[0])
    if not numba_threads_safe():
        return [first, *(func(x) for x in items[1:])]
    return [first, *Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(func)(x) for x in items[1:])]


def numba_threads_safe():
    """Whether numba's parallel kernels may be called from several threads at once.

    numba's ``workqueue`` threading layer (its fallback when neither TBB nor OpenMP is
    available) aborts the whole process on concurrent parallel launches; the ``omp`` and
    ``tbb`` layers are fine. The layer is known only once a parallel kernel has run, so
    call this after one image has been processed; before that it answers True.
    """
    import sys

    numba = sys.modules.get("numba")
    if numba is None:
        return True
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel has run yet
        return True
