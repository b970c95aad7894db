"""Interpretation methods: tinyconv against Captum on the same numbers (the model's torch copy).

The shipped MNIST CNN (``tc.pretrained("mnist")``), float32, bundled held-out digits scaled by
``tc.to_float``; Captum runs on ``model.to_torch()`` (same weights, NCHW input). Both libraries
get the same thread count.

- **Projections** of the class logit ``y_(L),k`` on a batch of 64 digits:
  ``tc.project(model, x, "logits", k, rule=...)`` for ``"guided"``, ``"deconvnet"`` and
  ``"gradient"`` against Captum's ``GuidedBackprop``, ``Deconvolution`` and
  ``Saliency(abs=False)`` with ``target=k``.
- **Occlusion** of one digit, a 4 x 4 window of zeros slid with stride 1 (625 windows), the
  class probability as the score: ``tc.occlusion(model, x, c, 4)`` (``fast=True``, which
  recomputes only each window's projective field, and ``fast=False``, every occluded copy
  through the whole model) against Captum's ``Occlusion`` on the torch copy followed by a
  softmax (``sliding_window_shapes=(1, 4, 4)``, ``strides=(1, 1, 1)``, ``baselines=0``), at
  its default ``perturbations_per_eval=1`` and batched (64, 256, and 625 = every window at
  once). The ratio is taken against Captum's fastest setting. ``fast=True`` skips the windows
  that leave the image unchanged (a black square on the black background); a row with a
  grey occluder (0.5), where none can be skipped, shows what the rest of the method costs.

Every pair is also checked for agreement: the largest absolute difference divided by the
largest absolute value of Captum's result (tinyconv's ``pixels`` map against Captum's
occlusion attribution, which is the same per-pixel mean). The projections differ where a
max-pool window holds equal maxima (the flat background of a digit gives many): each library
sends the signal to one of them, and rounding decides which. So the projections are compared
a second time on the same digits plus uniform noise of 1e-3, where no two values tie.

Run ``python benchmarks/bench_methods.py [--quick] [--markdown PATH] [--threads 2]``.
"""

import sys
import warnings

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

import tinyconv as tc

BATCH = 64                   # digits per projection call
QUICK_BATCH = 16
WINDOW = 4                   # occlusion window (pixels), stride 1
GREY = 0.5                   # an occluder that differs from the black background
CAPTUM_PPE = (1, 64, 256, 625)    # Captum's perturbations_per_eval settings
RULES = (("guided backprop", "guided", "GuidedBackprop"),
         ("deconvnet", "deconvnet", "Deconvolution"),
         ("gradient (saliency)", "gradient", "Saliency"))
TARGETS = {"guided": 1.0, "occlusion": 0.33}


def rel_diff(ours, theirs):
    """``max |ours - theirs| / max |theirs|``: 0 when the two agree exactly."""
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def load_case(quick):
    """The shipped model, a batch of held-out digits, one digit and their classes."""
    model = tc.pretrained("mnist")
    images, labels = tc.load_mnist("bundled-test")
    n = QUICK_BATCH if quick else BATCH
    X = tc.to_float(images[:n])
    return model, X, int(labels[0]), X[0], int(labels[0])


def import_captum():
    """``(torch, captum.attr)``, or ``(None, reason)`` when either is missing."""
    try:
        import torch
    except ImportError:
        return None, "torch not installed: skipped"
    try:
        import captum.attr
    except ImportError:
        return None, "captum not installed: skipped"
    return torch, captum.attr


# --------------------------------------------------------------------------- projections


