"""The speed a user feels: the shipped MNIST model against the identical torch network.

``tc.pretrained("mnist")`` (float32) and ``tc.to_torch(model)`` (the same weights, NCHW), on
bundled digits scaled by ``tc.to_float`` — the same seeded numbers on both sides:

- **forward** at batch 1, 64 and 256: ``model(x)`` against ``net(x)`` under ``no_grad``;
- **a training step** at batch 128: ``training.train_step`` with ``tc.SGD(lr=0.01,
  momentum=0.9)`` against ``zero_grad``, ``F.cross_entropy``, ``backward`` and
  ``torch.optim.SGD(lr=0.01, momentum=0.9)``; both start from the shipped weights and cycle
  over the same batches;
- **a training epoch** over the 4,000 bundled training digits in batches of 128 (the same
  fixed order on both sides);
- **every explanation method** in :data:`METHODS` against Captum on the identical network:
  saliency (``tc.saliency`` / ``Saliency``), deconvnet and guided backprop (``tc.project``
  of the class logit / ``Deconvolution``, ``GuidedBackprop``) at batch 1 and 64; occlusion
  of one digit with a 4 x 4 window, stride 1, zero and grey (0.5) occluders (``tc.occlusion``
  / ``Occlusion`` on the network followed by a softmax, the best of its
  ``perturbations_per_eval`` settings); MaxAct of ``conv2`` over the 5,000 bundled digits
  (``tc.max_activating`` / a plain forward up to conv2 in batches of 256, the spatial maximum
  and ``torch.topk``); and, where tinyconv has them, input x gradient (``InputXGradient``),
  Grad-CAM on conv3 (``LayerGradCam`` and ``LayerAttribution.interpolate``) and guided
  Grad-CAM (``GuidedGradCam``) at batch 1 and 64, integrated gradients (50 trapezoid steps)
  and SmoothGrad (n = 50) at batch 1 and 16;
- **activation maximisation**, which Captum does not have: the tour's class models (ten
  ascents at once, ``gallery.class_models``) and the preferred image of one conv3 unit
  (``gallery.preferred_images``), each with its gallery function's steps and regularisers,
  by ``maximize_features``, against the same ascent written in torch (:func:`torch_ascent`:
  the same seeded start and jitter, autograd for the gradient, the same regularisers).

Each library runs in a fresh worker process of its own, with every thread pool pinned and the
OpenBLAS overrides removed; the two take turns for several rounds (``_setup.compare``; the
header shows what each worker runs on). The reference runs in both of torch's layouts, NCHW
and channels_last, each with the network and its inputs converted explicitly
(``_setup.nchw``), and the faster by median is the one reported. Every ratio is tinyconv's
time over the reference's: below 1, tinyconv is faster. Each method pair is also checked for
agreement in one process.

*The A/A control*: tinyconv's worker runs a second time, in a process of its own that takes
its turn in every round like the others, and each row gives tinyconv / tinyconv again by
median. It is what this machine, in this run, makes of two identical contenders: a ratio
against the reference no farther from 1.00 is a tie (``--no-control`` skips it).

Run ``python benchmarks/bench_model.py [--quick] [--markdown PATH] [--threads 2] [--rounds 5]
[--in-process] [--no-control]``.
"""

import sys
from dataclasses import dataclass
from typing import NamedTuple

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

import tinyconv as tc
from tinyconv import gallery
from tinyconv.activation_max import maximize_features
from tinyconv.tour_after import demo_default
from tinyconv.training import train_step
from tinyconv.units import centre_unit, is_spatial

FORWARD_BATCHES, QUICK_FORWARD_BATCHES = (1, 64, 256), (1, 8, 16)
STEP_BATCH, QUICK_STEP_BATCH = 128, 16
EPOCH_DIGITS, QUICK_EPOCH_DIGITS = 4000, 256
MAXACT_DIGITS, QUICK_MAXACT_DIGITS = 5000, 256
LR, MOMENTUM = 0.01, 0.9
WINDOW, GREY = 4, 0.5


