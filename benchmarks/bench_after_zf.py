"""Methods after Zeiler & Fergus: tinyconv against Captum, each library in its own process.

The shipped MNIST CNN (``tc.pretrained("mnist")``, float32) and its torch copy
(``tc.to_torch(model)``: the same weights), held-out digits scaled by ``tc.to_float``:

- **IG**: Integrated Gradients of 16 digits, 50 trapezoid steps, baseline 0, the 800 path
  points ``--batch`` at a time (default 64, tinyconv's default): ``tc.integrated_gradients(...,
  batch_size=B)`` against Captum's ``IntegratedGradients(method="riemann_trapezoid",
  internal_batch_size=B)``.
- **SmoothGrad**: 16 digits, n = 50 copies, σ = 0.15 (the digits span [0, 1]), ``--batch``
  copies per pass: ``tc.smoothgrad(..., batch_size=B)`` against ``NoiseTunnel(Saliency)``
  (``nt_type="smoothgrad"``, ``stdevs=0.15``, ``abs=False``, ``nt_samples_batch_size=B / 16``
  copies of each of the 16 digits). ``--batch 800`` runs each path or noise set in one pass.
- **Grad-CAM**: 64 digits at ``relu3``, the map and its bilinear upsampling:
  ``tc.grad_cam`` against ``LayerGradCam(relu_attributions=True)`` +
  ``LayerAttribution.interpolate(..., "bilinear")``.

Captum runs in both of torch's layouts, NCHW and channels_last, the network and its inputs
converted explicitly (``_setup.nchw``: with one input channel a view of the NHWC digits has
channels_last strides, and torch's layout would be an accident of the conversion). Each layout
has a worker of its own; the ratios are against the faster layout of each task by median, and
both layouts' times are printed.

The parent never imports NumPy or torch. Each round it starts one fresh worker per contender
(tinyconv, tinyconv again, Captum NCHW, Captum channels_last; the order reversed every other
round), with
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed from the child's environment and every
thread pool pinned to ``--threads``; a worker warms each task up once, times it ``--repeats``
times and prints its timings as JSON. The parent reports the best and the median over all
rounds, the ratio tinyconv / Captum of each, and the median of the per-round ratios (each
round's medians, measured minutes apart, so a change of the machine's load between rounds
cancels). The 1-minute load average is printed before and after: on a shared machine, single
times swing by a third or more; the ratios are what counts.

*The A/A control.* "tinyconv again" is tinyconv's worker a second time, in a fresh process
of its own, taking its turn in every round like the others. The ratio tinyconv / tinyconv
again is printed the same three ways: it is what this machine, in this run, makes of two
identical contenders, so a ratio against Captum no farther from 1.00 than it is a tie.
``--no-control`` skips it.

    python benchmarks/bench_after_zf.py [--rounds 5] [--repeats 5] [--threads 2] [--batch 64]
                                        [--no-control] [--quick] [--markdown PATH]
"""

import json
import os
import statistics

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

TASKS = ("IG", "SmoothGrad", "Grad-CAM")
#: The workers: tinyconv, then Captum in each of torch's layouts.
WORKERS = ("tinyconv", *_setup.TORCH_LAYOUTS)
#: tinyconv's worker a second time: the A/A control.
CONTROL = _setup.CONTROL
#: The project's target for each task: tinyconv / Captum, by median (benchmarks/README.md).
TARGET = 1.0


def tinyconv_tasks(model, X, batch):
    import tinyconv as tc
    x16, x64 = X[:16], X[:64]
    return {
        "IG": lambda: tc.integrated_gradients(model, x16, 3, steps=50, batch_size=batch),
        "SmoothGrad": lambda: tc.smoothgrad(model, x16, 3, sigma=0.15, n=50, batch_size=batch),
        "Grad-CAM": lambda: tc.grad_cam(model, x64, 3, layer="relu3"),
    }


