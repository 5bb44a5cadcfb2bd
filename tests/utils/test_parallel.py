import joblib
import numba
import pytest

from hybridseg.utils._parallel import parallel_map


@pytest.mark.parametrize("numba_kernels", [False, True])
@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_same_results_in_order(n_jobs, numba_kernels):
    items = list(range(7))
    assert parallel_map(lambda x: x * x, items, n_jobs,
                        numba_kernels=numba_kernels) == [x * x for x in items]
    assert parallel_map(abs, [], n_jobs, numba_kernels=numba_kernels) == []


def test_numba_work_runs_serially_on_the_workqueue_layer(monkeypatch):
    def no_threads(*args, **kwargs):
        raise AssertionError("threads used on the workqueue layer")

    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    monkeypatch.setattr(joblib, "Parallel", no_threads)
    assert parallel_map(str, range(4), 2, numba_kernels=True) == ["0", "1", "2", "3"]
    with pytest.raises(AssertionError, match="workqueue"):
        parallel_map(str, range(4), 2)  # work without numba kernels still uses threads
