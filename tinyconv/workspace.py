"""How Conv2D's three GEMMs are scheduled: kept buffers, chunks, memory order. Speed only.

:class:`tinyconv.layers.Conv2D` says *what* it computes — ``y = im2col(x) @ W2 + b``,
``dW2 = im2col(x)^T dy``, ``db = sum dy``, ``dx = col2im(dy W2^T)`` — and asks a
:class:`ConvWorkspace` to compute it. The workspace gives the same numbers (bit for bit the
numbers the layer has always given, but for Winograd's and the row blocks', which are the same
up to rounding) and owns every trick that makes them fast:

- **kept buffers**: the im2col matrix and the backward's ``dcols`` live in arrays kept from
  call to call (:meth:`ConvWorkspace.buffer`), made anew only when a shape or dtype changes;
- **the bias column**: the im2col buffer has one more column, of ones, and ``W2`` the bias as
  one more row, so ``[cols, 1] @ [W2; b] = cols @ W2 + b`` is one GEMM, and the backward's
  ``[cols, 1]^T dy`` gives ``db`` as its last row;
- **chunks**: a batch whose im2col matrix exceeds :data:`CHUNK_BYTES` goes through in chunks
  of examples; the backward walks them last to first, so that the chunk the forward pass
  left in the buffer is used again, not unfolded again (the reuse test on the very same
  ``x``);
- **one input channel, stride 1**: the buffers are column-major, so that im2col and col2im
  copy whole image rows into and out of each column;
- **the GEMM's orientation**: with row-major cols, ``[cols, 1]^T dy`` is computed as
  ``(dy^T [cols, 1])^T``;
- **dcols in pieces**: ``dcols = dy W2^T`` and its col2im run a few examples at a time
  (:data:`DX_CHUNK_BYTES`), so that col2im reads dcols from the cache;
- **Winograd for 3x3 and 5x5**: a 3x3 or 5x5, stride-1 forward with enough channels and
  locations (:func:`winograd_applies`), and the backward's ``dx`` of a 3x3 one (a 3x3
  convolution of ``dy``, :func:`transposed_args`), go by Winograd's F(2x2, 3x3) or
  F(2x2, 5x5) instead (:meth:`ConvWorkspace.winograd_gemm`, :mod:`tinyconv.kernels.winograd`):
  16 or 36 GEMMs on transformed tiles, 2.25 or 2.78 times fewer multiplications, the same
  numbers up to rounding;
- **blocks of output columns for one input channel**: an inference forward of a stride-1 layer
  on one input channel (:func:`row_blocks_apply`) unfolds, per output row, the input window of
  ``B`` neighbouring outputs at once and multiplies it by one banded matrix that holds the
  filters ``B`` times, shifted (:meth:`ConvWorkspace.row_block_gemm`): a smaller matrix to
  write, a GEMM with ``B`` times as many output columns, im2col's products up to the order
  BLAS sums them in.

Why each one pays, with the figures measured when it was added: ``docs/speed.md``.

The kept buffers belong to the thread that made them (``threading.local``): two threads never
write into one buffer, and a thread's buffers are freed when it ends. (The layer's own cache
of its last input is per model; :class:`tinyconv.model.Sequential` guards that.)
"""

import threading
from typing import NamedTuple

import numpy as np

#: At most this many bytes of im2col matrix per chunk of examples (one example at least).
CHUNK_BYTES = 64 << 20

#: At most this many bytes of Winograd's transformed tiles and products per chunk of examples:
#: small enough that the tiles, their products and the outputs stay in the cache (docs/speed.md).
WINOGRAD_CHUNK_BYTES = 8 << 20

#: At most this many bytes of ``dcols`` per piece of the backward's ``dx`` (one example at
#: least).
DX_CHUNK_BYTES = 4 << 20