def captum_tasks(model, X, threads, batch, layout):
    import torch
    from captum.attr import (
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Saliency,
    )

    torch.set_num_threads(threads)
    net = _setup.torch_copy(model, layout)
    x = _setup.nchw(torch, X, layout)
    x16, x64 = x[:16], x[:64]
    ig, tunnel, cam = IntegratedGradients(net), NoiseTunnel(Saliency(net)), LayerGradCam(
        net, net.relu3)

    def grad_cam():
        m = cam.attribute(x64, target=3, relu_attributions=True)
        return LayerAttribution.interpolate(m, (28, 28), "bilinear")

    return {
        "IG": lambda: ig.attribute(x16, target=3, n_steps=50, method="riemann_trapezoid",
                                   internal_batch_size=batch),
        "SmoothGrad": lambda: tunnel.attribute(x16, nt_type="smoothgrad", nt_samples=50,
                                               nt_samples_batch_size=max(1, batch // 16),
                                               stdevs=0.15,
                                               target=3, abs=False),
        "Grad-CAM": grad_cam,
    }


def worker(contender, repeats, threads, batch):
    """Time each task in this process; print ``{task: [seconds, ...]}`` as one JSON line
    (``{"missing": name}`` if torch or Captum is not installed)."""
    import tinyconv as tc
    _setup.pin_worker(threads)               # BLAS and numba; captum_tasks pins torch
    model = tc.pretrained("mnist")
    images, _ = tc.load_mnist("bundled-test")
    X = tc.to_float(images[:64])
    try:
        tasks = (tinyconv_tasks(model, X, batch) if contender == "tinyconv"
                 else captum_tasks(model, X, threads, batch, contender))
    except ImportError as e:                 # torch or Captum not installed
        print(json.dumps({"missing": e.name or str(e)}))
        return
    # one untimed call each first: compile, allocate
    times = {name: _setup.times_of(run, repeats, warmup=1) for name, run in tasks.items()}
    print(json.dumps(times))


def main(argv=None):
    parser = _setup.rounds_parser(__doc__, WORKERS, 5, "1 round of 1 repeat")
    parser.add_argument("--batch", type=int, default=64,
                        help="images per forward/backward pass in IG and SmoothGrad")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the A/A control (tinyconv's worker a second time)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 1, 1
    if args.worker:
        return worker(args.worker, args.repeats, args.threads, args.batch)
    contenders = ("tinyconv", *(() if args.no_control else (CONTROL,)), *WORKERS[1:])
    times = {c: {t: [] for t in TASKS} for c in contenders}
    medians = {c: {t: [] for t in TASKS} for c in contenders}       # one per round
    load0 = os.getloadavg()[0]
    # missing: what a Captum worker could not import; then only tinyconv (and CONTROL) run
    replies, missing = _setup.fresh_worker_rounds(
        __file__, contenders, args.rounds, args.threads,
        ["--repeats", str(args.repeats), "--batch", str(args.batch)])
    for who, rounds in replies.items():
        for reply in rounds:
            for task, ts in reply.items():
                times[who][task] += ts
                medians[who][task].append(statistics.median(ts))
    lines = [_setup.rounds_line(args, load0, "repeats", f"batch {args.batch}, ")]
    lines.append("best / median ms; Captum in each of torch's layouts; the ratios are "
                 "tinyconv / Captum in its faster layout (by median)")
    lines.append(f"{'task':<11} {'tinyconv':>15} {'Captum NCHW':>15} {'Captum ch-last':>15} "
                 f"{'faster':>13} {'ratio best':>10} {'ratio median':>12} "
                 f"{'per-round ratios (median)':>26}")

    def cell(ts):
        return f"{min(ts) * 1e3:6.1f} / {statistics.median(ts) * 1e3:6.1f}"

    def ratios(task, a, b):
        """``a`` / ``b``: by best, by median, and each round's, then their median."""
        per_round = [p / q for p, q in zip(medians[a][task], medians[b][task], strict=True)]
        return (f"{min(times[a][task]) / min(times[b][task]):>10.2f} "
                f"{statistics.median(times[a][task]) / statistics.median(times[b][task]):>12.2f}"
                f"   {' '.join(f'{q:.2f}' for q in per_round)} "
                f"({statistics.median(per_round):.2f})")
    for task in TASKS:
        ours = times["tinyconv"][task]
        if missing:
            lines.append(f"{task:<11} {cell(ours):>15} {'skipped':>15} {'skipped':>15}")
            continue
        layout = min(WORKERS[1:], key=lambda c: statistics.median(times[c][task]))
        lines.append(f"{task:<11} {cell(ours):>15} {cell(times['NCHW'][task]):>15} "
                     f"{cell(times['channels_last'][task]):>15} {layout:>13} "
                     f"{ratios(task, 'tinyconv', layout)}")
    if not args.no_control:
        lines += ["", f"A/A control: tinyconv / {CONTROL}, the same worker twice every round, "
                  "each in a fresh process.",
                  "Two identical contenders land this far from 1.00 in this run: a ratio "
                  "against Captum no farther",
                  "from 1.00 is a tie, not a result.",
                  f"{'task':<15} {'tinyconv':>15} {CONTROL:>15} {'ratio best':>10} "
                  f"{'ratio median':>12} {'per-round ratios (median)':>26}"]
        lines += [f"{'A/A ' + task:<15} {cell(times['tinyconv'][task]):>15} "
                  f"{cell(times[CONTROL][task]):>15} {ratios(task, 'tinyconv', CONTROL)}"
                  for task in TASKS]
    if not missing:
        lines += ["", f"Target: tinyconv / Captum <= {TARGET:.1f} for each task, by median.",
                  _setup.VERDICT_NOTE]
        med = {c: {t: statistics.median(times[c][t]) for t in TASKS} for c in contenders}
        ratio = {t: med["tinyconv"][t] / min(med[c][t] for c in WORKERS[1:]) for t in TASKS}
        aa = {t: None if args.no_control else med["tinyconv"][t] / med[CONTROL][t]
              for t in TASKS}
        floor, floor_line = _setup.margin_floor(aa.values())
        lines += [floor_line,
                  f"{'task':<11} {'ratio median':>12} {'A/A (median)':>12} {'verdict':>8}"]
        for task in TASKS:
            lines.append(f"{task:<11} {ratio[task]:>12.2f} "
                         f"{'-' if aa[task] is None else f'{aa[task]:.2f}':>12} "
                         f"{_setup.verdict(ratio[task], TARGET, aa[task], floor):>8}")
    _setup.finish_text(args, __file__, __doc__, lines, missing, "Captum",
                       "torch==2.13.0 captum")


if __name__ == "__main__":
    main()
