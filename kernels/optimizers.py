"""In-place parameter updates: SGD, momentum, Nesterov, Adam and AdamW.

All parameters live in one flat vector laid out as ``[weights..., biases...]``;
the first ``n_weights`` entries are weights, which are the only ones that L1/L2
penalties apply to. Every kernel reads each gradient, parameter and state entry
once and writes it once (Adam: ``m``, ``v`` and the weight in one pass).

The penalty ``l1 * |w|_1 + l2 / 2 * |w|_2^2`` adds ``l1 * sign(w) + l2 * w`` to
the gradient of every weight (folded into the update, not a separate pass),
except for AdamW, whose ``l2`` is the decoupled weight decay of Loshchilov &
Hutter (2019), "Decoupled Weight Decay Regularization", Alg. 2.
"""
import numpy as np
from numba import njit

SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3
ADAMW = 4


@njit(cache=True, inline="always")
def _penalized(g, w, i, n_weights, l1, l2):
    if i < n_weights:
        g += l2 * w
        if w > 0:
            g += l1
        elif w < 0:
            g -= l1
    return g


@njit(cache=True)
def sgd_update(params, grads, learning_rate, l1, l2, n_weights):
    """Plain gradient step ``w <- w - lr * (g + penalty'(w))``.

    Parameters
    ----------
    params, grads : ndarray, shape (n_params,), float32 or float64
        ``params`` is updated in place.
    learning_rate, l1, l2 : float
    n_weights : int
        Entries ``[0, n_weights)`` are weights (penalized), the rest biases.
    """
    dt = params.dtype.type
    lr, a1, a2 = dt(learning_rate), dt(l1), dt(l2)
    for i in range(params.size):
        w = params[i]
        params[i] = w - lr * _penalized(grads[i], w, i, n_weights, a1, a2)


@njit(cache=True)
def momentum_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights):
    """Classical momentum: ``v <- mu v - lr g``; ``w <- w + v``.

    Polyak (1964); notation of Sutskever et al. (2013), "On the importance of
    initialization and momentum in deep learning", eq. 1-2.

    Parameters
    ----------
    params, grads, velocity : ndarray, shape (n_params,), float
        ``params`` and ``velocity`` are updated in place; start ``velocity`` at 0.
    learning_rate, momentum, l1, l2 : float
    n_weights : int
    """
    dt = params.dtype.type
    lr, mu, a1, a2 = dt(learning_rate), dt(momentum), dt(l1), dt(l2)
    for i in range(params.size):
        w = params[i]
        v = mu * velocity[i] - lr * _penalized(grads[i], w, i, n_weights, a1, a2)
        velocity[i] = v
        params[i] = w + v


@njit(cache=True)
def nesterov_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights):
    """Nesterov momentum in the form that needs no look-ahead forward pass.

    ``v' = mu v - lr g``; ``w <- w - mu v + (1 + mu) v'`` (Bengio,
    Boulanger-Lewandowski & Pascanu 2013, "Advances in optimizing recurrent
    networks", eq. 7; equivalent to Sutskever et al. 2013, eq. 3-4).

    Parameters are as for :func:`momentum_update`.
    """
    dt = params.dtype.type
    lr, mu, a1, a2 = dt(learning_rate), dt(momentum), dt(l1), dt(l2)
    one = dt(1.0)
    for i in range(params.size):
        w = params[i]
        v_old = velocity[i]
        v = mu * v_old - lr * _penalized(grads[i], w, i, n_weights, a1, a2)
        velocity[i] = v
        params[i] = w - mu * v_old + (one + mu) * v


@njit(cache=True)
def adam_update(params, grads, m, v, step, learning_rate, beta1, beta2, epsilon,
                l1, l2, n_weights, decoupled):
    """Adam / AdamW step, fused: ``m``, ``v`` and the weight in one pass.

    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Alg. 1,
    with the bias corrections folded into the step size (their sec. 2,
    last paragraph): ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`` and
    ``w <- w - lr_t * m / (sqrt(v) + eps_hat)``, ``eps_hat = eps sqrt(1 - beta2^t)``
    so that the result equals Alg. 1 exactly. With ``decoupled`` the ``l2``
    term is AdamW's weight decay ``w <- w - lr * l2 * w`` (Loshchilov & Hutter
    2019, Alg. 2, with schedule multiplier 1) instead of a gradient penalty.

    Parameters
    ----------
    params, grads, m, v : ndarray, shape (n_params,), float
        ``params``, ``m`` (first moment) and ``v`` (second moment) are updated
        in place; start ``m`` and ``v`` at 0.
    step : int
        1-based index ``t`` of this update.
    learning_rate, beta1, beta2, epsilon, l1, l2 : float
    n_weights : int
    decoupled : bool
        True for AdamW.
    """
    dt = params.dtype.type
    c2 = np.sqrt(1.0 - beta2 ** step)
    lr_t = dt(learning_rate * c2 / (1.0 - beta1 ** step))
    eps_hat = dt(epsilon * c2)
    b1, b2 = dt(beta1), dt(beta2)
    one = dt(1.0)
    a1 = dt(l1)
    a2 = dt(0.0) if decoupled else dt(l2)
    decay = dt(learning_rate * l2) if decoupled else dt(0.0)
    for i in range(params.size):
        w = params[i]
        g = _penalized(grads[i], w, i, n_weights, a1, a2)
        mi = b1 * m[i] + (one - b1) * g
        vi = b2 * v[i] + (one - b2) * g * g
        m[i] = mi
        v[i] = vi
        if i < n_weights:
            w -= decay * w
        params[i] = w - lr_t * mi / (np.sqrt(vi) + eps_hat)
