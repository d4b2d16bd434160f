"""fastann.backends.cuda without a GPU: clear errors, and no numba.cuda import unless needed.

These tests are unmarked: they run in the plain ``pytest`` run (no GPU, maybe
no numba-cuda) and never need the simulator.
"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from fastann import kernels
from fastann.backends import cuda as cuda_backend


def test_import_fastann_and_cuda_backend_does_not_import_numba_cuda():
    code = ("import sys, fastann, fastann.kernels, fastann.backends, fastann.backends.cuda; "
            "from fastann.backends import backend_class; backend_class('cuda'); "
            "bad = sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda'))); "
            "assert not bad, bad; "
            "assert 'kernels' not in sys.modules, 'a top-level kernels package was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_cuda_available_returns_bool_and_reason():
    ok, reason = cuda_backend.cuda_available()
    assert isinstance(ok, bool)
    assert isinstance(reason, str) and reason


def test_require_cuda_without_numba_cuda_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "numba_cuda" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert cuda_backend.cuda_available() == (
        False, 'numba-cuda is not installed: pip install "fastann[cuda]"')
    assert cuda_backend.INSTALL_HINT == 'pip install "fastann[cuda]"'
    with pytest.raises(RuntimeError, match=r'pip install "fastann\[cuda\]"'):
        cuda_backend.require_cuda()


def _backend_arguments():
    sizes = np.array([3, 2], np.int64)
    params = np.zeros(8, np.float32)
    norm = kernels.Normalization(np.ones(3, np.float32), np.zeros(3, np.float32))
    return sizes, kernels.RELU, kernels.ADAM, norm, params


def test_require_cuda_without_driver_says_so(monkeypatch):
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    monkeypatch.setattr(cuda_backend, "_driver_present", lambda: False)
    ok, reason = cuda_backend.cuda_available()
    assert not ok and "no NVIDIA driver or GPU" in reason
    with pytest.raises(RuntimeError, match="device='cuda' is not available: no NVIDIA driver"):
        cuda_backend.require_cuda()
    with pytest.raises(RuntimeError, match="device='cuda' is not available: no NVIDIA driver"):
        cuda_backend.CudaBackend(*_backend_arguments())
    with pytest.raises(RuntimeError, match="no NVIDIA driver"):
        cuda_backend.CudaBackend(*([None] * 5))  # checked before any argument is looked at


def test_nvvm_hint_names_the_wheels():
    assert "numba-cuda[cu12]" in cuda_backend.NVVM_HINT
    assert "numba-cuda[cu13]" in cuda_backend.NVVM_HINT
