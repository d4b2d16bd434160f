"""Weight initialization schemes, keyed by name.

Each initializer takes ``(fan_in, fan_out, rng, dtype)`` and returns a weight
matrix of shape ``(fan_in, fan_out)``; biases always start at zero.
"""
import numpy as np


def gaussian(fan_in, fan_out, rng, dtype):
    """Small random Gaussian weights, ``N(0, 0.01^2)``.

    The "small random numbers" initialization of the classic from-scratch
    projects (cs231n notes, "Neural Networks Part 2", weight initialization).
    """
    return (0.01 * rng.standard_normal((fan_in, fan_out))).astype(dtype)


def xavier(fan_in, fan_out, rng, dtype):
    """Glorot/Xavier uniform: ``U(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``.

    Glorot & Bengio (2010), "Understanding the difficulty of training deep
    feedforward neural networks", eq. 16.
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


def he(fan_in, fan_out, rng, dtype):
    """He/Kaiming normal: ``N(0, 2 / fan_in)``.

    He, Zhang, Ren & Sun (2015), "Delving Deep into Rectifiers", eq. 10.
    """
    return (np.sqrt(2.0 / fan_in) * rng.standard_normal((fan_in, fan_out))).astype(dtype)


INITIALIZERS = {"gaussian": gaussian, "xavier": xavier, "he": he}


def default_init(activation):
    """The scheme designed for ``activation``: He for rectifiers, Xavier otherwise."""
    return "he" if activation in ("relu", "leaky_relu") else "xavier"
