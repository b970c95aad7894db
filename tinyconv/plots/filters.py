"""Figure 1: the learned filters of a convolution (Zeiler & Fergus 2014, Fig. 2, layer 1)."""

import numpy as np
from matplotlib.figure import Figure

from ..layers import Conv2D
from ..units import conv_layers
from ._style import DIVERGING, bare


def filters(model, layer=None, channel=0, cols=8):
    """The filters ``W[:, :, channel, k]`` of a convolution, one small image each.

    Zeiler & Fergus 2014, Fig. 2 (layer 1). One diverging scale, symmetric about 0 and shared
    by every filter, so that a filter's contrast can be compared with the others'.

    Parameters
    ----------
    layer : a Conv2D layer's name or number (default: the first convolution).
    channel : the input channel to show (MNIST has one).
    """
    layer = conv_layers(model)[0] if layer is None else layer
    l = model.index(layer)
    conv = model.layers[l - 1] if l > 0 else None
    if not isinstance(conv, Conv2D):
        raise ValueError(f"layer: expected a Conv2D layer, got {model.names[l]!r}")
    W = conv.params["W"][:, :, channel, :]                          # (kh, kw, C_out)
    vmax = float(np.abs(W).max()) or 1.0
    C_out = W.shape[-1]
    rows = -(-C_out // cols)
    fig = Figure(figsize=(1.2 * cols + 1.2, 1.3 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        bare(ax)
        if k >= C_out:
            ax.set_axis_off()
            continue
        im = ax.imshow(W[:, :, k], cmap=DIVERGING, vmin=-vmax, vmax=vmax)
        ax.set_title(f"k = {k}", fontsize=9)
    fig.colorbar(im, ax=axes, label="weight (0 = white)", shrink=0.9)
    kh, kw = W.shape[:2]
    fig.suptitle(f"{model.names[l]}: the {C_out} learned {kh}×{kw} filters "
                 "(red: positive weight, blue: negative)")
    return fig
