"""fastann.cuda_backend without a GPU: clear errors, and no numba.cuda import unless needed.

These tests are unmarked: they run in the plain ``pytest`` run (no GPU, maybe
no numba-cuda) and never need the simulator.
"""
import importlib.util
import subprocess
import sys

import pytest

from fastann import cuda_backend


def test_import_kernels_and_backend_does_not_import_numba_cuda():
    code = ("import sys, kernels, fastann, fastann.cuda_backend; "
            "bad = sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda'))); "
            "assert not bad, bad")
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
    with pytest.raises(RuntimeError, match=r'pip install "fastann\[cuda\]"'):
        cuda_backend.require_cuda()


def test_require_cuda_without_driver_says_so(monkeypatch):
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    monkeypatch.setattr(cuda_backend, "_driver_present", lambda: False)
    ok, reason = cuda_backend.cuda_available()
    assert not ok and "no NVIDIA driver or GPU" in reason
    with pytest.raises(RuntimeError, match="device='cuda' is not available: no NVIDIA driver"):
        cuda_backend.CudaTrainer(*([None] * 11))
    with pytest.raises(RuntimeError, match="no NVIDIA driver"):
        cuda_backend.predict_log_proba_cuda(None, None, None, None, None, 0)
