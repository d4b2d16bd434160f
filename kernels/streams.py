"""Counter-based random streams: one small generator per (epoch, row, purpose).

Dropout masks and augmentation transforms must come out the same however an
epoch is cut into calls, micro-batches or threads. Each row's random numbers
are therefore drawn from a SplitMix64 generator (Steele, Lea & Flood 2014,
"Fast splittable pseudorandom number generators", OOPSLA) whose state depends
only on

- the epoch's seed (drawn from the model's random generator once per epoch,
  like the shuffle seed of :func:`fastann.kernels.batching.shuffle_inplace`),
- the row's position in the epoch's (shuffled) order, and
- a stream number: :data:`AUGMENT_STREAM` for the augmentation transform,
  ``DROPOUT_STREAM + l`` for the dropout mask of hidden layer ``l``.

SplitMix64 started at ``seed`` outputs ``mix(seed + (k + 1) * gamma)`` as its
``k``-th number, so the row's state is that ``k``-th output with
``k = position * STREAMS_PER_ROW + stream``, computed directly (no loop).
"""
import numpy as np
from numba import njit

from .batching import splitmix64

#: SplitMix64's increment (the golden-ratio constant of Steele et al. 2014).
GAMMA = 0x9E3779B97F4A7C15
#: Streams reserved per row: augmentation and one per hidden layer's dropout mask.
STREAMS_PER_ROW = 1 << 16
AUGMENT_STREAM = 0
DROPOUT_STREAM = 1
# 2**-53: turns the top 53 bits of an output into a double in [0, 1).
_UNIT = 1.0 / 9007199254740992.0


@njit(cache=True, error_model="numpy", inline="always")
def row_stream(seed, position, stream):
    """Initial state of the generator of one row and purpose.

    Parameters
    ----------
    seed : int
        The epoch's seed, in ``[0, 2**63)``.
    position : int
        The row's position in the epoch's order (0-based, over the whole epoch).
    stream : int
        :data:`AUGMENT_STREAM`, or ``DROPOUT_STREAM + layer``; below
        :data:`STREAMS_PER_ROW`.

    Returns
    -------
    numpy.uint64
    """
    counter = np.uint64(position) * np.uint64(STREAMS_PER_ROW) + np.uint64(stream)
    _, z = splitmix64(np.uint64(seed) + counter * np.uint64(GAMMA))
    return z


@njit(cache=True, error_model="numpy", inline="always")
def next_uniform(state):
    """``(state, u)``: the next SplitMix64 output as a double ``u`` in ``[0, 1)`` (53 bits)."""
    state, r = splitmix64(state)
    return state, np.float64(r >> np.uint64(11)) * _UNIT


@njit(cache=True, error_model="numpy")
def uniform_field(state, out):
    """Fill the 1-D ``out`` with values uniform in ``[-1, 1)``; return the new state.

    The random displacement fields of :func:`fastann.kernels.augment.elastic_displacements`.
    """
    for i in range(out.size):
        state, u = next_uniform(state)
        out[i] = 2.0 * u - 1.0
    return state
