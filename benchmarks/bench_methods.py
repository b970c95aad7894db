"""Interpretation methods: tinyconv against Captum on the same numbers (the model's torch copy).

The shipped MNIST CNN (``tc.pretrained("mnist")``), float32, bundled held-out digits scaled by
``tc.to_float``; Captum runs on ``tc.to_torch(model)`` (same weights), the network and its NCHW
input in each of torch's layouts, NCHW and channels_last, set explicitly (``_setup.nchw``);
each row reports the faster by median and names it. Both libraries get the same thread count.

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


# --------------------------------------------------------------------------- the workers


def _captum():
    """``(torch, captum.attr)`` in a worker, Captum's hook notices silenced."""
    import captum.attr
    import torch
    warnings.filterwarnings("ignore", module="captum")   # hook notices on every call
    return torch, captum.attr


def _occlude_captum(model, x, c, baseline, ppe, layout="NCHW"):
    """Captum's occlusion of ``x`` on the torch copy followed by a softmax."""
    torch, captum = _captum()
    probs = torch.nn.Sequential(_setup.torch_copy(model, layout),
                                torch.nn.Softmax(dim=1)).eval()
    explainer = captum.Occlusion(probs)
    xt = _setup.nchw(torch, x[None], layout)

    def run():
        with torch.no_grad():
            return explainer.attribute(
                xt, sliding_window_shapes=(1, WINDOW, WINDOW), strides=(1, 1, 1),
                baselines=baseline, target=c, perturbations_per_eval=ppe)
    return run


def _project_captum(model, X, k, method, layout="NCHW"):
    torch, captum = _captum()
    net = _setup.torch_copy(model, layout)
    xt = _setup.nchw(torch, X, layout).requires_grad_(True)  # as a user would; Captum warns
    explainer = getattr(captum, method)(net)
    kwargs = {"abs": False} if method == "Saliency" else {}
    return lambda: explainer.attribute(xt, target=k, **kwargs)


def agreement_project(model, X, k, rule, method):
    """``[max rel. diff, the same on tie-free input]`` of one rule against Captum."""
    def nhwc(t):
        return t.detach().numpy().transpose(0, 2, 3, 1)

    noisy = X + np.random.default_rng(0).uniform(0, 1e-3, X.shape).astype(X.dtype)
    return [rel_diff(tc.project(model, inp, "logits", k, rule=rule),
                     nhwc(_project_captum(model, inp, k, method)()))
            for inp in (X, noisy)]


def agreement_occlusion(model, x, c, ppes):
    """Max rel. diffs of tinyconv's occlusion map against each Captum setting's, and with the
    grey occluder against Captum's."""
    ours = tc.occlusion(model, x, c, WINDOW, progress=False)
    out = {}
    for ppe in ppes:
        out[f"perturbations_per_eval={ppe}"] = rel_diff(
            ours.pixels, _occlude_captum(model, x, c, 0, ppe)()[0, 0].numpy())
    grey = tc.occlusion(model, x, c, WINDOW, baseline=GREY, progress=False).pixels
    out["grey"] = rel_diff(grey, _occlude_captum(model, x, c, GREY, 256)()[0, 0].numpy())
    return out


def make(side, case):
    """A worker's callable for one case, from the same digits on both sides:
    ``"project|rule|quick"`` (tinyconv's rule or Captum's method), ``"occ|setting|quick"``
    (tinyconv: ``fast=True``, ``fast=False``, ``grey``; Captum: a perturbations_per_eval),
    ``"check|project|rule|quick"`` and ``"check|occ|quick"`` (agreement, in the torch worker,
    in NCHW). A case of Captum's ends with its layout, one of :data:`_setup.TORCH_LAYOUTS`.
    """
    kind, *rest = case.split("|")
    check = kind == "check"
    if check:
        kind, *rest = rest
    layout = rest.pop() if side == "torch" and not check else "NCHW"
    quick = rest[-1] == "quick"
    model, X, k, x, c = load_case(quick)
    if kind == "project":
        rule = rest[0]
        method = next(m for _, r, m in RULES if r == rule)
        if check:
            return lambda: agreement_project(model, X, k, rule, method)
        if side == "tinyconv":
            return lambda: tc.project(model, X, "logits", k, rule=rule)
        return _project_captum(model, X, k, method, layout)
    if check:
        return lambda: agreement_occlusion(model, x, c, captum_ppe(quick))
    setting = rest[0]
    if side == "tinyconv":
        base = GREY if setting == "grey" else 0.0
        fast = setting != "fast=False"
        return lambda: tc.occlusion(model, x, c, WINDOW, fast=fast, baseline=base,
                                    progress=False)
    return _occlude_captum(model, x, c, 0, int(setting), layout)


