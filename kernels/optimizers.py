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


# Floating-point flags that let LLVM vectorize these loops (reassociation,
# reciprocal and fused multiply-add) while keeping NaN and infinity semantics,
# so a diverging run still shows non-finite values to the caller.
FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


@njit(cache=True, error_model="numpy", inline="always")
def _penalty_gradient(w, l1, l2):
    """Gradient of ``l1 |w| + l2 / 2 w^2``: ``l2 w + l1 sign(w)`` (0 at w = 0)."""
    return l2 * w + l1 * (np.float32(w > 0) - np.float32(w < 0))


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
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
    weights, weight_grads = params[:n_weights], grads[:n_weights]
    for i in range(n_weights):
        w = weights[i]
        weights[i] = w - lr * (weight_grads[i] + _penalty_gradient(w, a1, a2))
    biases, bias_grads = params[n_weights:], grads[n_weights:]
    for i in range(biases.size):
        biases[i] -= lr * bias_grads[i]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _momentum_range(params, grads, velocity, lo, hi, lr, mu, a1, a2, nesterov):
    # Slices, then loops from 0: LLVM can then prove indices non-negative,
    # drop Numba's negative-index wraparound and vectorize.
    params, grads, velocity = params[lo:hi], grads[lo:hi], velocity[lo:hi]
    one = params.dtype.type(1.0)
    for i in range(params.size):
        w = params[i]
        v_old = velocity[i]
        v = mu * v_old - lr * (grads[i] + _penalty_gradient(w, a1, a2))
        velocity[i] = v
        if nesterov:
            params[i] = w - mu * v_old + (one + mu) * v
        else:
            params[i] = w + v


@njit(cache=True, error_model="numpy")
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
    lr, mu, a1, a2, zero = dt(learning_rate), dt(momentum), dt(l1), dt(l2), dt(0.0)
    _momentum_range(params, grads, velocity, 0, n_weights, lr, mu, a1, a2, False)
    _momentum_range(params, grads, velocity, n_weights, params.size, lr, mu, zero, zero, False)


@njit(cache=True, error_model="numpy")
def nesterov_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights):
    """Nesterov momentum in the form that needs no look-ahead forward pass.

    ``v' = mu v - lr g``; ``w <- w - mu v + (1 + mu) v'`` (Bengio,
    Boulanger-Lewandowski & Pascanu 2013, "Advances in optimizing recurrent
    networks", eq. 7; equivalent to Sutskever et al. 2013, eq. 3-4).

    Parameters are as for :func:`momentum_update`.
    """
    dt = params.dtype.type
    lr, mu, a1, a2, zero = dt(learning_rate), dt(momentum), dt(l1), dt(l2), dt(0.0)
    _momentum_range(params, grads, velocity, 0, n_weights, lr, mu, a1, a2, True)
    _momentum_range(params, grads, velocity, n_weights, params.size, lr, mu, zero, zero, True)


@njit(cache=True, error_model="numpy")
def adam_step_factors(step, learning_rate, beta1, beta2, epsilon, l2, decoupled):
    """Adam's per-step scalars, in float64, shared by the CPU kernel and its CUDA twin.

    Kingma & Ba (2015), sec. 2, last paragraph: the bias corrections folded
    into the step size, ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``, and
    ``eps_hat = eps * sqrt(1 - beta2^t)``; with ``decoupled`` (AdamW) the
    decay factor ``lr * l2`` (Loshchilov & Hutter 2019, Alg. 2), else 0.

    Parameters
    ----------
    step : int
        1-based update index ``t``.
    learning_rate, beta1, beta2, epsilon, l2 : float
    decoupled : bool

    Returns
    -------
    lr_t, eps_hat, decay : float
    """
    c2 = np.sqrt(1.0 - beta2 ** step)
    lr_t = learning_rate * c2 / (1.0 - beta1 ** step)
    decay = learning_rate * l2 if decoupled else 0.0
    return lr_t, epsilon * c2, decay


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _adam_range(params, grads, m, v, lo, hi, lr_t, eps_hat, b1, b2, a1, a2, decay):
    params, grads, m, v = params[lo:hi], grads[lo:hi], m[lo:hi], v[lo:hi]
    one = params.dtype.type(1.0)
    for i in range(params.size):
        w = params[i]
        g = grads[i] + _penalty_gradient(w, a1, a2)
        mi = b1 * m[i] + (one - b1) * g
        vi = b2 * v[i] + (one - b2) * g * g
        m[i] = mi
        v[i] = vi
        params[i] = w - decay * w - lr_t * mi / (np.sqrt(vi) + eps_hat)


