"""Where the time goes: the shipped model step by step, tinyconv against torch.

The shipped MNIST CNN (``tc.pretrained("mnist")``, float32) and its torch copy
(``tc.to_torch(model)``: the same weights), on the first held-out digits, at batches of 1, 64
and 256 (``--quick``: 8). A *step* is what ``Sequential.forward`` runs in one go: a
convolution, a ReLU and the max-pool above it (one pass, ``docs/speed.md``), Flatten, the
Dense logits. For each step:

- **forward**: timed inside a whole forward pass, with the steps below and above it run
  between two timings of it, as in use: tinyconv's ``model.forward(y, start=a, upto=b)``, one
  call per step; torch's modules of the same layers in turn, under ``torch.no_grad()``, in
  NCHW and in channels_last (each layout in a worker of its own).
- **backward** (tinyconv): a saliency map's backward, ``d y_(L),3 / d x`` with
  ``param_grads=False``, one ``model.backward(dy, start=b, stop=a)`` per step after a whole
  forward pass. torch's backward is timed whole (``torch.autograd.grad`` of the same logit
  with respect to the input alone, as Captum's ``Saliency`` asks for it, after a forward pass
  that records the graph): splitting it by module would need hooks that cost more than some
  of the steps.

The sums of the steps are printed beside whole passes timed in the same workers (a whole
``model.forward(x)`` or ``net(x)``; a whole ``model.backward``): the difference is what one
call per step adds. Each round starts one fresh worker per contender (tinyconv, torch NCHW,
torch channels_last; the order reversed every other round), with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` removed from its environment and every thread pool pinned to
``--threads``; a worker runs two untimed passes per batch, then ``--repeats`` timed ones, and
prints its times as JSON. The table gives medians over all rounds (ms) and tinyconv's time
over torch's in its faster layout for that step.

    python benchmarks/bench_layers.py [--rounds 5] [--repeats 10] [--threads 2] [--quick]
"""

import argparse
import json
import os
import statistics
import time

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

#: Each in a fresh worker every round: tinyconv, then torch in each of its layouts.
CONTENDERS = ("tinyconv", *_setup.TORCH_LAYOUTS)
BATCHES, QUICK_BATCHES = (1, 64, 256), (8,)
#: The class whose logit the backward pass starts from.
TARGET = 3


def steps(model):
    """``[(name, a, b)]``: the steps of ``model.forward`` (``model.steps()``), layers
    ``a … b - 1`` each, named after their layers (``"relu1 + pool1"``)."""
    return [(" + ".join(model.names[a + 1:b + 1]), a, b) for a, b in model.steps()]