def projection_rows(model, X, k, torch, captum, quick):
    """Time each rule in both libraries; returns table rows and the guided ratio."""
    rows, guided = [], None
    if torch is not None:
        net = model.to_torch()
        xt = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
        xt.requires_grad_(True)          # as a user would; Captum warns otherwise
    for label, rule, method in RULES:
        print(f"[bench_methods] {label} ...", file=sys.stderr, flush=True)
        ours = tc.project(model, X, "logits", k, rule=rule)

        def project(rule=rule):
            return tc.project(model, X, "logits", k, rule=rule)

        if torch is None:
            t = _setup.measure(project, quick=quick)
            rows.append((label, t.ms, 1e3 * t.min, captum, None, None, None, None, None, None))
            continue
        explainer = getattr(captum, method)(net)
        kwargs = {"abs": False} if method == "Saliency" else {}

        def run(explainer=explainer, kwargs=kwargs):
            return explainer.attribute(xt, target=k, **kwargs)

        theirs = run().detach().numpy().transpose(0, 2, 3, 1)
        t, tt = _setup.interleaved([project, run], quick)
        # the same on tie-free input (see the module docstring)
        noisy = X + np.random.default_rng(0).uniform(0, 1e-3, X.shape).astype(X.dtype)
        noisy_t = torch.from_numpy(np.ascontiguousarray(noisy.transpose(0, 3, 1, 2)))
        tie_free = rel_diff(tc.project(model, noisy, "logits", k, rule=rule),
                            explainer.attribute(noisy_t.requires_grad_(True), target=k, **kwargs)
                            .detach().numpy().transpose(0, 2, 3, 1))
        rows.append((label, t.ms, 1e3 * t.min, f"{method}", tt.ms, 1e3 * tt.min,
                     t.median / tt.median, t.min / tt.min, rel_diff(ours, theirs), tie_free))
        if rule == "guided":
            guided = (t.median / tt.median, t.min / tt.min)
    return rows, guided


def layer_rows(model, X, k, quick):
    """Each layer's forward and guided backward, timed alone with the arguments that
    ``tc.project`` gives it; returns ``[(name, type, forward Timing, backward Timing)]``."""
    ys = model.activations(X)
    seed = np.zeros_like(ys[-1])
    seed[:, k] = 1
    dys = [seed]
    for layer in reversed(model.layers):
        dys.append(layer.backward(dys[-1], rule="guided", check=False))
    dys = dys[::-1]                                   # dys[l] is the signal at y_(l)
    rows = []
    for l, layer in enumerate(model.layers):
        fwd, bwd = _setup.time_layer(layer, ys[l], dys[l + 1], quick, rule="guided")
        rows.append((layer.name, type(layer).__name__, fwd, bwd))
    return rows


# --------------------------------------------------------------------------- occlusion


def occlusion_rows(model, x, c, torch, captum, quick):
    """Time tinyconv (fast / full) and Captum (each perturbations_per_eval) on one digit.

    Returns rows ``(library, setting, Timing or None, max rel. diff or None)``, the largest
    difference between the fast and the full scores, and Captum's fastest setting (by
    median and by minimum; None without Captum).
    """
    H, W, _ = x.shape
    n_windows = (H - WINDOW + 1) * (W - WINDOW + 1)
    print(f"[bench_methods] occlusion, {n_windows} windows ...", file=sys.stderr, flush=True)
    ours = {fast: tc.occlusion(model, x, c, WINDOW, fast=fast, progress=False)
            for fast in (True, False)}
    fast_vs_full = rel_diff(ours[True].occluded, ours[False].occluded)
    # (library, setting, callable, its per-pixel map); timed in turns below
    entries = [("tinyconv", f"fast={fast}",
                lambda fast=fast: tc.occlusion(model, x, c, WINDOW, fast=fast, progress=False),
                ours[fast].pixels) for fast in (True, False)]
    # with a grey occluder no window leaves the image unchanged, so none is skipped
    grey = tc.occlusion(model, x, c, WINDOW, baseline=GREY, progress=False).pixels
    entries.append(("tinyconv", f"fast=True, baseline={GREY}",
                    lambda: tc.occlusion(model, x, c, WINDOW, baseline=GREY, progress=False),
                    grey))
    alone, extra = [], []
    if torch is None:
        extra.append(("Captum", captum, None, None))
    else:
        probs = torch.nn.Sequential(model.to_torch(), torch.nn.Softmax(dim=1)).eval()
        explainer = captum.Occlusion(probs)
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))[None])
        with torch.no_grad():
            grey_theirs = explainer.attribute(
                xt, sliding_window_shapes=(1, WINDOW, WINDOW), strides=(1, 1, 1),
                baselines=GREY, target=c, perturbations_per_eval=256)[0, 0].numpy()
        for ppe in CAPTUM_PPE:
            setting = f"perturbations_per_eval={ppe}"
            if ppe == 1 and quick:
                extra.append(("Captum", setting + " (skipped in --quick)", None, None))
                continue

            def run(ppe=ppe):
                with torch.no_grad():
                    return explainer.attribute(
                        xt, sliding_window_shapes=(1, WINDOW, WINDOW), strides=(1, 1, 1),
                        baselines=0, target=c, perturbations_per_eval=ppe)

            entry = ("Captum", setting, run, run()[0, 0].numpy())    # the call: a warm-up
            # one window per forward call takes seconds: that one is timed alone, 3 runs
            (alone if ppe == 1 else entries).append(entry)
    timings = _setup.interleaved([e[2] for e in entries], quick)
    timings += [_setup.Timing([_setup.first_call(e[2]) for _ in range(3)]) for e in alone]
    def diff(setting, pixels):
        if setting == "fast=True":
            return None
        if "baseline" in setting:                 # against Captum with the same occluder
            return None if torch is None else rel_diff(pixels, grey_theirs)
        return rel_diff(ours[True].pixels, pixels)

    rows = [(lib, setting, t, diff(setting, pixels))
            for (lib, setting, _, pixels), t in zip(entries + alone, timings, strict=True)]
    rows += extra
    # tinyconv first, then Captum by perturbations_per_eval
    rows.sort(key=lambda r: (r[0] != "tinyconv", int(r[1].split("=")[1].split()[0])
                             if r[1].startswith("perturbations") else 0))
    timed = [(r[1].split("=")[1], r[2]) for r in rows if r[0] == "Captum" and r[2]]
    best = None if not timed else {"median": min(timed, key=lambda r: r[1].median),
                                   "min": min(timed, key=lambda r: r[1].min)}
    return rows, fast_vs_full, best


