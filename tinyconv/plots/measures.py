"""Two numbers that say how a map looks, for the captions of the projection figures.

* :func:`hf_share` — the share of a map's energy that a 3×3 box blur removes,
  ``||m − blur(m)||² / ||m||²``: near 0 for a smooth stroke, 8/9 for independent pixel noise
  (a 3×3 mean keeps 1/9 of each pixel and mixes in 8 independent neighbours). It tells
  "stroke" from "salt and pepper".
* :func:`positive_share` — the share of the non-zero pixels that are positive: the deconvnet
  and guided backprop rectify the signal at every ReLU, the gradient does not.
"""

import numpy as np


def box_blur(maps):
    """``(n, h, w)`` maps -> the mean of each pixel's 3×3 neighbourhood, the border pixels
    repeated outside (so a constant map is left unchanged, as a blur should)."""
    n, h, w = maps.shape
    padded = np.pad(np.asarray(maps, dtype=np.float64), ((0, 0), (1, 1), (1, 1)), mode="edge")
    # the nine shifted copies of each map, summed: (n, h, w)
    return sum(padded[:, dr:dr + h, dc:dc + w] for dr in range(3) for dc in range(3)) / 9


def hf_share(maps):
    """``||m − blur(m)||² / ||m||²`` per map: the share of the energy of each of the
    ``(n, h, w)`` maps ``m`` that a 3×3 box blur removes -> ``(n,)`` (0 for an all-zero map)."""
    maps = np.asarray(maps, dtype=np.float64)
    energy = (maps ** 2).sum(axis=(1, 2))
    removed = ((maps - box_blur(maps)) ** 2).sum(axis=(1, 2))
    return np.where(energy > 0, removed / np.where(energy > 0, energy, 1), 0.0)


def positive_share(maps):
    """The share of each ``(n, h, w)`` map's non-zero pixels that are positive -> ``(n,)``."""
    maps = np.asarray(maps)
    nonzero = (maps != 0).sum(axis=(1, 2))
    return (maps > 0).sum(axis=(1, 2)) / np.maximum(nonzero, 1)
