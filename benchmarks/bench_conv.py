"""Conv2D speed: tinyconv (im2col + NumPy GEMM + col2im) against PyTorch and NumPy's own sgemm.

For each NHWC float32 shape ``(N, H, W, C_in -> C_out, k, stride, pad)`` this measures

- ``Conv2D.forward`` and ``forward`` + ``backward`` (dx, dW, db), called as ``Sequential``
  calls them (``check=False``: input validation happens once, at the model's input);
- ``torch.nn.functional.conv2d`` on the same (seeded) numbers, both with NCHW contiguous
  tensors and with ``channels_last``; the faster layout is reported. tinyconv and torch each
  run in a fresh worker process of their own (``_setup.compare``), the two taking turns for
  several rounds, so neither pays for the other's thread pools and a busy spell of the
  machine falls on both; ``--in-process`` times them in this one process instead;
- NumPy's sgemm alone on the im2col GEMM, ``(N*H_out*W_out, kh*kw*C_in) @ (kh*kw*C_in, C_out)``:
  the best tinyconv's forward could do with the current algorithm;
- where tinyconv's time goes: im2col, the three GEMMs (bias and db folded into two of them),
  col2im (with the GEMM before it: the layer runs the two in turns, a few examples at a time).

FLOPs: ``2 * N * H_out * W_out * C_out * kh * kw * C_in`` per forward, three times that for
forward + backward. The first numba call (compilation, or loading numba's on-disk cache) is
never inside a timing; it is reported on its own, together with a compile from an empty cache
in a fresh process.

tinyconv's worker also runs a second time, in a process of its own taking its turn in every
round: the table's ``A/A (median)`` column is tinyconv / tinyconv again, how far from 1.00 two
identical contenders land in this run (``--no-control`` skips it).

Run ``python benchmarks/bench_conv.py [--quick] [--markdown PATH] [--threads 2] [--rounds 5]
[--in-process] [--no-control]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

from tinyconv import Conv2D, kernels, workspace

# (N, H, W, C_in, C_out, k, stride, pad)
SHAPES = [
    (256, 28, 28, 1, 32, 3, 1, 1),
    (256, 14, 14, 32, 64, 3, 1, 1),
    (16, 56, 56, 64, 128, 3, 1, 1),
    (16, 227, 227, 3, 96, 11, 4, 0),
]
QUICK_BATCH_DIVISOR = 8     # --quick keeps the spatial sizes and cuts the batch


def shape_name(s):
    N, H, W, C_in, C_out, k, stride, pad = s
    return f"{N}x{H}x{W}x{C_in}->{C_out} k{k} s{stride} p{pad}"


def conv_flops(s):
    """``2 * N * H_out * W_out * C_out * kh * kw * C_in`` for one forward pass."""
    N, H, W, C_in, C_out, k, stride, pad = s
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    return 2 * N * H_out * W_out * C_out * k * k * C_in


def make_case(s, seed=0):
    """A float32 Conv2D for shape ``s`` plus an input ``x`` and an upstream gradient ``dy``."""
    N, H, W, C_in, C_out, k, stride, pad = s
    rng = np.random.default_rng(seed)
    layer = Conv2D(C_in, C_out, k, stride=stride, padding=pad, rng=seed)
    layer.params["b"][:] = rng.standard_normal(C_out).astype(np.float32)
    x = rng.standard_normal((N, H, W, C_in), dtype=np.float32)
    H_out, W_out, _ = layer.output_shape((H, W, C_in))
    dy = rng.standard_normal((N, H_out, W_out, C_out), dtype=np.float32)
    return layer, x, dy


# --------------------------------------------------------------------------- first calls


def compile_probe():
    """Time the first Conv2D forward / backward of this process on a tiny float32 input.

    Returns a dict: seconds for each first call, and per kernel whether numba found it in its
    on-disk cache (``hit``) or compiled it (``miss``).
    """
    layer, x, dy = make_case((1, 5, 6, 2, 3, 3, 1, 1))
    fwd = _setup.first_call(lambda: layer.forward(x, check=False))
    bwd = _setup.first_call(lambda: layer.backward(dy, check=False))
    fwd2 = _setup.first_call(lambda: layer.forward(x, check=False))
    bwd2 = _setup.first_call(lambda: layer.backward(dy, check=False))

    def cache_state(kernel):
        st = kernel.stats
        hits, misses = sum(st.cache_hits.values()), sum(st.cache_misses.values())
        return "hit" if hits and not misses else "miss" if misses and not hits else \
            f"{hits} hit / {misses} miss"

    return {"forward": fwd - fwd2, "backward": bwd - bwd2,
            "im2col": cache_state(kernels.im2col), "col2im": cache_state(kernels.col2im),
            "cache_dir": kernels.im2col.stats.cache_path}


def cold_compile_probe(threads):
    """Run :func:`compile_probe` in a fresh process whose numba cache directory is empty."""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--compile-probe",
             "--threads", str(threads)],
            env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- torch


def torch_passes(s, layer, x, dy):
    """``torch.nn.functional.conv2d`` on the layer's numbers, NCHW-contiguous and channels_last.

    Returns ``{layout: {"forward": fn, "fwd+bwd": fn}}`` (forward under ``no_grad``; fwd+bwd:
    ``autograd.grad`` for x, W and b).
    """
    import torch
    import torch.nn.functional as F

    _, _, _, _, _, _, stride, pad = s
    w_oihw = torch.from_numpy(layer.params["W"]).permute(3, 2, 0, 1)  # HWIO -> OIHW
    b = torch.from_numpy(layer.params["b"]).clone()

    passes = {}
    for layout in _setup.TORCH_LAYOUTS:
        xt = _setup.nchw(torch, x, layout).requires_grad_(True)
        wt = w_oihw.clone(memory_format=_setup.torch_format(torch, layout)).requires_grad_(True)
        bt = b.clone().requires_grad_(True)
        dyt = _setup.nchw(torch, dy, layout)

        def fwd(xt=xt, wt=wt, bt=bt):
            with torch.no_grad():
                return F.conv2d(xt, wt, bt, stride=stride, padding=pad)

        def fwd_bwd(xt=xt, wt=wt, bt=bt, dyt=dyt):
            y = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
            return torch.autograd.grad(y, (xt, wt, bt), dyt)

        passes[layout] = {"forward": fwd, "fwd+bwd": fwd_bwd}
    return passes


def agreement(s):
    """The largest relative differences of y, dx and dW between tinyconv and torch on shape
    ``s`` (run in the torch worker, which has both)."""
    layer, x, dy = make_case(s)
    passes = torch_passes(s, layer, x, dy)
    y_t = passes["NCHW"]["forward"]().permute(0, 2, 3, 1).numpy()
    dx_t, dw_t, _ = (g.detach() for g in passes["NCHW"]["fwd+bwd"]())
    dx_t = dx_t.permute(0, 2, 3, 1).numpy()
    dw_t = dw_t.permute(2, 3, 1, 0).numpy()
    y = layer.forward(x, check=False)
    dx = layer.backward(dy, check=False)

    def rel(a, ref):
        return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))

    return {"y": rel(y, y_t), "dx": rel(dx, dx_t), "dW": rel(layer.grads["W"], dw_t)}


def make(side, case):
    """A worker's callable for ``case = "N,H,W,C_in,C_out,k,stride,pad|pass|layout"`` (or
    ``"check|shape"``: :func:`agreement`), built from the same seeded numbers on both sides."""
    key, pass_, *layout = case.split("|")
    if key == "check":
        return lambda: agreement(tuple(int(v) for v in pass_.split(",")))
    s = tuple(int(v) for v in key.split(","))
    layer, x, dy = make_case(s)
    if side == "tinyconv":
        return _setup.layer_passes(layer, x, dy)[pass_]
    return torch_passes(s, layer, x, dy)[layout[0]][pass_]


def shape_key(s):
    return ",".join(map(str, s))


# --------------------------------------------------------------------------- phases


def phase_timings(layer, x, dy, quick):
    """Each step of the layer's forward + backward, timed alone on the layer's own operands:
    im2col into ``[cols, 1]``, the forward GEMM ``y = [cols, 1] @ [W; b]`` (bias folded in),
    the backward GEMM ``[dW; db] = [cols, 1]^T dy`` (for row-major cols computed as
    ``(dy^T [cols, 1])^T``, as the layer does), and ``dcols = dy W^T`` with its col2im, timed
    together because the layer runs them in turns on pieces of a few examples
    (``tinyconv.workspace.DX_CHUNK_BYTES``) so that col2im finds dcols in the cache. The
    matrices are in the memory order ``Conv2D`` keeps them in (column-major for one input
    channel and stride 1) and are written into arrays kept from run to run, as the layer does;
    unlike the layer, the im2col matrix is one piece (``Conv2D`` splits batches whose im2col
    matrix exceeds ``tinyconv.workspace.CHUNK_BYTES``).

    When the layer computes ``y`` or ``dx`` by Winograd's F(2x2, 3x3)
    (``tinyconv.workspace.winograd_applies``), that is timed too, through a workspace of the
    layer's kind; else its entry is None.

    Returns a dict ``phase -> Timing or None``.
    """
    N, H, W, C = x.shape
    args = layer._im2col_args(H, W)
    C_out = layer.out_channels
    K = args[0] * args[1] * C
    W2b = np.concatenate([layer.params["W"].reshape(K, C_out),      # [W; b]: (K + 1, C_out)
                          layer.params["b"][None, :]])
    dy2 = dy.reshape(-1, C_out)                          # (N*H_out*W_out, C_out)
    order = "F" if C == 1 and layer.stride[1] == 1 else "C"
    ext = np.ones((len(dy2), K + 1), dtype=x.dtype, order=order)   # [cols, 1]
    kernels.im2col(x, *args, out=ext[:, :K])
    y2 = ext @ W2b
    P = len(dy2) // N
    step = max(1, workspace.DX_CHUNK_BYTES // (P * K * x.itemsize))    # examples per piece
    dcols = np.empty((min(N, step) * P, K), dtype=x.dtype, order=order)
    dx = np.empty_like(x)

    def dcols_col2im():
        for n0 in range(0, N, step):
            n1 = min(N, n0 + step)
            piece = dcols[:(n1 - n0) * P]
            np.matmul(dy2[n0 * P:n1 * P], W2b[:K].T, out=piece)
            kernels.col2im(piece, n1 - n0, H, W, C, *args, out=dx[n0:n1])

    m = lambda fn: _setup.measure(fn, quick=quick)  # noqa: E731
    phases = {
        "im2col": m(lambda: kernels.im2col(x, *args, out=ext[:, :K])),
        "GEMM y=[cols,1]@[W;b]": m(lambda: np.matmul(ext, W2b, out=y2)),
        "GEMM [dW;db]=[cols,1].T@dy": m(lambda: (dy2.T @ ext).T if order == "C" else ext.T @ dy2),
        "GEMM dcols=dy@W.T + col2im": m(dcols_col2im),
        "Winograd y": None,
        "Winograd dW": None,
        "Winograd dx": None,
    }
    # a 3x3 or 5x5 layer may compute y (and a 3x3 one dx) by Winograd instead
    # (Conv2D.forward, .backward): then those are its steps, timed through its own workspace
    ws = workspace.ConvWorkspace()
    if workspace.winograd_applies(args, C, C_out, N):
        phases["Winograd y"] = m(lambda: ws.winograd_gemm(x, args, layer.params["W"],
                                                          layer.params["b"]))
    if workspace.winograd_weights_apply(args, C, C_out, N):
        phases["Winograd dW"] = m(lambda: ws.winograd_weight_gemm(x, args, dy, True))
    dx_args = workspace.winograd_dx_args(args, H, W, C, C_out, N)
    if dx_args is not None:
        flipped = workspace.transposed_filters(layer.params["W"])
        phases["Winograd dx"] = m(lambda: ws.winograd_gemm(dy, dx_args, flipped, None,
                                                           tag="dx"))
    return phases


def layer_steps(phases):
    """The steps the layer runs: im2col (for the backward's weight GEMM, if it has one, when
    the forward goes by Winograd), each GEMM step unless a Winograd one takes its place."""
    winograd = phases["Winograd y"] is not None
    im2col = [] if phases["Winograd dW"] is not None and winograd else [phases["im2col"]]
    return [*im2col, phases["Winograd y"] or phases["GEMM y=[cols,1]@[W;b]"],
            phases["Winograd dW"] or phases["GEMM [dW;db]=[cols,1].T@dy"],
            phases["Winograd dx"] or phases["GEMM dcols=dy@W.T + col2im"]]


def sgemm_timing(s, quick):
    """NumPy's sgemm on random float32 operands of the im2col GEMM's shape."""
    N, H, W, C_in, C_out, k, stride, pad = s
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    M, K = N * H_out * W_out, k * k * C_in
    rng = np.random.default_rng(1)
    A = rng.standard_normal((M, K), dtype=np.float32)
    B = rng.standard_normal((K, C_out), dtype=np.float32)
    return (M, K, C_out), _setup.measure(lambda: A @ B, quick=quick)


# --------------------------------------------------------------------------- main


def main(argv=None):
    ap = _setup.arg_parser(
        __doc__, f"batch / {QUICK_BATCH_DIVISOR}, fewer runs, no cold-compile probe", "PyTorch",
        control=True)
    ap.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return _setup.serve(args, make)
    header = _setup.configure(args.threads, torch=False)
    first = compile_probe()          # before anything else calls a kernel in this process
    if args.compile_probe:
        print(json.dumps(first))
        return
    shapes, monitor = _setup.start_shapes(header, SHAPES, args.quick, QUICK_BATCH_DIVISOR)
    header.append(_setup.run_mode(args))

    print("[bench_conv] tinyconv and torch, each in its own worker ...", file=sys.stderr,
          flush=True)
    keys = [shape_key(s) for s in shapes]
    timed, worker_lines = _setup.compare_passes(__file__, make, keys, args)
    header += worker_lines
    checks, _ = _setup.compare(__file__, make, [], args, sides=("torch",),
                               probes=[("torch", f"check|{k}") for k in keys])
    main_t = _setup.pass_table(
        "Conv2D, float32 NHWC: tinyconv vs torch.nn.functional.conv2d",
        "shape (N x H x W x C_in->C_out)", "GFLOP/s",
        "GFLOP/s counts 2*N*H_out*W_out*C_out*kh*kw*C_in per forward, x3 for fwd+bwd (dx, dW, "
        "db), from the medians; torch: the faster (by median) of NCHW-contiguous and "
        "channels_last; tinyconv/torch is the ratio of the medians.", turns=not args.in_process)
    gemm_t = _setup.Table(
        "Reference: NumPy sgemm on the im2col GEMM (M x K) @ (K x C_out)",
        ["shape", "M x K x C_out", "sgemm ms", "sgemm GFLOP/s", "tinyconv fwd / sgemm"],
        fmt={"sgemm ms": "{:.2f}", "sgemm GFLOP/s": "{:.1f}", "tinyconv fwd / sgemm": "{:.2f}"})
    phase_t = None
    errors = []
    not_run = []                 # per shape, per phase: timed, but the layer does not run it
    ratios = {"forward": [], "fwd+bwd": []}     # per pass: (shape, tinyconv / torch, A/A)

    for s, key in zip(shapes, keys, strict=True):
        name = shape_name(s)
        flops = conv_flops(s)
        print(f"[bench_conv] {name}: sgemm and phases ...", file=sys.stderr, flush=True)
        err = checks.get(("probe", "torch", f"check|{key}"))
        if err is not None:
            errors.append(f"{name}: " + (err["error"] if "error" in err else
                          "max rel. diff vs torch y {y:.1e}, dx {dx:.1e}, dW {dW:.1e}"
                          .format(**err["value"])))
        tc = {}
        for pass_, mult in (("forward", 1), ("fwd+bwd", 3)):
            ours, theirs, layout, twin = timed[key, pass_]
            tc[pass_] = ours.timing
            main_t.add(name, pass_, *_setup.pass_cells(
                ours.timing, theirs.timing if theirs else None, layout, mult * flops / 1e9,
                twin.timing if twin else None))
            if ours.timing and theirs and theirs.timing:
                ratios[pass_].append((name, ours.timing.median / theirs.timing.median,
                                      ours.timing.median / twin.timing.median
                                      if twin and twin.timing else None))

        layer, x, dy = make_case(s)
        (M, K, C_out), tg = sgemm_timing(s, args.quick)
        gemm_t.add(name, f"{M} x {K} x {C_out}", tg.ms, flops / tg.median / 1e9,
                   tc["forward"].median / tg.median)

        phases = phase_timings(layer, x, dy, args.quick)
        if phase_t is None:
            cols = ["shape", *phases, "sum", "fwd+bwd", "other"]
            phase_t = _setup.Table(
                "Where tinyconv's fwd+bwd time goes (ms, each step timed alone)", cols,
                fmt={c: "{:.2f}" for c in cols},
                notes=["sum = the steps the layer runs: each GEMM step unless the Winograd "
                       "column beside it has a time (then the layer computes y, dW or dx that "
                       "way instead: tinyconv.workspace.winograd_applies and "
                       "winograd_weights_apply), and im2col unless both y and dW go by "
                       "Winograd. other = fwd+bwd (the tinyconv "
                       "worker's median) - sum (timed in this process): what running them back "
                       "to back adds (cache misses, reshapes, and hand-offs between numba's "
                       "and OpenBLAS' thread pools, whose idle threads spin for a while)."])
        steps_run = layer_steps(phases)
        total = sum(p.median for p in steps_run)
        not_run.append([p is not None and all(p is not q for q in steps_run)
                        for p in phases.values()])
        phase_t.add(name, *("-" if p is None else p.ms for p in phases.values()), 1e3 * total,
                    tc["fwd+bwd"].ms, tc["fwd+bwd"].ms - 1e3 * total)
        del layer, x, dy

    steps = len(phases)
    share_t = _setup.Table(
        "The same, as % of the sum (not run: a step the layer does not run)",
        ["shape", *list(phase_t.columns[1:1 + steps])],
        fmt={c: "{:.0f}%" for c in phase_t.columns})
    for row, skipped in zip(phase_t.rows, not_run, strict=True):
        total = row[1 + steps]
        share_t.add(row[0], *("-" if v == "-" else "not run" if off else 100.0 * v / total
                              for v, off in zip(row[1:1 + steps], skipped, strict=True)))
    gemm_t.notes = errors

    if args.quick:
        cold = None
    else:
        cold = cold_compile_probe(args.threads)
    comp_t = _setup.Table(
        "First call in a fresh process (numba compile or cache load; excluded from all timings)",
        ["call", "kernel", "this process s", "on-disk cache", "empty cache s"],
        fmt={"this process s": "{:.2f}", "empty cache s": "{:.2f}"},
        notes=[f"numba cache dir: {first['cache_dir']}; 'empty cache' = a fresh process with "
               "NUMBA_CACHE_DIR pointing at an empty directory" +
               (" (skipped in --quick)" if cold is None else "") + "; first call minus second."])
    for call, kernel in (("Conv2D.forward", "im2col"), ("Conv2D.backward", "col2im")):
        comp_t.add(call, kernel, first[call.split(".")[1]], first[kernel],
                   None if cold is None else cold[call.split(".")[1]])

    header.append(monitor.line())
    _setup.report("bench_conv: Conv2D forward / backward", header,
                  [main_t, target_table(ratios, len(shapes), args.quick), gemm_t, phase_t,
                   share_t, comp_t], args.markdown)


def geomean(values):
    return float(np.exp(np.mean(np.log(values))))


def target_table(ratios, n_shapes, quick):
    """The targets on these shapes, from ``ratios[pass] = [(shape, tinyconv / torch, A/A)]``:
    the geometric mean of the ratios of medians for each pass (each pass's A/A control the
    geometric mean of the shapes' A/A ratios: the same statistic of two identical
    contenders), and the worst shape's forward; each with its verdict
    (:func:`_setup.verdict`, its floor the run's typical A/A over all eight rows). Rows
    only with every shape timed against torch; ``quick`` says that its batches are cut."""
    t = _setup.Table("Targets (tinyconv / torch, from this run)",
                     ["comparison", "target", "ratio (median)", "A/A (median)", "verdict"],
                     fmt={"target": "<= {:.2f}", "ratio (median)": "{:.2f}",
                          "A/A (median)": "{:.2f}"},
                     notes=[f"--quick: the batches cut by {QUICK_BATCH_DIVISOR}, a rehearsal of "
                            "this table, not a reading of the targets." if quick else
                            "see benchmarks/README.md for the targets.", _setup.VERDICT_NOTE])
    if any(len(r) != n_shapes for r in ratios.values()):
        return t

    def control(rows):
        aas = [aa for _, _, aa in rows]
        return None if None in aas else geomean(aas)
    controls = [aa for rows in ratios.values() for _, _, aa in rows]
    floor, floor_line = _setup.margin_floor(controls)
    t.notes.append(floor_line)
    for pass_, target in (("forward", 1.0), ("fwd+bwd", 1.0)):
        rows = ratios[pass_]
        ratio, aa = geomean([r for _, r, _ in rows]), control(rows)
        t.add(f"{pass_}, geometric mean of {n_shapes} shapes", target, ratio, aa,
              _setup.verdict(ratio, target, aa, floor))
    name, ratio, aa = max(ratios["forward"], key=lambda row: row[1])
    t.add(f"forward, the slowest shape ({name})", 1.5, ratio, aa,
          _setup.verdict(ratio, 1.5, aa, floor))
    return t


if __name__ == "__main__":
    main()
