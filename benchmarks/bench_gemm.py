"""Is the GEMM the gap? The shipped model's convolutions by im2col + GEMM, and by torch.

tinyconv computes a convolution as ``cols = im2col(x)``, ``y = [cols, 1] @ [W2; b]``
(``docs/speed.md``), or by Winograd where that was measured faster; torch (oneDNN) runs a
convolution kernel of its own that never writes ``cols``. This script splits the difference
between the two, for each Conv2D of the shipped MNIST CNN (``tc.pretrained("mnist")``) on the
input it really gets (the first held-out digits run up to it), at batches of 64 and 256
(``--quick``: 8):

- **GEMM alone**: the product ``[cols, 1] @ [W2; b]`` of the layer's im2col route, on a
  matrix of the same shape, memory order and chunks of examples
  (``tinyconv.workspace.chunks``) as the layer's, by NumPy (OpenBLAS, in tinyconv's worker)
  and by ``torch.mm`` (torch's BLAS, in torch's worker).
- **im2col route, whole**: tinyconv's layer by im2col (``forward(x, param_grads=True)``,
  which keeps a 5x5 layer on im2col, ``workspace.winograd_applies``; the script stops if a
  layer would still go by Winograd), and an im2col route built from torch's pieces:
  ``F.pad`` and ``F.unfold`` (NCHW), then a batched ``matmul`` ``(C_out, K) @ (N, K, L)``
  with the bias added.
- **the convolution**: tinyconv's ``Conv2D.forward`` as the model calls it (im2col or
  Winograd, the path is named), and torch's ``Conv2d`` in NCHW and in channels_last.

GFLOP/s count the direct convolution's flops, ``2 N H_out W_out kh kw C_in C_out`` (two per
multiply-add), over the time, for every row (Winograd does fewer). The ``[cols, 1]`` column
is the whole batch's matrix; the GEMMs run it in the layer's chunks.

Each round starts one fresh worker per library (the order reversed every other round), with
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed from its environment and every thread
pool pinned to ``--threads``; a worker times each case ``--repeats`` times after two untimed
calls and prints the times as JSON. The tables give medians over all rounds.

    python benchmarks/bench_gemm.py [--rounds 5] [--repeats 10] [--threads 2] [--quick]
                                    [--markdown PATH]
"""

import argparse
import json
import os
import statistics

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

CONTENDERS = ("tinyconv", "torch")
BATCHES, QUICK_BATCHES = (64, 256), (8,)
#: (case, contender) in the order of the tables' columns.
GEMM_CASES = (("GEMM", "tinyconv"), ("GEMM", "torch"))
ROUTE_CASES = (("im2col", "tinyconv"), ("im2col", "torch"), ("layer", "tinyconv"),
               ("conv NCHW", "torch"), ("conv channels_last", "torch"))


def conv_inputs(model, X):
    """``[(i, layer, x)]``: each Conv2D of ``model`` (its index ``i`` in ``model.layers``) and
    the input ``y_(i)`` it gets from ``X`` (``y_(0) = X``)."""
    import tinyconv as tc
    return [(i, layer, X if i == 0 else model.forward(X, upto=i))
            for i, layer in enumerate(model.layers) if isinstance(layer, tc.Conv2D)]


def im2col_gemm_shape(layer, x):
    """``(ranges, P, K, C_out, column_major)`` of the layer's im2col GEMM on ``x``: one chunk
    of examples per ``(n0, n1)`` in ``ranges``, ``P = H_out W_out`` rows of ``[cols, 1]`` per
    example, ``K`` columns (``kh kw C_in``, and 1 for the bias)."""
    from tinyconv import workspace
    N, H, W, _ = x.shape
    args = layer._im2col_args(H, W)
    P = args.H_out * args.W_out
    taps = layer.params["W"][..., 0].size                              # kh*kw*C_in
    K = taps + (1 if layer.bias else 0)
    # chunked as ConvWorkspace.im2col_gemm chunks them: by taps + 1 columns, bias or not
    ranges, _ = workspace.chunks(N, P, taps + 1, x.itemsize)
    return ranges, P, K, layer.out_channels, workspace.column_major(layer.in_channels, args)


def gemm_operands(shape, dtype, seed=0):
    """A ``[cols, 1]`` of the largest chunk (random, in the layer's memory order) and
    ``[W2; b]``, for :func:`im2col_gemm_shape`'s ``shape``."""
    import numpy as np
    ranges, P, K, C_out, column_major = shape
    rows = max(n1 - n0 for n0, n1 in ranges) * P
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rows, K), dtype=dtype)
    return (np.asfortranarray(A) if column_major else A), rng.standard_normal((K, C_out),
                                                                             dtype=dtype)


