"""Work over images on joblib threads: the one helper every stage and loader uses."""

from __future__ import annotations

import functools
import sys
import threading

__all__ = ["block_launches", "limit_threads", "numba_threads_safe", "parallel_map",
           "serialized_launches"]


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
    return threading_layer() != "workqueue"


def threading_layer():
    """numba's threading layer, or None while no parallel kernel has run (or numba is not
    imported)."""
    import sys

    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return None


_LAUNCH = threading.RLock()
_SAFE = []  # [True] once a parallel kernel has run on a layer that takes threads


def _launches_may_overlap():
    """Whether parallel launches from several threads are known to be safe."""
    if _SAFE:
        return True
    safe = threading_layer() not in (None, "workqueue")
    if safe:
        _SAFE.append(True)
    return safe


def serialized_launches(kernel):
    """A numba ``parallel=True`` kernel that any thread may call.

    Where numba's threading layer takes concurrent launches (``omp``, ``tbb``) the kernel
    is called directly; on the ``workqueue`` layer, which aborts the process when two
    threads launch at once, and before the layer is known, launches take one lock in
    turn. So a user's own threads may call ``DenseCRF.refine`` and the other stages at
    once on any machine. Decorate the kernels that Python code calls (above
    ``numba.njit``); a kernel called from other jitted code needs no guard.
    """

    @functools.wraps(kernel)
    def launch(*args, **kwargs):
        if _launches_may_overlap():
            return kernel(*args, **kwargs)
        with _LAUNCH:
            return kernel(*args, **kwargs)

    launch.kernel = kernel
    return launch


def block_launches(kernel):
    """A numba ``parallel=True`` kernel whose ``prange`` runs over a few large blocks of
    work, handed to the threads one at a time (``numba.set_parallel_chunksize(1)``)
    rather than split evenly beforehand: on a busy machine a thread that the operating
    system holds back then takes fewer blocks instead of holding the whole launch up.
    Which thread runs a block never changes what the block computes. Decorate above
    ``serialized_launches`` (the chunk size is the calling thread's setting).
    """

    @functools.wraps(kernel)
    def launch(*args, **kwargs):
        import numba

        previous = numba.set_parallel_chunksize(1)
        try:
            return kernel(*args, **kwargs)
        finally:
            numba.set_parallel_chunksize(previous)

    launch.kernel = getattr(kernel, "kernel", kernel)
    return launch


def limit_threads(n):
    """Run this process's numba kernels, torch operators and BLAS calls on ``n`` threads.

    What each worker process calls (``segment --n-jobs``, Dask workers), so that several
    of them share the cores instead of each starting a thread per core: on a loaded
    2-core machine, two numba threads per process made the dense CRF slower than one.
    torch is limited only if it is already imported (it is not imported for this).
    """
    import numba

    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its default
        return n
    threadpool_limits(limits=n, user_api="blas")
    return n
