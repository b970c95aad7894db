"""im2col / col2im bandwidth, against this machine's memcpy measured in the same run.

im2col and col2im do no arithmetic to speak of: they move numbers. So the yardstick is how
fast this machine copies memory: ``np.copyto`` of an array the size of the im2col matrix
(read it once, write it once). For each conv shape of ``bench_conv.py`` this measures

- **memcpy**: ``np.copyto(dst, src)`` with ``src``, ``dst`` the size of ``cols``; bytes moved =
  read + written = ``2 * cols.nbytes``;
- **im2col** into a buffer kept from call to call (``out=``, as ``Conv2D`` uses it, in the
  same memory order: column-major for one input channel and stride 1, else row-major):
  bytes moved = ``x`` read + ``cols`` written; and into a new array each call (the default
  without ``out=``, always row-major), whose pages the operating system must first hand over
  and zero;
- **col2im** (from ``cols`` in Conv2D's memory order): bytes moved = ``cols`` read + the
  image written.

"% of memcpy" is each kernel's GB/s over memcpy's GB/s (the project's target for im2col and
col2im: at least 50%). Every kernel is checked against its plain-NumPy reference on the first
two examples of the batch in the same run.

Run ``python benchmarks/bench_kernels.py [--quick] [--markdown PATH] [--threads 2]``.
"""

import sys

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np
from bench_conv import SHAPES, shape_name  # (N, H, W, C_in, C_out, k, stride, pad)

from tinyconv import Conv2D, kernels

QUICK_BATCH_DIVISOR = 8
TARGET = 0.5                    # im2col / col2im bandwidth as a share of memcpy's


def make_case(s, seed=0):
    """The layer's kernel arguments, an input x and a cols-shaped gradient, the latter in the
    memory order Conv2D keeps its matrices in (column-major for one channel and stride 1)."""
    N, H, W, C_in, C_out, k, stride, pad = s
    rng = np.random.default_rng(seed)
    layer = Conv2D(C_in, C_out, k, stride=stride, padding=pad, rng=seed)
    args = layer._im2col_args(H, W)
    x = rng.standard_normal((N, H, W, C_in), dtype=np.float32)
    H_out, W_out = args[-2], args[-1]
    dcols = rng.standard_normal((N * H_out * W_out, k * k * C_in), dtype=np.float32)
    order = "F" if C_in == 1 and stride == 1 else "C"
    return layer, args, x, np.asarray(dcols, order=order)


def agree(fast, ref):
    """'exact' or the largest relative difference (float32 sums may round differently)."""
    if np.array_equal(fast, ref):
        return "exact"
    return f"{np.abs(fast - ref).max() / max(np.abs(ref).max(), 1e-30):.1e}"


def shape_rows(s, quick):
    """The table rows of one shape: memcpy, im2col into a kept buffer and into a new array,
    col2im; each kernel checked against its reference on the first two examples."""
    name = shape_name(s)
    layer, a, x, dcols = make_case(s)
    N, H, W, C = x.shape
    cols_buf = np.empty_like(dcols)               # same shape and memory order
    src, dst = np.ones_like(dcols), np.empty_like(dcols)

    copy_t = _setup.measure(lambda: np.copyto(dst, src), quick=quick)
    copy_bw = 2 * src.nbytes / copy_t.median
    rows_out = [(name, "memcpy (np.copyto)", 2 * src.nbytes / 1e6, copy_t.ms, 1e3 * copy_t.min,
                 copy_bw / 1e9, 1.0, "-")]

    # the reference check on the first two examples: the kernels' output rows for them are
    # the first rows of the full output
    rows = 2 * a[-2] * a[-1]
    cols_ref = kernels.im2col_reference(x[:2], *a)
    back_ref = kernels.col2im_reference(dcols[:rows], 2, H, W, C, *a)
    moved = x.nbytes + dcols.nbytes
    try:
        kernels.im2col(x[:1], *a, out=cols_buf[:rows // 2])
        kept = True
    except TypeError:               # an older tinyconv without out=: no kept buffer to time
        kept = False
    cases = [("im2col (new array)", lambda: kernels.im2col(x, *a),
              None if kept else lambda: agree(kernels.im2col(x, *a)[:rows], cols_ref)),
             ("col2im", lambda: kernels.col2im(dcols, N, H, W, C, *a),
              lambda: agree(kernels.col2im(dcols, N, H, W, C, *a)[:2], back_ref))]
    if kept:
        cases.insert(0, ("im2col (kept buffer)", lambda: kernels.im2col(x, *a, out=cols_buf),
                         lambda: agree(kernels.im2col(x, *a, out=cols_buf)[:rows], cols_ref)))
    for label, fn, check in cases:
        t = _setup.measure(fn, quick=quick)
        bw = moved / t.median
        rows_out.append((name, label, moved / 1e6, t.ms, 1e3 * t.min, bw / 1e9, bw / copy_bw,
                         check() if check else "-"))
    return rows_out


def main(argv=None):
    args = _setup.arg_parser(__doc__, f"batch / {QUICK_BATCH_DIVISOR}, fewer runs").parse_args(argv)

    header = _setup.configure(args.threads, torch=False)
    # first calls (numba loads or compiles the kernels) stay out of every timing
    layer, a, x, dcols = make_case((1, 5, 6, 2, 3, 3, 1, 1))
    kernels.im2col(x, *a)
    kernels.col2im(dcols, *x.shape, *a)
    # at least two examples: the reference check runs on the first two
    shapes, monitor = _setup.start_shapes(header, SHAPES, args.quick, QUICK_BATCH_DIVISOR,
                                          min_batch=2)

    cols_fmt = {"MB moved": "{:.1f}", "ms": "{:.2f}", "min ms": "{:.2f}", "GB/s": "{:.1f}",
                "% of memcpy": "{:.0%}"}
    table = _setup.Table(
        "im2col / col2im (float32) against memcpy of the same size",
        ["shape", "kernel", "MB moved", "ms", "min ms", "GB/s", "% of memcpy", "vs reference"],
        fmt=cols_fmt,
        notes=["MB moved: bytes read + bytes written, each array once; memcpy = np.copyto of an "
               "array the size of cols; GB/s from the medians; the project's target for "
               f"im2col and col2im is >= {TARGET:.0%} of memcpy. 'vs reference': the kernel "
               "against its plain-NumPy twin on the first two examples."])
    for s in shapes:
        print(f"[bench_kernels] {shape_name(s)} ...", file=sys.stderr, flush=True)
        for row in shape_rows(s, args.quick):
            table.add(*row)
    header.append(monitor.line())
    _setup.report("bench_kernels: im2col / col2im bandwidth", header, [table], args.markdown)


if __name__ == "__main__":
    main()
