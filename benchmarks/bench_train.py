"""Training speed: one mini-batch step of the shipped MNIST architecture, tinyconv against PyTorch.

The network is ``tinyconv.architectures.build("mnist")`` (conv 5x5x16 - relu - pool - conv
5x5x32 - relu - pool - conv 3x3x64 - relu - pool - flatten - dense 10), float32, on batches
of bundled MNIST digits (``to_float``). One step is

- tinyconv: ``training.train_step`` — forward, softmax cross-entropy, backward
  (``rule="gradient"``) and an ``Adam`` update;
- torch: the same network from ``model.to_torch()`` (same initial weights), ``zero_grad``,
  ``F.cross_entropy``, ``backward``, ``torch.optim.Adam.step``; with NCHW-contiguous and with
  ``channels_last`` tensors, the faster reported.

The three steps are timed in turns (``_setup.interleaved``: per round, each is called twice,
on its next batches, and timed the second time), so a busy spell of the machine falls on all
of them alike and the ratio comes from the same rounds.

Throughput is images per second from the median step time; the ratio is tinyconv's over
torch's (the project's target: at least 0.7). Before timing, both compute the loss and the
first layer's weight gradient on the same batch from the same weights, as a check that they
train the same network. A second table splits tinyconv's step into its parts, each timed alone.

Run ``python benchmarks/bench_train.py [--quick] [--markdown PATH] [--threads 2]``.
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


def torch_setup(model, data, channels_last):
    """``(step function over torch tensors, torch batches)`` for the model's torch copy."""
    import torch
    import torch.nn.functional as F

    net = model.to_torch().train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tdata = [(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt),
              torch.from_numpy(y)) for x, y in data]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return net, step, tdata


def check_same_network(data):
    """Loss and conv1's weight gradient from tinyconv and from torch on one batch."""
    import torch
    import torch.nn.functional as F

    model = architectures.build("mnist", seed=0)
    net = model.to_torch().train()
    x, y = data[0]
    loss, dlogits = cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    loss_t = F.cross_entropy(net(xt), torch.from_numpy(y))
    loss_t.backward()
    conv1 = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    dW_t = conv1.weight.grad.permute(2, 3, 1, 0).numpy()        # OIHW -> HWIO
    dW = model.layers[0].grads["W"]
    rel = float(np.abs(dW - dW_t).max() / np.abs(dW_t).max())
    return (f"same weights, one batch: loss tinyconv {loss:.6f} torch {loss_t.item():.6f}; "
            f"conv1 dW max rel. diff {rel:.1e}")


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

    use_torch = _setup.torch_available(skip=args.no_torch)
    header = _setup.configure(args.threads, torch=use_torch)
    data = batches(args.batch)
    checks = [check_same_network(data)] if use_torch else []   # also the first numba calls
    mode = "quick (fewer runs)" if args.quick else "full"
    turns = ", tinyconv and torch timed in turns" if use_torch else ""
    monitor = _setup.start_run(header, f"{mode}; batch {args.batch}; times are medians over "
                               f"repeated steps after warm-up{turns}")

    table = _setup.Table(
        "One training step (forward, cross-entropy, backward, Adam) of the 'mnist' architecture",
        ["library", "layout", "step ms", "step min", "images/s", "throughput vs torch"],
        fmt={"step ms": "{:.2f}", "step min": "{:.2f}", "images/s": "{:.0f}",
             "throughput vs torch": "{:.2f}"},
        notes=["images/s from the median step; 'throughput vs torch' = torch's median step time "
               "/ this one's (tinyconv's row against torch's faster layout); the project's "
               f"target for tinyconv is >= {TARGET}."
               + (" tinyconv's step and both torch layouts' are timed in turns (per round, each "
                  "is called twice, on its next batches, and timed the second time), so that all "
                  "of them see the same machine." if use_torch else "")] + checks)
    model = architectures.build("mnist", seed=0)
    opt = tc.Adam(model)
    theirs = {}
    if use_torch:
        for layout, cl in (("NCHW", False), ("channels_last", True)):
            _, step, tdata = torch_setup(architectures.build("mnist", seed=0), data, cl)
            theirs[layout] = Cycle(tdata, step)
    ours = Cycle(data, lambda x, y: train_step(model, opt, x, y))
    tc_t, *torch_ts = _setup.interleaved([ours, *theirs.values()], args.quick)
    rows = list(zip(theirs, torch_ts, strict=True))
    best = min(torch_ts, key=lambda t: t.median, default=None)
    del theirs
    table.add("tinyconv", "NHWC", tc_t.ms, 1e3 * tc_t.min, args.batch / tc_t.median,
              best.median / tc_t.median if best else None)
    for layout, t in rows:
        table.add("torch", layout, t.ms, 1e3 * t.min, args.batch / t.median,
                  best.median / t.median)

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