class Ascent(NamedTuple):
    """An activation-maximisation case: the ascent of ``ks`` at ``layer`` with the settings
    (steps, lr, regularisers) that ``demo``, a :mod:`tinyconv.gallery` function, defaults to."""

    label: str
    layer: str
    ks: tuple
    demo: object


#: The tour's class models and the preferred image of one conv3 unit, each timed with the
#: settings its gallery function uses, read from that function so the two cannot drift.
ASCENTS = {"classes": Ascent("class models, 10 logits at once", "logits", tuple(range(10)),
                             gallery.class_models),
           "unit": Ascent("preferred image, conv3 unit 0", "conv3", (0,),
                          gallery.preferred_images)}
#: maximize_features' keywords that the gallery functions pass on from their own defaults.
ASCENT_SETTINGS = ("steps", "lr", "l2", "blur_every", "blur_sigma", "jitter")
QUICK_ASCENT_STEPS = 5       # before the class models meet a max-pool tie (the notes)
CAPTUM_PPE = (64, 256, 625)        # Captum's perturbations_per_eval settings for occlusion
QUICK_CAPTUM_PPE = (625,)
QUICK_TARGETS_NOTE = ("--quick: each target is tried on the smaller batch that stands in for "
                      "its own (forward 16 for 256, a step of 16 for 128, methods at 8 for 64): "
                      "a rehearsal of this table, not a reading of the targets.")
#: The targets of this benchmark's ratios (tinyconv / reference), see benchmarks/README.md.
TARGETS = {"forward 256": 1.0, f"train step {STEP_BATCH}": 1.0, "guided backprop 64": 1.0,
           "gradient (saliency) 64": 1.0, "occlusion zero": 0.2, "occlusion grey": 0.33}


# --------------------------------------------------------------------------- the method table


@dataclass
class Method:
    """One explanation method of the table: its tinyconv call and the reference's.

    ``ours(model, X, k)`` runs tinyconv on NHWC digits ``X`` for class ``k``;
    ``theirs(net, xt, k, captum)`` runs the reference on the torch network and NCHW ``xt``
    (``captum`` is ``captum.attr``). ``batches`` / ``quick_batches`` are the batch sizes
    timed; ``needs`` names the tinyconv function the entry needs (skipped while it is absent).
    """

    name: str
    ours: object
    theirs: object
    batches: tuple = (1, 64)
    quick_batches: tuple = (1, 8)
    needs: str | None = None


def _interpolated_grad_cam(net, xt, k, captum):
    """Captum's LayerGradCam on the last convolution, upsampled to the input."""
    cam = captum.LayerGradCam(net, net.conv3).attribute(xt, target=k, relu_attributions=True)
    return captum.LayerAttribution.interpolate(cam, tuple(xt.shape[2:]), "bilinear")


METHODS = [
    Method("gradient (saliency)", lambda m, X, k: tc.saliency(m, X, k),
           lambda net, xt, k, ca: ca.Saliency(net).attribute(xt, target=k)),
    Method("deconvnet", lambda m, X, k: tc.project(m, X, "logits", k, rule="deconvnet"),
           lambda net, xt, k, ca: ca.Deconvolution(net).attribute(xt, target=k)),
    Method("guided backprop", lambda m, X, k: tc.project(m, X, "logits", k, rule="guided"),
           lambda net, xt, k, ca: ca.GuidedBackprop(net).attribute(xt, target=k)),
    # methods that arrive later: each entry runs once its function exists in tinyconv
    Method("input x gradient", lambda m, X, k: tc.input_x_gradient(m, X, k),
           lambda net, xt, k, ca: ca.InputXGradient(net).attribute(xt, target=k),
           needs="input_x_gradient"),
    # a batch of 16 digits is 800 passes already; batch 64 would be 3,200 per call
    Method("integrated gradients (50 steps)",
           lambda m, X, k: tc.integrated_gradients(m, X, k, steps=50).attributions,
           lambda net, xt, k, ca: ca.IntegratedGradients(net).attribute(
               xt, target=k, n_steps=50, method="riemann_trapezoid"),
           batches=(1, 16), quick_batches=(2,), needs="integrated_gradients"),
    Method("SmoothGrad (n=50)", lambda m, X, k: tc.smoothgrad(m, X, k, n=50),
           lambda net, xt, k, ca: ca.NoiseTunnel(ca.Saliency(net)).attribute(
               xt, nt_type="smoothgrad", nt_samples=50, stdevs=0.15, target=k),
           batches=(1, 16), quick_batches=(2,), needs="smoothgrad"),
    Method("Grad-CAM (conv3)", lambda m, X, k: tc.grad_cam(m, X, k, layer="conv3").upsampled,
           _interpolated_grad_cam, needs="grad_cam"),
    Method("guided Grad-CAM (conv3)",
           lambda m, X, k: tc.guided_grad_cam(m, X, k, layer="conv3"),
           lambda net, xt, k, ca: ca.GuidedGradCam(net, net.conv3).attribute(
               xt, target=k, interpolate_mode="bilinear"),
           needs="guided_grad_cam"),
]


