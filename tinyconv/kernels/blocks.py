"""Blocks of a batch of maps: write (or add) one small patch per example into its own block,
each at its own corner — what occlusion's fast path does at every layer
(:mod:`tinyconv.occlusion_fast`).
"""

import numpy as np
from numba import njit, prange

from ._runtime import _run, _wraps


def paste_reference(block, patch, offset, add):
    """Write each ``patch[b]`` over ``block[b]`` with its corner at ``offset[b]``, in place, cut
    where it hangs over the block's edge; ``add``: add it instead (plain NumPy).

    Parameters
    ----------
    block : (B, th, tw, C) array, written in place.
    patch : (B, h, w, C) array of the same dtype.
    offset : (B, 2) int64, the row and column in ``block[b]`` of ``patch[b, 0, 0]``; may be
        negative or reach past the block.
    add : 0 to overwrite, 1 to add.
    """
    (_, th, tw, _), (_, h, w, _) = block.shape, patch.shape
    for b, (dr, dc) in enumerate(offset.tolist()):
        r0, r1, c0, c1 = max(dr, 0), min(dr + h, th), max(dc, 0), min(dc + w, tw)
        if r0 < r1 and c0 < c1:
            part = patch[b, r0 - dr:r1 - dr, c0 - dc:c1 - dc]
            if add:
                block[b, r0:r1, c0:c1] += part
            else:
                block[b, r0:r1, c0:c1] = part


@njit(cache=True, parallel=True)
def _paste(block, patch, offset, add):
    B, th, tw, C = block.shape
    _, h, w, _ = patch.shape
    for b in prange(B):                 # one example per task: it writes only its own block
        dr, dc = offset[b, 0], offset[b, 1]
        for r in range(max(dr, 0), min(dr + h, th)):
            for c in range(max(dc, 0), min(dc + w, tw)):
                for ch in range(C):     # channels innermost: one run of memory
                    v = patch[b, r - dr, c - dc, ch]
                    block[b, r, c, ch] = block[b, r, c, ch] + v if add else v


@_wraps(_paste)
def paste(block, patch, offset, add):
    """numba twin of :func:`paste_reference` (same signature, same result)."""
    if block.dtype != patch.dtype or not block.flags.c_contiguous:
        paste_reference(block, patch, offset, add)      # rare: mixed dtypes or a view
        return
    offset = np.ascontiguousarray(offset, dtype=np.int64)
    _run(_paste, patch.size, block, np.ascontiguousarray(patch), offset, int(add))
