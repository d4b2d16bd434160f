"""Find data races while kernels run in Numba's CUDA simulator.

The simulator runs every CUDA thread as a Python thread, one block at a time,
and the interpreter decides when threads switch. A kernel that reads a shared
tile before the ``syncthreads`` that should guard it can still give the right
numbers there, because the writer happened to run first, and then fail on a
GPU. This module checks the rule itself instead of relying on the
interleaving, much as ``compute-sanitizer --tool racecheck`` does for shared
memory on hardware:

* Every thread counts the ``syncthreads`` it has passed. Between the ``k``-th
  and the ``k+1``-th barrier a block's threads run in *epoch* ``k``; accesses
  in the same epoch by different threads are unordered.
* Every element access of a shared array, and of a kernel argument (global
  memory), is recorded by address with its thread, epoch and kind; when the
  block ends, its accesses are grouped by epoch and element and checked.
* Two accesses to one element in one epoch of one block, by different
  threads, at least one of them a plain write, are a race (read and write,
  write and write). An atomic update against a plain read or write of the
  same element is also a race; atomics against atomics are not. Whichever of
  the two ran first in the simulator, the race is the same.
* Plain writes of one value by several threads are not races with each
  other: every thread of a launch may set a flag or a cursor slot to the same
  value (``cursor[CURRENT] = c``). They still race with a read by another
  thread, and with a write of a different value.
* Between the blocks of one launch (which a GPU runs in any order, the
  simulator one after another), conflicting global accesses must be ordered
  by a fenced atomic on one counter in both blocks, the protocol of the
  split-K arrival counters (:meth:`RaceLog.end_launch`).

What it does not see: accesses through slices (the kernels index element by
element), local arrays (private to a thread), and orders other than the one
the simulator ran (a block that counts itself first is checked as the block
that did).

Use::

    with racecheck() as log:
        kernel[grid, block](...)
    assert not log.races, log.report()
"""
import collections
import contextlib
import dataclasses
import os
import sys
import threading

import numpy as np

READ, WRITE, ATOMIC, FENCE = "read", "write", "atomic", "fence"
_HERE = os.path.abspath(__file__)
_NUMBA = (f"{os.sep}numba{os.sep}", f"{os.sep}numba_cuda{os.sep}")  # the simulator's own code
_active = None  # the RaceLog being filled, while racecheck() is on

# One event of one simulated thread: ``seq`` orders a thread's own events, ``epoch``
# counts its syncthreads; ``address`` is None for a fence.
Access = collections.namedtuple(
    "Access", "epoch address thread seq kind value space array index caller")


@dataclasses.dataclass
class Race:
    """Two unordered accesses to one element by two threads of one block, or of two blocks."""
    kind: str       # "read and write", "write and write", "read and atomic update", ...
    space: str      # "shared" or "global"
    shape: tuple    # the array's shape
    index: tuple    # the element
    block: tuple    # blockIdx of the second access
    epoch: int      # syncthreads passed before the second access
    first: tuple    # (thread, "file:line") of the access the simulator ran first
    second: tuple   # (thread, "file:line") of the other one
    first_block: tuple = None  # blockIdx of the first access, when it is another block's

    def __str__(self):
        if self.first_block is None:
            where = f"block {self.block}, after {self.epoch} syncthreads"
            first = f"thread {self.first[0]}"
        else:
            where = "between blocks, with no fenced atomic ordering them"
            first = f"block {self.first_block} thread {self.first[0]}"
        return (f"{self.kind} race on {self.space} array {self.shape} at {self.index}, {where}:"
                f" {first} at {self.first[1]}, then block {self.block} thread {self.second[0]}"
                f" at {self.second[1]}")


# the kinds of two accesses by different threads -> the race's name (whichever ran first)
_CONFLICTS = {
    frozenset({READ, WRITE}): "read and write",
    frozenset({WRITE}): "write and write",
    frozenset({READ, ATOMIC}): "read and atomic update",
    frozenset({WRITE, ATOMIC}): "write and atomic update",
}


