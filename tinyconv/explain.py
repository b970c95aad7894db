"""One image, every technique of the lecture: what ``tinyconv explain`` computes.

A user's own picture is first made to look like an MNIST digit — the input the shipped model
was trained on (LeCun et al. 1998, the MNIST page: "the digits were size-normalized to fit in
a 20x20 box while preserving their aspect ratio ... centered in a 28x28 image by computing the
center of mass of the pixels") — and then handed to each method:

* ``saliency``: ``tc.saliency`` (Simonyan et al. 2014, §3.1), ``|d y_(L),c / d x|``;
* ``gradient`` / ``deconvnet`` / ``guided``: ``tc.project`` of one unit ``y_(l),idx,k`` with
  that backward rule (Zeiler & Fergus 2014, §2.1; Springenberg et al. 2015);
* ``occlusion``: ``tc.occlusion`` (Zeiler & Fergus 2014, §4.2);
* ``maxact``: the unit's top-9 from the bundled held-out digits, ``tc.max_activating``
  (Zeiler & Fergus 2014, §4, Fig. 2) — the digits that drive your digit's strongest feature;
* and, when the package has them, ``tc.input_x_gradient``, ``tc.smoothgrad``,
  ``tc.integrated_gradients`` and ``tc.grad_cam``.

Every result records the call that computed it, so the user can repeat it in Python.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np

from .data import load_mnist, to_float
from .files import atomic_write
from .folders import staged_folder
from .layers import softmax
from .projection import project, saliency
from .units import check_feature, check_target, is_spatial, strongest_feature

#: Largest picture read, in pixels: a bigger one is refused from its header, before decoding.
MAX_PIXELS = 50_000_000
#: MNIST's geometry: the digit fits a 20x20 box inside the 28x28 image.
SIDE, BOX = 28, 20
CORE_METHODS = ("saliency", "gradient", "deconvnet", "guided", "occlusion", "maxact")
#: The methods after Zeiler & Fergus, each ``(N, H, W, C_0)`` or a result with that array.
AFTER_ZF_METHODS = ("input_x_gradient", "smoothgrad", "integrated_gradients", "grad_cam",
                    "guided_grad_cam")
FIGURE_NAME = re.compile(rf".+_({'|'.join(CORE_METHODS + AFTER_ZF_METHODS)})\.png")


def older_report_file(path):
    """Whether ``path`` is a file that explain wrote before folders had their record: a
    ``<stem>_<method>.png``, or a ``<stem>.json`` that reads as a report."""
    if FIGURE_NAME.fullmatch(path.name):
        return True
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"preprocessing", "methods"} <= set(report)


#: the report folder to :mod:`tinyconv.folders` (it gathers one report per image)
OUTPUT = dict(writer="explain", legacy=older_report_file)


def read_grey(path):
    """Read a picture file as grey levels.

    Parameters
    ----------
    path : a PNG, JPEG or any format Pillow reads; colour, grey, 1-bit, 8- or 16-bit.

    Returns
    -------
    grey : (H_in, W_in) float64 in [0, 1], 1 = white.
    notes : list of str, what was done to read it.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"image: {str(path)!r} is a directory, not a picture file")
    if not path.is_file():
        raise FileNotFoundError(f"image: no file at {str(path)!r}")
    try:
        with warnings.catch_warnings():
            # Pillow warns (or refuses) past its own bomb limit; we apply ours below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)          # reads the header only; pixels come at .load()
            W_in, H_in = im.size
            if W_in * H_in > MAX_PIXELS:
                raise ValueError(f"image: {str(path)!r} is {W_in}x{H_in} pixels "
                                 f"({W_in * H_in / 1e6:.0f} megapixels); the limit is "
                                 f"{MAX_PIXELS / 1e6:.0f} megapixels — scale it down first")
            im.load()
    except Image.DecompressionBombError as err:
        raise ValueError(f"image: {str(path)!r} is too large to decode safely ({err})") from None
    except UnidentifiedImageError:
        raise ValueError(f"image: {str(path)!r} is not a picture Pillow can read") from None
    except (OSError, SyntaxError) as err:   # truncated or corrupt data, found while decoding
        raise ValueError(f"image: {str(path)!r} is corrupt or truncated ({err})") from None
    notes = [f"read {path.name}: {W_in}x{H_in}, mode {im.mode}"]
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) grey: scale by the format's range, not Pillow's 8-bit clip
        a = np.asarray(im, dtype=np.float64)
        grey = a / (65535.0 if a.max() <= 65535 else a.max())
        notes.append("16-bit grey scaled to [0, 1]")
    elif im.mode == "F":                  # floating-point TIFFs: stretch to [0, 1]
        a = np.asarray(im, dtype=np.float64)
        grey = (a - a.min()) / max(np.ptp(a), 1e-12)
    else:
        if "A" in im.getbands() or im.mode == "P":
            # transparent pixels show the page they sit on: flatten onto white
            rgba = im.convert("RGBA")
            page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(page, rgba)
            notes.append("transparency flattened onto white")
        if im.mode != "L":
            notes.append(f"{im.mode} converted to grey (ITU-R 601 luma)")
        grey = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    return grey, notes