def tinyconv_cases(model, X, repeats):
    """``{layer name: {case: [s]}}`` for the tinyconv worker, and each layer's forward path."""
    import numpy as np

    from tinyconv import workspace
    out = {}
    for i, layer, x in conv_inputs(model, X):
        shape = im2col_gemm_shape(layer, x)
        ranges, P = shape[:2]
        A, B = gemm_operands(shape, x.dtype)
        y = np.empty((A.shape[0], B.shape[1]), x.dtype)

        def gemm(A=A, B=B, y=y, ranges=ranges, P=P):
            for n0, n1 in ranges:
                rows = (n1 - n0) * P
                np.matmul(A[:rows], B, out=y[:rows])

        args = layer._im2col_args(*x.shape[1:3])
        winograd = [workspace.winograd_applies(args, layer.in_channels, layer.out_channels,
                                               len(x), param_grads) for param_grads in (0, 1)]
        if winograd[1]:
            raise SystemExit(f"{model.names[i + 1]}: goes by Winograd even with param_grads, "
                             "so the im2col column would not time im2col")
        # check=False, as Sequential.forward calls its layers
        out[model.names[i + 1]] = {
            "GEMM": _setup.times_of(gemm, repeats),
            "im2col": _setup.times_of(lambda layer=layer, x=x: layer.forward(
                x, check=False, param_grads=True), repeats),
            "layer": _setup.times_of(lambda layer=layer, x=x: layer.forward(x, check=False),
                                     repeats),
            "path": "Winograd" if winograd[0] else "im2col",
            "cols": f"{len(x) * P}x{shape[2]}"}
    return out


def torch_cases(model, X, repeats):
    """The same for the torch worker: its BLAS on the same GEMM, an im2col route of its
    pieces (``F.unfold`` + ``matmul``) and its ``Conv2d`` in both layouts."""
    import torch
    import torch.nn.functional as F
    out = {}
    nets = {layout: list(_setup.torch_copy(model, layout).eval().children())
            for layout in _setup.TORCH_LAYOUTS}
    if any(len(modules) != len(model.layers) for modules in nets.values()):
        # to_torch inserts a padding module before a layer padded unevenly
        raise SystemExit("the torch copy has modules besides the model's layers: module i is "
                         "not layer i")
    for i, layer, x in conv_inputs(model, X):
        shape = im2col_gemm_shape(layer, x)
        ranges, P = shape[:2]
        # from_numpy keeps the strides: a column-major [cols, 1] stays column-major
        A, B = (torch.from_numpy(a) for a in gemm_operands(shape, x.dtype))
        y = torch.empty(A.shape[0], B.shape[1], dtype=A.dtype)

        def gemm(A=A, B=B, y=y, ranges=ranges, P=P):
            for n0, n1 in ranges:
                rows = (n1 - n0) * P
                torch.mm(A[:rows], B, out=y[:rows])

        (pt, pb), (pl, pr) = layer.pads(*x.shape[1:3])
        xt = {layout: _setup.nchw(torch, x, layout) for layout in _setup.TORCH_LAYOUTS}
        # (C_out, C_in*kh*kw), the order of F.unfold's rows
        W2t = torch.from_numpy(layer.params["W"].transpose(3, 2, 0, 1).copy()).reshape(
            layer.out_channels, -1)
        bt = torch.from_numpy(layer.params["b"].copy()) if layer.bias else None
        H_out, W_out = model.output_shapes[i + 1][:2]

        def unfold_mm(xn=xt["NCHW"], pads=(pl, pr, pt, pb), layer=layer, W2t=W2t, bt=bt,
                      out_hw=(H_out, W_out)):
            # the layer's padding first (F.unfold pads both sides of an axis alike)
            cols = F.unfold(F.pad(xn, pads), layer.kernel, dilation=layer.dilation,
                            stride=layer.stride)                        # (N, K, L)
            y = torch.matmul(W2t, cols)                                  # (N, C_out, L)
            if bt is not None:
                y += bt[:, None]
            return y.view(len(xn), -1, *out_hw)

        with torch.no_grad():
            # the route computes the layer's convolution, or its time means nothing
            torch.testing.assert_close(unfold_mm(), nets["NCHW"][i](xt["NCHW"]),
                                       rtol=1e-4, atol=1e-4)
            cases = {"GEMM": _setup.times_of(gemm, repeats),
                     "im2col": _setup.times_of(unfold_mm, repeats)}
            for layout, modules in nets.items():
                cases[f"conv {layout}"] = _setup.times_of(
                    lambda m=modules[i], xl=xt[layout]: m(xl), repeats)
        out[model.names[i + 1]] = cases
    return out


