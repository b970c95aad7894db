"""Do the maps explain? The sanity checks, measured: every number of ``tinyconv sanity``.

* **Model randomisation** (Adebayo et al. 2018, §3.1): each map of the trained model against
  the same map after :func:`~tinyconv.randomize.cascade` and
  :func:`~tinyconv.randomize.independent` randomisation, by every measure of
  :data:`~tinyconv.similarity.METRICS`, over the whole image and over the digit (``x > 0``).
* **Data randomisation** (§3.2): the same architecture, freshly initialised, trained on
  permuted labels until it memorises them; its maps against the trained model's.
* **Image recovery** (Nie et al. 2018, §4–5): how well ``|map|`` of a trained and an
  untrained network correlates with the digit, and how alike the maps for two classes are.
* **Faithfulness** (Petsiuk et al. 2018, §3.2): deletion and insertion areas per method.

Controls beside the methods: the input itself and its Sobel edges (maps that ignore the
model: under randomisation they stay identical, which is what "invariant" looks like), and,
for deletion / insertion, a random order. Every method is one entry of :data:`MAPS`; a method
this version of tinyconv does not have is skipped, with a note in the result.
"""

import sys
import time
from importlib import import_module

import numpy as np

from .checks import check_array, check_int
from .faithfulness import deletion, insertion, random_maps, sobel
from .randomize import cascade, parameter_layers, randomize
from .similarity import METRICS, pearson
from .training import Adam, evaluate, fit
from .units import n_classes

SMOOTHGRAD_N = 10       # noisy copies (the paper's 50 would make the run five times longer)
IG_STEPS = 16           # trapezoid steps of Integrated Gradients
OCCLUSION = dict(size=7, stride=3)
REGIONS = ("whole", "digit")


def _per_class(method, model, x, target, **kw):
    """Call ``method(model, x[sel], c, **kw)`` once per class ``c`` among ``target`` (for the
    methods that take one class for the whole batch) and return the results in order."""
    out = None
    for c in np.unique(target):
        sel = np.flatnonzero(target == c)
        part = method(model, x[sel], int(c), **kw)
        out = np.empty((len(x), *part.shape[1:]), part.dtype) if out is None else out
        out[sel] = part
    return out


def _rule(rule):
    """The class logit ``y_(L),c`` sent back by ``rule`` (:func:`~tinyconv.project`), summed
    over the input channels."""
    return lambda tc, m, x, t, seed: _per_class(
        lambda mm, xx, c: tc.project(mm, xx, len(mm.layers), c, rule=rule), m, x, t).sum(-1)


# name -> (the public function it needs, f(tc, model, x, target, seed) -> (N, H, W) map)
MAPS = {
    "gradient": ("project", _rule("gradient")),
    "input_x_gradient": ("input_x_gradient",
                         lambda tc, m, x, t, seed: tc.input_x_gradient(m, x, t).sum(-1)),
    "smoothgrad": ("smoothgrad", lambda tc, m, x, t, seed: tc.smoothgrad(
        m, x, t, n=SMOOTHGRAD_N, seed=seed).sum(-1)),
    "integrated_gradients": ("integrated_gradients", lambda tc, m, x, t, seed:
                             tc.integrated_gradients(m, x, t, steps=IG_STEPS)
                             .attributions.sum(-1)),
    "deconvnet": ("project", _rule("deconvnet")),
    "guided": ("project", _rule("guided")),
    "grad_cam": ("grad_cam", lambda tc, m, x, t, seed: tc.grad_cam(m, x, t).upsampled),
    "guided_grad_cam": ("guided_grad_cam",
                        lambda tc, m, x, t, seed: tc.guided_grad_cam(m, x, t).sum(-1)),
    "occlusion": ("occlusion", lambda tc, m, x, t, seed: _per_class(
        lambda mm, xx, c: tc.occlusion(mm, xx, c, **OCCLUSION).pixels, m, x, t)),
    # controls: maps that do not look at the model at all
    "input": (None, lambda tc, m, x, t, seed: x.sum(-1)),
    "edges": (None, lambda tc, m, x, t, seed: sobel(x.sum(-1))),
}
CONTROLS = ("input", "edges")


def available(names=None):
    """``({name: f}, {name: note})``: the entries of :data:`MAPS` this tinyconv can compute,
    and why the others are skipped."""
    tc = import_module("tinyconv")
    names = list(MAPS) if names is None else names
    found, skipped = {}, {}
    for name in names:
        if name not in MAPS:
            raise ValueError(f"methods: expected names from {list(MAPS)}, got {name!r}")
        needs, f = MAPS[name]
        if needs is None or getattr(tc, needs, None) is not None:
            found[name] = f
        else:
            skipped[name] = f"tinyconv.{needs} is not in this version; skipped"
    return found, skipped


def compute_maps(model, x, target, methods, seed=0):
    """``{name: (N, H, W) float64}`` for every method of ``methods`` (from :func:`available`)."""
    tc = import_module("tinyconv")
    return {name: np.asarray(f(tc, model, x, target, seed), np.float64)
            for name, f in methods.items()}


