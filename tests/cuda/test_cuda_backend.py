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
        False, 'numba-cuda is not installed: pip install "fastann[cuda13]" (NVIDIA driver '
               '>= 580) or "fastann[cuda12]" (driver >= 525)')
    with pytest.raises(RuntimeError, match=r'pip install "fastann\[cuda13\]"'):
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


def test_install_hint_names_extras_declared_in_pyproject():
    """The extras the messages recommend exist, and pull numba-cuda's cu12/cu13 toolchains."""
    import pathlib
    import tomllib
    pyproject = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert extras["cuda12"] == ["numba-cuda[cu12]>=0.30"]
    assert extras["cuda13"] == ["numba-cuda[cu13]>=0.30"]
    assert extras["cuda"] == ["numba-cuda>=0.30"]
    for extra in ("cuda13", "cuda12"):
        assert f'"fastann[{extra}]"' in cuda_backend.INSTALL_HINT


def _with_driver(monkeypatch, missing):
    """Pretend a driver is present and that the libraries in ``missing`` cannot be loaded.

    Only cuda.pathfinder's loader is replaced: fastann's lookup, message and
    error paths are the real ones.
    """
    pathfinder = pytest.importorskip("cuda.pathfinder")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    monkeypatch.setattr(cuda_backend, "_driver_present", lambda: True)
    real_load = pathfinder.load_nvidia_dynamic_lib
    asked = []

    def load(name):
        asked.append(name)
        if name in missing:
            raise pathfinder.DynamicLibNotFoundError(f'Failure finding "lib{name}.so"')
        try:
            return real_load(name)
        except pathfinder.DynamicLibNotFoundError:  # this machine lacks it: pretend it is there
            return pathfinder.LoadedDL(f"/fake/lib{name}.so", False, 0, "test")

    monkeypatch.setattr(pathfinder, "load_nvidia_dynamic_lib", load)
    return asked


@pytest.mark.parametrize("missing, named, not_named", [
    (("nvrtc",), ["NVRTC (libnvrtc) was not found", "pip install nvidia-cuda-nvrtc (CUDA 13)",
                  "pip install nvidia-cuda-nvrtc-cu12 (CUDA 12)"], ["NVVM (libnvvm)"]),
    (("nvvm",), ["NVVM (libnvvm) was not found", "pip install nvidia-nvvm (CUDA 13)",
                 "pip install nvidia-cuda-nvcc-cu12 (CUDA 12)"], ["NVRTC (libnvrtc)"]),
    (("nvrtc", "nvvm"), ["NVRTC (libnvrtc) and NVVM (libnvvm) were not found",
                         "pip install nvidia-cuda-nvrtc nvidia-nvvm (CUDA 13)"], []),
])
def test_missing_compiler_library_is_named_with_its_install_command(monkeypatch, missing,
                                                                    named, not_named):
    asked = _with_driver(monkeypatch, missing)
    assert cuda_backend.missing_compiler_libraries() == list(missing)
    ok, reason = cuda_backend.cuda_available()
    assert not ok
    assert set(asked) >= {"nvrtc", "nvvm"}
    for text in named + ['pip install "fastann[cuda13]" (NVIDIA driver >= 580)',
                         '"fastann[cuda12]" (driver >= 525)', "CUDA_HOME"]:
        assert text in reason
    for text in not_named:
        assert text not in reason
    with pytest.raises(RuntimeError, match=r"device='cuda' is not available: the CUDA compiler"):
        cuda_backend.require_cuda()
    with pytest.raises(RuntimeError, match="not found"):
        cuda_backend.CudaBackend(*_backend_arguments())


def test_compiler_libraries_found_passes_on_to_the_driver_checks(monkeypatch):
    """With both libraries found the check goes on (to numba.cuda's driver and device)."""
    _with_driver(monkeypatch, ())
    assert cuda_backend.missing_compiler_libraries() == []
    ok, reason = cuda_backend.cuda_available()
    assert "compiler" not in reason  # whatever the driver check says on this machine


def test_compiler_libraries_not_checked_under_the_simulator(monkeypatch):
    pathfinder = pytest.importorskip("cuda.pathfinder")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    monkeypatch.setattr(cuda_backend, "missing_compiler_libraries",
                        lambda: pytest.fail("looked for compiler libraries under the simulator"))
    cuda_backend.cuda_available()  # may say the simulator or a mismatch; never looks
    assert pathfinder is not None