def to_mnist(grey):
    """Make a grey picture look like an MNIST digit: white on black, 28x28, the digit scaled
    into a 20x20 box (aspect kept) and placed so that its centre of mass is the centre.

    Parameters
    ----------
    grey : (H_in, W_in) float in [0, 1].

    Returns
    -------
    x : (28, 28) float32 in [0, 1]; notes : list of str, each step taken.
    """
    from PIL import Image

    grey = np.asarray(grey, dtype=np.float64)
    notes = []
    # the frame of the picture is its background: light frame = dark digit on light paper
    frame = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(frame) > 0.5:
        grey, frame = 1.0 - grey, 1.0 - frame
        notes.append("dark on light: inverted to white on black")
    background = np.median(frame)
    ink = np.clip(grey - background, 0, None)
    if ink.max() <= 0.05:
        raise ValueError("image: no digit found (the picture is one flat colour)")
    ink /= ink.max()
    notes.append(f"background {background:.2f} removed, contrast stretched to [0, 1]")
    rows, cols = np.nonzero(ink > 0.1)                        # the digit's bounding box
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    h2, w2 = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F")
                       .resize((w2, h2), Image.Resampling.LANCZOS if scale < 1
                               else Image.Resampling.BILINEAR), dtype=np.float64)
    small = np.clip(small, 0, 1)
    notes.append(f"digit cropped ({h}x{w}) and scaled by {scale:.3g} to {h2}x{w2}")
    # centre of mass of the small digit, then the offset that puts it at (13.5, 13.5)
    mass = small.sum()
    cy = (small.sum(axis=1) @ np.arange(h2)) / mass
    cx = (small.sum(axis=0) @ np.arange(w2)) / mass
    top = int(np.clip(round((SIDE - 1) / 2 - cy), 0, SIDE - h2))
    left = int(np.clip(round((SIDE - 1) / 2 - cx), 0, SIDE - w2))
    x = np.zeros((SIDE, SIDE))
    x[top:top + h2, left:left + w2] = small
    notes.append(f"placed at row {top}, column {left} of 28x28 so the centre of mass is central")
    return x.astype(np.float32), notes


def load_input(path):
    """``read_grey`` then ``to_mnist``: ``(x (1, 28, 28, 1) float32, notes)``."""
    grey, notes = read_grey(path)
    x, more = to_mnist(grey)
    return x[None, :, :, None], notes + more


def available_methods():
    """The method names explain offers: the lecture's first, then those after Zeiler & Fergus."""

    return list(CORE_METHODS) + list(AFTER_ZF_METHODS)


def choose_unit(model, x, layer=None, feature=None):
    """The unit the unit methods explain: ``(l, k)``.

    ``layer`` None means the class-score layer ``L`` (with ``k`` the target class, decided by
    the caller); otherwise ``k`` is ``feature`` or the example's strongest feature map of ``l``.
    """
    if layer is None:
        return len(model.layers), None
    l = model.index(layer)
    if l == 0:
        raise ValueError("layer: the input (layer 0) has no units to explain; pick l >= 1")
    if feature is None:
        return l, int(strongest_feature(model.forward(x, upto=l))[0])
    return l, check_feature(model, l, feature, name="feature")


def explain(model, x, methods=None, layer=None, feature=None, target=None, data=None,
            occlusion_size=4):
    """Run each method on one input.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential` with class scores ``y_(L)`` of shape (N, K).
    x : (1, H, W, C_0) input. methods : names from :func:`available_methods` (None: all).
    layer, feature : the unit ``y_(l),k`` for gradient / deconvnet / guided / maxact (None:
        the target class score). target : the class ``c`` (None: the predicted class).
    data : ``(X, labels)`` searched by ``maxact`` (None: the bundled held-out digits).

    Returns
    -------
    dict with ``prediction``, ``probabilities`` and ``results``: per method a dict with
    ``array`` (a map over the input, or for ``maxact`` the top-9 ``(9, r, r)`` patches),
    ``call`` (the Python that computed it) and method-specific fields.
    """
    import tinyconv as tc

    methods = available_methods() if methods is None else list(methods)
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise ValueError(f"method: expected some of {available_methods()}, got {unknown}")
    logits = model.forward(x)
    probabilities = softmax(logits.astype(np.float64))[0]
    c = int(check_target(target, logits)[0])
    l, k = choose_unit(model, x, layer, feature)
    k = c if k is None else k
    name = model.names[l]
    results = {}
    for method in methods:
        if method == "saliency":
            results[method] = {"array": saliency(model, x, c)[0],
                               "call": f"tc.saliency(model, x, target={c})"}
        elif method in ("gradient", "deconvnet", "guided"):
            a = project(model, x, l, k, rule=method)[0].sum(axis=-1)
            results[method] = {"array": a, "unit": [name, k], "call":
                               f"tc.project(model, x, {name!r}, {k}, rule={method!r})"}
        elif method == "occlusion":
            occ = tc.occlusion(model, x[0], c, occlusion_size, stride=1)
            results[method] = {"array": occ.pixels, "grid": occ.grid, "call":
                               f"tc.occlusion(model, x[0], {c}, {occlusion_size}, stride=1)"}
        elif method == "maxact":
            results[method] = maxact_neighbours(model, x, l, k, data)
        else:
            results[method] = after_zf_method(tc, method, model, x, c)
    return {"prediction": c, "probabilities": probabilities, "unit": [name, k],
            "results": results}