def summary(values):
    """``{"mean", "se", "n"}`` of ``(N,)`` values, ignoring NaN (undefined similarities)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "se": se, "n": int(v.size)}


def compare(reference, other, mask, metrics=METRICS):
    """``{method: {metric: {region: summary}}}`` between two dicts of maps, for each of
    ``metrics`` (``{name: f}``, by default every one of :data:`METRICS`)."""
    return {name: {metric: {"whole": summary(f(reference[name], other[name], None)),
                            "digit": summary(f(reference[name], other[name], mask))}
                   for metric, f in metrics.items()}
            for name in reference}


def _by_step(steps):
    """``[{method: {metric: {region: summary}}}]`` per step ->
    ``{method: {metric: {region: {"mean": [...], "se": [...], "n": [...]}}}}`` (one entry per
    step; ``n`` counts the digits where the similarity is defined, e.g. not a constant map)."""
    first = steps[0]
    return {m: {k: {r: {s: [step[m][k][r][s] for step in steps] for s in ("mean", "se", "n")}
                    for r in REGIONS} for k in first[m]} for m in first}


def train_on_permuted_labels(model, X, y, n_train=300, epochs=40, lr=3e-3, memorised=0.99,
                             seed=0, log=None):
    """Data randomisation (Adebayo et al. 2018, §3.2): ``model``'s architecture, freshly
    initialised, trained with Adam on the first ``n_train`` digits with their labels permuted,
    until its accuracy on them reaches ``memorised`` or ``epochs`` run out.

    Returns
    -------
    ``(model, record)``; record holds ``n_train``, ``epochs`` run, ``train_accuracy`` (on the
    permuted labels) and ``seconds``.
    """
    fresh = randomize(model, parameter_layers(model), seed)
    rng = np.random.default_rng(seed)
    Xs, ys = X[:n_train], rng.permutation(y[:n_train])
    shuffles = rng.integers(0, 2 ** 31, size=epochs)           # one shuffling seed per epoch
    optimizer = Adam(fresh, lr=lr)
    t0, accuracy, epoch = time.perf_counter(), 0.0, 0
    for epoch in range(1, epochs + 1):
        fit(fresh, Xs, ys, epochs=1, batch_size=32, optimizer=optimizer,
            seed=int(shuffles[epoch - 1]), progress=False)
        accuracy = evaluate(fresh, Xs, ys)["accuracy"]
        if log:
            log(f"permuted labels: epoch {epoch}, train accuracy {accuracy:.3f}")
        if accuracy >= memorised:
            break
    return fresh, {"n_train": int(len(ys)), "epochs": epoch, "lr": lr,
                   "train_accuracy": accuracy, "seconds": time.perf_counter() - t0}


def recovery(models, x, target, seed=0):
    """Image recovery (Nie et al. 2018): for each ``(label, model)`` and each backward rule,
    the Pearson correlation of ``|map|`` with the input, and between the signed maps of the
    class ``target`` and of the class ``(target + 1) mod K`` (two different targets)."""
    tc = import_module("tinyconv")
    out = {}
    for label, model in models.items():
        K = n_classes(model, "recovery")
        other = (target + 1) % K
        out[label] = {}
        for rule in ("gradient", "deconvnet", "guided"):
            f = _rule(rule)
            a, b = f(tc, model, x, target, seed), f(tc, model, x, other, seed)
            image = x.sum(-1)
            out[label][rule] = {
                "input_correlation": summary([pearson(np.abs(m).ravel(), im.ravel())
                                              for m, im in zip(a, image, strict=True)]),
                "class_correlation": summary([pearson(u.ravel(), v.ravel())
                                              for u, v in zip(a, b, strict=True)])}
    return out


def sanity_checks(model, x, labels, X_train=None, y_train=None, methods=None, seed=0,
                  train=None, grid_example=0, log=None, metrics=None):
    """Run every check; return a JSON-able dict of every number (and the cascade grid).

    Parameters
    ----------
    model : the trained :class:`~tinyconv.model.Sequential` (class scores at the output).
    x : (N, H, W, C_0) held-out images; labels : (N,) their classes (the maps explain these).
    X_train, y_train : training digits for data randomisation (None: skip it).
    methods : names of :data:`MAPS` (None: all); seed : seeds randomisation and SmoothGrad.
    train : keyword arguments for :func:`train_on_permuted_labels`.
    grid_example : which example the cascade grid shows.
    log : ``f(str)`` for progress lines (None: stderr).
    metrics : names of :data:`~tinyconv.similarity.METRICS` to measure the randomisations by
        (None: all; SSIM and HOG cost most, and a figure of Spearman alone needs only it).

    Returns
    -------
    dict of plain numbers, lists and dicts: ``config``; ``cascade`` and ``independent``
    (``layers`` and ``methods[method][metric][region] = {"mean": [...], "se": [...],
    "n": [...]}``, one entry per step; ``n`` digits had a defined value); ``resemblance``
    (Spearman of ``|map|`` with each control);
    ``grid`` (one ``(H, W)`` map per method and column, for the figure);
    ``data_randomization`` (with training digits); ``recovery``; ``faithfulness``.
    """
    log = log or (lambda text: print(f"sanity: {text}", file=sys.stderr, flush=True))
    x = check_array(x, "x", ndim=4)
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected ({len(x)},) ints, got {labels.dtype} {labels.shape}")
    grid_example = check_int(grid_example, "grid_example", minimum=0, maximum=len(x) - 1)
    seed = check_int(seed, "seed", minimum=0)
    found, skipped = available(methods)
    unknown = [m for m in metrics or () if m not in METRICS]
    if unknown or (metrics is not None and not metrics):
        raise ValueError(f"metrics: expected names from {list(METRICS)}, got {metrics!r}")
    measures = METRICS if metrics is None else {m: METRICS[m] for m in metrics}
    mask = x.sum(-1) > 0                                        # the digit's own pixels
    t0 = time.perf_counter()

    def maps_of(m, what):
        t = time.perf_counter()
        maps = compute_maps(m, x, labels, found, seed)
        log(f"{what}: {len(found)} maps of {len(x)} digits in {time.perf_counter() - t:.1f} s")
        return maps

    trained = maps_of(model, "trained model")
    controls = {c: MAPS[c][1](None, model, x, labels, seed) for c in CONTROLS}
    steps = cascade(model, seed)
    cascade_maps = [maps_of(m, f"cascade down to {name}") for name, m in steps]
    # layer l's random weights are the same in every schedule (seeded by l), so the top
    # layer alone is the cascade's first step
    independent_maps = [cascade_maps[0]] + [
        maps_of(randomize(model, [name], seed), f"only {name} randomised")
        for name, _ in steps[1:]]
    result = {
        "config": {"examples": len(x), "seed": seed, "methods": list(found),
                   "skipped": skipped, "metrics": list(measures), "regions": list(REGIONS),
                   "smoothgrad_n": SMOOTHGRAD_N, "ig_steps": IG_STEPS, "occlusion": OCCLUSION,
                   "deletion": "steps of 28 pixels onto zeros",
                   "insertion": "steps of 28 pixels onto a blur (sigma 2)",
                   "held_out_accuracy": evaluate(model, x, labels)["accuracy"]},
        "cascade": {"layers": [n for n, _ in steps],
                    "methods": _by_step([compare(trained, m, mask, measures)
                                        for m in cascade_maps])},
        "independent": {"layers": [n for n, _ in steps],
                        "methods": _by_step([compare(trained, m, mask, measures)
                                             for m in independent_maps])},
        "resemblance": {name: {c: {r: summary(METRICS["spearman_abs"](
            trained[name], controls[c], None if r == "whole" else mask)) for r in REGIONS}
            for c in CONTROLS} for name in found},
        "grid": {"example": grid_example, "label": int(labels[grid_example]),
                 "image": x[grid_example].sum(-1).round(4).tolist(),
                 "columns": ["trained"] + [n for n, _ in steps],
                 "maps": {name: [np.asarray(m[name][grid_example], np.float32).tolist()
                                 for m in [trained, *cascade_maps]] for name in found}},
    }
    if X_train is not None:
        X_train = check_array(X_train, "X_train", ndim=4)
        if y_train is None or np.shape(y_train) != (len(X_train),):
            raise ValueError(f"y_train: expected ({len(X_train)},) labels of X_train, got "
                             f"{None if y_train is None else np.shape(y_train)}")
        random_model, record = train_on_permuted_labels(model, X_train, y_train, seed=seed,
                                                        log=log, **(train or {}))
        record["held_out_accuracy"] = evaluate(random_model, x, labels)["accuracy"]
        log(f"permuted labels: {record}")
        result["data_randomization"] = {
            **record, "methods": compare(trained, maps_of(random_model, "permuted-label model"),
                                         mask, measures)}
    untrained = steps[-1][1]                   # every parameter layer re-drawn: untrained
    t = time.perf_counter()
    result["recovery"] = recovery({"trained": model, "untrained": untrained}, x, labels, seed)
    log(f"image recovery in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    result["faithfulness"] = faithfulness(model, x, labels, trained, seed)
    log(f"deletion and insertion in {time.perf_counter() - t:.1f} s")
    result["config"]["seconds"] = time.perf_counter() - t0
    log(f"done in {result['config']['seconds']:.0f} s")
    return result


def faithfulness(model, x, labels, maps, seed=0):
    """Deletion (onto zeros) and insertion (onto a blurred copy) for every map plus a random
    order: ``{"deletion"|"insertion": {method: {"auc": summary, "curve": mean p(c)}}}``."""
    maps = {**maps, "random": random_maps(x.shape[:3], seed)}
    if "edges" not in maps:
        maps["edges"] = sobel(x.sum(-1))
    out = {"fractions": None, "deletion": {}, "insertion": {}}
    for kind, run in (("deletion", deletion), ("insertion", insertion)):
        for name, m in maps.items():
            c = run(model, x, m.astype(np.float64), labels)
            out["fractions"] = c.fractions.tolist()
            out[kind][name] = {"auc": summary(c.auc), "curve": c.scores.mean(0).tolist()}
    return out
