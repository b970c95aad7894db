"""Does a model teach? Four numbers that say whether its pictures show what the lecture says.

The lecture's first claim about a trained CNN is that layer 1 finds lines, edges and
checkerboards, and that the deconvnet projection of a deeper unit (Zeiler & Fergus 2014,
Sec. 2.1 and Fig. 2) looks like the strokes that drive it. Both are only *visible* if the
filters and the projections are smooth at the scale of a pixel: a filter that barely left its
random initialisation, or a projection that is salt-and-pepper noise, teaches nothing. So:

- **conv1 filter HF share** (median over every ``kh x kw`` filter slice ``W[:, :, c, k]``):
  the share of a filter's energy that a 3x3 box blur removes, :func:`hf_share`.
- **deconvnet projection HF share at conv2 and conv3** (median over the projections of the
  top-9 maximally activating held-out digits of every 4th feature of conv2 and every 8th of
  conv3, each cropped to the unit's receptive field), :func:`projection_hf_shares`.
- **weak conv1 filters**: how many have a norm below 10 % of the largest (dead filters show
  as blank tiles), :func:`weak_filters`.
- **held-out accuracy** on the 1,000 bundled test digits: teaching must cost no accuracy.

Calibration of the HF share (5x5 filters, see the tests): He-initialised random filters
give about 0.75-0.80, a smooth edge about 0.02, a Gabor of wavelength 5 px about 0.25.

Usage::

    python scripts/teaching_measures.py [MODEL.npz] [--json]

``MODEL`` defaults to the shipped ``tinyconv/data/mnist_cnn.npz``; the exit status is 0 when
every target of :data:`TARGETS` is met, 1 otherwise.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import tinyconv as tc

SHIPPED = Path(__file__).resolve().parent.parent / "tinyconv" / "data" / "mnist_cnn.npz"

# measure -> (comparison, bound): what a model must reach for its figures to teach
TARGETS = {
    "filter_hf": ("<=", 0.35),
    "projection_hf_conv2": ("<=", 0.30),
    "projection_hf_conv3": ("<=", 0.30),
    "weak_filters": ("<=", 2),
    "accuracy": (">=", 0.98),
}

# layer -> take every n-th feature of it for the projection measure
PROJECTION_LAYERS = {"conv2": 4, "conv3": 8}


def box_blur(images):
    """3x3 box blur (the mean of each pixel's 3x3 neighbourhood), edges replicated.

    Parameters
    ----------
    images : (..., H, W) array; the blur acts on the last two axes.

    Returns
    -------
    (..., H, W) float64 array.

    Notes
    -----
    Boundary: the image is padded by one pixel on each side with copies of its border pixels
    (``np.pad(mode="edge")``, scipy's ``"nearest"``; for a 3x3 window the same as mirroring
    with the border pixel repeated). So a constant or a linear ramp across a filter is kept
    almost whole, and a smooth edge that runs off the filter's border is not mistaken for
    high frequency, as it would be with zero padding (a 5x5 ``tanh`` edge would then lose
    ~0.2 of its energy instead of ~0.02).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2:
        raise ValueError(f"images: expected an array (..., H, W), got shape {images.shape}")
    H, W = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(1, 1), (1, 1)]
    padded = np.pad(images, pad, mode="edge")                     # (..., H + 2, W + 2)
    return sum(padded[..., dr:dr + H, dc:dc + W] for dr in range(3) for dc in range(3)) / 9


def hf_share(images):
    """The share of each image's energy that a 3x3 box blur removes.

    ``||f - blur(f)||^2 / ||f||^2`` with :func:`box_blur` (edges replicated): near 0 for a
    smooth pattern (an edge, a blob, a thick stroke), near 0.8 for white noise, and up to ~1
    for a checkerboard at the pixel scale.

    Parameters
    ----------
    images : (..., H, W) array, e.g. conv1 filters ``(C_in * C_out, kh, kw)``.

    Returns
    -------
    (...) float64 array of shares; NaN where an image is all zeros (no energy to share).
    """
    images = np.asarray(images, dtype=np.float64)
    energy = (images ** 2).sum(axis=(-2, -1))
    removed = ((images - box_blur(images)) ** 2).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(energy > 0, removed / energy, np.nan)


def conv_filters(model, layer="conv1"):
    """The filters of a conv layer as images: ``W`` (kh, kw, C_in, C_out) HWIO ->
    (C_out, C_in, kh, kw), one ``kh x kw`` image per (output feature k, input channel)."""
    l = model.index(layer)
    W = model.layers[l - 1].params.get("W")
    if W is None or W.ndim != 4:
        raise ValueError(f"layer: expected a conv layer with HWIO weights, got {layer!r}")
    return np.transpose(W, (3, 2, 0, 1))


