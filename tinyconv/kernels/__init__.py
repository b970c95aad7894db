"""The hot loops: im2col / col2im (:mod:`.conv`), max-pooling with switches and unpooling
(:mod:`.pool`), pasting patches into blocks (:mod:`.blocks`), Winograd's tile transforms for
3x3 and 5x5 convolutions (:mod:`.winograd`), and what they share (:mod:`._runtime`).

This package holds the only numba code. Every kernel takes arrays and ints only (padding
amounts, strides, output sizes are computed by the layers in Python) and stands beside a
plain-NumPy ``*_reference`` with the same signature; the tests assert that the two agree.
Read the references first: they say what is computed, the kernels say how to do it fast.

Layout, declared once for the whole package::

    activations  (N, H, W, C)        NHWC, channel last
    conv weights (kh, kw, C_in, C_out) HWIO
    im2col rows  (N * H_out * W_out, kh * kw * C)   row = one output location (n, oh, ow),
                 column = (i, j, c) in C order, so cols times the weights as a
                 (kh * kw * C_in, C_out) matrix is the convolution.

Padding is never materialised: a kernel tap that falls outside the image reads as 0 (im2col)
or is skipped (col2im, max-pool). The max-pool *switches* hold, for each pooled unit, the flat
position ``row * W + col`` of its maximum in the unpadded input (Zeiler & Fergus 2014, §2.1).

Each public kernel is a thin Python function (shapes, the output buffer, which loop to run)
around ``@njit(parallel=True)`` loops whose ``prange`` runs over rows of the array they
*write*, so no two threads write the same element and no result depends on the thread count.
Small jobs run on one thread (``_runtime.PARALLEL_MIN_SIZE``), and so does every job on a
machine of at most two cores where BLAS runs more than one thread
(``_runtime.one_thread_beside_blas``). ``out=`` lets a caller hand in a buffer it keeps from
call to call. The package loads only when a layer first runs a kernel
(``tinyconv.layer._kernels``); it prints one line to stderr when numba compiles a kernel because
its on-disk cache has none, and one line when numba has no writable cache folder and a
temporary one is used. Why each of these pays, with the figures measured at the time:
``docs/speed.md``.
"""

from ._runtime import (
    CACHE_MESSAGE,
    COMPILE_SECONDS,
    COMPILING_MESSAGE,
    ONE_THREAD_BESIDE_BLAS,
    PARALLEL_MIN_SIZE,
)
from .blocks import paste, paste_reference
from .conv import _inside, _whole_rows, col2im, col2im_reference, im2col, im2col_reference
from .pool import maxpool, maxpool_reference, unpool, unpool_reference
from .winograd import (
    winograd_signal_tiles,
    winograd_signal_tiles_reference,
    winograd_tiles,
    winograd_tiles_reference,
    winograd_untiles,
    winograd_untiles_reference,
    winograd_weights,
    winograd_weights_gradient,
)

__all__ = ["CACHE_MESSAGE", "COMPILE_SECONDS", "COMPILING_MESSAGE", "ONE_THREAD_BESIDE_BLAS",
           "PARALLEL_MIN_SIZE", "_inside", "_whole_rows", "col2im", "col2im_reference",
           "im2col", "im2col_reference", "maxpool", "maxpool_reference", "paste",
           "paste_reference", "unpool", "unpool_reference", "winograd_signal_tiles",
           "winograd_signal_tiles_reference", "winograd_tiles", "winograd_tiles_reference",
           "winograd_untiles", "winograd_untiles_reference", "winograd_weights",
           "winograd_weights_gradient"]