def available_methods():
    """The entries of :data:`METHODS` this tinyconv has, and one line per skipped entry."""
    have = [m for m in METHODS if m.needs is None or hasattr(tc, m.needs)]
    skipped = [f"{m.name}: tinyconv has no tc.{m.needs} yet: skipped" for m in METHODS
               if m not in have]
    return have, skipped


# --------------------------------------------------------------------------- inputs


def digits(split, n):
    """The first ``n`` bundled digits of ``split`` as float32 NHWC, and their labels."""
    images, labels = tc.load_mnist(split)
    return np.ascontiguousarray(tc.to_float(images[:n])), labels[:n].astype(np.int64)


def batches(n, batch, seed=0):
    """``n`` bundled training digits in batches of ``batch``, in one seeded order."""
    X, y = digits("bundled-train", n)
    order = np.random.default_rng(seed).permutation(len(X))
    return [(np.ascontiguousarray(X[order[i:i + batch]]), y[order[i:i + batch]])
            for i in range(0, len(X), batch)]


def to_nhwc(a):
    """A Captum attribution (N, C, H, W) as a NumPy (N, H, W, C) array."""
    a = a.detach().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def rel_diff(ours, theirs):
    """``max |ours - theirs| / max |theirs|`` (``theirs`` reshaped to ``ours``' shape)."""
    theirs = np.asarray(theirs).reshape(np.shape(ours))
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


# ------------------------------------------------------------------ activation maximisation


def ascent_case(name, steps):
    """``(layer, ks, settings)`` of the ascent ``name`` of :data:`ASCENTS` for ``steps``
    steps; ``settings`` are :func:`~tinyconv.activation_max.maximize_features`' keywords:
    the gallery function's defaults, ``steps`` and ``seed=0``."""
    a = ASCENTS[name]
    settings = {key: demo_default(a.demo, key) for key in ASCENT_SETTINGS}
    return a.layer, list(a.ks), {**settings, "steps": steps, "seed": 0}