def filter_hf_shares(model, layer="conv1"):
    """:func:`hf_share` of every ``kh x kw`` filter slice of ``layer`` -> (C_out * C_in,)."""
    filters = conv_filters(model, layer)
    return hf_share(filters.reshape(-1, *filters.shape[2:]))


def weak_filters(model, layer="conv1", fraction=0.1):
    """How many features ``k`` of ``layer`` have a filter norm ``||W[..., k]||`` below
    ``fraction`` of the largest (blank tiles in a picture of the filters)."""
    norms = np.sqrt((conv_filters(model, layer).astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    return int((norms < fraction * norms.max()).sum())


def projection_hf_shares(model, X, layer, every, top=9, rule="deconvnet"):
    """HF shares of the projections of the strongest units of every ``every``-th feature.

    For each feature ``k = 0, every, 2 every, ...`` of ``layer``: the ``top`` examples of
    ``X`` with the largest ``max_idx y_(l),idx,k`` (``tc.max_activating``), each projected
    from its strongest location ``idx`` back to the input (``tc.project``, Zeiler & Fergus
    2014, Sec. 2.1), cropped to that unit's receptive field (``tc.receptive_field(...).box``,
    clipped to the image), and measured by :func:`hf_share`.

    Parameters
    ----------
    X : (N, H, W, 1) float images; layer : a conv layer's name or number ``l``.
    every : int >= 1; top : examples per feature; rule : ``tc.project``'s rule.

    Returns
    -------
    (K * top,) float64 shares, ``K = ceil(C_l / every)``, feature by feature.
    """
    C = model.output_shapes[model.index(layer)][-1]
    features = np.arange(0, C, every)
    best = tc.max_activating(model, X, layer, k=features, top=top)
    field = tc.receptive_field(model, layer)
    shares = []
    for k, indices, locations in zip(features, best.indices, best.locations, strict=True):
        projections = tc.project(model, X[indices], layer, int(k), idx=locations, rule=rule)
        for projection, (row, col) in zip(projections, locations, strict=True):
            r0, r1, c0, c1 = field.box(int(row), int(col))
            shares.append(hf_share(projection[r0:r1, c0:c1, :].sum(axis=-1)))
    return np.array(shares)


def measure(model, X=None, y=None):
    """The four teaching measures of an MNIST model.

    Parameters
    ----------
    model : a :class:`~tinyconv.Sequential` with conv layers named conv1, conv2, conv3.
    X, y : held-out images (N, 28, 28, 1) float and labels (N,); default the 1,000 bundled
        test digits.

    Returns
    -------
    dict: ``filter_hf`` (median over conv1's filters), ``projection_hf_conv2``,
    ``projection_hf_conv3`` (medians), ``weak_filters`` (int), ``accuracy`` (in [0, 1]).
    """
    if X is None:
        images, y = tc.load_mnist("bundled-test")
        X = tc.to_float(images)
    result = {"filter_hf": float(np.nanmedian(filter_hf_shares(model, "conv1")))}
    for layer, every in PROJECTION_LAYERS.items():
        result[f"projection_hf_{layer}"] = float(
            np.nanmedian(projection_hf_shares(model, X, layer, every)))
    result["weak_filters"] = weak_filters(model, "conv1")
    result["accuracy"] = float(tc.evaluate(model, X, y)["accuracy"])
    return result


def failures(result):
    """The measures of ``result`` that miss their :data:`TARGETS`, as readable lines."""
    missed = []
    for name, (op, bound) in TARGETS.items():
        value = result[name]
        ok = value <= bound if op == "<=" else value >= bound
        if not ok:
            missed.append(f"{name} = {value:.4g}, target {op} {bound:g}")
    return missed


def format_table(result):
    lines = [f"{'measure':<22}{'value':>8}  {'target':<8}  met"]
    for name, (op, bound) in TARGETS.items():
        value = result[name]
        ok = value <= bound if op == "<=" else value >= bound
        shown = f"{value:>8d}" if isinstance(value, int) else f"{value:>8.3f}"
        lines.append(f"{name:<22}{shown}  {op} {bound:<5g}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=str(SHIPPED), metavar="MODEL",
                        help="a saved model .npz (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print the measures as JSON")
    args = parser.parse_args(argv)
    result = measure(tc.load(args.model))
    print(json.dumps(result, indent=2) if args.json else f"{args.model}\n{format_table(result)}")
    return 0 if not failures(result) else 1


if __name__ == "__main__":
    sys.exit(main())
