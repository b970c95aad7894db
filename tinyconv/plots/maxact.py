"""Figures 2 and 3: ``MaxAct`` at the classifier head and in the feature maps.

Both draw a :class:`~tinyconv.MaxActivation` that the caller computed with
:func:`~tinyconv.max_activating`.
"""

import numpy as np
from matplotlib.figure import Figure

from ..receptive_field import receptive_field
from ._style import INK, bare, show_tiles


def extreme_examples(X, ranking, predicted, n=16, cols=4, logits=None):
    """The examples of one class with the highest and with the lowest predicted probability.

    The lecture's "Do we have a problem with certain 8s?": ``ranking`` is
    :func:`~tinyconv.max_activating` at the classifier head over the examples ``X`` of class
    ``c`` (``k=c``, ``top=None``), ranked by ``softmax(y_(L))_c``. One full ranking gives
    both ends: its first ``n`` and its last ``n`` (least probable first). Each image is titled
    with ``1 − p`` in scientific notation where ``p ≥ 0.5`` (near 1 the probabilities all
    print as 1.000, and their order would be lost) and with ``p`` below; misclassified ones
    also with the predicted class.

    Parameters
    ----------
    X : (N, H, W, C_0) the examples ranked (all of class ``c``).
    ranking : :class:`~tinyconv.MaxActivation` of one feature ``c`` with
        ``score="probability"``, keeping at least ``n`` examples per end.
    predicted : (N,) the model's predicted class of each example of ``X``.
    logits : optional (N, K) class scores ``y_(L)`` of ``X``; when given, ``1 − p`` is
        computed from them in float64 as ``sum_(j != c) softmax(y_(L))_j``, exact where
        ``1 − p`` is below float32's resolution.
    """
    if ranking.score != "probability" or len(ranking.features) != 1:
        raise ValueError("ranking: expected a ranking of one class by probability "
                         "(max_activating at the classifier head with one k)")
    digit = int(ranking.features[0])
    order, p = ranking.indices[0], ranking.values[0]
    n = min(n, len(order))
    ends = [(order[:n], p[:n], "highest"), (order[::-1][:n], p[::-1][:n], "lowest")]
    fig = Figure(figsize=(2 * 1.25 * cols + 0.8, 1.45 * -(-n // cols) + 1.0),
                 layout="constrained")
    halves = fig.subfigures(1, 2, wspace=0.04)
    for half, (idx, p_end, which) in zip(halves, ends, strict=True):
        axes = half.subplots(-(-len(idx) // cols), cols, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, i, p_i in zip(axes.flat, idx, p_end, strict=False):
            c = int(predicted[i])
            ax.imshow(X[i, :, :, 0], cmap=INK, vmin=0, vmax=1)
            text = probability_text(p_i, None if logits is None else logits[i], digit)
            text = text if c == digit else f"{text} → {c}"
            ax.set_title(text, fontsize=9, color="black" if c == digit else "#c00000")
        half.suptitle(f"{which} p({digit})", fontsize=11)
    fig.suptitle(f"The {len(order)} {digit}s of the data ranked by the model's probability of "
                 f"'{digit}' (red: misclassified, → predicted class)")
    return fig


def probability_text(p, logits, c):
    """``"1−p = 3.2e-06"`` for ``p >= 0.5`` (from ``logits`` in float64 when given), else
    ``"p = 0.0123"``."""
    if p < 0.5:
        return f"p = {p:.3g}"
    if logits is not None:
        z = np.asarray(logits, dtype=np.float64)
        e = np.exp(z - z.max())
        return f"1−p = {float(np.delete(e, c).sum() / e.sum()):.1e}"
    return f"1−p = {1 - float(p):.1e}"


def maxact_montages(model, X, rankings, top=None, scores=None, score_name="score"):
    """For each ranking (one layer) and each of its features ``k``: the ``top`` examples of
    ``MaxAct_(l),k``, each cropped to the receptive field of its strongest unit (Zeiler &
    Fergus 2014, Fig. 2).

    Parameters
    ----------
    X : (N, H, W, C_0) the data set the rankings were computed on.
    rankings : list of :class:`~tinyconv.MaxActivation` of spatial layers, one row each
        (:meth:`~tinyconv.MaxActivation.select` picks the features to show).
    top : examples per feature (default: all the rankings kept).
    scores : optional list (one per ranking) of ``(K,)`` numbers, one per feature shown,
        printed beside ``k`` as ``score_name`` (e.g. how the features were chosen).
    """
    top = min(r.indices.shape[1] for r in rankings) if top is None else top
    cols = max(len(r.features) for r in rankings)
    fig = Figure(figsize=(1.7 * cols + 0.6, 2.1 * len(rankings) + 0.7), layout="constrained")
    axes = fig.subplots(len(rankings), cols, squeeze=False)
    for n, (row, ranking) in enumerate(zip(axes, rankings, strict=True)):
        rf = receptive_field(model, ranking.layer)
        for ax in row:
            bare(ax)
            ax.set_frame_on(False)
        shown = scores[n] if scores is not None else [None] * len(ranking.features)
        for ax, k, idx, loc, score in zip(row, ranking.features, ranking.indices,
                                          ranking.locations, shown, strict=False):
            patches = rf.patches(X[idx[:top]], loc[:top])[..., 0]        # (top, r_h, r_w)
            show_tiles(ax, patches, cmap=INK, vmin=0, vmax=1)
            ax.set_title(f"k = {k}" if score is None else f"k = {k}\n{score_name} {score:.3g}",
                         fontsize=9)
        size = rf.size[0] if rf.size[0] == rf.size[1] else f"{rf.size[0]}×{rf.size[1]}"
        row[0].set_ylabel(f"{rf.name}\nr = {size} px", fontsize=10)
    fig.suptitle(f"MaxAct: the top {top} examples of each feature map, cropped to the "
                 "receptive field\nof its strongest unit (r = field size in input pixels)")
    return fig