def _conflict(earlier, later, written):
    """The race's name if ``earlier`` and ``later`` (other threads) conflict, else None.
    ``written``: the values plain writes stored in the element (writes of one value do not
    conflict with each other)."""
    if earlier.kind == later.kind == WRITE and len(written) == 1:
        return None
    return _CONFLICTS.get(frozenset({earlier.kind, later.kind}))


class RaceLog:
    """The races found while :func:`racecheck` was on (the first ``limit``; ``found`` counts all).

    Each simulated thread appends its accesses to its block's list (no lock:
    ``list.append`` is atomic in CPython). When a block ends its accesses are
    grouped by epoch and element and checked; when a launch ends its blocks'
    global accesses are checked against each other.
    """

    def __init__(self, limit=20):
        self.races = []
        self.found = 0
        self.accesses = 0
        self.limit = limit
        self._arrays = {}  # id -> (array, address of element 0, strides), for the block running
        self._launch = None  # [(blockIdx, its global accesses and fences)] of the running launch

    def report(self):
        lines = [str(race) for race in self.races]
        if self.found > len(self.races):
            lines.append(f"... {self.found - len(self.races)} more")
        return "\n".join(lines) or "no races"

    def record(self, array, index, kind, space, value=None):
        """Note an access of ``array[index]`` (``array`` None: a fence); ``value``: what a plain
        write stored."""
        thread = threading.current_thread()
        manager = getattr(thread, "_manager", None)
        accesses = getattr(manager, "racecheck_accesses", None)
        if accesses is None:  # host code, not a simulated CUDA thread
            return
        address = None
        if array is not None:
            address = self._address(array, index)
            if address is None:
                return
        if getattr(thread, "racecheck_atomic", 0):
            kind = ATOMIC
        seq = thread.racecheck_seq = getattr(thread, "racecheck_seq", 0) + 1
        accesses.append(Access(getattr(thread, "barriers_passed", 0), address, thread.thread_id,
                               seq, kind, value, space, array, index, _caller()))

    def _address(self, array, index):
        """The byte address of ``array[index]``, or None unless ``index`` names one element."""
        entry = self._arrays.get(id(array))
        if entry is None or entry[0] is not array:
            entry = self._arrays[id(array)] = (array, array.ctypes.data, array.strides)
        index = index if type(index) is tuple else (index,)
        if len(index) != array.ndim:
            return None
        address = entry[1]
        for i, n, stride in zip(index, array.shape, entry[2]):
            if not isinstance(i, (int, np.integer)):
                return None
            address += (int(i) % n) * stride
        return address

    def _add(self, name, earlier, later, block, first_block=None):
        """Count a race between ``earlier`` and ``later`` (in ``block``); keep the first few."""
        self.found += 1
        if len(self.races) < self.limit:
            self.races.append(Race(
                name, later.space, later.array.shape, _normalized(later.array, later.index),
                tuple(block), later.epoch, (earlier.thread, _where(earlier.caller)),
                (later.thread, _where(later.caller)),
                None if first_block is None else tuple(first_block)))

    def check_block(self, block, accesses):
        """Find the races among one block's ``accesses`` (see :meth:`record`)."""
        self.accesses += len(accesses)
        self._arrays.clear()
        elements = {}
        for access in accesses:
            if access.address is not None:
                elements.setdefault((access.epoch, access.address), []).append(access)
        for group in elements.values():
            race = _first_conflict([(access.thread, access) for access in group])
            if race is not None:
                name, earlier, later, _, _ = race
                self._add(name, earlier, later, block)
        if self._launch is not None:
            self._launch.append((block, [access for access in accesses
                                         if access.space == "global" or access.kind == FENCE]))

    def begin_launch(self):
        self._launch = []

    def end_launch(self):
        """Find the races between the blocks of the launch that just ended.

        Blocks of one launch run in any order on a GPU, so two blocks' conflicting
        accesses to one element must be ordered by the one thing that orders
        them: an atomic on one counter in both blocks, fenced. Block ``A``'s access
        ``a`` is published by an atomic ``x`` on counter ``c`` when a fence
        (``threadfence``) of ``a``'s thread comes after ``a`` and before ``x``
        (before the ``syncthreads`` that precedes ``x`` when another thread makes
        it); block ``B``'s access ``b`` sees it when ``B`` made an atomic ``y`` on
        ``c`` before ``b``, with a fence of ``b``'s thread between them (after the
        ``syncthreads`` that follows ``y`` when another thread made it). This is
        the protocol of CUDA's threadFenceReduction sample and of the split-K
        arrival counters.
        """
        blocks, self._launch = self._launch, None
        if not blocks or len(blocks) < 2:
            return
        per_address = {}
        atomics, fences = [], []
        for number, (_, accesses) in enumerate(blocks):
            by_counter, by_thread = {}, {}
            for access in accesses:
                if access.kind == FENCE:
                    by_thread.setdefault(access.thread, []).append(access)
                    continue
                if access.kind == ATOMIC:
                    by_counter.setdefault(access.address, []).append(access)
                per_address.setdefault(access.address, []).append((number, access))
            atomics.append(by_counter)
            fences.append(by_thread)

        def unordered(a_block, a, b_block, b):
            return not _ordered(a, atomics[a_block], fences[a_block],
                                b, atomics[b_block], fences[b_block])

        for accesses in per_address.values():
            race = _first_conflict(accesses, unordered)
            if race is not None:
                name, a, b, a_block, b_block = race
                self._add(name, a, b, blocks[b_block][0], first_block=blocks[a_block][0])