def torch_ascent(torch, net, model, layer, ks, layout, *, steps, lr, l2, blur_every,
                 blur_sigma, jitter, seed):
    """:func:`tinyconv.activation_max.maximize_features` (``objective="unit"``, the centre
    unit at a spatial layer, no ``clip_small``) written in torch for a torch user's network:
    the same seeded start and jitter shifts, ``torch.autograd.grad`` for the gradient of the
    objective, and after each step the same update (the gradient over its largest magnitude),
    L2 decay, blur and clipping to [0, 1]. ``net`` runs up to ``layer`` (its modules carry
    the model's layer names). Returns ``(len(ks), C_0, H, W)``."""
    F = torch.nn.functional
    l = model.index(layer)
    upto = net[:list(net._modules).index(model.names[l]) + 1]
    rng = np.random.default_rng(seed)              # drawn in the order tinyconv draws
    start = 0.5 + 0.01 * rng.standard_normal(model.input_shape)
    x = _setup.nchw(torch, np.repeat(start[None], len(ks), axis=0).astype(np.float32), layout)
    rows, ks_t = torch.arange(len(ks)), torch.tensor(ks)
    spatial = is_spatial(model, l)
    centre = centre_unit(model, l) if spatial else ()
    radius = max(int(3 * blur_sigma + 0.5), 1)
    g = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2
                  / (2 * blur_sigma ** 2))
    g = (g / g.sum()).to(torch.float32)
    C = x.shape[1]
    down, across = g.view(1, 1, -1, 1).repeat(C, 1, 1, 1), g.view(1, 1, 1, -1).repeat(C, 1, 1, 1)
    for step in range(steps):
        dr, dc = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter \
            else (0, 0)
        shifted = torch.roll(x, (dr, dc), dims=(2, 3)).requires_grad_(True)
        y = upto(shifted)
        objective = y[rows, ks_t, centre[0], centre[1]] if spatial else y[rows, ks_t]
        grad, = torch.autograd.grad(objective.sum(), shifted)
        grad = torch.roll(grad, (-dr, -dc), dims=(2, 3))
        with torch.no_grad():
            peak = grad.abs().amax(dim=(1, 2, 3), keepdim=True)
            x = x + lr * grad / (peak + 1e-30)
            x = (1 - l2) * x
            if blur_every and (step + 1) % blur_every == 0:
                x = F.pad(x, (radius,) * 4, mode="reflect")
                x = F.conv2d(F.conv2d(x, down, groups=C), across, groups=C)
            x = x.clamp(0.0, 1.0)
    return x.detach()


# --------------------------------------------------------------------------- the two sides


def _tinyconv(kind, args):
    model = tc.pretrained("mnist")
    if kind == "forward":
        X, _ = digits("bundled-test", int(args[0]))
        return lambda: model(X)
    if kind in ("step", "epoch"):
        n, batch = (int(args[0]), int(args[0])) if kind == "step" else (int(args[0]),
                                                                         STEP_BATCH)
        data = batches(n if kind == "epoch" else 4 * batch, batch)
        opt = tc.SGD(model, lr=LR, momentum=MOMENTUM)
        if kind == "epoch":
            return lambda: [train_step(model, opt, x, y) for x, y in data]
        state = {"i": 0}

        def step():
            x, y = data[state["i"] % len(data)]
            state["i"] += 1
            return train_step(model, opt, x, y)
        return step
    if kind == "method":
        method = next(m for m in METHODS if m.name == args[0])
        X, labels = digits("bundled-test", int(args[1]))
        return lambda: method.ours(model, X, int(labels[0]))
    if kind == "occlusion":
        x, labels = digits("bundled-test", 1)
        base = GREY if args[0] == "grey" else 0.0
        return lambda: tc.occlusion(model, x[0], int(labels[0]), WINDOW, baseline=base,
                                    progress=False)
    if kind == "maxact":
        X, _ = digits("bundled", int(args[0]))
        return lambda: tc.max_activating(model, X, "conv2", progress=False)
    if kind == "ascent":
        layer, ks, settings = ascent_case(args[0], int(args[1]))
        return lambda: maximize_features(model, layer, ks, **settings)
    raise ValueError(f"unknown case {kind!r}")


