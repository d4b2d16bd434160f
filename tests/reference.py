"""Plain NumPy reference implementations the kernels are tested against."""
import numpy as np

LEAKY_SLOPE = 0.01


def activate(z, name):
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    raise ValueError(name)


def softmax_cross_entropy(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(labels)), labels])
    grad = p.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return loss, grad


def adam(w, g, m, v, t, lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1, written literally."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
