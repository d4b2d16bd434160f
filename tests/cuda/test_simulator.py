"""The fix for the CUDA simulator's unlocked shared-array allocation (kernels/cuda/_simulator.py)."""
import os
import threading
import time

import numpy as np
import pytest
from numba import float32

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

pytestmark = [pytest.mark.cudasim,
              pytest.mark.skipif(not SIMULATOR, reason="a fix for the CUDA simulator only")]


def _arrays_handed_out(shared, n_threads=8):
    """Call ``shared.array`` from one source line in ``n_threads`` threads started together."""
    got = [None] * n_threads
    barrier = threading.Barrier(n_threads)

    def work(i):
        barrier.wait()
        got[i] = shared.array((4, 4), np.float32)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_threads_of_a_block_get_one_shared_array_even_when_allocation_is_slow(kc, monkeypatch):
    """A slow allocation lets every thread reach it before any stores its array: the
    simulator's own method then hands out one array per thread; the guarded one, one."""
    from numba.cuda.simulator import kernelapi
    real_empty = np.empty

    def slow_empty(*args, **kwargs):
        time.sleep(0.002)  # releases the GIL between the look-up and the store
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(np, "empty", slow_empty)
    got = _arrays_handed_out(kernelapi.FakeCUDAShared(0))
    assert len({id(a) for a in got}) == 1
    assert got[0].shape == (4, 4) and got[0].dtype == np.float32

    unguarded = kernelapi.FakeCUDAShared.array.original
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", unguarded)
    assert len({id(a) for a in _arrays_handed_out(kernelapi.FakeCUDAShared(0))}) > 1


#: ``numba.cuda``, set by the test below: the simulator swaps a kernel's *global* ``cuda``.
cuda = None


def _three_shared_arrays(out):
    a = cuda.shared.array(4, float32)
    b = cuda.shared.array(4, float32)
    dynamic = cuda.shared.array(0, float32)
    t = cuda.threadIdx.x
    a[t] = t
    b[t] = 10 * t
    dynamic[t] = 100 * t
    cuda.syncthreads()
    out[t] = a[3 - t] + b[3 - t] + dynamic[3 - t]


def test_shared_arrays_on_different_lines_stay_apart_and_dynamic_memory_still_works(kc,
                                                                                    monkeypatch):
    from numba import cuda as numba_cuda
    monkeypatch.setitem(globals(), "cuda", numba_cuda)
    out = np.zeros(4, np.float32)
    numba_cuda.jit(_three_shared_arrays)[1, 4, 0, 16](out)
    np.testing.assert_array_equal(out, 111 * np.arange(3, -1, -1, dtype=np.float32))
