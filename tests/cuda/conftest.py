"""Run the CUDA kernels' tests only where they can run, and never break the main run.

Two kinds of tests live here:

* ``@pytest.mark.cudasim`` -- every ``gpu_*`` kernel and the whole GPU epoch
  against their CPU twins on tiny shapes. They run under the Numba CUDA
  simulator, which must be switched on before ``numba.cuda`` is first
  imported, hence in a pytest process of their own::

      NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda -m cudasim

  There they also check every launch for data races (``racecheck.py``; off
  with ``FASTANN_RACECHECK=0``). They also run (fast) in a plain ``pytest`` on
  a machine with a usable GPU.
* ``@pytest.mark.gpu`` -- training on real hardware compared with the CPU;
  skipped without a GPU and under the simulator.

In a plain ``pytest`` without a GPU both kinds are skipped at collection,
before anything imports ``numba.cuda``; unmarked tests (the backend's error
messages) run everywhere.
"""
import os
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
# Under the simulator every kernel test also checks for data races (tests/cuda/racecheck.py);
# FASTANN_RACECHECK=0 turns that off (about half the simulator run's time).
RACECHECK = SIMULATOR and os.environ.get("FASTANN_RACECHECK", "1") not in ("", "0")

_status = []


def cuda_status():
    """``(ok, reason)`` of :func:`fastann.backends.cuda.cuda_available`, computed once."""
    if not _status:
        from fastann.backends.cuda import cuda_available
        _status.append(cuda_available())
    return _status[0]


def real_gpu():
    return not SIMULATOR and cuda_status()[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in pathlib.Path(item.path).resolve().parents:
            continue
        if item.get_closest_marker("cudasim") and not (SIMULATOR or real_gpu()):
            item.add_marker(pytest.mark.skip(
                reason="CUDA kernel tests need NUMBA_ENABLE_CUDASIM=1 (in their own pytest "
                       f"process) or a GPU: {cuda_status()[1]}"))
        if item.get_closest_marker("gpu"):
            if SIMULATOR:
                item.add_marker(pytest.mark.skip(reason="hardware test: not run under the "
                                                        "CUDA simulator"))
            elif not real_gpu():
                item.add_marker(pytest.mark.skip(reason=f"no CUDA GPU: {cuda_status()[1]}"))


@pytest.fixture(scope="session")
def cuda():
    """``numba.cuda`` (the simulator when NUMBA_ENABLE_CUDASIM=1)."""
    from numba import cuda as numba_cuda
    return numba_cuda


@pytest.fixture(scope="session")
def kc(cuda):
    """The :mod:`fastann.kernels.cuda` package."""
    from fastann.kernels import cuda as kernels_cuda
    if SIMULATOR and not kernels_cuda.SIMULATOR:
        pytest.fail("numba.cuda was imported without the simulator although "
                    "NUMBA_ENABLE_CUDASIM=1 is set: run these tests in their own process")
    return kernels_cuda


@pytest.fixture(autouse=True)
def no_races(request):
    """Under the simulator (unless FASTANN_RACECHECK=0): fail a kernel test whose kernels race,
    inside a block or between the blocks of a launch. The race check's own tests and the
    simulator-fix tests (which replace the same simulator methods) run without it."""
    if (not RACECHECK or request.node.get_closest_marker("cudasim") is None
            or request.node.path.name in ("test_racecheck.py", "test_simulator.py")):
        yield
        return
    from racecheck import racecheck
    with racecheck() as log:
        yield
    if log.races:
        pytest.fail(f"data races in the kernels (tests/cuda/racecheck.py):\n{log.report()}")