def _torch(kind, args, layout):
    """The reference's callable of a case, with the network and its inputs in ``layout``
    (:data:`_setup.TORCH_LAYOUTS`)."""
    import torch
    import torch.nn.functional as F

    def nchw(X):
        return _setup.nchw(torch, X, layout)

    net = _setup.torch_copy(tc.pretrained("mnist"), layout)
    if kind == "forward":
        xt = nchw(digits("bundled-test", int(args[0]))[0])

        def forward():
            with torch.no_grad():
                return net(xt)
        return forward
    if kind in ("step", "epoch"):
        n, batch = (int(args[0]), int(args[0])) if kind == "step" else (int(args[0]),
                                                                         STEP_BATCH)
        data = [(nchw(x), torch.from_numpy(y))
                for x, y in batches(n if kind == "epoch" else 4 * batch, batch)]
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

        def one(x, y):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss
        if kind == "epoch":
            return lambda: [one(x, y) for x, y in data]
        state = {"i": 0}

        def step():
            x, y = data[state["i"] % len(data)]
            state["i"] += 1
            return one(x, y)
        return step
    if kind == "method":
        import captum.attr as captum
        method = next(m for m in METHODS if m.name == args[0])
        X, labels = digits("bundled-test", int(args[1]))
        xt = nchw(X).requires_grad_(True)       # as a user would; Captum warns otherwise
        return lambda: method.theirs(net, xt, int(labels[0]), captum)
    if kind == "occlusion":
        import captum.attr as captum
        x, labels = digits("bundled-test", 1)
        probs = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
        explainer = captum.Occlusion(probs)
        xt = nchw(x)
        base = GREY if args[0] == "grey" else 0.0

        def occlude(ppe=int(args[1])):
            with torch.no_grad():
                return explainer.attribute(
                    xt, sliding_window_shapes=(1, WINDOW, WINDOW), strides=(1, 1, 1),
                    baselines=base, target=int(labels[0]), perturbations_per_eval=ppe)
        return occlude
    if kind == "maxact":
        Xt = nchw(digits("bundled", int(args[0]))[0])
        upto = net[:list(net._modules).index("conv2") + 1]

        def maxact(top=9, batch=256):
            with torch.no_grad():
                scores = torch.cat([upto(Xt[i:i + batch]).amax(dim=(2, 3))
                                    for i in range(0, len(Xt), batch)])     # (N, C_2)
                return torch.topk(scores, top, dim=0)
        return maxact
    if kind == "ascent":
        layer, ks, settings = ascent_case(args[0], int(args[1]))
        model = tc.pretrained("mnist")
        return lambda: torch_ascent(torch, net, model, layer, ks, layout, **settings)
    raise ValueError(f"unknown case {kind!r}")


def agreement(kind, args):
    """The largest relative difference between tinyconv's and the reference's result of a
    method case (run in the torch worker, which has both)."""
    import captum.attr as captum
    import torch

    model = tc.pretrained("mnist")
    net = tc.to_torch(model)
    if kind == "method":
        method = next(m for m in METHODS if m.name == args[0])
        X, labels = digits("bundled-test", int(args[1]))
        k = int(labels[0])
        ours = method.ours(model, X, k)
        xt = _setup.nchw(torch, X, "NCHW").requires_grad_(True)
        return rel_diff(ours, to_nhwc(method.theirs(net, xt, k, captum)))
    if kind == "ascent":
        ours = np.stack([r.image for r in _tinyconv(kind, args)()])
        return rel_diff(ours, to_nhwc(_torch(kind, args, "NCHW")()))
    ours = _tinyconv(kind, args)().pixels
    return rel_diff(ours, to_nhwc(_torch(kind, [args[0], 625], "NCHW")()))


def make(side, case):
    """A worker's callable for ``case = "kind|arg|..."`` (tinyconv) or ``"kind|arg|...|layout"``
    (the reference); ``"check|kind|..."`` is the agreement probe of a method case."""
    kind, *args = case.split("|")
    if kind == "check":
        return lambda: agreement(args[0], args[1:])
    if side == "tinyconv":
        return _tinyconv(kind, args)
    return _torch(kind, args[:-1], args[-1])


# --------------------------------------------------------------------------- main


