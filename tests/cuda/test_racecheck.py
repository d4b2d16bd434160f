"""The simulator's race check finds the races it is meant to find, and only those."""
import os

import numpy as np
import pytest

from racecheck import racecheck

pytestmark = [pytest.mark.cudasim, pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"),
    reason="the race check works on the CUDA simulator's threads, not a GPU's")]

N = 8


def launch(cuda, kernel, *arrays, blocks=1):
    """Run ``kernel`` on copies of ``arrays`` under the race check: (log, arrays after)."""
    device = [cuda.to_device(a) for a in arrays]
    with racecheck() as log:
        kernel[blocks, N](*device)
    return log, [d.copy_to_host() for d in device]


@pytest.fixture(scope="module")
def kernels():
    # The simulator swaps the module-level name ``cuda`` of a kernel's globals.
    global cuda
    from numba import cuda

    def neighbours(barrier):
        def kernel(x, out):
            tile = cuda.shared.array(N, np.float64)
            i = cuda.threadIdx.x
            tile[i] = x[i]
            if barrier:
                cuda.syncthreads()
            out[i] = tile[(i + 1) % N]  # another thread's write
        return cuda.jit(kernel)

    neighbour = neighbours(True)
    neighbour_without_barrier = neighbours(False)

    def slab_sums(trailing_barrier):
        def kernel(x, out):
            tile = cuda.shared.array(N, np.float64)
            i = cuda.threadIdx.x
            total = 0.0
            for slab in range(2):
                tile[i] = x[slab * N + i]
                cuda.syncthreads()
                for k in range(N):
                    total += tile[k]
                if trailing_barrier:
                    cuda.syncthreads()
            out[i] = total
        return cuda.jit(kernel)

    slabs = slab_sums(True)
    # the tile is overwritten for the next slab while other threads still read it
    slabs_without_trailing_barrier = slab_sums(False)

    @cuda.jit
    def same_output(x, out):
        out[0] = x[cuda.threadIdx.x]

    @cuda.jit
    def same_flag(x, out):
        out[0] = 1.0  # every thread stores one value: the result does not depend on the order

    @cuda.jit
    def same_flag_read_too_early(x, out):
        out[0] = 1.0
        x[cuda.threadIdx.x] = out[0]  # 0 or 1: no syncthreads orders it after the stores

    @cuda.jit
    def atomic_sum(x, out):
        cuda.atomic.add(out, 0, x[cuda.threadIdx.x])

    @cuda.jit
    def atomic_sum_read_too_early(x, out):
        cuda.atomic.add(out, 0, x[cuda.threadIdx.x])
        x[cuda.threadIdx.x] = out[0]

    # Split-K's arrival protocol: every block stores its partial sums, and the last block to
    # count itself adds them all. ``fence_out``/``barrier``/``fence_in`` drop one part of it.
    def arrivals(fence_out, barrier, fence_in):
        def kernel(x, partials, count, out):
            flag = cuda.shared.array(1, np.int64)
            b = cuda.blockIdx.x
            t = cuda.threadIdx.x
            partials[b * N + t] = x[t] * (b + 1)
            if fence_out:
                cuda.threadfence()
            if barrier:
                cuda.syncthreads()
            if t == 0:
                flag[0] = cuda.atomic.add(count, 0, 1)
            cuda.syncthreads()
            if flag[0] == cuda.gridDim.x - 1:
                if fence_in:
                    cuda.threadfence()
                total = 0.0
                for block in range(cuda.gridDim.x):
                    total += partials[block * N + t]
                out[t] = total
                if t == 0:
                    count[0] = 0
        return cuda.jit(kernel)

    arrival_protocol = arrivals(True, True, True)
    arrivals_without_fence_out = arrivals(False, True, True)
    arrivals_without_barrier = arrivals(True, False, True)
    arrivals_without_fence_in = arrivals(True, True, False)

    @cuda.jit
    def neighbour_block(x, partials, count, out):
        if cuda.threadIdx.x == 0:  # reads what another block writes, unordered
            partials[cuda.blockIdx.x] = x[cuda.blockIdx.x]
            out[cuda.blockIdx.x] = partials[(cuda.blockIdx.x + 1) % cuda.gridDim.x]

    @cuda.jit
    def copy(x, out):
        out[cuda.threadIdx.x] = x[cuda.threadIdx.x]

    @cuda.jit
    def copy_shifted(x, out):
        out[cuda.threadIdx.x] = x[(cuda.threadIdx.x + 1) % N]  # another thread's element

    del neighbours, slab_sums, arrivals
    return {name: kernel for name, kernel in locals().items()}