def clock(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def tinyconv_passes(model, x, repeats):
    """``{"forward": {step: [s]}, "backward": {step: [s]}, "forward whole": [s], "backward
    whole": [s]}`` of ``repeats`` passes (after two untimed ones)."""
    import numpy as np
    parts = steps(model)
    times = {"forward": {n: [] for n, _, _ in parts}, "backward": {n: [] for n, _, _ in parts},
             "forward whole": [], "backward whole": []}
    # the one-hot signal on the target logit (backward never writes the caller's array)
    signal = np.zeros((len(x), *model.output_shapes[-1]), x.dtype)
    signal[:, TARGET] = 1
    for r in range(repeats + 2):
        keep = r >= 2
        y = x
        for name, a, b in parts:
            y, t = clock(lambda y=y, a=a, b=b: model.forward(y, start=a, upto=b))
            if keep:
                times["forward"][name].append(t)
        _, t = clock(lambda: model.forward(x))
        dy = signal
        for name, a, b in reversed(parts):
            dy, t_b = clock(lambda dy=dy, a=a, b=b: model.backward(dy, start=b, stop=a,
                                                                  param_grads=False))
            if keep:
                times["backward"][name].append(t_b)
        _, t_whole = clock(lambda: model.backward(signal, param_grads=False))
        if keep:
            times["forward whole"].append(t)
            times["backward whole"].append(t_whole)
    return times


def torch_passes(model, X, repeats, layout):
    """The same for torch in ``layout``: the forward by steps and whole, the backward whole."""
    import torch
    net = _setup.torch_copy(model, layout).eval()
    modules = list(net.children())
    if len(modules) != len(model.layers):
        raise RuntimeError(f"torch copy has {len(modules)} modules for {len(model.layers)} "
                           "layers")
    x = _setup.nchw(torch, X, layout)
    parts = [(name, torch.nn.Sequential(*modules[a:b])) for name, a, b in steps(model)]
    times = {"forward": {n: [] for n, _ in parts}, "forward whole": [], "backward whole": []}
    for r in range(repeats + 2):
        keep = r >= 2
        with torch.no_grad():
            y = x
            for name, step in parts:
                y, t = clock(lambda y=y, step=step: step(y))
                if keep:
                    times["forward"][name].append(t)
            _, t = clock(lambda: net(x))
        xg = x.detach().clone().requires_grad_(True)
        score = net(xg)[:, TARGET].sum()
        # the input's gradient only, as Captum's Saliency asks for it (no weight gradients)
        _, t_b = clock(lambda xg=xg, score=score: torch.autograd.grad(score, xg))
        if keep:
            times["forward whole"].append(t)
            times["backward whole"].append(t_b)
    return times


def worker(contender, repeats, threads, batches):
    """Time every batch in this process; print ``{batch: times}`` as one JSON line
    (``{"missing": name}`` if torch is not installed)."""
    import tinyconv as tc
    if not _setup.pin_worker(threads, torch=contender != "tinyconv"):
        return
    model = tc.pretrained("mnist")
    images, _ = tc.load_mnist("bundled-test")
    out = {}
    for n in batches:
        X = tc.to_float(images[:n])
        out[n] = (tinyconv_passes(model, X, repeats) if contender == "tinyconv"
                  else torch_passes(model, X, repeats, contender))
    print(json.dumps(out))


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
    load0 = os.getloadavg()[0]
    runs, missing = _setup.fresh_worker_rounds(
        __file__, CONTENDERS, args.rounds, args.threads,
        ["--repeats", str(args.repeats), "--batches", ",".join(map(str, batches))])

    def pooled(who, n, kind, step=None):
        """Every timed pass of all rounds, in ms (None when ``who`` did not run)."""
        if not runs[who]:
            return None
        rows = [run[str(n)][kind] for run in runs[who]]
        return [1e3 * t for row in rows for t in (row[step] if step else row)]

    def med(ts):
        return f"{statistics.median(ts):8.3f}" if ts else f"{'-':>8}"

    lines = [_setup.rounds_line(args, load0, "passes"),
             "medians in ms over all rounds; ratio = tinyconv / torch in its faster layout for "
             "the step; the backward is a saliency map's (gradient of logit 3 to the input)"]
    for n in batches:
        names = list(runs["tinyconv"][0][str(n)]["forward"])     # the steps, bottom up
        lines += ["", f"batch {n}",
                  f"{'step':<16} {'tinyconv':>8} {'NCHW':>8} {'ch-last':>8} {'ratio':>6}   "
                  f"{'tinyconv backward':>17}"]
        rows = [(name, pooled("tinyconv", n, "forward", name),
                 *(pooled(c, n, "forward", name) for c in CONTENDERS[1:]),
                 pooled("tinyconv", n, "backward", name)) for name in names]
        # each column's step medians added up (one number, kept as a list like the rest)
        columns = zip(*[row[1:] for row in rows], strict=True)
        rows.append(("sum of steps", *([sum(statistics.median(ts) for ts in column)]
                                       if all(column) else None for column in columns)))
        rows.append(("whole pass", pooled("tinyconv", n, "forward whole"),
                     *(pooled(c, n, "forward whole") for c in CONTENDERS[1:]),
                     pooled("tinyconv", n, "backward whole")))
        for name, ours, *theirs, back in rows:
            faster = [statistics.median(t) for t in theirs if t]
            ratio = (f"{statistics.median(ours) / min(faster):6.3g}" if faster and ours
                     else f"{'-':>6}")
            lines.append(f"{name:<16} {med(ours)} {med(theirs[0])} {med(theirs[1])} {ratio}   "
                         f"{med(back):>17}")
        backs = [(c, pooled(c, n, "backward whole")) for c in CONTENDERS[1:]]
        lines.append("torch's backward, whole: " + ", ".join(
            f"{c} {statistics.median(t):.2f}" for c, t in backs if t) if not missing else
            "torch's backward, whole: skipped")
    _setup.finish_text(args, __file__, __doc__, lines, missing)


if __name__ == "__main__":
    main()