def worker(contender, repeats, threads, batches):
    """Time every batch in this process; print ``{batch: {layer: {case: [s]}}}`` as one JSON
    line (``{"missing": name}`` if torch is not installed)."""
    import tinyconv as tc
    if not _setup.pin_worker(threads, torch=contender == "torch"):
        return
    model = tc.pretrained("mnist")
    images, _ = tc.load_mnist("bundled-test")
    cases = tinyconv_cases if contender == "tinyconv" else torch_cases
    print(json.dumps({n: cases(model, tc.to_float(images[:n]), repeats) for n in batches}))


def flops(model, layer_name, n):
    """The direct convolution's ``2 N H_out W_out kh kw C_in C_out`` of ``layer_name``."""
    i = model.names.index(layer_name) - 1
    layer = model.layers[i]
    H_out, W_out, C_out = model.output_shapes[i + 1]
    kh, kw = layer.kernel
    return 2 * n * H_out * W_out * kh * kw * layer.in_channels * C_out


def tables(runs, batches, model):
    """The printed tables: per batch, the GEMMs alone, then the convolution's routes."""
    def med(who, n, name, case):
        """Median over all rounds, in ms (None when ``who`` did not run)."""
        if not runs[who]:
            return None
        return 1e3 * statistics.median(t for run in runs[who] for t in run[str(n)][name][case])

    def cell(ms, work):
        return f"{ms:7.2f} {work / ms / 1e6:5.1f}" if ms else f"{'-':>7} {'-':>5}"

    def ratio(a, b):
        return f"{a / b:6.2f}" if a and b else f"{'-':>6}"

    lines = []
    for n in batches:
        names = list(runs["tinyconv"][0][str(n)])
        lines += ["", f"batch {n}: the GEMM [cols, 1] @ [W2; b] alone (ms, GFLOP/s)",
                  f"{'layer':<7} {'[cols, 1]':>15} {'NumPy':>13} {'torch.mm':>13} "
                  f"{'NumPy/torch':>11}"]
        for name in names:
            work = flops(model, name, n)
            cols = runs["tinyconv"][0][str(n)][name]["cols"]
            ours, theirs = (med(who, n, name, case) for case, who in GEMM_CASES)
            lines.append(f"{name:<7} {cols:>15} {cell(ours, work)} "
                         f"{cell(theirs, work)} {ratio(ours, theirs):>11}")
        lines += ["", f"batch {n}: the convolution, whole (ms, GFLOP/s)",
                  f"{'layer':<7} {'tinyconv im2col':>15} {'torch im2col':>13} "
                  f"{'tinyconv layer':>23} {'torch NCHW':>13} {'ch-last':>13} "
                  f"{'layer/torch':>11} {'torch im2col/conv':>17}"]
        for name in names:
            work = flops(model, name, n)
            ours_i2c, theirs_i2c, layer, nchw, last = (med(who, n, name, case)
                                                       for case, who in ROUTE_CASES)
            path = runs["tinyconv"][0][str(n)][name]["path"]
            best = min((t for t in (nchw, last) if t), default=None)
            lines.append(f"{name:<7} {cell(ours_i2c, work):>15} {cell(theirs_i2c, work)} "
                         f"{path:>9} {cell(layer, work)} {cell(nchw, work)} "
                         f"{cell(last, work)} {ratio(layer, best):>11} "
                         f"{ratio(theirs_i2c, best):>17}")
    return lines


def main(argv=None):
    parser = _setup.rounds_parser(__doc__, CONTENDERS, 10, "batch 8, 1 round of 2 repeats")
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 1, 2
    batches = QUICK_BATCHES if args.quick else BATCHES
    if args.worker:
        return worker(args.worker, args.repeats, args.threads,
                      [int(b) for b in args.batches.split(",")])
    import tinyconv as tc
    load0 = os.getloadavg()[0]
    runs, missing = _setup.fresh_worker_rounds(
        __file__, CONTENDERS, args.rounds, args.threads,
        ["--repeats", str(args.repeats), "--batches", ",".join(map(str, batches))])
    lines = [_setup.rounds_line(args, load0, "calls"),
             "medians over all rounds; GFLOP/s = the direct convolution's 2 N H_out W_out kh kw "
             "C_in C_out / time; layer/torch = tinyconv's layer over torch's faster layout",
             *tables(runs, batches, tc.pretrained("mnist"))]
    _setup.finish_text(args, __file__, __doc__, lines, missing)


if __name__ == "__main__":
    main()