@njit(cache=True, error_model="numpy")
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
    lr_t64, eps_hat64, decay64 = adam_step_factors(step, learning_rate, beta1, beta2, epsilon,
                                                   l2, decoupled)
    lr_t, eps_hat, decay = dt(lr_t64), dt(eps_hat64), dt(decay64)
    b1, b2, zero = dt(beta1), dt(beta2), dt(0.0)
    a2 = zero if decoupled else dt(l2)
    _adam_range(params, grads, m, v, 0, n_weights, lr_t, eps_hat, b1, b2, dt(l1), a2, decay)
    _adam_range(params, grads, m, v, n_weights, params.size, lr_t, eps_hat, b1, b2,
                zero, zero, zero)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _sgd_range(params, grads, lo, hi, lr, a1, a2):
    params, grads = params[lo:hi], grads[lo:hi]
    for i in range(params.size):
        w = params[i]
        params[i] = w - lr * (grads[i] + _penalty_gradient(w, a1, a2))


@njit(cache=True, error_model="numpy")
def step_scalars(optimizer, step, hyper):
    """The float64 scalars of one update, computed once per step.

    Returns ``(lr, mu, l1, l2, lr_t, eps_hat, decay)``: the learning rate,
    momentum, penalties, and Adam's :func:`adam_step_factors` (zeros for the
    other optimizers). Pass them to :func:`update_range`.
    """
    lr_t, eps_hat, decay = 0.0, 0.0, 0.0
    if optimizer == ADAM or optimizer == ADAMW:
        lr_t, eps_hat, decay = adam_step_factors(step, hyper.learning_rate, hyper.beta_1,
                                                 hyper.beta_2, hyper.epsilon, hyper.l2,
                                                 optimizer == ADAMW)
    return (hyper.learning_rate, hyper.momentum, hyper.l1, hyper.l2, lr_t, eps_hat, decay)


@njit(cache=True, error_model="numpy", inline="always")
def update_range(optimizer, params, grads, state, lo, hi, scalars, beta_1, beta_2, weights):
    """Apply one optimizer update to ``params[lo:hi]`` only (the same formulas as
    :func:`sgd_update`, :func:`momentum_update`, :func:`nesterov_update` and
    :func:`adam_update`), so that a kernel can update each parameter row right
    after computing its gradient.

    Parameters
    ----------
    optimizer : int
    params, grads : ndarray, shape (n_params,), float
    state : OptimizerState
    lo, hi : int
        The range to update.
    scalars : tuple
        From :func:`step_scalars`.
    beta_1, beta_2 : float
        Adam's decay rates.
    weights : bool
        Whether the range holds weights (penalized) or biases (not).
    """
    dt = params.dtype.type
    lr, mu, l1, l2, lr_t, eps_hat, decay = scalars
    zero = dt(0.0)
    a1 = dt(l1) if weights else zero
    if optimizer == SGD:
        _sgd_range(params, grads, lo, hi, dt(lr), a1, dt(l2) if weights else zero)
    elif optimizer == MOMENTUM or optimizer == NESTEROV:
        _momentum_range(params, grads, state.velocity, lo, hi, dt(lr), dt(mu), a1,
                        dt(l2) if weights else zero, optimizer == NESTEROV)
    else:
        decoupled = optimizer == ADAMW
        a2 = dt(l2) if (weights and not decoupled) else zero
        _adam_range(params, grads, state.m, state.v, lo, hi, dt(lr_t), dt(eps_hat),
                    dt(beta_1), dt(beta_2), a1, a2, dt(decay) if weights else zero)
