"""Figure 6: occlusion sensitivity of one image (Zeiler & Fergus 2014, Fig. 7).

Draws :class:`~tinyconv.Occlusion` results that the caller computed with
:func:`~tinyconv.occlusion`.
"""

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ._style import CHANGE, CLASS_COLOURS, INK, MAGNITUDE, grey

# The relative changes of panels b, c and e share one fixed scale, so that a 1 % drop looks
# pale in every tour and a 50 % drop looks strong: -100 % .. +100 %, clipped beyond.
CHANGE_LIMIT = 1.0


def occlusion_figure(x, label, sweeps, feature, argmax, fmap, field, k):
    """Occlusion sensitivity of one image (Zeiler & Fergus 2014, Fig. 7).

    Panels: (a) the image; (b, c) the relative decrease of ``p(label)`` when a square of each
    of two sizes, set to 0 (the background of a digit), covers a pixel
    (:attr:`Occlusion.pixels`: mean over the windows covering it); (d) the post-ReLU feature
    map ``k`` of a layer (e.g. the strongest on ``x``), each unit drawn at the centre of its
    receptive field; (e) the relative decrease of its total activation
    ``sum_idx y_(l),idx,k`` (non-negative after a ReLU); (f) the most probable class with the
    square at each position, read from :attr:`Occlusion.occluded`.

    Colours: (b, c, e) share one fixed diverging scale, ``-100 % .. +100 %`` (red: the score
    drops, blue: it rises, white: no change); (d) a sequential scale from white at 0; (f) one
    categorical colour per class, named in a legend (the label's class in light grey).

    Parameters
    ----------
    x : (H, W, C_0) one image; label : its class.
    sweeps : two :class:`~tinyconv.Occlusion` of ``x`` with target ``label``,
        ``relative=True``, one per window size (panels b, c).
    feature : :class:`~tinyconv.Occlusion` of ``x`` with target ``(layer, k)``,
        ``relative=True`` (panel e), ``layer`` the one ``fmap`` comes from.
    argmax : :class:`~tinyconv.Occlusion` of ``x`` whose target returns the argmax class
        (panel f).
    fmap : (H_l, W_l) the map ``y_(l),idx,k`` of ``x`` (panel d), non-negative (after a ReLU).
    field : the layer's :class:`~tinyconv.ReceptiveField`; k : the feature index shown.
    """
    if len(sweeps) != 2:
        raise ValueError(f"sweeps: expected two occlusion results (two window sizes), got "
                         f"{len(sweeps)}")
    fmap = np.asarray(fmap)
    if fmap.ndim != 2 or np.nanmin(fmap) < 0:
        raise ValueError("fmap: expected a non-negative (H_l, W_l) map (a feature map after "
                         f"its ReLU), got shape {fmap.shape} with minimum {np.nanmin(fmap):g}")
    sizes = [s.size[0] for s in sweeps]
    p = float(sweeps[0].original)
    size = argmax.size[0]
    layer = field.name
    outline = grey(x)
    change = mpl.colors.Normalize(-CHANGE_LIMIT, CHANGE_LIMIT)

    fig = Figure(figsize=(11.5, 7.6), layout="constrained")
    axes = fig.subplots(2, 3)
    a = axes[0, 0]
    a.imshow(outline, cmap=INK, vmin=0, vmax=1)
    a.set_title(f"(a) input, p({label}) = {p:.3f}", fontsize=10)
    for ax, letter, s, sweep in zip(axes[0, 1:], "bc", sizes, sweeps, strict=True):
        im = ax.imshow(sweep.pixels, cmap=CHANGE, norm=change)
        peak = float(np.nanmax(sweep.pixels))
        ax.set_title(f"({letter}) {s}×{s} square: drop in p({label})\n"
                     f"largest drop {peak:.0%}", fontsize=10)
    # (d) the map drawn over the image: each unit a jump-sized cell at its field's centre
    (cy, cx), (sy, sx) = field.center(0, 0), field.jump
    H_l, W_l = fmap.shape
    d = axes[1, 0].imshow(fmap, cmap=MAGNITUDE, vmin=0, vmax=float(fmap.max()) or 1.0,
                          extent=(cx - sx / 2, cx + (W_l - 0.5) * sx,
                                  cy + (H_l - 0.5) * sy, cy - sy / 2), interpolation="nearest")
    fig.colorbar(d, ax=axes[1, 0], shrink=0.85, label=f"y_({layer}),idx,{k} (0 = white)")
    axes[1, 0].set_title(f"(d) strongest map of {layer}: k = {k}\n"
                         f"total Σ_idx = {float(feature.original):.3g}", fontsize=10)
    axes[1, 1].imshow(feature.pixels, cmap=CHANGE, norm=change)
    axes[1, 1].set_title(f"(e) {size}×{size} square: drop in Σ_idx of map {k}\n"
                         f"largest drop {float(np.nanmax(feature.pixels)):.0%}", fontsize=10)
    fig.colorbar(im, ax=[axes[0, 1], axes[0, 2], axes[1, 1]], shrink=0.7, extend="both",
                 format=mpl.ticker.PercentFormatter(1.0),
                 label="relative decrease, one scale for b, c, e\n(red: drop, blue: rise)")

    # (f) one cell per window position, drawn at the window's centre, in input pixels
    ax = axes[1, 2]
    labels = argmax.occluded.astype(int)
    st = argmax.stride
    half = (size - 1) / 2
    extent = (argmax.cols[0] + half - st[1] / 2, argmax.cols[-1] + half + st[1] / 2,
              argmax.rows[-1] + half + st[0] / 2, argmax.rows[0] + half - st[0] / 2)
    colours = class_colours(label)
    ax.imshow(labels, cmap=mpl.colors.ListedColormap(colours), vmin=-0.5, vmax=9.5,
              extent=extent, interpolation="nearest")
    present = np.unique(labels)
    ax.legend(handles=[Patch(facecolor=colours[c], edgecolor="black", linewidth=0.5,
                             label=f"{c}" + (" (the label)" if c == label else ""))
                       for c in present],
              title="predicted class", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize=8, title_fontsize=8, frameon=False)
    ax.set_xlim(-0.5, x.shape[1] - 0.5)
    ax.set_ylim(x.shape[0] - 0.5, -0.5)
    ax.set_title(f"(f) {size}×{size} square: predicted class", fontsize=10)
    for ax in axes.flat[1:]:
        ax.contour(outline, levels=[0.5], colors="black", linewidths=0.7)
    for ax in axes.flat:
        ax.set_xlabel("column (px)", fontsize=8)
        ax.set_ylabel("row (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Occlusion: erase a square of the digit (set it to 0, the background) at "
                 "every position and watch the output\n(b, c, e: each pixel the mean over the "
                 "squares covering it, one scale ±100 %; f: each square at its centre; "
                 "outline: the digit)")
    return fig


def class_colours(label):
    """Ten categorical colours, one per class 0..9, with ``label``'s class in light grey (the
    unchanged prediction is the background of panel f); none is the red of "drop"."""
    colours = list(CLASS_COLOURS)
    colours[int(label)] = "#dddddd"
    return colours