def _ordered(a, a_atomics, a_fences, b, b_atomics, b_fences):
    """Whether ``a`` (block A, ran first) is ordered before ``b`` (block B) through a fenced
    atomic on one counter in both blocks (see :meth:`RaceLog.end_launch`)."""
    for counter in a_atomics.keys() & b_atomics.keys():
        if (any(_publishes(x, a, a_fences) for x in a_atomics[counter])
                and any(_sees(y, b, b_fences) for y in b_atomics[counter])):
            return True
    return False


def _publishes(x, a, fences):
    if x is a:
        return True
    return any(f.seq > a.seq and (f.seq < x.seq if x.thread == a.thread else f.epoch < x.epoch)
               for f in fences.get(a.thread, ()))


def _sees(y, b, fences):
    if y is b or (y.address == b.address and y.thread == b.thread and y.seq < b.seq):
        return True  # the atomic itself, or the same element later in the same thread
    return any(f.seq < b.seq and (f.seq > y.seq if y.thread == b.thread else f.epoch > y.epoch)
               for f in fences.get(b.thread, ()))


def _first_conflict(accesses, unordered=lambda *pair: True):
    """``(name, earlier, later, earlier's owner, later's owner)`` of the first race among one
    element's ``accesses``, ``(owner, Access)`` pairs in the order they ran, or None. Owners
    are threads (inside a block, one epoch) or blocks (one launch); two accesses of different
    owners race when their kinds conflict and ``unordered(owner, a, other owner, b)``."""
    if len(accesses) < 2 or all(access.kind == READ for _, access in accesses):
        return None
    if len({owner for owner, _ in accesses}) < 2:
        return None
    written = {access.value for _, access in accesses if access.kind == WRITE}
    for i, (a_owner, a) in enumerate(accesses):
        for b_owner, b in accesses[i + 1:]:
            if b_owner != a_owner:
                name = _conflict(a, b, written)
                if name and unordered(a_owner, a, b_owner, b):
                    return name, a, b, a_owner, b_owner
    return None


def _normalized(array, index):
    index = index if isinstance(index, tuple) else (index,)
    return tuple(int(i) % n for i, n in zip(index, array.shape))


def _stored(array, index):
    """The value just written to ``array[index]``, hashable (raw bytes, so NaN equals NaN)."""
    value = np.ndarray.__getitem__(array, index)
    return value.tobytes() if isinstance(value, (np.generic, np.ndarray)) else value


def _caller():
    """The kernel code's frame that made the access: (code, line)."""
    frame = sys._getframe(3)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != _HERE and not any(part in name for part in _NUMBA):
            return frame.f_code, frame.f_lineno
        frame = frame.f_back
    return None, 0


def _where(caller):
    code, line = caller
    return f"{os.path.basename(code.co_filename)}:{line}" if code is not None else "?"


