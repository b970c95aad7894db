"""Colours, scales and small drawing helpers shared by the figures of :mod:`tinyconv.plots`.

Signed values use a diverging map centred at 0 (``RdBu_r``: red positive, blue negative,
white 0), on a scale that is symmetric and, where panels are compared, shared and stated;
non-negative values use a sequential map that is white at 0 (``Purples``); classes use
categorical colours named in a legend; images of digits are ink on paper (``gray_r``).
"""

import matplotlib as mpl
import numpy as np
from matplotlib.patches import Rectangle

DIVERGING = "RdBu_r"
CHANGE = DIVERGING       # a signed change: red a drop of the score, blue a rise, white none
MAGNITUDE = "Purples"    # a non-negative quantity (a post-ReLU map): white at 0
# one colour per class 0..9 for categorical maps: no red and no blue, which mean
# "positive" / "negative" (or "drop" / "rise") everywhere else
CLASS_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                 "#a6761d", "#17becf", "#666666", "#bcbd22")
INK = mpl.colormaps["gray_r"].with_extremes(bad="white")
GAP = "#6f9fd8"   # the lines between the tiles of a mosaic
FIELD_COLOURS = ("#e41a1c", "#ff7f00", "#4daf4a", "#377eb8", "#984ea3", "#a65628", "#f781bf")
RULE_NAMES = {"gradient": "gradient", "deconvnet": "deconvnet", "guided": "guided backprop"}


def show_tiles(ax, images, cols=3, **imshow):
    """Draw ``(n, h, w)`` images as one ``cols``-wide mosaic on ``ax``, separated by thin
    lines (drawn in points, so equally thin for 5×5 and 24×24 patches)."""
    n, h, w = images.shape
    rows = -(-n // cols)
    mosaic = np.full((rows * h, cols * w), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    im = ax.imshow(mosaic, interpolation="nearest", **imshow)
    for r in range(1, rows):
        ax.axhline(r * h - 0.5, color=GAP, linewidth=1.5)
    for c in range(1, cols):
        ax.axvline(c * w - 0.5, color=GAP, linewidth=1.5)
    bare(ax)
    return im


def per_example_scale(a):
    """Divide each ``a[i]`` by its own ``max |a[i]|`` (left at 0 when it is all zeros)."""
    m = np.abs(a).reshape(len(a), -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
    return a / np.where(m > 0, m, 1)


def bare(ax):
    """No ticks on ``ax``."""
    ax.set_xticks([])
    ax.set_yticks([])


def box(ax, box, colour, label=None, **kw):
    """Draw the half-open input box ``(r0, r1, c0, c1)`` on image axes (pixel centres at ints)."""
    r0, r1, c0, c1 = box
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                           edgecolor=colour, label=label, **kw))


def grey(x):
    """An ``(H, W, C_0)`` image as one ``(H, W)`` plane: the channel, or the channels' mean."""
    return x[:, :, 0] if x.shape[-1] == 1 else x.mean(axis=-1)