def fast_vs_full(model, x, c):
    """tinyconv's occlusion with fast=True against fast=False: the 625 raw scores and the
    per-pixel maps (max rel. diffs)."""
    ours = {fast: tc.occlusion(model, x, c, WINDOW, fast=fast, progress=False)
            for fast in (True, False)}
    return {"fast_vs_full": rel_diff(ours[True].occluded, ours[False].occluded),
            "fast=False": rel_diff(ours[True].pixels, ours[False].pixels)}


def captum_ppe(quick):
    """Captum's perturbations_per_eval settings timed (1 takes seconds: not in --quick)."""
    return CAPTUM_PPE[1:] if quick else CAPTUM_PPE


# --------------------------------------------------------------------------- projections


def projection_rows(results, q, captum_reason):
    """The projection table's rows from :func:`_setup.compare`'s results, and the guided
    ratio (medians, minima) or None."""
    rows, guided = [], None
    for label, rule, method in RULES:
        ours = results[("tinyconv", f"project|{rule}|{q}")]
        layout, theirs = _setup.faster_layout(results, f"project|{rule}|{q}")
        t = ours.timing
        if theirs is None or theirs.timing is None:
            why = captum_reason if theirs is None else theirs.error
            rows.append((label, t.ms, 1e3 * t.min, why, None, None, None, None, None, None))
            continue
        tt = theirs.timing
        diff = results.get(("probe", "torch", f"check|project|{rule}|{q}"), {})
        diffs = diff.get("value", [None, None])
        rows.append((label, t.ms, 1e3 * t.min, f"{method} ({layout})", tt.ms, 1e3 * tt.min,
                     t.median / tt.median, t.min / tt.min, *diffs))
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


def occlusion_rows(results, q, quick, captum_reason, ours):
    """Rows ``(library, setting, Timing or None, max rel. diff or None)``, the largest
    difference between the fast and the full scores, and Captum's fastest setting (by
    median and by minimum; None without Captum). ``ours``: :func:`fast_vs_full`."""
    check = results.get(("probe", "torch", f"check|occ|{q}"), {}).get("value", {})
    check.update(ours)
    rows = []
    for setting, label in (("fast=True", "fast=True"), ("fast=False", "fast=False"),
                           ("grey", f"fast=True, baseline={GREY}")):
        r = results[("tinyconv", f"occ|{setting}|{q}")]
        rows.append(("tinyconv", label, r.timing,
                     check.get("grey" if setting == "grey" else setting)))
    timed = []
    for ppe in CAPTUM_PPE:
        setting = f"perturbations_per_eval={ppe}"
        layout, r = _setup.faster_layout(results, f"occ|{ppe}|{q}")
        if ppe == 1 and quick:
            rows.append(("Captum", setting + " (skipped in --quick)", None, None))
        elif r is None or r.timing is None:
            rows.append(("Captum", setting + f" ({captum_reason if r is None else r.error})",
                         None, None))
        else:
            rows.append(("Captum", f"{setting}, {layout}", r.timing, check.get(setting)))
            timed.append((str(ppe), r.timing))
    best = None if not timed else {"median": min(timed, key=lambda r: r[1].median),
                                   "min": min(timed, key=lambda r: r[1].min)}
    return rows, check.get("fast_vs_full"), best