class _WatchedShared(np.ndarray):
    """A shared array whose element reads and writes are recorded."""

    def __getitem__(self, index):
        value = super().__getitem__(index)
        if _active is not None:
            _active.record(self, index, READ, "shared")
        return value

    def __setitem__(self, index, value):
        super().__setitem__(index, value)
        if _active is not None:
            _active.record(self, index, WRITE, "shared", _stored(self, index))


@contextlib.contextmanager
def racecheck(limit=20):
    """Record the accesses of every simulated kernel launched inside; yield the :class:`RaceLog`.

    Needs the simulator (``NUMBA_ENABLE_CUDASIM=1``). Patches the simulator's
    ``syncthreads``, shared arrays, in-kernel arrays and atomics, and puts them
    back on exit.
    """
    global _active
    from numba.cuda.simulator import kernel, kernelapi
    from numba.cuda.simulator.cudadrv.devicearray import FakeWithinKernelCUDAArray

    from fastann.kernels.cuda._simulator import launch_shared_array

    originals = []

    def patch(owner, name, replacement):
        originals.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    syncthreads = kernel.BlockThread.syncthreads

    def counted_syncthreads(self):
        self.barriers_passed = getattr(self, "barriers_passed", 0) + 1
        return syncthreads(self)

    shared_array = kernelapi.FakeCUDAShared.array

    def watched_shared_array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return shared_array(self, shape, dtype, alignment)
        return launch_shared_array(self, shape, dtype, sys._getframe(1), new=_watched_empty)

    getitem = FakeWithinKernelCUDAArray.__getitem__
    setitem = FakeWithinKernelCUDAArray.__setitem__

    def watched_getitem(self, index):
        value = getitem(self, index)
        if _active is not None:
            _active.record(self._item._ary, index, READ, "global")
        return value

    def watched_setitem(self, index, value):
        setitem(self, index, value)
        if _active is not None:
            array = self._item._ary
            _active.record(array, index, WRITE, "global", _stored(array, index))

    run_block = kernel.BlockManager.run

    def checked_run_block(self, grid_point, *args):
        self.racecheck_accesses = []
        try:
            return run_block(self, grid_point, *args)
        finally:
            accesses, self.racecheck_accesses = self.racecheck_accesses, None
            if _active is not None:
                _active.check_block(grid_point, accesses)

    launch = kernel.FakeCUDAKernel.__call__

    def checked_launch(self, *args):
        if self._device or kernel._kernel_context is not None or _active is None:
            return launch(self, *args)  # a device function, called inside a kernel
        _active.begin_launch()
        try:
            return launch(self, *args)
        finally:
            _active.end_launch()

    def fence(self):
        if _active is not None:
            _active.record(None, None, FENCE, "global")

    patch(kernel.FakeCUDAKernel, "__call__", checked_launch)
    patch(kernelapi.FakeCUDAModule, "threadfence", fence)
    patch(kernelapi.FakeCUDAModule, "threadfence_system", fence)
    patch(kernel.BlockManager, "run", checked_run_block)
    patch(kernel.BlockThread, "syncthreads", counted_syncthreads)
    patch(kernelapi.FakeCUDAShared, "array", watched_shared_array)
    patch(FakeWithinKernelCUDAArray, "__getitem__", watched_getitem)
    patch(FakeWithinKernelCUDAArray, "__setitem__", watched_setitem)
    for name, method in list(vars(kernelapi.FakeCUDAAtomic).items()):
        if callable(method) and not name.startswith("_"):
            patch(kernelapi.FakeCUDAAtomic, name, _marked_atomic(method))

    log = RaceLog(limit)
    _active = log
    try:
        yield log
    finally:
        _active = None
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def _watched_empty(shape, dtype):
    return np.empty(shape, dtype).view(_WatchedShared)


def _marked_atomic(method):
    """``method`` with the element accesses it makes recorded as atomic."""
    def atomic(self, *args, **kwargs):
        thread = threading.current_thread()
        thread.racecheck_atomic = getattr(thread, "racecheck_atomic", 0) + 1
        try:
            return method(self, *args, **kwargs)
        finally:
            thread.racecheck_atomic -= 1
    return atomic
