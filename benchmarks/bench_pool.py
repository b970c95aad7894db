"""MaxPool2D speed: tinyconv's max-pool with switches and its unpool against PyTorch's max_pool2d.

For each NHWC float32 shape ``(N, H, W, C)`` and window ``(size, stride)`` this measures

- ``MaxPool2D.forward`` (the max and its switches, as training and the deconvnet need them)
  and ``forward`` + ``backward`` (unpooling ``dy`` through the switches), called with
  ``check=False`` as ``Sequential`` calls them;
- ``torch.nn.functional.max_pool2d`` on the same (seeded) numbers: forward under ``no_grad``,
  and forward + ``autograd.grad`` (torch then records its own argmax indices), with
  NCHW-contiguous and with ``channels_last`` tensors; the faster layout is reported.
  tinyconv and torch each run in a fresh worker process (``_setup.compare``), the two taking
  turns for several rounds; ``--in-process`` times them in this one process instead.

GB/s counts the bytes each pass must move at least: forward reads ``x`` and writes ``y`` and
the int64 switches; backward reads ``dy`` and the switches and writes ``dx``. Both libraries
are checked against each other in the same run (``y`` and ``dx``; the inputs have no ties).

tinyconv's worker also runs a second time, in a process of its own taking its turn in every
round: the table's ``A/A (median)`` column is tinyconv / tinyconv again, how far from 1.00 two
identical contenders land in this run (``--no-control`` skips it).

Run ``python benchmarks/bench_pool.py [--quick] [--markdown PATH] [--threads 2] [--rounds 5]
[--in-process] [--no-control]``.
"""

import sys

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

from tinyconv import MaxPool2D

# (N, H, W, C, size, stride)
SHAPES = [
    (256, 28, 28, 16, 2, 2),     # pool1 of the MNIST network on a big batch
    (256, 14, 14, 32, 2, 2),     # its pool2
    (128, 55, 55, 96, 3, 2),     # AlexNet / ZF-net pool1: overlapping 3 x 3 windows, stride 2
]
QUICK_BATCH_DIVISOR = 8
TARGET = 1.5                     # fwd+bwd ratio tinyconv / torch the project aims at


def shape_name(s):
    N, H, W, C, k, stride = s
    return f"{N}x{H}x{W}x{C} pool {k}/{stride}"


def make_case(s, seed=0):
    """A MaxPool2D for shape ``s``, an input without ties and an upstream gradient."""
    N, H, W, C, k, stride = s
    rng = np.random.default_rng(seed)
    layer = MaxPool2D(k, stride=stride)
    # distinct values: no two cells of a window tie, so both libraries pick the same max
    x = rng.permutation(N * H * W * C).astype(np.float32).reshape(N, H, W, C)
    x /= x.size
    H_out, W_out, _ = layer.output_shape((H, W, C))
    dy = rng.standard_normal((N, H_out, W_out, C), dtype=np.float32)
    return layer, x, dy


def torch_passes(s, x, dy):
    """``F.max_pool2d`` on the same numbers, NCHW-contiguous and channels_last.

    Returns ``{layout: {"forward": fn, "fwd+bwd": fn}}`` (forward under ``no_grad``; fwd+bwd:
    ``autograd.grad`` for x).
    """
    import torch
    import torch.nn.functional as F

    _, _, _, _, k, stride = s
    passes = {}
    for layout in _setup.TORCH_LAYOUTS:
        xt = _setup.nchw(torch, x, layout).requires_grad_(True)
        dyt = _setup.nchw(torch, dy, layout)

        def fwd(xt=xt):
            with torch.no_grad():
                return F.max_pool2d(xt, k, stride)

        def fwd_bwd(xt=xt, dyt=dyt):
            y = F.max_pool2d(xt, k, stride)
            return torch.autograd.grad(y, xt, dyt)[0]

        passes[layout] = {"forward": fwd, "fwd+bwd": fwd_bwd}
    return passes


