"""Numbers that say how a map looks: smooth strokes or salt-and-pepper noise.

* :func:`hf_share` — the share of a map's energy that a 3×3 box blur removes,
  ``||m − blur(m)||² / ||m||²``: near 0 for a smooth stroke or edge, about 0.8 for white noise
  (a 3×3 mean keeps 1/9 of each pixel and mixes in 8 independent neighbours), near 1 for a
  pixel-scale checkerboard. The lecture's "layer 1 finds lines and edges" and Zeiler &
  Fergus' "projections look like strokes" (2014, §4, Fig. 2) are claims about this number.
* :func:`positive_share` — the share of a map's non-zero pixels that are positive: the
  deconvnet and guided backprop rectify the signal at every ReLU, the gradient does not
  (Springenberg et al. 2015, Fig. 1).
* :func:`ink_share` — the share of a map's ``|value|`` that lies on the digit's own pixels
  (``x > 0``): 1 for input × gradient and zero-baseline Integrated Gradients, which multiply
  by ``x``, less for the gradient, which also says how blank paper would matter.

Used by the captions of the tour's figures and by ``scripts/teaching_measures.py``, which says
whether a model is fit to teach with.
"""

import numpy as np


def box_blur(images):
    """3x3 box blur (the mean of each pixel's 3x3 neighbourhood), edges replicated.

    Parameters
    ----------
    images : (..., H, W) array; the blur acts on the last two axes.

    Returns
    -------
    (..., H, W) float64 array.

    Notes
    -----
    Boundary: the image is padded by one pixel on each side with copies of its border pixels
    (``np.pad(mode="edge")``, scipy's ``"nearest"``; for a 3x3 window the same as mirroring
    with the border pixel repeated). So a constant or a linear ramp across a filter is kept
    almost whole, and a smooth edge that runs off the filter's border is not mistaken for
    high frequency, as it would be with zero padding (a 5x5 ``tanh`` edge would then lose
    ~0.2 of its energy instead of ~0.02).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2:
        raise ValueError(f"images: expected an array (..., H, W), got shape {images.shape}")
    H, W = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(1, 1), (1, 1)]
    padded = np.pad(images, pad, mode="edge")                     # (..., H + 2, W + 2)
    return sum(padded[..., dr:dr + H, dc:dc + W] for dr in range(3) for dc in range(3)) / 9


def hf_share(images):
    """The share of each image's energy that a 3x3 box blur removes.

    ``||f - blur(f)||^2 / ||f||^2`` with :func:`box_blur` (edges replicated): near 0 for a
    smooth pattern (an edge, a blob, a thick stroke), near 0.8 for white noise, and up to ~1
    for a checkerboard at the pixel scale.

    Parameters
    ----------
    images : (..., H, W) array, e.g. conv1 filters ``(C_in * C_out, kh, kw)``.

    Returns
    -------
    (...) float64 array of shares; NaN where an image is all zeros (no energy to share).
    """
    images = np.asarray(images, dtype=np.float64)
    energy = (images ** 2).sum(axis=(-2, -1))
    removed = ((images - box_blur(images)) ** 2).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(energy > 0, removed / energy, np.nan)


def positive_share(maps):
    """The share of each map's non-zero pixels that are positive.

    Parameters
    ----------
    maps : (..., H, W) array.

    Returns
    -------
    (...) float64 array in [0, 1] (0 for an all-zero map).
    """
    maps = np.asarray(maps)
    nonzero = (maps != 0).sum(axis=(-2, -1))
    return (maps > 0).sum(axis=(-2, -1)) / np.maximum(nonzero, 1)


def ink_share(maps, images):
    """The share of each map's absolute mass on the ink of its image.

    ``Σ_{x > 0} |m| / Σ |m|`` over each image's pixels; MNIST's background is exactly 0, so
    ``x > 0`` is the digit (the mask of :mod:`tinyconv.sanity`'s "digit" region).

    Parameters
    ----------
    maps : (..., H, W) array; images : (..., H, W) array of the same shape.

    Returns
    -------
    (...) float64 array in [0, 1]; NaN where a map is all zeros.
    """
    maps = np.abs(np.asarray(maps, dtype=np.float64))
    images = np.asarray(images)
    if maps.shape != images.shape or maps.ndim < 2:
        raise ValueError(f"images: expected the maps' shape (..., H, W) {maps.shape}, got "
                         f"{images.shape}")
    total = maps.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (maps * (images > 0)).sum(axis=(-2, -1)) / total, np.nan)