class Im2colArgs(NamedTuple):
    """The window arguments of :func:`tinyconv.kernels.im2col` and ``col2im``, in their order
    (a tuple, so ``im2col(x, *args)`` works): kernel extent, stride and dilation per axis, the
    padding before each axis, and the output size."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad_top: int
    pad_left: int
    H_out: int
    W_out: int


#: Winograd computes a 3x3 or 5x5 convolution with at least this many input and output channels
#: (by filter size) and output rows and columns, and a batch of at least this many tiles
#: (``docs/speed.md``: with fewer it was measured slower than im2col + GEMM; a small batch makes
#: its 16 or 36 GEMMs too short to pay for the transforms).
WINOGRAD_MIN_CHANNELS = {3: 8, 5: 16}
WINOGRAD_MIN_SIDE = 14
WINOGRAD_MIN_TILES = {3: 400, 5: 1500}


def winograd_tile_count(args, examples):
    """How many 4x4 or 6x6 tiles Winograd cuts ``examples`` examples into: one per 2x2
    outputs."""
    return examples * ((args.H_out + 1) // 2) * ((args.W_out + 1) // 2)


def winograd_applies(args, C_in, C_out, examples=None, param_grads=False):
    """Whether :meth:`ConvWorkspace.winograd_gemm` computes this convolution of ``examples``
    examples (None: whatever the batch): a 3x3 or 5x5 kernel, stride and dilation 1, at least
    :data:`WINOGRAD_MIN_CHANNELS` input and output channels, an output of at least
    :data:`WINOGRAD_MIN_SIDE` rows and columns and at least :data:`WINOGRAD_MIN_TILES` tiles;
    and, when the pass is for a weight gradient (``param_grads``), not a 5x5 one. Winograd's
    forward leaves no im2col matrix for ``dW = cols^T dy`` to reuse, and for a 5x5 layer
    unfolding it again in the backward cost more than Winograd saved (``docs/speed.md``)."""
    if param_grads and args.kh == 5:
        return False
    return (args.kh == args.kw and args.kh in WINOGRAD_MIN_CHANNELS
            and (args.sh, args.sw, args.dh, args.dw) == (1, 1, 1, 1)
            and min(C_in, C_out) >= WINOGRAD_MIN_CHANNELS[args.kh]
            and min(args.H_out, args.W_out) >= WINOGRAD_MIN_SIDE
            and (examples is None
                 or winograd_tile_count(args, examples) >= WINOGRAD_MIN_TILES[args.kh]))


#: ... and its weight gradient at least this many input and output channels (with 32 -> 64 it
#: was measured slower than ``cols^T dy``, with 64 -> 128 faster: ``docs/speed.md``).
WINOGRAD_WEIGHTS_MIN_CHANNELS = 64


def winograd_weights_apply(args, C_in, C_out, examples=None):
    """Whether :meth:`ConvWorkspace.winograd_weight_gemm` computes this layer's weight gradient:
    :func:`winograd_applies` to a 3x3 kernel, and at least
    :data:`WINOGRAD_WEIGHTS_MIN_CHANNELS` channels."""
    return (winograd_applies(args, C_in, C_out, examples) and args.kh == 3
            and min(C_in, C_out) >= WINOGRAD_WEIGHTS_MIN_CHANNELS)


#: The widest block of neighbouring output columns :meth:`ConvWorkspace.row_block_gemm`
#: unfolds at once (``docs/speed.md``: 4 and 14 were measured slower than 7 on the shipped
#: conv1).
ROW_BLOCK_MAX = 8


def row_block_width(args, C_in, param_grads=False):
    """``B`` of :meth:`ConvWorkspace.row_block_gemm` for this convolution, or None where it
    does not apply: one input channel, stride and dilation 1, a forward not followed by a
    weight gradient (``param_grads``: ``dW = cols^T dy`` reuses the forward's im2col matrix,
    which this path does not write), and an output width with a divisor from 2 to
    :data:`ROW_BLOCK_MAX` (the largest is taken)."""
    if param_grads or C_in != 1 or (args.sh, args.sw, args.dh, args.dw) != (1, 1, 1, 1):
        return None
    return next((B for B in range(min(ROW_BLOCK_MAX, args.W_out), 1, -1)
                 if args.W_out % B == 0), None)


def row_block_filters(W, B):
    """The banded matrix of :meth:`ConvWorkspace.row_block_gemm`: ``(kh, kw, 1, C_out)``
    filters -> ``(kh * (B + kw - 1), B * C_out)``, whose entry ``((i, jj), (c, k))`` is
    ``W[i, jj - c, 0, k]`` where ``0 <= jj - c < kw`` and 0 elsewhere: output column ``c`` of
    a block sees the window's columns ``c … c + kw - 1``."""
    kh, kw, _, C_out = W.shape
    T = np.zeros((kh, B + kw - 1, B, C_out), W.dtype)
    for c in range(B):
        T[:, c:c + kw, c, :] = W[:, :, 0, :]
    return T.reshape(kh * (B + kw - 1), B * C_out)