def agreement(s):
    """Whether tinyconv's and torch's ``y`` agree, and the largest ``|dx|`` difference, on
    shape ``s`` (run in the torch worker, which has both)."""
    layer, x, dy = make_case(s)
    ours = _setup.layer_passes(layer, x, dy)
    y = ours["forward"]()
    dx = ours["fwd+bwd"]()
    passes = torch_passes(s, x, dy)
    y_t = passes["NCHW"]["forward"]().permute(0, 2, 3, 1).numpy()
    dx_t = passes["NCHW"]["fwd+bwd"]().permute(0, 2, 3, 1).numpy()
    return {"equal": bool(np.array_equal(y, y_t)), "dx": float(np.abs(dx - dx_t).max())}


def make(side, case):
    """A worker's callable for ``case = "N,H,W,C,size,stride|pass|layout"`` (or
    ``"check|shape"``: :func:`agreement`), from the same seeded numbers on both sides."""
    key, pass_, *layout = case.split("|")
    if key == "check":
        return lambda: agreement(tuple(int(v) for v in pass_.split(",")))
    s = tuple(int(v) for v in key.split(","))
    layer, x, dy = make_case(s)
    if side == "tinyconv":
        return _setup.layer_passes(layer, x, dy)[pass_]
    return torch_passes(s, x, dy)[layout[0]][pass_]


def main(argv=None):
    args = _setup.arg_parser(__doc__, f"batch / {QUICK_BATCH_DIVISOR}, fewer runs",
                             "PyTorch", control=True).parse_args(argv)

    if args.worker:
        return _setup.serve(args, make)
    header = _setup.configure(args.threads, torch=False)
    shapes, monitor = _setup.start_shapes(header, SHAPES, args.quick, QUICK_BATCH_DIVISOR)
    header.append(_setup.run_mode(args))
    print("[bench_pool] tinyconv and torch, each in its own worker ...", file=sys.stderr,
          flush=True)
    keys = [",".join(map(str, s)) for s in shapes]
    timed, worker_lines = _setup.compare_passes(__file__, make, keys, args)
    header += worker_lines
    checks, _ = _setup.compare(__file__, make, [], args, sides=("torch",),
                               probes=[("torch", f"check|{k}") for k in keys])

    table = _setup.pass_table(
        "MaxPool2D, float32 NHWC: tinyconv (max + switches, unpool) vs torch max_pool2d",
        "shape", "GB/s",
        "GB/s: forward x + y + int64 switches, fwd+bwd adds dy + switches + dx, from the medians "
        "(the same byte count for torch, whose indices are int64 too); torch: the faster (by "
        "median) of NCHW and channels_last; tinyconv/torch is the ratio of the medians; the "
        f"project's target for fwd+bwd is <= {TARGET}.", turns=not args.in_process)
    for s, key in zip(shapes, keys, strict=True):
        name = shape_name(s)
        N, H, W, C, k, stride = s
        H_out, W_out = (H - k) // stride + 1, (W - k) // stride + 1
        x_bytes, y_size = N * H * W * C * 4, N * H_out * W_out * C
        fwd_bytes = x_bytes + 4 * y_size + 8 * y_size
        nbytes = {"forward": fwd_bytes, "fwd+bwd": fwd_bytes + 4 * y_size + 8 * y_size + x_bytes}
        for pass_ in ("forward", "fwd+bwd"):
            ours, theirs, layout, twin = timed[key, pass_]
            table.add(name, pass_, *_setup.pass_cells(
                ours.timing, theirs.timing if theirs else None, layout, nbytes[pass_] / 1e9,
                twin.timing if twin else None))
        check = checks.get(("probe", "torch", f"check|{key}"))
        if check is not None:
            table.notes.append(f"{name}: " + (check["error"] if "error" in check else
                               f"y {'equal' if check['value']['equal'] else 'DIFFERENT'}, "
                               f"dx max abs diff {check['value']['dx']:.1e}"))
    header.append(monitor.line())
    _setup.report("bench_pool: MaxPool2D forward / unpool backward", header, [table],
                  args.markdown)


if __name__ == "__main__":
    main()
