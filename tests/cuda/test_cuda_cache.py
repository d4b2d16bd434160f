"""On-disk caching of the CUDA kernels, checked without a GPU (unmarked: runs in the plain pytest).

numba-cuda writes a compiled kernel to ``kernels/cuda/__pycache__`` (or
``NUMBA_CACHE_DIR``) only when it compiles for a real device, so these tests
check what decides reuse without compiling: every kernel has a disk cache,
the kernels built by the ``(tile, dtype)`` factories get distinct cache keys
(numba-cuda hashes the closure's cell contents into the key), the keys do not
change between processes, and the stale-cache guard of ``fastann.kernels``
also empties the CUDA kernels' cache folder after a source change. Loading
from the cache on hardware is ``test_gpu_hardware.py::test_second_process_loads_cuda_kernels_from_the_cache``.
Each check runs in a subprocess with the simulator off, so that this
process's ``numba.cuda`` (maybe the simulator) is not touched.
"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                reason="numba-cuda is not installed")

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(code, env=None):
    env = dict(os.environ if env is None else env, NUMBA_ENABLE_CUDASIM="0",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


_KEYS = """
    from numba.cuda.dispatcher import CUDACache
    from ptx_check import kernels_to_check, pretend_device
    pretend_device((9, 0))

    class Codegen:  # the part of the target's code generator that the key reads
        def magic_tuple(self):
            return ("nvptx64", "sm_90", "")

    for name, kernel, sig in kernels_to_check(tiles=((8, 1), (16, 1), (16, 2))):
        assert isinstance(kernel._cache, CUDACache), name
        key = kernel._cache._index_key(sig, Codegen())
        print(name, "|", kernel._cache._cache_path, "|", (key[0],) + key[2:])
"""


def test_every_kernel_is_cached_and_factory_kernels_have_distinct_keys():
    out = _run(_KEYS)
    rows = [line.split(" | ") for line in out.strip().splitlines()]
    names = [name for name, _, _ in rows]
    assert len(names) >= 25
    assert {"t8x1", "t16x1", "t16x2"} <= {n.split()[2] for n in names if n.startswith("dense")}
    folders = {folder for _, folder, _ in rows}
    assert len(folders) == 1 and folders.pop().endswith(os.path.join("kernels", "cuda",
                                                                     "__pycache__"))
    keys = {}
    for name, _, key in rows:
        keys.setdefault(key, []).append(name)
    # Kernels that share source code (the same factory closure) differ in their
    # closure's contents, so no two (tile, dtype, rows) variants share a key.
    shared = {key: names for key, names in keys.items() if len(names) > 1}
    assert not shared, shared
    assert _run(_KEYS) == out  # the same keys in another process: the cache is reused


def test_stale_cuda_cache_is_dropped_after_a_source_change(tmp_path):
    """Old ``*.nbi``/``*.nbc`` files go unless the stamp holds the sources' current hash."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    where = _run("""
        from fastann.kernels.cuda import batching
        print(batching._gather._cache._cache_path)
    """, env).strip()
    assert where.startswith(str(tmp_path))
    folder = os.path.join(where)
    stamp = os.path.join(folder, "fastann-kernels.sha256")
    current = open(stamp).read()
    old = [os.path.join(folder, f"dense.dense_kernels.locals.forward-45.py311.{ext}")
           for ext in ("nbi", "1.nbc")]

    def plant(digest):
        for path in old:
            open(path, "w").write("stale")
        open(stamp, "w").write(digest)

    plant("a digest of other sources")
    _run("import fastann.kernels.cuda", env)
    assert not any(os.path.exists(p) for p in old)
    assert open(stamp).read() == current
    plant(current)  # built from these sources: kept
    _run("import fastann.kernels.cuda", env)
    assert all(os.path.exists(p) for p in old)
