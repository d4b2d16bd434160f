"""In-place optimizer steps on the GPU: SGD, momentum, Nesterov, Adam/AdamW.

One launch per step over the whole flat parameter vector (weights first, then
biases, as in :mod:`kernels.network`); each thread reads its gradient,
parameter and state entries once and writes them once (Adam: ``m``, ``v`` and
the weight fused). The L1/L2 penalty is applied to the weight prefix
``[0, n_weights)`` exactly as :mod:`kernels.optimizers` does, with AdamW's
decoupled decay when ``decoupled``.

The scalars that change from step to step -- the learning rate (it follows
the schedule, epoch by epoch) and Adam's ``lr_t``, ``eps_hat`` and decay
(bias corrections folded in, computed per step in float64 by the same
:func:`~fastann.kernels.optimizers.adam_step_factors` as the CPU) -- are read
from the plan table at the cursor (:mod:`fastann.kernels.cuda._launch`) and
cast to the parameters' dtype on the device, as the CPU kernel casts them;
the constant ones (momentum, betas, penalties) are launch arguments already in
that dtype, so float32 updates never promote to float64. An update kernel is
the last kernel of a training step: it runs every micro-step, updates only
when the plan's ``UPDATE`` flag is set, and advances the cursor.
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ..optimizers import adam_step_factors
from ._device import penalized
from ._launch import (CURRENT, DECAY, DEFAULT_THREADS, EPS_HAT, LR, NEXT, UPDATE, float_dtype,
                      n_blocks, numba_type, single_step_plan)


#: The update kernels, one per formula (AdamW is ``"adam"`` with its decay in the plan).
KERNEL_NAMES = ("sgd", "momentum", "nesterov", "adam")


@lru_cache(maxsize=None)
def update_function(name, dtype):
    """The device function that applies optimizer ``name`` to one parameter, for one dtype.

    ``update(params, s1, s2, i, g, n_weights, lr, eps_hat, decay, c0, c1, c2, c3, l1, l2)``
    updates ``params[i]`` (and its state ``s1[i]``, ``s2[i]``) for the gradient
    ``g``, penalized when ``i < n_weights`` (a weight). The state and the
    constants ``c0..c3`` depend on the optimizer (see :func:`padded_constants`):

    ========  ==========  ======  ===========================================
    name      s1          s2      c0, c1, c2, c3
    ========  ==========  ======  ===========================================
    sgd       unused      unused  unused
    momentum  velocity    unused  mu
    nesterov  velocity    unused  mu, 1 + mu
    adam      m           v       beta_1, beta_2, 1 - beta_1, 1 - beta_2
    ========  ==========  ======  ===========================================

    ``lr``, ``eps_hat`` and ``decay`` are the plan's per-step entries, already
    in the parameters' dtype. The formulas are those of
    :mod:`kernels.optimizers` (Adam: Kingma & Ba 2015, Algorithm 1 with the
    bias corrections folded into ``lr_t`` and ``eps_hat``; AdamW: Loshchilov &
    Hutter 2019, Algorithm 2, decoupled ``decay``); every GPU update, the
    separate optimizer kernels and the update fused into the first layer's
    backward pass (:mod:`fastann.kernels.cuda.dense`), goes through this one
    function.
    """
    if name not in KERNEL_NAMES:
        raise ValueError(f"unknown optimizer {name!r}")
    SGD_, MOMENTUM_, NESTEROV_ = name == "sgd", name == "momentum", name == "nesterov"

    @cuda.jit(device=True)
    def update(params, s1, s2, i, g, n_weights, lr, eps_hat, decay, c0, c1, c2, c3, l1, l2):
        w = params[i]
        g = penalized(g, w, i, n_weights, l1, l2)
        if SGD_:
            params[i] = w - lr * g
        elif MOMENTUM_:
            v = c0 * s1[i] - lr * g
            s1[i] = v
            params[i] = w + v
        elif NESTEROV_:
            v_old = s1[i]
            v = c0 * v_old - lr * g
            s1[i] = v
            params[i] = w - c0 * v_old + c1 * v
        else:
            mi = c0 * s1[i] + c2 * g
            vi = c1 * s2[i] + c3 * g * g
            s1[i] = mi
            s2[i] = vi
            if i < n_weights:
                w -= decay * w
            params[i] = w - lr * mi / (math.sqrt(vi) + eps_hat)

    return update


@lru_cache(maxsize=None)
def optimizer_kernels(dtype):
    """``{"sgd", "momentum", "nesterov", "adam"}`` update kernels for one float dtype.

    Built per dtype so that the float64 plan entries are cast to the
    parameters' dtype on the device (``nbtype(plan[...])``). Each one runs
    :func:`update_function` over the flat parameters (grid-stride).
    """
    return {name: _optimizer_kernel(name, dtype) for name in KERNEL_NAMES}


def _optimizer_kernel(name, dtype):
    nbtype = numba_type(dtype)
    update = update_function(name, np.dtype(dtype))

    @cuda.jit(device=True)
    def run(params, grads, s1, s2, plan, cursor, c0, c1, c2, c3, l1, l2, n_weights):
        step = cursor[CURRENT]
        cursor[NEXT] = step + 1
        if plan[step, UPDATE] == 0.0:
            return
        lr = nbtype(plan[step, LR])
        eps_hat = nbtype(plan[step, EPS_HAT])
        decay = nbtype(plan[step, DECAY])
        for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
            update(params, s1, s2, i, grads[i], n_weights, lr, eps_hat, decay, c0, c1, c2, c3,
                   l1, l2)

    # The launch signatures of the separate kernels (state arrays and constants per optimizer).
    if name == "sgd":
        @cuda.jit(cache=True)
        def sgd(params, grads, plan, cursor, l1, l2, n_weights):
            zero = l1 - l1
            run(params, grads, params, params, plan, cursor, zero, zero, zero, zero, l1, l2,
                n_weights)
        return sgd
    if name == "momentum":
        @cuda.jit(cache=True)
        def momentum(params, grads, velocity, plan, cursor, mu, l1, l2, n_weights):
            zero = l1 - l1
            run(params, grads, velocity, velocity, plan, cursor, mu, zero, zero, zero, l1, l2,
                n_weights)
        return momentum
    if name == "nesterov":
        @cuda.jit(cache=True)
        def nesterov(params, grads, velocity, plan, cursor, mu, one_plus_mu, l1, l2, n_weights):
            zero = l1 - l1
            run(params, grads, velocity, velocity, plan, cursor, mu, one_plus_mu, zero, zero,
                l1, l2, n_weights)
        return nesterov

    @cuda.jit(cache=True)
    def adam(params, grads, m, v, plan, cursor, b1, b2, one_minus_b1, one_minus_b2, l1, l2,
             n_weights):
        run(params, grads, m, v, plan, cursor, b1, b2, one_minus_b1, one_minus_b2, l1, l2,
            n_weights)
    return adam


def step_scalars(optimizer_is_adam, step, hyper, decoupled):
    """The plan's per-step ``(LR, EPS_HAT, DECAY)`` entries, in float64.

    SGD, momentum, Nesterov: ``(learning_rate, 0, 0)``. Adam/AdamW: the
    factors of :func:`~fastann.kernels.optimizers.adam_step_factors` for the
    1-based ``step``, as the CPU computes them.
    """
    if not optimizer_is_adam:
        return float(hyper.learning_rate), 0.0, 0.0
    return adam_step_factors(int(step), float(hyper.learning_rate), float(hyper.beta_1),
                             float(hyper.beta_2), float(hyper.epsilon), float(hyper.l2),
                             bool(decoupled))


def constant_arguments(optimizer_name, dtype, hyper):
    """The launch arguments after ``cursor`` that stay the same for a whole fit, in ``dtype``.

    ``n_weights`` (the last argument) is appended by the caller.
    """
    dt = np.dtype(dtype).type
    l1, l2 = dt(hyper.l1), dt(hyper.l2)
    if optimizer_name == "sgd":
        return (l1, l2)
    mu = dt(hyper.momentum)
    if optimizer_name == "momentum":
        return (mu, l1, l2)
    if optimizer_name == "nesterov":
        return (mu, dt(1.0) + mu, l1, l2)
    b1, b2 = dt(hyper.beta_1), dt(hyper.beta_2)
    one = dt(1.0)
    decoupled = optimizer_name == "adamw"
    return (b1, b2, one - b1, one - b2, l1, dt(0.0) if decoupled else l2)


def padded_constants(optimizer_name, dtype, hyper):
    """``(c0, c1, c2, c3, l1, l2)`` of :func:`update_function` for one optimizer, in ``dtype``.

    The constants of :func:`constant_arguments` with zeros where the optimizer
    has fewer (AdamW's ``l2`` is 0: its decay is decoupled).
    """
    values = constant_arguments(optimizer_name, dtype, hyper)
    zero = np.dtype(dtype).type(0.0)
    return values[:-2] + (zero,) * (6 - len(values)) + values[-2:]


def _launch(name, params, state_arrays, hyper, n_weights, step, threads):
    """One update outside an epoch: a one-row plan with ``UPDATE`` set, uploaded."""
    threads = threads or DEFAULT_THREADS
    dtype = float_dtype(params)
    kernel = optimizer_kernels(dtype)["adam" if name == "adamw" else name]
    lr, eps_hat, decay = step_scalars(name in ("adam", "adamw"), step, hyper, name == "adamw")
    plan, cursor = single_step_plan(lr=lr, eps_hat=eps_hat, decay=decay)
    kernel[n_blocks(params.size, threads), threads](
        params, *state_arrays, cuda.to_device(plan), cuda.to_device(cursor),
        *constant_arguments(name, dtype, hyper), int(n_weights))


def _hyper(learning_rate=0.0, momentum=0.0, beta_1=0.0, beta_2=0.0, epsilon=0.0, l1=0.0, l2=0.0):
    from ..structs import hyperparameters
    return hyperparameters(learning_rate, momentum, beta_1, beta_2, epsilon, l1, l2)


def gpu_sgd_update(params, grads, learning_rate, l1, l2, n_weights, threads=None):
    """GPU twin of :func:`kernels.sgd_update` (device arrays, updated in place)."""
    _launch("sgd", params, (grads,), _hyper(learning_rate, l1=l1, l2=l2), n_weights, 0, threads)


def gpu_momentum_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights,
                        threads=None):
    """GPU twin of :func:`kernels.momentum_update`."""
    _launch("momentum", params, (grads, velocity),
            _hyper(learning_rate, momentum, l1=l1, l2=l2), n_weights, 0, threads)


def gpu_nesterov_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights,
                        threads=None):
    """GPU twin of :func:`kernels.nesterov_update`."""
    _launch("nesterov", params, (grads, velocity),
            _hyper(learning_rate, momentum, l1=l1, l2=l2), n_weights, 0, threads)


def gpu_adam_update(params, grads, m, v, step, learning_rate, beta1, beta2, epsilon,
                    l1, l2, n_weights, decoupled, threads=None):
    """GPU twin of :func:`kernels.adam_update` (Adam, or AdamW with ``decoupled``)."""
    _launch("adamw" if decoupled else "adam", params, (grads, m, v),
            _hyper(learning_rate, 0.0, beta1, beta2, epsilon, l1, l2), n_weights, step, threads)
