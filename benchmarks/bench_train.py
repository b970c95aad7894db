"""Training speed: one mini-batch step of the shipped MNIST architecture, tinyconv against PyTorch.

The network is ``tinyconv.architectures.build("mnist")`` (conv 5x5x16 - relu - pool - conv
5x5x32 - relu - pool - conv 3x3x64 - relu - pool - flatten - dense 10), float32, on batches
of bundled MNIST digits (``to_float``). One step is

- tinyconv: ``training.train_step`` — forward, softmax cross-entropy, backward
  (``rule="gradient"``) and an ``Adam`` update;
- torch: the same network from ``tc.to_torch(model)`` (same initial weights), ``zero_grad``,
  ``F.cross_entropy``, ``backward``, ``torch.optim.Adam.step``; with NCHW-contiguous and with
  ``channels_last`` tensors, the faster reported.

tinyconv and torch each run in a fresh worker process of their own (``_setup.compare``), the
two taking turns for several rounds, each step on its next batch; ``--in-process`` times them
in this one process instead.

Throughput is images per second from the median step time; the ratio is tinyconv's over
torch's (the project's target: at least 0.7). Before timing, both compute the loss and the
first layer's weight gradient on the same batch from the same weights, as a check that they
train the same network. A second table splits tinyconv's step into its parts, each timed alone.

Run ``python benchmarks/bench_train.py [--quick] [--markdown PATH] [--threads 2] [--rounds 5]
[--in-process]``.
"""

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

import tinyconv as tc
from tinyconv import architectures
from tinyconv.training import cross_entropy, train_step

BATCH = 128
TARGET = 0.7                # tinyconv throughput / torch throughput the project aims at


def batches(batch, seed=0):
    """Float32 MNIST batches ``(x (B, 28, 28, 1), y (B,))``, cycling over the bundled digits."""
    images, labels = tc.load_mnist("bundled-train")
    X = tc.to_float(images)
    order = np.random.default_rng(seed).permutation(len(X))
    out = []
    for start in range(0, len(X) - batch + 1, batch):
        idx = order[start:start + batch]
        out.append((np.ascontiguousarray(X[idx]), labels[idx].astype(np.int64)))
    return out


class Cycle:
    """Call ``step(x, y)`` on the next batch each time it is called."""

    def __init__(self, data, step):
        self.data, self.step, self.i = data, step, 0

    def __call__(self):
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        return self.step(x, y)


def torch_setup(model, data, layout):
    """``(step function over torch tensors, torch batches)`` for the model's torch copy, the
    network and the batches in ``layout`` (:data:`_setup.TORCH_LAYOUTS`)."""
    import torch
    import torch.nn.functional as F

    net = _setup.torch_copy(model, layout).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tdata = [(_setup.nchw(torch, x, layout), torch.from_numpy(y)) for x, y in data]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return net, step, tdata


def check_same_network(batch):
    """Loss and conv1's weight gradient from tinyconv and from torch on one batch (run in the
    torch worker, which has both)."""
    import torch
    import torch.nn.functional as F

    data = batches(batch)
    model = architectures.build("mnist", seed=0)
    net = tc.to_torch(model).train()
    x, y = data[0]
    loss, dlogits = cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    xt = _setup.nchw(torch, x, "NCHW")
    loss_t = F.cross_entropy(net(xt), torch.from_numpy(y))
    loss_t.backward()
    conv1 = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    dW_t = conv1.weight.grad.permute(2, 3, 1, 0).numpy()        # OIHW -> HWIO
    dW = model.layers[0].grads["W"]
    rel = float(np.abs(dW - dW_t).max() / np.abs(dW_t).max())
    return (f"same weights, one batch: loss tinyconv {loss:.6f} torch {loss_t.item():.6f}; "
            f"conv1 dW max rel. diff {rel:.1e}")


def make(side, case):
    """A worker's callable for ``case = "step|batch|layout"`` (or ``"check|batch"``): the
    step cycles over the same seeded batches on both sides, from the same initial weights."""
    kind, batch, *layout = case.split("|")
    if kind == "check":
        return lambda: check_same_network(int(batch))
    data = batches(int(batch))
    model = architectures.build("mnist", seed=0)
    if side == "tinyconv":
        opt = tc.Adam(model)
        return Cycle(data, lambda x, y: train_step(model, opt, x, y))
    _, step, tdata = torch_setup(model, data, layout[0])
    return Cycle(tdata, step)


