"""A from-scratch NumPy MLP: the "seed-style" reference peer.

This is the network people write to learn backpropagation (Nielsen's
*Neural Networks and Deep Learning*, ch. 1-2, in matrix form): a Python loop
over mini-batches, ``X @ W + b``, an activation, softmax cross-entropy, the
backward pass, and a NumPy optimizer step. Everything is float32. It is
written for clarity, not tuned -- but not deliberately slow either: matrix
products go to BLAS, updates are in place, nothing is allocated per sample.

Usage::

    net = NumpyMLP([784, 128, 10], "relu", "adam", lr=1e-3, seed=0)
    seconds = net.train_epoch(X, y, batch_size=128)      # X float32 in [0, 1]

or ``train_epoch_numpy(X, y, hidden, activation, optimizer, lr, batch_size, seed)``.
"""
from __future__ import annotations

import time

import numpy as np


# --------------------------------------------------------------- activations
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ACTIVATIONS = {
    # name: (f(z), f'(z) written through a = f(z))
    "relu": (lambda z: np.maximum(z, 0, out=z), lambda a: (a > 0).astype(a.dtype)),
    "sigmoid": (_sigmoid, lambda a: a * (1 - a)),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "identity": (lambda z: z, lambda a: np.ones_like(a)),
}


def softmax_cross_entropy(logits, y):
    """Mean loss and gradient dL/dlogits of softmax + cross-entropy."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    grad = p
    grad[np.arange(n), y] -= 1
    grad /= n
    return loss, grad


class NumpyMLP:
    """Fully-connected network trained with mini-batch gradient descent."""

    def __init__(self, sizes, activation="relu", optimizer="adam", lr=1e-3,
                 momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, seed=0):
        rng = np.random.default_rng(seed)
        self.f, self.df = ACTIVATIONS[activation]
        # He init for ReLU, Xavier/Glorot otherwise.
        gain = 2.0 if activation == "relu" else 1.0
        self.W = [(rng.standard_normal((a, b)) * np.sqrt(gain / a)).astype(np.float32)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.optimizer = optimizer
        self.lr, self.mu = lr, momentum
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        params = self.W + self.b
        self.m = [np.zeros_like(p) for p in params]   # Adam 1st moment / velocity
        self.v = [np.zeros_like(p) for p in params]   # Adam 2nd moment
        self.rng = rng

    # ---------------------------------------------------------------- passes
    def forward(self, X):
        """Activations of every layer (the last one is the logits)."""
        acts = [X]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ W + b
            acts.append(z if i == len(self.W) - 1 else self.f(z))
        return acts

    def backward(self, acts, y):
        loss, dz = softmax_cross_entropy(acts[-1], y)
        dW, db = [None] * len(self.W), [None] * len(self.b)
        for i in reversed(range(len(self.W))):
            dW[i] = acts[i].T @ dz
            db[i] = dz.sum(axis=0)
            if i > 0:
                dz = (dz @ self.W[i].T) * self.df(acts[i])
        return loss, dW, db

    # ------------------------------------------------------------ optimizers
    def step(self, grads):
        params = self.W + self.b
        self.t += 1
        if self.optimizer == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
        elif self.optimizer == "momentum":
            for p, g, vel in zip(params, grads, self.m):
                vel *= self.mu
                vel -= self.lr * g
                p += vel
        elif self.optimizer == "adam":
            b1, b2 = self.beta1, self.beta2
            # bias corrections folded into the step size (Kingma & Ba, sec. 2);
            # a NumPy float64 scalar would upcast the update, so cast it.
            lr_t = np.float32(self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t))
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                p -= lr_t * m / (np.sqrt(v) + self.eps)
        else:
            raise ValueError(f"unknown optimizer {self.optimizer!r}")

    # ---------------------------------------------------------------- epochs
    def train_epoch(self, X, y, batch_size=128):
        """One shuffled pass over ``(X, y)``; returns wall seconds."""
        start = time.perf_counter()
        order = self.rng.permutation(len(X))
        for lo in range(0, len(X), batch_size):
            idx = order[lo:lo + batch_size]
            acts = self.forward(X[idx])
            _, dW, db = self.backward(acts, y[idx])
            self.step(dW + db)
        return time.perf_counter() - start

    def predict(self, X):
        return self.forward(X)[-1].argmax(axis=1)

    def score(self, X, y):
        return float((self.predict(X) == y).mean())


def train_epoch_numpy(X, y, hidden, activation="relu", optimizer="adam", lr=1e-3,
                      batch_size=128, seed=0, momentum=0.9, net=None):
    """Train one epoch of a fresh (or the given) network; return wall seconds.

    ``X`` must be float32 (n, 784) in [0, 1]; ``y`` integer labels 0..9.
    """
    if net is None:
        net = NumpyMLP([X.shape[1], *hidden, 10], activation, optimizer, lr,
                       momentum=momentum, seed=seed)
    return net.train_epoch(X, np.asarray(y, dtype=np.intp), batch_size)