@pytest.mark.parametrize("name,kind,space", [
    ("neighbour_without_barrier", "read and write", "shared"),
    ("slabs_without_trailing_barrier", "read and write", "shared"),
    ("same_output", "write and write", "global"),
    ("atomic_sum_read_too_early", "read and atomic update", "global"),
    ("same_flag_read_too_early", "read and write", "global"),
])
def test_races_are_found(cuda, kernels, name, kind, space):
    log, _ = launch(cuda, kernels[name], np.arange(2 * N, dtype=np.float64), np.zeros(N))
    assert log.races, f"{name}: no race found"
    race = log.races[0]
    assert (race.kind, race.space, race.block) == (kind, space, (0, 0, 0))
    assert race.first[0] != race.second[0]
    assert race.second[1].startswith("test_racecheck.py:")
    assert kind in log.report()


@pytest.mark.parametrize("name", ["neighbour", "slabs", "atomic_sum", "same_flag"])
def test_ordered_accesses_are_not_races(cuda, kernels, name):
    x = np.arange(2 * N, dtype=np.float64)
    log, (_, out) = launch(cuda, kernels[name], x, np.zeros(N))
    assert not log.races, log.report()
    assert log.accesses >= N
    expected = {"neighbour": np.roll(x[:N], -1),
                "slabs": np.full(N, x.sum()),
                "atomic_sum": np.r_[x[:N].sum(), np.zeros(N - 1)],
                "same_flag": np.r_[1.0, np.zeros(N - 1)]}[name]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name,kind", [
    ("arrivals_without_fence_out", "read and write"),
    ("arrivals_without_barrier", "read and write"),
    ("arrivals_without_fence_in", "read and write"),
    ("neighbour_block", "read and write"),
])
def test_races_between_blocks_are_found(cuda, kernels, name, kind):
    blocks = 3
    arrays = (np.arange(N, dtype=np.float64), np.zeros(blocks * N), np.zeros(1, np.int64),
              np.zeros(N))
    log, _ = launch(cuda, kernels[name], *arrays, blocks=blocks)
    assert log.races, f"{name}: no race found"
    race = log.races[0]
    assert (race.kind, race.space) == (kind, "global")
    assert race.first_block is not None and race.first_block != race.block
    assert "between blocks" in str(race)


def test_the_arrival_protocol_orders_the_blocks(cuda, kernels):
    blocks = 3
    x = np.arange(N, dtype=np.float64)
    arrays = (x, np.zeros(blocks * N), np.zeros(1, np.int64), np.zeros(N))
    log, (_, _, count, out) = launch(cuda, kernels["arrival_protocol"], *arrays, blocks=blocks)
    assert not log.races, log.report()
    np.testing.assert_array_equal(out, x * (1 + 2 + 3))
    assert count[0] == 0


def test_launches_are_not_mixed_up(cuda, kernels):
    """The second launch reads what other threads wrote in the first: ordered by the launch
    boundary, not a race (taken as one launch, or one block, it would be)."""
    x = np.arange(N, dtype=np.float64)
    x_device, middle, out = (cuda.to_device(a) for a in (x, np.zeros(N), np.zeros(N)))
    with racecheck() as log:
        kernels["copy"][1, N](x_device, middle)
        kernels["copy_shifted"][1, N](middle, out)
    assert not log.races, log.report()
    np.testing.assert_array_equal(out.copy_to_host(), np.roll(x, -1))
    with racecheck() as log:  # the same accesses inside one launch are a race
        kernels["copy_shifted"][1, N](middle, middle)
    assert [race.kind for race in log.races[:1]] == ["read and write"]


def test_patches_are_removed_afterwards(cuda, kernels):
    from numba.cuda.simulator import kernel, kernelapi
    before = (kernel.BlockThread.syncthreads, kernelapi.FakeCUDAShared.array)
    with racecheck():
        assert kernel.BlockThread.syncthreads is not before[0]
    assert (kernel.BlockThread.syncthreads, kernelapi.FakeCUDAShared.array) == before
    log, _ = launch(cuda, kernels["neighbour"], np.arange(2 * N, dtype=np.float64), np.zeros(N))
    assert log.accesses > 0