# --------------------------------------------------------------------------- main


def main(argv=None):
    args = _setup.arg_parser(__doc__, f"{QUICK_BATCH} digits for the projections, fewer runs",
                             "Captum").parse_args(argv)

    torch, captum = (None, "--no-torch: skipped") if args.no_torch else import_captum()
    header = _setup.configure(args.threads, torch=torch is not None)
    if torch is not None:
        import captum as _captum
        header.append(f"captum {_captum.__version__}")
        warnings.filterwarnings("ignore", module="captum")   # hook notices on every call
    model, X, k, x, c = load_case(args.quick)
    # the first numba calls (compilation or cache load) are never timed
    tc.project(model, X[:2], "logits", k, rule="gradient")
    mode = "quick (fewer digits and runs)" if args.quick else "full"
    monitor = _setup.start_run(
        header, f"{mode}; times are medians (and minima) over repeated runs after warm-up")

    proj_t = _setup.Table(
        f"Projections of the class logit k={k}: {len(X)} digits, float32",
        ["method", "tinyconv ms", "tinyconv min", "Captum", "Captum ms", "Captum min",
         "tinyconv/Captum", "ratio of minima", "max rel. diff", "tie-free"],
        fmt={"tinyconv ms": "{:.1f}", "tinyconv min": "{:.1f}", "Captum ms": "{:.1f}",
             "Captum min": "{:.1f}", "tinyconv/Captum": "{:.2f}", "ratio of minima": "{:.2f}",
             "max rel. diff": "{:.1e}", "tie-free": "{:.1e}"},
        notes=["tinyconv: tc.project(model, x, 'logits', k, rule) (forward + backward with "
               "that ReLU rule); Captum on model.to_torch(), input (N, 1, 28, 28) with "
               "requires_grad, target=k; Saliency with abs=False. Each pair is timed in turns "
               "(per round, each is called twice and timed the second time), so that both "
               "see the same machine.",
               "tinyconv/Captum is the ratio of the medians; max rel. diff = max |ours - "
               "Captum| / max |Captum|; tie-free: the same on the digits + U(0, 1e-3) noise "
               "(max-pool ties broken): what is left is float32 rounding, and for the gradient "
               "ReLU inputs within rounding of 0 (their mask x > 0 may differ)."])
    rows, guided = projection_rows(model, X, k, torch, captum, args.quick)
    for row in rows:
        proj_t.add(*row)

    print("[bench_methods] guided backprop, layer by layer ...", file=sys.stderr, flush=True)
    per_layer = layer_rows(model, X, k, args.quick)
    layer_t = _setup.Table(
        f"Where tinyconv's guided backprop goes: each layer alone, {len(X)} digits (ms)",
        ["layer", "type", "forward ms", "forward min", "backward ms", "backward min"],
        fmt={c: "{:.2f}" for c in ("forward ms", "forward min", "backward ms",
                                   "backward min")},
        notes=["backward: rule='guided' (no parameter gradients); called with check=False as "
               "Sequential calls it."])
    for name, kind, fwd, bwd in per_layer:
        layer_t.add(name, kind, fwd.ms, 1e3 * fwd.min, bwd.ms, 1e3 * bwd.min)
    layer_t.add("sum", "", sum(r[2].ms for r in per_layer), sum(1e3 * r[2].min for r in per_layer),
                sum(r[3].ms for r in per_layer), sum(1e3 * r[3].min for r in per_layer))

    occ_rows, fast_vs_full, best = occlusion_rows(model, x, c, torch, captum, args.quick)
    fast = occ_rows[0][2]
    occ_t = _setup.Table(
        f"Occlusion of one digit (class {c}): {WINDOW}x{WINDOW} window, stride 1, "
        f"{(28 - WINDOW + 1) ** 2} windows, score p(class), float32",
        ["library", "setting", "ms", "min ms", "tinyconv fast / this", "ratio of minima",
         "max rel. diff"],
        fmt={"ms": "{:.1f}", "min ms": "{:.1f}", "tinyconv fast / this": "{:.2f}",
             "ratio of minima": "{:.2f}", "max rel. diff": "{:.1e}"},
        notes=["tinyconv: tc.occlusion(model, x, c, 4) (default batch_size: all 625 windows "
               "in one batch with fast=True, 256 with fast=False); Captum: "
               "Occlusion(Sequential(torch copy, Softmax)) with sliding_window_shapes=(1, 4, 4),"
               " strides=(1, 1, 1), baselines=0, target=c, under torch.no_grad(). All rows "
               "but perturbations_per_eval=1 (3 runs alone) are timed in turns.",
               "max rel. diff: tinyconv's per-pixel map (fast=True) against this row's (the "
               f"baseline={GREY} row: against Captum's with baselines={GREY}); fast=True vs "
               f"fast=False on the 625 raw scores: {fast_vs_full:.1e}.",
               "fast=True skips the windows that leave the image unchanged (here the black "
               f"background under a black square); with baseline={GREY} none is skipped. "
               "Captum's time does not depend on the baseline. Where p(class) is near 1, "
               "Captum's float32 softmax and differences lose digits that tinyconv keeps (it "
               "scores in float64): that is most of the difference in the baseline row."])
    for lib, setting, t, diff in occ_rows:
        if t is None:
            occ_t.add(lib, setting, None, None, None, None, None)
        else:
            occ_t.add(lib, setting, t.ms, 1e3 * t.min, fast.median / t.median,
                      fast.min / t.min, diff)

    summary = _setup.Table("Targets (ratios from this run)",
                           ["comparison", "target", "ratio of medians", "ratio of minima",
                            "met (medians)", "met (minima)"],
                           fmt={"target": "<= {:.2f}", "ratio of medians": "{:.2f}",
                                "ratio of minima": "{:.2f}"},
                           notes=["on a busy machine the minima are the fairer comparison "
                                  "(see the load lines above)."])

    def target_row(label, target, ratios):
        summary.add(label, target, *ratios, *("yes" if r <= target else "no" for r in ratios))

    if guided is not None:
        target_row("guided backprop: tinyconv / Captum GuidedBackprop", TARGETS["guided"],
                   guided)
    if best is not None:
        (ppe, tb), (ppe_min, tb_min) = best["median"], best["min"]
        which = ppe if ppe == ppe_min else f"{ppe} (medians), {ppe_min} (minima)"
        target_row(f"occlusion: tinyconv fast / Captum best (perturbations_per_eval={which})",
                   TARGETS["occlusion"], (fast.median / tb.median, fast.min / tb_min.min))
        grey = next(r[2] for r in occ_rows if "baseline" in r[1])
        summary.add(f"(occlusion with baseline={GREY}, no window skipped: the same ratio)",
                    None, grey.median / tb.median, grey.min / tb_min.min, None, None)
    if not summary.rows:
        summary.add(captum, None, None, None, None, None)

    header.append(monitor.line())
    _setup.report("bench_methods: projections and occlusion, tinyconv vs Captum", header,
                  [proj_t, layer_t, occ_t, summary], args.markdown)


if __name__ == "__main__":
    main()
