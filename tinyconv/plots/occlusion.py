"""Figure 6: occlusion sensitivity of one image (Zeiler & Fergus 2014, Fig. 7).

Draws :class:`~tinyconv.Occlusion` results that the caller computed with
:func:`~tinyconv.occlusion`.
"""

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from ._style import DIVERGING, INK, grey


def occlusion_figure(x, label, sweeps, feature, argmax, fmap, field, k):
    """Occlusion sensitivity of one image (Zeiler & Fergus 2014, Fig. 7).

    Panels: (a) the image; (b, c) the relative decrease of ``p(label)`` when a square of each
    of two sizes, set to 0 (the background of a digit), covers a pixel
    (:attr:`Occlusion.pixels`: mean over the windows covering it); (d) the feature map ``k``
    of a layer (e.g. its strongest on ``x``), each unit drawn at the centre of its receptive
    field; (e) the relative decrease of its total activation; (f) the most probable class with
    the square at each position, read from :attr:`Occlusion.occluded`.

    Parameters
    ----------
    x : (H, W, C_0) one image; label : its class.
    sweeps : two :class:`~tinyconv.Occlusion` of ``x`` with target ``label``,
        ``relative=True``, one per window size (panels b, c).
    feature : :class:`~tinyconv.Occlusion` of ``x`` with target ``(layer, k)``,
        ``relative=True`` (panel e).
    argmax : :class:`~tinyconv.Occlusion` of ``x`` whose target returns the argmax class
        (panel f).
    fmap : (H_l, W_l) the map ``y_(l),idx,k`` of ``x`` (panel d).
    field : the layer's :class:`~tinyconv.ReceptiveField`; k : the feature index shown.
    """
    if len(sweeps) != 2:
        raise ValueError(f"sweeps: expected two occlusion results (two window sizes), got "
                         f"{len(sweeps)}")
    sizes = [s.size[0] for s in sweeps]
    p = float(sweeps[0].original)
    size = argmax.size[0]
    layer = field.name
    outline = grey(x)

    fig = Figure(figsize=(11.5, 7.4), layout="constrained")
    axes = fig.subplots(2, 3)
    a = axes[0, 0]
    a.imshow(outline, cmap=INK, vmin=0, vmax=1)
    a.set_title(f"(a) input, p({label}) = {p:.3f}", fontsize=10)
    for ax, letter, s, sweep in zip(axes[0, 1:], "bc", sizes, sweeps, strict=True):
        vmax = float(np.nanmax(np.abs(sweep.pixels))) or 1.0
        im = ax.imshow(sweep.pixels, cmap=DIVERGING, vmin=-vmax, vmax=vmax)
        fig.colorbar(im, ax=ax, shrink=0.85, label=f"relative decrease of p({label})")
        ax.set_title(f"({letter}) {s}×{s} square: drop in p({label})", fontsize=10)
    # (d) the map drawn over the image: each unit a jump-sized cell at its field's centre
    y = fmap
    (cy, cx), (sy, sx) = field.center(0, 0), field.jump
    im = axes[1, 0].imshow(y, cmap="viridis", extent=(
        cx - sx / 2, cx + (y.shape[1] - 0.5) * sx, cy + (y.shape[0] - 0.5) * sy, cy - sy / 2))
    fig.colorbar(im, ax=axes[1, 0], shrink=0.85, label=f"y_({layer}),idx,{k}")
    axes[1, 0].set_title(f"(d) strongest map of {layer}: k = {k}", fontsize=10)
    vmax = float(np.nanmax(np.abs(feature.pixels))) or 1.0
    im = axes[1, 1].imshow(feature.pixels, cmap=DIVERGING, vmin=-vmax, vmax=vmax)
    fig.colorbar(im, ax=axes[1, 1], shrink=0.85, label=f"relative decrease of Σ_idx y_({layer})")
    axes[1, 1].set_title(f"(e) {size}×{size} square: drop in map {k}", fontsize=10)

    # (f) one cell per window position, drawn at the window's centre, in input pixels
    ax = axes[1, 2]
    labels = argmax.occluded.astype(int)
    st = argmax.stride
    half = (size - 1) / 2
    extent = (argmax.cols[0] + half - st[1] / 2, argmax.cols[-1] + half + st[1] / 2,
              argmax.rows[-1] + half + st[0] / 2, argmax.rows[0] + half - st[0] / 2)
    present = np.unique(labels)                       # one colour per class that occurs
    colours = mpl.colors.ListedColormap([mpl.colormaps["tab10"](c) for c in present])
    im = ax.imshow(np.searchsorted(present, labels), cmap=colours, vmin=-0.5,
                   vmax=len(present) - 0.5, extent=extent, interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, shrink=0.85, ticks=range(len(present)),
                       label="predicted class")
    bar.set_ticklabels([str(c) for c in present])
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
                 "squares covering it; f: each square at its centre; outline: the digit)")
    return fig
