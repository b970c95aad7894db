"""Figure 8: max-pooling switches and unpooling through them (Zeiler & Fergus 2014, §2.1)."""

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from ..layers import MaxPool2D
from ._style import box


def pooling_switches(x=None, size=2):
    """A worked example of max-pooling with switches and of unpooling through them.

    ``x`` is a small ``(H, W)`` feature map (default: 6×6, the numbers 1…36 shuffled with a
    fixed seed, so there are no ties). :class:`~tinyconv.MaxPool2D` pools it, records in
    ``switches`` where each maximum was, and its ``backward`` — the deconvnet's unpooling
    (Zeiler & Fergus 2014, §2.1) — puts each pooled value back at its switch, zeros elsewhere.
    """
    if x is None:
        x = np.random.default_rng(0).permutation(36).reshape(6, 6) + 1.0
    x = np.asarray(x, dtype=np.float64)
    pool = MaxPool2D(size)
    pooled = pool.forward(x[None, :, :, None])                       # (1, H', W', 1)
    switches = pool.switches[0, :, :, 0]                             # flat row * W + col
    unpooled = pool.backward(pooled)[0, :, :, 0]
    H, W = x.shape
    pooled = pooled[0, :, :, 0]
    wins = np.divmod(switches, W)                                    # (rows, cols) of maxima

    fig = Figure(figsize=(12.5, 3.9), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=(H, pooled.shape[0], pooled.shape[0], H))
    norm = mpl.colors.Normalize(0, x.max())

    def grid(ax, a, title, fmt="{:g}", cmap="Blues"):
        im = ax.imshow(a, cmap=cmap, norm=norm)
        for (r, c), v in np.ndenumerate(a):
            text = fmt(v) if callable(fmt) else fmt.format(v)
            ax.text(c, r, text, ha="center", va="center", fontsize=10,
                    color="white" if cmap == "Blues" and norm(v) > 0.6 else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
        ax.tick_params(labelsize=7)
        return im

    im = grid(axes[0], x, f"(a) feature map {H}×{W}, {size}×{size} windows")
    for r in range(0, H + 1, size):
        axes[0].axhline(r - 0.5, color="black", linewidth=1.5)
    for c in range(0, W + 1, size):
        axes[0].axvline(c - 0.5, color="black", linewidth=1.5)
    grid(axes[1], pooled, "(b) max-pooled")
    # the switches are coordinates, not values: a plain table, no colour scale
    grid(axes[2], np.zeros_like(pooled),
         "(c) switches: (row, col)\nof each max in (a)", fmt=lambda v: "",
         cmap=mpl.colors.ListedColormap(["white"]))
    for r in range(pooled.shape[0] + 1):
        axes[2].axhline(r - 0.5, color="0.6", linewidth=0.8)
    for c in range(pooled.shape[1] + 1):
        axes[2].axvline(c - 0.5, color="0.6", linewidth=0.8)
    for (r, c), s in np.ndenumerate(switches):
        axes[2].text(c, r, f"({s // W}, {s % W})", ha="center", va="center", fontsize=9,
                     family="monospace", color="black")
    grid(axes[3], unpooled, "(d) unpooled through\nthe switches")
    for ax in (axes[0], axes[3]):
        for r, c in zip(*wins, strict=True):
            for rr, cc in zip(r.ravel(), c.ravel(), strict=True):
                box(ax, (rr, rr + 1, cc, cc + 1), "#d62728", linewidth=2.2)
    fig.colorbar(im, ax=[axes[0], axes[1], axes[3]], shrink=0.8, label="value (a, b, d)")
    fig.suptitle("Max-pooling keeps the largest value of each window and records where it "
                 "was (red: the switches);\nunpooling puts each value back there, zeros "
                 "elsewhere (the first max in row-major order wins a tie)")
    return fig