def transposed_args(args, H_in, W_in):
    """The window arguments of ``dx`` as a convolution of ``dy``: for stride 1 and no dilation,
    ``dx`` is ``dy`` convolved with the flipped filters (input and output channels swapped),
    padded by ``k - 1 - pad`` on each side, which gives the ``H_in x W_in`` map. None if the
    layer pads a side by more than ``k - 1`` (that convolution would crop) or has a stride or
    dilation."""
    if (args.sh, args.sw, args.dh, args.dw) != (1, 1, 1, 1):
        return None
    pad_bottom = args.H_out + args.kh - 1 - H_in - args.pad_top
    pad_right = args.W_out + args.kw - 1 - W_in - args.pad_left
    if max(args.pad_top, pad_bottom) > args.kh - 1 or max(args.pad_left, pad_right) > args.kw - 1:
        return None
    return args._replace(pad_top=args.kh - 1 - args.pad_top,
                         pad_left=args.kw - 1 - args.pad_left, H_out=H_in, W_out=W_in)


def winograd_dx_args(args, H_in, W_in, C_in, C_out, examples=None):
    """The window arguments of ``dx`` when :meth:`ConvWorkspace.winograd_gemm` computes it
    (:func:`transposed_args` of a 3x3 layer with ``C_in -> C_out`` channels for which
    :func:`winograd_applies`, the channels the other way round), else None. A 5x5 layer's
    ``dx`` stays ``col2im(dy W2^T)``: by Winograd it was measured 1.1 to 1.6 times slower
    (``docs/speed.md``)."""
    if args.kh != 3:
        return None
    dx_args = transposed_args(args, H_in, W_in)
    if dx_args is None or not winograd_applies(dx_args, C_out, C_in, examples):
        return None
    return dx_args


def transposed_filters(W):
    """The filters of ``dx`` as a convolution of ``dy`` (:func:`transposed_args`): ``W``
    ``(kh, kw, C_in, C_out)`` flipped in both spatial axes, its channels swapped, ``(kh, kw,
    C_out, C_in)`` (a view)."""
    return W[::-1, ::-1].transpose(0, 1, 3, 2)


