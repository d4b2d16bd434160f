"""Data augmentation computed while a mini-batch is gathered: the images are never copied.

:func:`gather_augmented_batch` does what :func:`fastann.kernels.batching.gather_batch`
does (copy the rows ``order[start:stop]`` into the float batch buffer,
normalized by ``x * scale + shift``) but reads each row through a random
geometric transform of the image, drawn from the row's own random stream
(:mod:`fastann.kernels.streams`: the epoch's seed and the row's position in
the epoch), so every epoch sees fresh transforms and the same seed gives the
same ones. Rows are images of ``height x width`` pixels stored row-major;
pixels that come from outside the image are 0 (background) before
normalization. The only memory used is the batch buffer and a work buffer of
``3 * height * width`` doubles (one row's displacement fields), whatever the
number of images.

Modes (codes in :data:`AUGMENTATIONS`):

``shift``
    Integer translation by ``(dy, dx)``, each uniform in
    ``{-MAX_SHIFT, ..., MAX_SHIFT}``: ``out[r, c] = image[r - dy, c - dx]``.
``affine``
    Output pixel ``p = (r, c)`` takes the bilinear interpolation of the image
    at ``M (p - center) + center``, ``center = ((height-1)/2, (width-1)/2)``,
    ``M = R(theta) . s . [[1, 0], [k, 1]]``: a rotation by ``theta`` uniform in
    ``±MAX_ROTATION`` radians, an isotropic scale ``s`` uniform in
    ``1 ± MAX_SCALE`` and a horizontal shear (slant) ``k`` uniform in
    ``±MAX_SHEAR``.
``elastic``
    Simard, Steinkraus & Platt (2003), "Best practices for convolutional
    neural networks applied to visual document analysis", ICDAR, section 2:
    two random displacement fields ``Δy, Δx`` uniform in ``[-1, 1]`` per
    pixel, each convolved with a Gaussian of standard deviation
    ``ELASTIC_SIGMA`` pixels (truncated at 4 sigma, zero outside the image,
    as ``scipy.ndimage.gaussian_filter(mode="constant")``; computed as two
    small matrix products per field, :func:`smooth_field`), multiplied by
    ``ELASTIC_ALPHA``; output pixel ``(r, c)`` takes the bilinear interpolation
    of the image at ``(r + Δy[r, c], c + Δx[r, c])``. Simard et al. used
    ``sigma = 4``, ``alpha = 34`` on MNIST.

Bilinear interpolation treats pixels outside the image as 0 on both sides of
the border (``scipy.ndimage.map_coordinates(order=1, mode="grid-constant")``).
"""
import math

import numpy as np
from numba import njit

from .streams import AUGMENT_STREAM, next_uniform, row_stream, uniform_field

NO_AUGMENT = 0
SHIFT = 1
AFFINE = 2
ELASTIC = 3
AUGMENTATIONS = {"shift": SHIFT, "affine": AFFINE, "elastic": ELASTIC}

#: Largest translation of ``shift``, pixels per axis.
MAX_SHIFT = 2
#: ``affine``: rotation up to 15 degrees, scale within 10%, slant up to 0.2.
MAX_ROTATION = math.radians(15.0)
MAX_SCALE = 0.1
MAX_SHEAR = 0.2
#: ``elastic``: Gaussian smoothing (pixels) and intensity of the displacement fields.
ELASTIC_SIGMA = 4.0
ELASTIC_ALPHA = 34.0
#: The Gaussian is cut at this many standard deviations (scipy.ndimage's default).
GAUSSIAN_TRUNCATE = 4.0


