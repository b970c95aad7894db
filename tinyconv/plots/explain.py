"""The pictures of ``tinyconv explain``: one Figure per method, the input beside its answer.

Built as ``matplotlib.figure.Figure`` objects without pyplot (no backend chosen, no global
state), like :mod:`tinyconv.plots`, and with its colour conventions: signed maps in a
diverging map centred at 0 (``RdBu_r``: red positive, blue negative), non-negative maps in
``magma``, digits as ink on paper (``gray_r``). Each figure's caption is the Python call that
computed it, so the picture says how to repeat it.
"""

import numpy as np
from matplotlib.figure import Figure

TITLES = {
    "saliency": "saliency |d y_c / d x| (Simonyan et al. 2014)",
    "gradient": "gradient of the unit (Simonyan et al. 2014)",
    "deconvnet": "deconvnet projection (Zeiler & Fergus 2014)",
    "guided": "guided backprop (Springenberg et al. 2015)",
    "occlusion": "occlusion: drop in p(class) (Z&F 2014)",
    "maxact": "MaxAct top-9 held-out digits (Z&F 2014)",
    "input_x_gradient": "input x gradient",
    "smoothgrad": "SmoothGrad (Smilkov et al. 2017)",
    "integrated_gradients": "integrated gradients (Sundararajan et al. 2017)",
    "grad_cam": "Grad-CAM (Selvaraju et al. 2017)",
}


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def show_map(ax, a):
    """Draw a 2-D map: diverging and centred at 0 when it has both signs, else ``magma``.
    Returns the image for a colour bar."""
    a = np.asarray(a, dtype=np.float64)
    if np.nanmin(a) < 0 < np.nanmax(a):
        m = np.nanmax(np.abs(a)) or 1.0
        im = ax.imshow(a, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    else:
        im = ax.imshow(a, cmap="magma", interpolation="nearest")
    _bare(ax)
    return im


def mosaic(images, cols=3):
    """``(n, h, w)`` tiles -> one ``(rows h + rows - 1, cols w + cols - 1)`` image with NaN
    gutters between the tiles."""
    n, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, tile in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tile
    return out


def method_figure(x, method, result, prediction):
    """The input digit beside one method's answer.

    Parameters
    ----------
    x : (28, 28) the preprocessed input (white digit on black, as the model sees it).
    method : its name; result : the method's entry of :func:`tinyconv.explain.explain`
        (``array`` and ``call``; ``labels`` for ``maxact``).
    prediction : the predicted class ``c``.

    Returns
    -------
    matplotlib Figure.
    """
    import matplotlib as mpl

    fig = Figure(figsize=(7.2, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(x, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    left.set_title(f"input (predicted {prediction})", fontsize=10)
    _bare(left)
    a = np.asarray(result["array"], dtype=np.float64)
    if method == "maxact":
        ink = mpl.colormaps["gray_r"].with_extremes(bad="#6f9fd8")
        right.imshow(mosaic(a), cmap=ink, vmin=0, vmax=1, interpolation="nearest")
        _bare(right)
        right.set_xlabel("labels " + " ".join(map(str, result["labels"])), fontsize=8)
    else:
        im = show_map(right, a)
        fig.colorbar(im, ax=right, shrink=0.8)
        if method == "occlusion":
            # the 4 px window slides over the digit; outline the input's ink for reference
            right.contour(x, levels=[0.5], colors="white", linewidths=0.6)
    right.set_title(TITLES.get(method, method), fontsize=9)
    fig.suptitle(result["call"], fontsize=9, family="monospace")
    return fig