def example_ranges(N, bytes_per_example, limit):
    """Split ``N`` examples into ranges ``(n0, n1)`` of at most ``limit`` bytes each, at
    ``bytes_per_example`` each (one example at least)."""
    step = max(1, limit // max(1, bytes_per_example))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def largest(ranges):
    """The most examples in one of :func:`example_ranges`' ranges (0 for none)."""
    return max((n1 - n0 for n0, n1 in ranges), default=0)


def chunks(N, P, K, itemsize):
    """Split ``N`` examples into chunks of at most :data:`CHUNK_BYTES` of matrix each (one
    example at least).

    Parameters
    ----------
    N : examples in the batch.
    P, K : each example has ``P`` rows of ``K`` numbers (``P = H_out * W_out``).
    itemsize : bytes per number.

    Returns
    -------
    ranges : list of ``(n0, n1)`` covering ``0..N`` in order.
    rows : rows of the largest chunk (``P`` times its examples), the size of a buffer that
        holds any of them.
    """
    ranges = example_ranges(N, P * K * itemsize, CHUNK_BYTES)
    return ranges, largest(ranges) * P


def column_major(C_in, args):
    """Whether the matrices are column-major: for one input channel and stride 1 along W, a
    window's tap rows are only ``kw`` numbers long, and each column of a column-major cols
    is one image row, shifted."""
    return C_in == 1 and args.sw == 1


def _matrix(flat, rows, cols, column_major):
    """The first ``rows * cols`` numbers of the 1-D ``flat`` as a ``(rows, cols)`` matrix,
    contiguous in either order: a smaller piece is then still a contiguous array (a row
    slice of a column-major matrix would be strided), and col2im sees the one memory order it
    is compiled for."""
    part = flat[:rows * cols]
    return part.reshape(cols, rows).T if column_major else part.reshape(rows, cols)


def _kernels():
    """:mod:`tinyconv.kernels`, imported on first use (see ``tinyconv.layer._kernels``)."""
    from . import kernels
    return kernels


class ConvWorkspace:
    """The scratch memory of one convolution layer, and the schedule of its GEMMs.

    Attributes
    ----------
    buffers : dict name -> array, the calling thread's kept arrays: ``"cols"`` (``[cols, 1]``,
        or ``cols`` without bias), ``"dcols"`` (1-D: the storage of the largest piece of
        dcols) and, for Winograd, ``"padded <tag>"``, ``"V <tag>"`` and ``"M <tag>"`` (tag
        ``forward`` or ``dx``; V and M 1-D, the storage of the largest chunk), and ``"U
        <tag>"``, the transformed filters, beside ``"W <tag>"``, the filters they came from
        (:meth:`winograd_filters`). Each thread has its own; a copy of the workspace starts
        with none.
    """

    def __init__(self):
        self._local = threading.local()

    def __reduce__(self):
        # scratch memory is not state: a copy (copy.deepcopy of a model) starts empty
        return ConvWorkspace, ()

    def _slots(self):
        """The calling thread's namespace: its ``buffers`` and ``held``, ``(x, n0, n1)`` when
        its ``"cols"`` buffer holds ``im2col(x[n0:n1])``."""
        local = self._local
        if not hasattr(local, "buffers"):
            local.buffers, local.held = {}, None
        return local

    @property
    def buffers(self):
        return self._slots().buffers

    def buffer(self, name, shape, dtype, column_major=False, ones_column=False):
        """The kept array ``name``, new only when its shape, dtype or order must change.

        A fresh array of megabytes costs a page fault per page on first touch, more than
        filling it (``docs/speed.md``). ``ones_column`` sets the last column to 1 once, when
        the array is made (im2col never writes it). NumPy's GEMM takes either memory order.
        """
        buf = self.buffers.get(name)
        order_ok = buf is not None and (buf.flags.f_contiguous if column_major
                                        else buf.flags.c_contiguous)
        if not order_ok or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype, order="F" if column_major else "C")
            if ones_column:
                buf[:, -1] = 1
            if name == "cols":
                self._slots().held = None
            self.buffers[name] = buf
        return buf

    def _cols(self, x, n0, n1, args, rows, bias, reuse=False):
        """``[cols, 1]`` of examples ``n0:n1`` of ``x`` (``cols`` without bias), in the kept
        buffer: ``(n*H_out*W_out, kh*kw*C_in [+ 1])``. With ``reuse``, im2col is skipped if
        the buffer already holds them (the backward pass after a forward of the same ``x``)."""
        K = args.kh * args.kw * x.shape[-1]
        ext = self.buffer("cols", (rows, K + bias), x.dtype, column_major(x.shape[-1], args),
                          ones_column=bias)
        ext = ext[:(n1 - n0) * args.H_out * args.W_out]
        slots = self._slots()
        held = slots.held
        if not (reuse and held is not None and held[0] is x and held[1:] == (n0, n1)):
            _kernels().im2col(x[n0:n1], *args, out=ext[:, :K])
            slots.held = (x, n0, n1)
        return ext

    def im2col_gemm(self, x, args, W2, b):
        """``im2col(x) @ W2 + b``, a chunk of examples at a time, bias folded into the GEMM.

        Parameters
        ----------
        x : (N, H_in, W_in, C_in) C-contiguous input.
        args : :class:`Im2colArgs`.
        W2 : (kh*kw*C_in, C_out) weights as a matrix.
        b : (C_out,) bias, or None.

        Returns
        -------
        y : (N*H_out*W_out, C_out) array in ``x``'s dtype.
        """
        N, P = len(x), args.H_out * args.W_out
        K, C_out = W2.shape
        bias = b is not None
        if bias:
            W2 = np.concatenate([W2, b[None, :]])                  # [W2; b]: (K + 1, C_out)
        y = np.empty((N * P, C_out), dtype=x.dtype)
        ranges, rows = chunks(N, P, K + 1, x.itemsize)
        for n0, n1 in ranges:
            ext = self._cols(x, n0, n1, args, rows, bias)           # (n*P, K [+ 1])
            np.matmul(ext, W2, out=y[n0 * P:n1 * P])
        return y

    def _winograd_chunks(self, x, args, C_out, tag):
        """The transformed tiles of ``x``, a chunk of examples at a time.

        Per chunk: the input zero-padded into a kept buffer, then its tiles ``V = B^T d B``
        (:mod:`tinyconv.kernels.winograd`; ``(r + 1) x (r + 1)`` tiles for an ``r x r``
        kernel). A chunk holds at most :data:`WINOGRAD_CHUNK_BYTES` of ``V`` and of one array
        beside it. ``tag`` names the kept buffers, so that the forward's, ``dx``'s (whose
        channels are the other way round) and the weight gradient's are kept apart.

        Yields
        ------
        ``(n0, n1, V, beside)``: ``V`` ((r + 1)^2, T, C_in) the tiles of examples ``n0 … n1 - 1``
        (``T`` tiles), ``beside`` a ((r + 1)^2, T, C_out) array to compute into.
        """
        N, H_in, W_in, C_in = x.shape
        r = args.kh
        planes = (r + 1) ** 2
        th, tw = (args.H_out + 1) // 2, (args.W_out + 1) // 2      # tiles per column, row
        # per example: planes th tw numbers of V for each input channel, of beside for each
        # output channel
        ranges = example_ranges(N, planes * th * tw * (C_in + C_out) * x.itemsize,
                                WINOGRAD_CHUNK_BYTES)
        n = largest(ranges)                                        # examples per chunk
        # the padded chunk: (n, 2 th + r - 1, 2 tw + r - 1, C_in), zero where no input is
        # copied (the border is cleared on every call: another input size can share the
        # buffer's shape)
        pt, pl = args.pad_top, args.pad_left
        padded = self.buffer(f"padded {tag}", (n, 2 * th + r - 1, 2 * tw + r - 1, C_in),
                             x.dtype)
        flat_V = self.buffer(f"V {tag}", (planes * n * th * tw * C_in,), x.dtype)
        flat_beside = self.buffer(f"M {tag}", (planes * n * th * tw * C_out,), x.dtype)
        padded[:, :pt] = padded[:, pt + H_in:] = 0
        padded[:, :, :pl] = padded[:, :, pl + W_in:] = 0
        for n0, n1 in ranges:
            m, T = n1 - n0, (n1 - n0) * th * tw
            padded[:m, pt:pt + H_in, pl:pl + W_in] = x[n0:n1]
            V = _kernels().winograd_tiles(padded[:m], th, tw, r=r,
                                          out=flat_V[:planes * T * C_in].reshape(planes, T, C_in))
            yield n0, n1, V, flat_beside[:planes * T * C_out].reshape(planes, T, C_out)

    def kept_transform(self, name, W, make):
        """``make(W)``, kept under ``name`` with a copy of the ``W`` it came from and made
        again only when ``W`` differs from that copy. The filters of a model that is not
        being trained are the same from call to call, and comparing them costs far less than
        transforming them (``docs/speed.md``); an update in place, or NaN in ``W`` (never
        equal to itself), makes a new one."""
        kept, out = self.buffers.get(f"W {name}"), self.buffers.get(name)
        if (kept is None or kept.shape != W.shape or kept.dtype != W.dtype
                or not np.array_equal(kept, W)):
            out = make(W)
            self.buffers[f"W {name}"], self.buffers[name] = W.copy(), out
        return out

    def winograd_filters(self, W, tag):
        """The transformed filters ``U = G g G^T`` of ``W`` (:func:`tinyconv.kernels.
        winograd_weights`: ``(r, r, C_in, C_out)`` -> ``((r + 1)^2, C_in, C_out)``), kept
        (:meth:`kept_transform`); ``tag`` keeps the forward's and ``dx``'s apart (their
        filters differ)."""
        return self.kept_transform(f"U {tag}", W, _kernels().winograd_weights)

    def row_block_gemm(self, x, args, W, b, B):
        """``conv(x, W) + b`` of a stride-1 layer on one input channel, ``B`` neighbouring
        output columns at a time (``B`` divides ``W_out``, :func:`row_block_width`).

        Output columns ``c0 … c0 + B - 1`` of row ``oh`` see the ``kh x (B + kw - 1)`` input
        window at ``(oh, c0)`` of the zero-padded input. Unfolding that window once per block
        gives ``[cols, 1]`` of ``(N*H_out*W_out/B, kh*(B + kw - 1) + 1)`` numbers, and one
        GEMM with :func:`row_block_filters` (bias ``B`` times as the last row) gives the
        ``B * C_out`` outputs of every block, which are ``y``'s own memory order. The
        multiplications by the banded matrix's zeros add exact zeros and the others are
        im2col's, so the numbers are im2col + GEMM's up to the order BLAS sums them in (a
        longer sum, grouped otherwise: about 1e-7 of the output's scale in float32); a chunk
        of examples at a time (:data:`CHUNK_BYTES`).

        Parameters
        ----------
        x : (N, H_in, W_in, 1) C-contiguous input.
        args : :class:`Im2colArgs` (stride and dilation 1).
        W : (kh, kw, 1, C_out) HWIO weights. b : (C_out,) bias, or None.
        B : output columns per block.

        Returns
        -------
        y : (N*H_out*W_out, C_out) array in ``x``'s dtype, as :meth:`im2col_gemm`'s.
        """
        N, H_in, W_in, _ = x.shape
        kh, kw, _, C_out = W.shape
        H_out, W_out, span = args.H_out, args.W_out, B + args.kw - 1
        K = kh * span
        T = self.kept_transform(f"T {B}", W, lambda W: row_block_filters(W, B))
        bias = np.zeros(C_out, x.dtype) if b is None else b
        T1 = np.concatenate([T, np.tile(bias, B)[None, :].astype(T.dtype)])   # (K + 1, B C_out)
        blocks = H_out * (W_out // B)                                  # blocks per example
        ranges = example_ranges(N, blocks * (K + 1) * x.itemsize, CHUNK_BYTES)
        n = largest(ranges)
        pt, pl = args.pad_top, args.pad_left
        padded = self.buffer("padded rows", (n, H_out + kh - 1, W_out + kw - 1), x.dtype)
        padded[:, :pt] = padded[:, pt + H_in:] = 0        # the border, cleared on every call
        padded[:, :, :pl] = padded[:, :, pl + W_in:] = 0  # (another size may share the shape)
        cols = self.buffer("row cols", (n, H_out, W_out // B, K + 1), x.dtype)
        cols[..., -1] = 1
        y = np.empty((N * blocks, B * C_out), dtype=x.dtype)
        self._slots().held = None       # no im2col matrix of this x is left for the backward
        s0, s1, s2 = padded.strides
        for n0, n1 in ranges:
            m = n1 - n0
            padded[:m, pt:pt + H_in, pl:pl + W_in] = x[n0:n1, :, :, 0]
            windows = np.lib.stride_tricks.as_strided(
                padded, (m, H_out, W_out // B, kh, span), (s0, s1, B * s2, s1, s2))
            cols[:m, ..., :K].reshape(m, H_out, W_out // B, kh, span)[...] = windows
            np.matmul(cols[:m].reshape(m * blocks, K + 1), T1, out=y[n0 * blocks:n1 * blocks])
        return y.reshape(N * H_out * W_out, C_out)

    def winograd_gemm(self, x, args, W, b, tag="forward"):
        """``conv(x, W) + b`` of a 3x3 or 5x5, stride-1 layer by Winograd's F(2x2, 3x3) or
        F(2x2, 5x5) (:mod:`tinyconv.kernels.winograd`), a chunk of examples at a time: per
        chunk the transformed tiles ``V`` ((r + 1)^2, T, C_in), the ``(r + 1)^2`` GEMMs
        ``M[ab] = V[ab] @ U[ab]`` ((r + 1)^2, T, C_out), the outputs. The transforms subtract
        inputs, so an inf in a tile gives NaN where the direct sum gives inf, and inputs near
        the dtype's largest value may overflow where the direct sum does not.

        Parameters
        ----------
        x : (N, H_in, W_in, C_in) C-contiguous input.
        args : :class:`Im2colArgs` (``kh = kw``, 3 or 5, stride and dilation 1).
        W : (r, r, C_in, C_out) HWIO weights.
        b : (C_out,) bias, or None.
        tag : names the kept buffers (see :meth:`_winograd_chunks`).

        Returns
        -------
        y : (N*H_out*W_out, C_out) array in ``x``'s dtype, as :meth:`im2col_gemm`'s.
        """
        k = _kernels()
        N, C_out, H_out, W_out = len(x), W.shape[3], args.H_out, args.W_out
        th, tw = (H_out + 1) // 2, (W_out + 1) // 2
        U = self.winograd_filters(W, tag)                          # ((r + 1)^2, C_in, C_out)
        b = np.zeros(C_out, x.dtype) if b is None else b
        y = np.empty((N, H_out, W_out, C_out), dtype=x.dtype)
        # the forward leaves no im2col matrix behind: the backward's reuse test must not find
        # an older one of this x (an array the caller refilled)
        self._slots().held = None
        for n0, n1, V, M in self._winograd_chunks(x, args, C_out, tag):
            np.matmul(V, U, out=M)
            k.winograd_untiles(M, th, tw, b, H_out, W_out, out=y[n0:n1])
        return y.reshape(N * H_out * W_out, C_out)

    def winograd_weight_gemm(self, x, args, dy, bias):
        """The weight gradient of :meth:`winograd_gemm`'s convolution, by the same transforms
        run backwards: per chunk ``V`` and the tile signals ``dM = A dy A^T`` (16, T, C_out),
        ``dU[ab] += V[ab]^T @ dM[ab]``; then ``dW = G^T dU G``.

        Parameters
        ----------
        x : the (N, H_in, W_in, C_in) input of the last forward pass.
        args : :class:`Im2colArgs` of that pass.
        dy : (N, H_out, W_out, C_out) C-contiguous signal.
        bias : whether to compute ``db``, ``dy`` summed over all but the channels.

        Returns
        -------
        dW : (3, 3, C_in, C_out); db : (C_out,) or None, as :meth:`weight_gemm`'s (but ``dW``
        in the HWIO shape).
        """
        k = _kernels()
        C_in, C_out = x.shape[3], dy.shape[3]
        th, tw = (args.H_out + 1) // 2, (args.W_out + 1) // 2
        dU = np.zeros((16, C_in, C_out), dtype=dy.dtype)
        for n0, n1, V, dM in self._winograd_chunks(x, args, C_out, "dW"):
            k.winograd_signal_tiles(dy[n0:n1], th, tw, out=dM)
            dU += np.matmul(V.transpose(0, 2, 1), dM)              # (16, C_in, C_out)
        db = dy.reshape(-1, C_out).sum(axis=0) if bias else None
        return k.winograd_weights_gradient(dU), db

    def weight_gemm(self, x, args, dy2, bias):
        """``im2col(x)^T dy2`` and ``dy2`` summed over rows, as one GEMM per chunk.

        Parameters
        ----------
        x : the (N, H_in, W_in, C_in) input of the last forward pass.
        args : :class:`Im2colArgs`.
        dy2 : (N*H_out*W_out, C_out) C-contiguous signal.
        bias : whether to compute the sum (the bias gradient).

        Returns
        -------
        dW2 : (kh*kw*C_in, C_out).
        db : (C_out,), or None without bias.
        """
        N, P = len(x), args.H_out * args.W_out
        K = args.kh * args.kw * x.shape[-1]
        grads = np.zeros((K + bias, dy2.shape[1]), dtype=dy2.dtype)   # [dW2; db]
        ranges, rows = chunks(N, P, K + 1, x.itemsize)
        for n0, n1 in reversed(ranges):     # the forward pass left the last chunk's cols
            ext = self._cols(x, n0, n1, args, rows, bias, reuse=True)
            dy_c = dy2[n0 * P:n1 * P]                               # (n*P, C_out)
            if ext.flags.c_contiguous:
                grads += (dy_c.T @ ext).T                           # (K [+ 1], C_out)
            else:
                grads += ext.T @ dy_c
        return grads[:K], (grads[K] if bias else None)

    def col2im_gemm(self, dy2, W2, args, x_shape):
        """``col2im(dy2 @ W2^T)``, a piece of :data:`DX_CHUNK_BYTES` of dcols at a time.

        Parameters
        ----------
        dy2 : (N*H_out*W_out, C_out) C-contiguous signal.
        W2 : (kh*kw*C_in, C_out) weights as a matrix.
        args : :class:`Im2colArgs`.
        x_shape : ``(N, H_in, W_in, C_in)``, the shape of ``dx``.

        Returns
        -------
        dx : (N, H_in, W_in, C_in) array in ``dy2``'s dtype.
        """
        N, H_in, W_in, C_in = x_shape
        P, K = args.H_out * args.W_out, W2.shape[0]
        dx = np.empty(x_shape, dtype=dy2.dtype)
        pieces = example_ranges(N, P * K * dy2.itemsize, DX_CHUNK_BYTES)
        flat = self.buffer("dcols", (largest(pieces) * P * K,), dy2.dtype)   # the largest piece
        for m0, m1 in pieces:
            dcols = _matrix(flat, (m1 - m0) * P, K, column_major(C_in, args))   # (m*P, K)
            np.matmul(dy2[m0 * P:m1 * P], W2.T, out=dcols)
            _kernels().col2im(dcols, m1 - m0, H_in, W_in, C_in, *args, out=dx[m0:m1])
        return dx