def cases(quick):
    """``[(section, row label, tinyconv case, [reference cases], target or None)]``; a row
    with several reference cases reports the fastest: each reference runs in both of torch's
    layouts (:data:`_setup.TORCH_LAYOUTS`), occlusion also with each of Captum's
    perturbations_per_eval settings."""
    out = []
    # a target is set for a full-mode size; --quick tries it on the size that stands in
    for full, b in zip(FORWARD_BATCHES, QUICK_FORWARD_BATCHES if quick else FORWARD_BATCHES,
                       strict=True):
        out.append(("forward", f"forward, batch {b}", f"forward|{b}", [f"forward|{b}"],
                    TARGETS.get(f"forward {full}")))
    sb = QUICK_STEP_BATCH if quick else STEP_BATCH
    out.append(("training", f"train step, batch {sb} (SGD)", f"step|{sb}", [f"step|{sb}"],
                TARGETS.get(f"train step {STEP_BATCH}")))
    n = QUICK_EPOCH_DIGITS if quick else EPOCH_DIGITS
    out.append(("training", f"train epoch, {n} digits, batch {STEP_BATCH}", f"epoch|{n}",
                [f"epoch|{n}"], None))
    methods, _ = available_methods()
    for m in methods:
        # by position; IG and SmoothGrad, without targets, have one quick size for two
        for full, b in zip(m.batches, m.quick_batches if quick else m.batches, strict=False):
            out.append(("methods", f"{m.name}, batch {b}", f"method|{m.name}|{b}",
                        [f"method|{m.name}|{b}"], TARGETS.get(f"{m.name} {full}")))
    for base in ("zero", "grey"):
        out.append(("methods", f"occlusion {WINDOW}x{WINDOW}, {base} occluder, 1 digit",
                    f"occlusion|{base}",
                    [f"occlusion|{base}|{p}" for p in (QUICK_CAPTUM_PPE if quick
                                                        else CAPTUM_PPE)],
                    TARGETS.get(f"occlusion {base}")))
    n = QUICK_MAXACT_DIGITS if quick else MAXACT_DIGITS
    out.append(("methods", f"MaxAct conv2, {n} digits", f"maxact|{n}", [f"maxact|{n}"], None))
    for name, a in ASCENTS.items():
        steps = QUICK_ASCENT_STEPS if quick else demo_default(a.demo)
        out.append(("methods", f"{a.label}, {steps} steps (vs the same ascent in torch)",
                    f"ascent|{name}|{steps}", [f"ascent|{name}|{steps}"], None))
    return [(section, label, ours, [f"{c}|{lay}" for c in theirs for lay in _setup.TORCH_LAYOUTS],
             target) for section, label, ours, theirs, target in out]


