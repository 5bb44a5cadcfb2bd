import os
import subprocess
import sys
import textwrap

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


def test_user_threads_may_call_the_numba_stages_on_any_threading_layer():
    """On numba's workqueue layer, concurrent parallel launches from user threads aborted
    the process (SIGABRT); they now take turns there."""
    code = textwrap.dedent("""
        import threading
        import numpy as np
        import numba
        from hybridseg import metrics
        from hybridseg.crf import DenseCRF
        rng = np.random.default_rng(0)
        im = rng.integers(0, 255, (48, 48, 3)).astype(np.uint8)
        p = rng.dirichlet(np.ones(3), (48, 48)).astype(np.float32)
        crf, out = DenseCRF(n_iter=3), [None] * 4
        def work(i):
            for _ in range(3):
                out[i] = crf.refine(im, p)
                metrics.confusion_matrix([out[i].argmax(-1)], [p.argmax(-1)], n_classes=3)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert all(np.array_equal(out[0], o) for o in out)
        print(numba.threading_layer(), "OK")
    """)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["workqueue", "OK"]


def test_serialized_launches_keeps_the_kernel_s_result_and_name():
    from hybridseg.utils._parallel import serialized_launches

    def kernel(a, b=1):
        """Adds."""
        return a + b

    launch = serialized_launches(kernel)
    assert launch(2, b=3) == 5 and launch.kernel is kernel
    assert launch.__name__ == "kernel" and launch.__doc__ == "Adds."


def test_block_launches_hands_blocks_one_at_a_time_and_restores_the_setting():
    import numba
    import numpy as np
    from numba import prange

    from hybridseg.utils._parallel import block_launches

    @block_launches
    @numba.njit(parallel=True)
    def blocks(out):
        for b in prange(out.shape[0]):
            out[b] = b * b

    seen = []

    @block_launches
    def spy():
        seen.append(numba.get_parallel_chunksize())
        return 7

    before = numba.get_parallel_chunksize()
    out = np.zeros(16, np.int64)
    blocks(out)
    np.testing.assert_array_equal(out, np.arange(16) ** 2)
    assert spy() == 7 and seen == [1]
    assert numba.get_parallel_chunksize() == before


def test_limit_threads_sets_numba_torch_and_blas_in_a_worker():
    import subprocess
    import sys

    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")

    code = (
        "import numpy, torch, numba\n"
        "from threadpoolctl import threadpool_info\n"
        "from hybridseg.utils._parallel import limit_threads\n"
        "limit_threads(1)\n"
        "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(numba.get_num_threads(), torch.get_num_threads(), set(blas) or {1})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "{1}"]