def part_timings(data, quick):
    """Each layer's forward and backward, the loss and the Adam update, timed alone."""
    model = architectures.build("mnist", seed=0)
    opt = tc.Adam(model)
    x, y = data[0]
    ys = model.activations(x)
    loss, dlogits = cross_entropy(ys[-1], y)
    grads = [None] * len(model.layers)
    dy = dlogits
    for i in reversed(range(len(model.layers))):
        grads[i] = dy
        dy = model.layers[i].backward(dy, check=False)
    rows = []
    m = lambda fn: _setup.measure(fn, quick=quick)  # noqa: E731
    for i, layer in enumerate(model.layers):
        layer.forward(ys[i], check=False)
        # as train_step runs it: the first layer computes no d loss / d x (where supported)
        kwargs = {"input_grad": False} if i == 0 else {}
        try:
            layer.backward(grads[i], check=False, **kwargs)
        except TypeError:
            kwargs = {}
        f, b = _setup.time_layer(layer, ys[i], grads[i], quick, **kwargs)
        rows.append((f"{layer.name} ({type(layer).__name__})", f.ms, b.ms))
    rows.append(("cross_entropy", m(lambda: cross_entropy(ys[-1], y)).ms, None))
    rows.append(("Adam.step", m(opt.step).ms, None))
    return rows


def main(argv=None):
    ap = _setup.arg_parser(__doc__, "fewer runs", "PyTorch")
    ap.add_argument("--batch", type=int, default=BATCH, help="images per step")
    args = ap.parse_args(argv)

    if args.worker:
        return _setup.serve(args, make)
    header = _setup.configure(args.threads, torch=False)
    data = batches(args.batch)
    mode = "quick (fewer runs)" if args.quick else "full"
    monitor = _setup.start_run(header, f"{mode}; batch {args.batch}")
    header.append(_setup.run_mode(args))
    layouts = _setup.TORCH_LAYOUTS
    jobs = [("tinyconv", f"step|{args.batch}|NHWC"),
            *(("torch", f"step|{args.batch}|{lay}") for lay in layouts)]
    results, lines = _setup.compare(__file__, make, [jobs], args,
                                    probes=[("torch", f"check|{args.batch}")])
    header += lines
    check = results.get(("probe", "torch", f"check|{args.batch}"))
    checks = [] if check is None else [check.get("value", check.get("error"))]

    table = _setup.Table(
        "One training step (forward, cross-entropy, backward, Adam) of the 'mnist' architecture",
        ["library", "layout", "step ms", "step min", "images/s", "throughput vs torch",
         "first call s"],
        fmt={"step ms": "{:.2f}", "step min": "{:.2f}", "images/s": "{:.0f}",
             "throughput vs torch": "{:.2f}", "first call s": "{:.2f}"},
        notes=["images/s from the median step; 'throughput vs torch' = torch's median step time "
               "/ this one's (tinyconv's row against torch's faster layout); the project's "
               f"target for tinyconv is >= {TARGET}. Each library ran in its own worker "
               "process (see the mode line); first call = the first step in that process. "
               "Command: python benchmarks/bench_train.py"] + checks)
    tc_r = results[jobs[0]]
    torch_rs = [(lay, results[job]) for lay, job in zip(layouts, jobs[1:], strict=True)
                if job in results and results[job].timing is not None]
    best = min((r.timing for _, r in torch_rs), key=lambda t: t.median, default=None)
    tc_t = tc_r.timing
    table.add("tinyconv", "NHWC", tc_t.ms, 1e3 * tc_t.min, args.batch / tc_t.median,
              best.median / tc_t.median if best else None, tc_r.first)
    for layout, r in torch_rs:
        t = r.timing
        table.add("torch", layout, t.ms, 1e3 * t.min, args.batch / t.median,
                  best.median / t.median, r.first)

    parts = _setup.Table(
        "Where tinyconv's step goes (ms, each part timed alone)", ["part", "forward", "backward"],
        fmt={"forward": "{:.2f}", "backward": "{:.2f}"},
        notes=["forward of cross_entropy = the loss and its gradient; Adam.step in the "
               "forward column. Each layer runs on its own input / upstream gradient of one "
               "batch."])
    for row in part_timings(data, args.quick):
        parts.add(*row)
    header.append(monitor.line())
    _setup.report("bench_train: a training step of the MNIST CNN", header, [table, parts],
                  args.markdown)


if __name__ == "__main__":
    main()
