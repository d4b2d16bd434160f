"""A fix for a race in Numba's CUDA simulator, applied when the simulator is on.

The simulator (numba-cuda's ``numba/cuda/simulator/kernelapi.py``,
``FakeCUDAShared.array``, as of 0.30.4) gives the threads of a launch one
shared array per source line: it looks the line up in a dict and, when it is
missing, allocates the array and stores it, without a lock. Every simulated
CUDA thread is a Python thread, so when the interpreter switches threads
between the look-up and the store, two threads of one block get different
arrays, and what one of them writes into its tile the others never read:
they sum uninitialized memory instead. fastann's drivers shorten the switch
interval (:func:`~fastann.kernels.cuda._launch.simulator_pacing`), which
makes the switch likelier. Measured before the fix: 2 of 6 CI runs failed a
simulator test by a small numerical difference, and 3 of 4 runs of
``tests/cuda -m cudasim`` at a 1 µs switch interval failed, each with threads
that had been handed different arrays for one line; with the allocation under
a lock, 5 of 5 passed.

:func:`guard_shared_arrays` replaces the method with one that does the same
look-up and store under a lock. It also finds the caller's line with
``sys._getframe`` instead of formatting the whole stack, which is cheaper.
Nothing changes on a real GPU.
"""
import sys
import threading

import numpy as np

_lock = threading.Lock()


def _shared_array(self, shape, dtype, alignment=None):
    """``cuda.shared.array`` in the simulator: one array per launch and source line, made once."""
    if shape == 0 or alignment is not None:
        # Dynamic shared memory is one preallocated buffer (no race);
        # alignment is refused by the simulator with its own message.
        return _shared_array.original(self, shape, dtype, alignment)
    return launch_shared_array(self, shape, dtype, sys._getframe(1))


def launch_shared_array(fake_shared, shape, dtype, caller, new=np.empty):
    """The array of the simulator's ``fake_shared`` (one launch's ``cuda.shared``) for the
    ``cuda.shared.array(shape, dtype)`` call made in frame ``caller``: made with
    ``new(shape, dtype)`` by the first thread that asks, under a lock, and kept by source
    line as the simulator does. ``dtype``: a NumPy or a Numba type."""
    from numba.core import types
    from numba.np import numpy_support
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    key = (caller.f_code.co_filename, caller.f_lineno)  # what the simulator keys on
    with _lock:
        array = fake_shared._allocations.get(key)
        if array is None:
            array = fake_shared._allocations[key] = new(shape, dtype)
    return array


def guard_shared_arrays():
    """Make the simulator's shared-array allocation thread-safe (idempotent).

    Call only with the simulator on (``NUMBA_ENABLE_CUDASIM=1``).
    """
    from numba.cuda.simulator import kernelapi
    current = kernelapi.FakeCUDAShared.array
    if current is _shared_array:
        return
    _shared_array.original = current
    kernelapi.FakeCUDAShared.array = _shared_array
