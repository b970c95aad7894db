"""The two layouts side by side (NHWC / HWIO here, NCHW / OIHW in torch), and importing torch
only when a conversion needs it."""

import numpy as np

from ..checks import check_int

TORCH_REQUIREMENT = "torch==2.13.0"


def _import_torch():
    """``import torch``, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as err:
        raise ImportError("tinyconv.interop needs PyTorch, an optional dependency: install "
                          f"it with `pip install {TORCH_REQUIREMENT}` (the CPU build is enough)"
                          ) from err
    return torch


# --------------------------------------------------------------------------- layouts


def _check_4d(x, name):
    """``x`` as an array, or ValueError if it is not 4-dimensional."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__} of dtype "
                        f"{x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-dimensional array, got shape {x.shape}")
    return x


def nhwc_to_nchw(x):
    """Channel-last activations to torch's channel-first layout.

    Parameters
    ----------
    x : (N, H, W, C) array, e.g. ``y_(l)`` of a tinyconv model.

    Returns
    -------
    (N, C, H, W) C-contiguous copy, ``out[i, k, row, col] == x[i, row, col, k]``.
    """
    return np.ascontiguousarray(_check_4d(x, "x").transpose(0, 3, 1, 2))


def nchw_to_nhwc(x):
    """torch's channel-first activations (or gradients) to tinyconv's channel-last layout.

    Parameters
    ----------
    x : (N, C, H, W) array, e.g. ``tensor.detach().numpy()``.

    Returns
    -------
    (N, H, W, C) C-contiguous copy, ``out[i, row, col, k] == x[i, k, row, col]``.
    """
    return np.ascontiguousarray(_check_4d(x, "x").transpose(0, 2, 3, 1))


def flatten_permutation(shape):
    """Where torch's flattened units come from in tinyconv's flattened vector.

    Parameters
    ----------
    shape : ``(H, W, C)``, the map being flattened (one example).

    Returns
    -------
    perm : (H*W*C,) int array with ``torch_flat[:, j] == tinyconv_flat[:, perm[j]]``.

    Notes
    -----
    tinyconv puts unit ``(row, col, k)`` at ``(row * W + col) * C + k``; torch puts it at
    ``(k * H + row) * W + col``. Hence a Dense layer after Flatten, ``y = x W + b`` with ``W``
    of shape ``(H*W*C, out)``, becomes ``nn.Linear`` with ``weight = W[perm].T``, and back:
    ``W[perm] = weight.T``.
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"shape: expected (H, W, C), got {shape!r}")
    H, W, C = (check_int(d, "shape", minimum=1) for d in shape)
    return np.arange(H * W * C).reshape(H, W, C).transpose(2, 0, 1).ravel()