def gaussian_kernel(sigma, truncate=GAUSSIAN_TRUNCATE):
    """Normalized 1-D Gaussian weights, as ``scipy.ndimage.gaussian_filter1d`` uses them.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, > 0.
    truncate : float

    Returns
    -------
    ndarray, shape (2 * radius + 1,), float64
        ``exp(-x**2 / (2 sigma**2))`` for ``x = -radius..radius``, divided by
        their sum, with ``radius = int(truncate * sigma + 0.5)``.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (float(sigma) ** 2) * x ** 2)
    return phi / phi.sum()


def blur_matrix(n, sigma, truncate=GAUSSIAN_TRUNCATE):
    """The ``n x n`` matrix of a Gaussian blur along one axis, zero outside.

    ``B[i, j] = g[j - i + radius]`` for ``|i - j| <= radius`` (0 elsewhere),
    ``g = gaussian_kernel(sigma, truncate)``: ``B @ v`` convolves a length-``n``
    signal with the Gaussian, counting values outside ``[0, n)`` as 0
    (``scipy.ndimage.gaussian_filter1d(v, sigma, mode="constant")``). ``B`` is
    symmetric.

    Returns
    -------
    ndarray, shape (n, n), float64, C-contiguous
    """
    g = gaussian_kernel(sigma, truncate)
    radius = (g.size - 1) // 2
    i, j = np.indices((n, n))
    offset = j - i
    return np.where(np.abs(offset) <= radius, g[np.clip(offset + radius, 0, g.size - 1)], 0.0)


@njit(cache=True, error_model="numpy")
def smooth_field(field, blur_rows, blur_cols, tmp):
    """Blur a ``height x width`` field with a separable Gaussian, in place: ``field <- Bh field Bw``.

    The two one-axis blurs of :func:`blur_matrix` as two small matrix
    products (BLAS); values outside the field count as 0.

    Parameters
    ----------
    field : ndarray, shape (height, width), float64, C-contiguous
    blur_rows : ndarray, shape (height, height), float64
        :func:`blur_matrix` along the rows' axis (mixes rows).
    blur_cols : ndarray, shape (width, width), float64
        :func:`blur_matrix` along the columns' axis (symmetric).
    tmp : ndarray, shape (height, width), float64, overwritten
    """
    np.dot(field, blur_cols, tmp)
    np.dot(blur_rows, tmp, field)


@njit(cache=True, error_model="numpy")
def elastic_displacements(state, blur_rows, blur_cols, alpha, dy, dx, tmp):
    """Simard et al. (2003)'s displacement fields for one image; returns the new state.

    ``dy`` then ``dx`` are filled with values uniform in ``[-1, 1)``
    (:func:`fastann.kernels.streams.uniform_field`, row-major, in that order,
    from ``state``), smoothed by :func:`smooth_field` and multiplied by ``alpha``.

    Parameters
    ----------
    state : numpy.uint64
    blur_rows, blur_cols : ndarray, float64
        :func:`blur_matrix` of the image's height and width.
    alpha : float
    dy, dx, tmp : ndarray, shape (height, width), float64, C-contiguous, written
    """
    state = uniform_field(state, dy.ravel())
    state = uniform_field(state, dx.ravel())
    smooth_field(dy, blur_rows, blur_cols, tmp)
    smooth_field(dx, blur_rows, blur_cols, tmp)
    height, width = dy.shape
    for r in range(height):
        for c in range(width):
            dy[r, c] *= alpha
            dx[r, c] *= alpha
    return state


@njit(cache=True, error_model="numpy")
def affine_parameters(state):
    """Draw one ``affine`` transform: ``(state, m00, m01, m10, m11)``.

    ``M = R(theta) . s . [[1, 0], [k, 1]]`` in (row, column) coordinates, with
    ``theta``, ``s`` and ``k`` drawn in this order (see the module docstring).
    """
    state, u = next_uniform(state)
    theta = (2.0 * u - 1.0) * MAX_ROTATION
    state, u = next_uniform(state)
    s = 1.0 + (2.0 * u - 1.0) * MAX_SCALE
    state, u = next_uniform(state)
    k = (2.0 * u - 1.0) * MAX_SHEAR
    cos, sin = math.cos(theta), math.sin(theta)
    # R = [[cos, -sin], [sin, cos]] times s * [[1, 0], [k, 1]]
    return (state, s * (cos - sin * k), -s * sin, s * (sin + cos * k), s * cos)


@njit(cache=True, error_model="numpy", inline="always")
def bilinear(image, height, width, y, x):
    """Bilinear interpolation of the flat ``image`` at ``(y, x)``, 0 outside the pixels."""
    y0 = math.floor(y)
    x0 = math.floor(x)
    fy = y - y0
    fx = x - x0
    iy = int(y0)
    ix = int(x0)
    if 0 <= iy and iy + 1 < height and 0 <= ix and ix + 1 < width:  # the 4 pixels are inside
        base = iy * width + ix
        top = (1.0 - fx) * image[base] + fx * image[base + 1]
        bottom = (1.0 - fx) * image[base + width] + fx * image[base + width + 1]
        return (1.0 - fy) * top + fy * bottom
    value = 0.0
    if 0 <= iy < height:
        base = iy * width
        if 0 <= ix < width:
            value += (1.0 - fy) * (1.0 - fx) * image[base + ix]
        if 0 <= ix + 1 < width:
            value += (1.0 - fy) * fx * image[base + ix + 1]
    if 0 <= iy + 1 < height:
        base = (iy + 1) * width
        if 0 <= ix < width:
            value += fy * (1.0 - fx) * image[base + ix]
        if 0 <= ix + 1 < width:
            value += fy * fx * image[base + ix + 1]
    return value


@njit(cache=True, error_model="numpy")
def shift_row(image, height, width, dy, dx, scale, shift, out):
    """``out[r*width + c] = image[(r-dy)*width + (c-dx)] * scale + shift`` (0 outside).

    Parameters
    ----------
    image : ndarray, shape (height * width,), uint8 or float
    height, width, dy, dx : int
    scale, shift : ndarray, shape (height * width,), float
    out : ndarray, shape (height * width,), float, written
    """
    zero = image.dtype.type(0)
    for r in range(height):
        sr = r - dy
        for c in range(width):
            sc = c - dx
            j = r * width + c
            v = image[sr * width + sc] if 0 <= sr < height and 0 <= sc < width else zero
            out[j] = v * scale[j] + shift[j]


@njit(cache=True, error_model="numpy")
def affine_row(image, height, width, m00, m01, m10, m11, scale, shift, out):
    """``out[p] = bilinear(image, M (p - center) + center) * scale + shift`` for every pixel ``p``."""
    cy = 0.5 * (height - 1)
    cx = 0.5 * (width - 1)
    for r in range(height):
        ry = r - cy
        for c in range(width):
            cx_ = c - cx
            j = r * width + c
            v = bilinear(image, height, width, m00 * ry + m01 * cx_ + cy, m10 * ry + m11 * cx_ + cx)
            out[j] = v * scale[j] + shift[j]


@njit(cache=True, error_model="numpy")
def displaced_row(image, height, width, dy, dx, scale, shift, out):
    """``out[r, c] = bilinear(image, r + dy[r, c], c + dx[r, c]) * scale + shift``.

    ``image``, ``scale``, ``shift`` and ``out`` are flat (row-major), ``dy``
    and ``dx`` of shape ``(height, width)``.
    """
    for r in range(height):
        for c in range(width):
            j = r * width + c
            v = bilinear(image, height, width, r + dy[r, c], c + dx[r, c])
            out[j] = v * scale[j] + shift[j]


@njit(cache=True, error_model="numpy")
def augment_row(image, augmentation, state, scale, shift, out):
    """Write one randomly transformed, normalized image into ``out``; return the state.

    Parameters
    ----------
    image : ndarray, shape (height * width,), uint8 or float
    augmentation : Augmentation
        ``mode`` (a code of this module), ``image_shape`` (int64, ``(height,
        width)``), ``blur_rows`` and ``blur_cols`` (:func:`blur_matrix`),
        ``alpha`` and the work buffer ``work`` (float64, ``3 * height * width``).
    state : numpy.uint64
        The row's random stream.
    scale, shift : ndarray, shape (height * width,), float
    out : ndarray, shape (height * width,), float, written
    """
    mode = augmentation.mode
    height, width = augmentation.image_shape[0], augmentation.image_shape[1]
    if mode == SHIFT:
        state, u = next_uniform(state)
        dy = int(u * (2 * MAX_SHIFT + 1)) - MAX_SHIFT
        state, u = next_uniform(state)
        dx = int(u * (2 * MAX_SHIFT + 1)) - MAX_SHIFT
        shift_row(image, height, width, dy, dx, scale, shift, out)
    elif mode == AFFINE:
        state, m00, m01, m10, m11 = affine_parameters(state)
        affine_row(image, height, width, m00, m01, m10, m11, scale, shift, out)
    elif mode == ELASTIC:
        n = height * width
        work = augmentation.work
        dy = work[:n].reshape((height, width))
        dx = work[n:2 * n].reshape((height, width))
        tmp = work[2 * n:3 * n].reshape((height, width))
        state = elastic_displacements(state, augmentation.blur_rows, augmentation.blur_cols,
                                      augmentation.alpha, dy, dx, tmp)
        displaced_row(image, height, width, dy, dx, scale, shift, out)
    else:
        for j in range(out.size):
            out[j] = image[j] * scale[j] + shift[j]
    return state


@njit(cache=True, error_model="numpy")
def gather_augmented_batch(X, y, order, start, stop, scale, shift, out, labels_out,
                           augmentation, seed, first_position):
    """:func:`~fastann.kernels.batching.gather_batch` through a random transform per row.

    Parameters
    ----------
    X, y, order, start, stop, scale, shift, out, labels_out
        As for :func:`fastann.kernels.batching.gather_batch`; ``n_features``
        must equal ``height * width``.
    augmentation : Augmentation
        See :func:`augment_row`.
    seed : int
        The epoch's seed (:mod:`fastann.kernels.streams`).
    first_position : int
        Position in the epoch's order of the row ``order[start]``; row
        ``order[start + i]`` uses the stream of position ``first_position + i``.
    """
    for i in range(stop - start):
        row = order[start + i]
        labels_out[i] = y[row]
        state = row_stream(seed, first_position + i, AUGMENT_STREAM)
        augment_row(X[row], augmentation, state, scale, shift, out[i])