# --------------------------------------------------------------------------- main


def main(argv=None):
    args = _setup.arg_parser(__doc__, f"{QUICK_BATCH} digits for the projections, fewer runs",
                             "Captum").parse_args(argv)

    if args.worker:
        return _setup.serve(args, make)
    header = _setup.configure(args.threads, torch=False)
    model, X, k, x, c = load_case(args.quick)
    # the first numba calls (compilation or cache load) are never timed
    tc.project(model, X[:2], "logits", k, rule="gradient")
    mode = "quick (fewer digits and runs)" if args.quick else "full"
    monitor = _setup.start_run(header, mode)
    header.append(_setup.run_mode(args))
    q = "quick" if args.quick else "full"
    layouts = _setup.TORCH_LAYOUTS
    groups = [[("tinyconv", f"project|{rule}|{q}"),
               *(("torch", f"project|{rule}|{q}|{lay}") for lay in layouts)]
              for _, rule, _ in RULES]
    groups.append([("tinyconv", f"occ|{s}|{q}") for s in ("fast=True", "fast=False", "grey")]
                  + [("torch", f"occ|{p}|{q}|{lay}") for p in captum_ppe(args.quick) if p != 1
                     for lay in layouts])
    if 1 in captum_ppe(args.quick):      # seconds per call: a group of its own, few rounds
        groups.append([("torch", f"occ|1|{q}|{lay}") for lay in layouts])
    probes = [("torch", f"check|project|{rule}|{q}") for _, rule, _ in RULES]
    probes.append(("torch", f"check|occ|{q}"))
    print("[bench_methods] tinyconv and Captum, each in its own worker ...", file=sys.stderr,
          flush=True)
    results, lines = _setup.compare(__file__, make, groups, args, probes=probes,
                                    long={f"occ|1|{q}|{lay}" for lay in layouts})
    header += lines
    captum = "--no-torch: skipped" if args.no_torch else "torch / captum not installed: skipped"

    proj_t = _setup.Table(
        f"Projections of the class logit k={k}: {len(X)} digits, float32",
        ["method", "tinyconv ms", "tinyconv min", "Captum", "Captum ms", "Captum min",
         "tinyconv/Captum", "ratio of minima", "max rel. diff", "tie-free"],
        fmt={"tinyconv ms": "{:.1f}", "tinyconv min": "{:.1f}", "Captum ms": "{:.1f}",
             "Captum min": "{:.1f}", "tinyconv/Captum": "{:.2f}", "ratio of minima": "{:.2f}",
             "max rel. diff": "{:.1e}", "tie-free": "{:.1e}"},
        notes=["tinyconv: tc.project(model, x, 'logits', k, rule) (forward + backward with "
               "that ReLU rule); Captum on tc.to_torch(model), input (N, 1, 28, 28) in the "
               "faster of torch's layouts (named), with "
               "requires_grad, target=k; Saliency with abs=False. Each library ran in its own "
               "worker process, the two taking turns (see the mode line). Command: python "
               "benchmarks/bench_methods.py",
               "tinyconv/Captum is the ratio of the medians; max rel. diff = max |ours - "
               "Captum| / max |Captum|; tie-free: the same on the digits + U(0, 1e-3) noise "
               "(max-pool ties broken): what is left is float32 rounding, and for the gradient "
               "ReLU inputs within rounding of 0 (their mask x > 0 may differ)."])
    rows, guided = projection_rows(results, q, captum)
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

    occ_rows, fast_vs_full_diff, best = occlusion_rows(results, q, args.quick, captum,
                                                       fast_vs_full(model, x, c))
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
               "but perturbations_per_eval=1 (3 rounds of one call) take turns in the rounds.",
               "max rel. diff: tinyconv's per-pixel map (fast=True) against this row's (the "
               f"baseline={GREY} row: against Captum's with baselines={GREY}); fast=True vs "
               f"fast=False on the 625 raw scores: {fast_vs_full_diff:.1e}.",
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
