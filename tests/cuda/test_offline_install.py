"""Installing fastann with its CUDA extra on a machine without the package index (docs/cuda.md).

GPU clusters are often offline: the wheels are downloaded on a connected
machine and installed from a folder. This test does both halves on this
machine: builds fastann's wheel, ``pip download``s it with the ``cuda13``
extra into a folder (the only step that needs the index), then installs it
into a fresh virtual environment with ``pip install --no-index
--find-links`` and checks that fastann imports and that NVRTC and NVVM are
found there (:func:`fastann.backends.cuda.missing_compiler_libraries`), which
is what a GPU needs beyond the driver.

Opt-in (``FASTANN_NETWORK_TESTS=1``): it downloads about 400 MB.
"""
import os
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.network,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("FASTANN_NETWORK_TESTS") != "1",
                       reason="set FASTANN_NETWORK_TESTS=1 to download ~400 MB of wheels"),
]


def _run(*cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=1800, **kwargs)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_install_from_downloaded_wheels_without_the_index(tmp_path):
    wheels, env_dir = tmp_path / "wheels", tmp_path / "venv"
    # Connected machine: fastann's wheel, then it and its dependencies as wheels.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", wheels, ROOT)
    (wheel,) = wheels.glob("fastann-*.whl")
    _run(sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", wheels,
         f"fastann[cuda13] @ {wheel.as_uri()}")
    # Offline machine: a fresh environment, no index.
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index or find-links from this machine's config
    _run(python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
         "fastann[cuda13]", env=env)
    out = _run(python, "-c",
               "import fastann, numba_cuda; "
               "from fastann.backends.cuda import missing_compiler_libraries; "
               "print(fastann.__file__); print(missing_compiler_libraries())",
               env=env, cwd=tmp_path)
    where, missing = out.strip().splitlines()[-2:]
    assert where.startswith(str(env_dir))
    assert missing == "[]"  # NVRTC and NVVM came with the cuda13 extra
