"""Figures of the sanity checks (Adebayo et al. 2018; Petsiuk et al. 2018), drawn from the dict
:func:`tinyconv.sanity.sanity_checks` returns (or the JSON ``tinyconv sanity`` writes), so a
figure can be redrawn from the saved numbers without running anything."""

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from ._style import INK, bare

NAMES = {"gradient": "gradient", "input_x_gradient": "input × gradient",
         "smoothgrad": "SmoothGrad", "integrated_gradients": "integrated gradients",
         "deconvnet": "deconvnet", "guided": "guided backprop", "grad_cam": "Grad-CAM",
         "guided_grad_cam": "guided Grad-CAM", "occlusion": "occlusion",
         "input": "input (control)", "edges": "Sobel edges (control)",
         "random": "random order"}
METRIC_NAMES = {"spearman": "Spearman rank correlation", "spearman_abs": "Spearman (|map|)",
                "ssim": "SSIM", "hog": "HOG similarity"}


def cascade_grid(result):
    """Rows = methods, columns = the trained model, then randomised down to layer ``l``
    (Adebayo et al. 2018, Fig. 2): ``|map|`` of one digit, each tile scaled to its own max.

    Parameters
    ----------
    result : the dict of :func:`~tinyconv.sanity.sanity_checks` (its ``"grid"`` entry: one
        ``(H, W)`` map per method and column).
    """
    grid = result["grid"]
    names, columns = list(grid["maps"]), grid["columns"]
    fig = Figure(figsize=(1.35 * len(columns) + 1.9, 1.3 * len(names) + 0.8),
                 layout="constrained")
    axes = fig.subplots(len(names), len(columns), squeeze=False)
    for r, name in enumerate(names):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            a = np.abs(np.asarray(grid["maps"][name][c], np.float64))
            top = a.max()
            ax.imshow(a / top if top > 0 else a, cmap=INK, vmin=0, vmax=1,
                      interpolation="nearest")
            bare(ax)
            if r == 0:
                ax.set_title(column if c == 0 else f"down to\n{column}", fontsize=9)
            if c == 0:
                ax.set_ylabel(NAMES.get(name, name), fontsize=8, rotation=0, ha="right",
                              va="center")
    fig.suptitle(f"cascading randomisation, top layer first (digit {grid['label']}; "
                 "|map|, each tile scaled to its max)", fontsize=10)
    return fig


def similarity_vs_depth(result, schedule="cascade", metric="spearman_abs"):
    """Similarity between the trained model's map and the randomised one, per method, as the
    randomisation goes down the layers: mean over the digits ± one standard error, over the
    whole image (left) and over the digit's pixels (right). The trained model is at 1.

    Parameters
    ----------
    schedule : ``"cascade"`` or ``"independent"``; metric : a key of
        :data:`~tinyconv.similarity.METRICS`.
    """
    if schedule not in ("cascade", "independent"):
        raise ValueError(f"schedule: expected 'cascade' or 'independent', got {schedule!r}")
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric: expected one of {list(METRIC_NAMES)}, got {metric!r}")
    part = result[schedule]
    layers = part["layers"]
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    cmap = mpl.colormaps["tab10"]
    for ax, region in zip(axes, ("whole", "digit"), strict=True):
        for n, (name, metrics) in enumerate(part["methods"].items()):
            stats = metrics[metric][region]
            mean = np.array([np.nan if v is None else v for v in stats["mean"]], float)
            se = np.array([0.0 if v is None else v for v in stats["se"]], float)
            t = np.arange(len(layers) + (schedule == "cascade"))
            if schedule == "cascade":          # the trained model itself: identical, 1
                mean, se = np.r_[1.0, mean], np.r_[0.0, se]
            style = "--" if name in ("input", "edges") else "-"
            colour = cmap(n % 10)
            ax.plot(t, mean, style, marker="o", ms=3, color=colour,
                    label=NAMES.get(name, name))
            ax.fill_between(t, mean - se, mean + se, color=colour, alpha=0.2, linewidth=0)
        ticks = (["trained"] if schedule == "cascade" else []) + layers
        ax.set_xticks(np.arange(len(ticks)), ticks)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(f"{'whole image' if region == 'whole' else 'digit pixels only (x > 0)'}",
                     fontsize=10)
        ax.set_xlabel("randomised down to" if schedule == "cascade" else "layer randomised")
    axes[0].set_ylabel(f"{METRIC_NAMES[metric]} with the trained map")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{schedule} randomisation (mean ± s.e. over "
                 f"{result['config']['examples']} digits)", fontsize=10)
    return fig


def deletion_insertion(result):
    """Mean deletion and insertion curves per method (Petsiuk et al. 2018, §3.2), with each
    method's area under the curve (mean ± s.e.) in the legend: deletion low, insertion high
    is faithful."""
    part = result["faithfulness"]
    x = np.asarray(part["fractions"])
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    cmap = mpl.colormaps["tab10"]
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for n, (name, entry) in enumerate(part[kind].items()):
            auc = entry["auc"]
            style = ":" if name in ("random", "edges", "input") else "-"
            ax.plot(x, entry["curve"], style, color=cmap(n % 10),
                    label=f"{NAMES.get(name, name)}: {auc['mean']:.3f} ± {auc['se']:.3f}")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_title(f"{kind} ({'onto zeros' if kind == 'deletion' else 'onto a blurred copy'}"
                     f"; AUC {'lower' if kind == 'deletion' else 'higher'} is better)",
                     fontsize=10)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean p(class)")
    return fig