def main(argv=None):
    ap = _setup.arg_parser(__doc__, "smaller batches, fewer digits, 1 round", "PyTorch / Captum",
                           control=True)
    args = ap.parse_args(argv)
    if args.worker:
        return _setup.serve(args, make)

    header = _setup.configure(args.threads, torch=False)
    monitor = _setup.start_run(header, ("quick" if args.quick else "full")
                               + "; the shipped model, float32")
    header.append(_setup.run_mode(args))
    rows = cases(args.quick)
    groups = [[("tinyconv", ours), *(("torch", c) for c in theirs)]
              for _, _, ours, theirs, _ in rows]
    probes = [("torch", "check|" + ours) for _, _, ours, _, _ in rows
              if ours.startswith(("method", "occlusion", "ascent"))]
    long = {c for _, _, ours, theirs, _ in rows for c in (ours, *theirs)
            if c.startswith(("epoch", "maxact", "ascent"))}
    print(f"[bench_model] {len(rows)} cases, tinyconv and torch each in its own worker ...",
          file=sys.stderr, flush=True)
    results, lines = _setup.compare(__file__, make, groups, args, probes=probes, long=long)
    header += lines
    _, skipped = available_methods()

    tables = {}
    for section, title in (("forward", "Forward pass of the shipped model"),
                           ("training", "Training (forward, cross-entropy, backward, SGD "
                            f"lr={LR} momentum={MOMENTUM})"),
                           ("methods", "Explanation methods against Captum on the same "
                            "network")):
        tables[section] = _setup.Table(
            f"{title}: tinyconv vs {'Captum' if section == 'methods' else 'torch'}",
            ["case", "tinyconv ms", "tinyconv best", "reference ms", "reference best",
             "reference layout", "tinyconv/ref (median)", "tinyconv/ref (best)",
             "A/A (median)", "first call tinyconv s", "first call ref s", "max rel. diff"],
            fmt={"tinyconv ms": "{:.2f}", "tinyconv best": "{:.2f}", "reference ms": "{:.2f}",
                 "reference best": "{:.2f}", "tinyconv/ref (median)": "{:.2f}",
                 "tinyconv/ref (best)": "{:.2f}", "A/A (median)": "{:.2f}",
                 "first call tinyconv s": "{:.2f}", "first call ref s": "{:.2f}",
                 "max rel. diff": "{:.1e}"})
    target_t = _setup.Table("Targets (tinyconv / reference, from this run)",
                            ["comparison", "target", "median", "best", "A/A (median)",
                             "verdict"],
                            fmt={"target": "<= {:.2f}", "median": "{:.2f}", "best": "{:.2f}",
                                 "A/A (median)": "{:.2f}"},
                            notes=[QUICK_TARGETS_NOTE if args.quick else
                                   "see benchmarks/README.md for the targets.",
                                   _setup.CONTROL_NOTE, _setup.VERDICT_NOTE])
    targeted, controls = [], []        # the rows with a target; every row's A/A ratio
    for section, label, ours, theirs, target in rows:
        o = results[("tinyconv", ours)]
        refs = [(c, results[("torch", c)]) for c in theirs if ("torch", c) in results]
        timed = [(c, r) for c, r in refs if r.timing is not None]
        best_c, ref = min(timed, key=lambda cr: cr[1].timing.median) if timed else (None, None)
        layout = best_c.split("|")[-1] if best_c else None
        if best_c and ours.startswith("occlusion"):
            label += f" (Captum best: perturbations_per_eval={best_c.split('|')[-2]})"
        check = results.get(("probe", "torch", "check|" + ours), {})
        diff = check.get("value")
        ot = o.timing
        rt = ref.timing if ref else None
        ratio = (ot.median / rt.median, ot.min / rt.min) if ot and rt else (None, None)
        twin = results.get((_setup.CONTROL, ours))
        aa = ot.median / twin.timing.median if ot and twin and twin.timing else None
        tables[section].add(
            label, ot.ms if ot else o.error, 1e3 * ot.min if ot else None,
            rt.ms if rt else (refs[0][1].error if refs else "skipped"),
            1e3 * rt.min if rt else None, layout, *ratio, aa, o.first,
            ref.first if ref else None, diff)
        if target is not None and ratio[1] is not None:
            targeted.append((label, target, ratio, aa))
        controls.append(aa)
    floor, floor_line = _setup.margin_floor(controls)   # the run's typical A/A, every row
    target_t.notes.append(floor_line)
    for label, target, ratio, aa in targeted:
        target_t.add(label, target, *ratio, aa, _setup.verdict(ratio[0], target, aa, floor))
    tables["methods"].notes += skipped + [
        "max rel. diff = max |tinyconv - Captum| / max |Captum| on the same digits (occlusion: "
        "the per-pixel map against Captum's with perturbations_per_eval=625). Projections "
        "differ where a max-pool window holds equal maxima (each library picks one); "
        "bench_methods.py separates that from float32 rounding. SmoothGrad's noisy copies "
        "are each library's own random draws, so its difference is the noise's, not an "
        "error (tests/test_captum_methods.py compares the two on the same copies). The "
        "ascents compare their final images with the torch ascent's: the two agree to "
        "float32 rounding until a max-pool window holds two equal maxima (the class models "
        "meet one after 6 steps), from where each library sends the gradient to a different "
        "one and the ascents part; --quick's 5 steps stay before it."]
    for t in tables.values():
        t.notes.append(_setup.CONTROL_NOTE)
        t.notes.append("ms = median, best = minimum over all timed calls of all rounds; "
                       "first call = the case's first call in its worker (numba compile or "
                       "cache load; torch's lazy set-up), timed apart (the torch worker runs "
                       "a case in NCHW first, so its channels_last first call comes after "
                       "the NCHW one's set-up); reference layout = torch's faster layout "
                       "(NCHW or channels_last) for this case. Command: "
                       "python benchmarks/bench_model.py" + (" --quick" if args.quick else ""))

    header.append(monitor.line())
    _setup.report("bench_model: the shipped model and its explanations, tinyconv vs torch",
                  header, [*tables.values(), target_t], args.markdown)


if __name__ == "__main__":
    main()