def maxact_neighbours(model, x, l, k, data=None):
    """The top-9 held-out digits (or their patches) for unit ``y_(l),k``, ``tc.max_activating``."""
    import tinyconv as tc

    if data is None:
        images, labels = load_mnist("bundled-test")
        data = (to_float(images), labels)
    X, labels = data
    ranking = tc.max_activating(model, X, l, k=k, top=9, progress=False)
    idx = ranking.indices[0]
    if is_spatial(model, l):
        field = tc.receptive_field(model, l)
        array = field.patches(X[idx], ranking.locations[0])[..., 0]
    else:
        array = X[idx][..., 0]
    name = model.names[l]
    return {"array": array, "indices": idx.tolist(), "labels": labels[idx].tolist(),
            "values": ranking.values[0].tolist(),
            "call": f"tc.max_activating(model, X_test, {name!r}, k={k}, top=9)"}


def after_zf_method(tc, method, model, x, c):
    """One of :data:`AFTER_ZF_METHODS` on ``x`` (1, H, W, C_0) for class ``c``: the map as
    an ``(H, W)`` array (channels summed) and the call that computed it. Grad-CAM and guided
    Grad-CAM use the last convolution; Grad-CAM shows its bilinear ``upsampled`` map."""
    from .units import conv_layers

    kwargs = {"target": c}
    if method in ("grad_cam", "guided_grad_cam"):
        kwargs["layer"] = model.names[conv_layers(model)[-1]]
    result = getattr(tc, method)(model, x, **kwargs)
    if method == "integrated_gradients":
        result = result.attributions
    elif method == "grad_cam":
        result = result.upsampled
    a = np.asarray(result, dtype=np.float64)[0]
    if a.ndim == 3:                                   # (H, W, C_0): sum the channels
        a = a.sum(axis=-1)
    text = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
    return {"array": a, "call": f"tc.{method}(model, x, {text})"}

def summary(a):
    """``{"shape", "min", "max", "mean"}`` of an array, for the JSON report."""
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "min": float(np.nanmin(a)), "max": float(np.nanmax(a)),
            "mean": float(np.nanmean(a))}


def write_report(explanation, x, notes, source, out, stem):
    """One PNG per method (``<stem>_<method>.png``) and ``<stem>.json`` in folder ``out``.

    The folder is updated whole (:func:`tinyconv.folders.staged_folder`, keeping the other
    images' reports): a run killed midway leaves the older report of ``stem``, never new
    PNGs beside the old JSON. A folder holding files explain did not write is refused.
    Returns the list of files written (in ``out``).
    """
    from .plots.explain import method_figure
    from .plots.writer import save_png

    out = Path(out)
    written = []
    with staged_folder(out, **OUTPUT, keep=True, name="out") as stage:
        for method, result in explanation["results"].items():
            fig = method_figure(x[0, :, :, 0], method, result, explanation["prediction"])
            save_png(fig, stage / f"{stem}_{method}.png", 100)
            written.append(out / f"{stem}_{method}.png")
        write_json(stage / f"{stem}.json", explanation, x, notes, source)
    written.append(out / f"{stem}.json")
    return written


def write_json(path, explanation, x, notes, source):
    """The JSON report of :func:`write_report`: what was done to the input, the prediction,
    and per method the call and the range of its map."""
    report = {"source": source, "preprocessing": notes,
              "prediction": explanation["prediction"],
              "probabilities": [round(float(p), 6) for p in explanation["probabilities"]],
              "unit": explanation["unit"], "input": summary(x),
              "methods": {m: {"call": r["call"], **summary(r["array"]),
                              **{key: r[key] for key in ("indices", "labels") if key in r}}
                          for m, r in explanation["results"].items()}}
    with atomic_write(path, "w") as f:
        json.dump(report, f, indent=2)
