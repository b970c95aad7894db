"""``MaxAct_(l),k``: the examples that drive a feature map hardest (Zeiler & Fergus 2014, §4).

For each example ``i`` and feature ``k`` of layer ``l`` the score is the strongest response
over locations, ``max_idx y_(l),idx,k`` (and where it is); the examples are ranked by it. At
the classifier head (the last layer, when flat) the score is the class probability
``softmax(y_(L))_k`` — the lecture's "maximally / minimally activating 8s".

The data set is streamed in batches and only the running top list is kept: memory is
``O(K * top)`` on top of one batch, never ``O(N * H * W * K)``.
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int
from .layers import softmax
from .progress import Progress


@dataclass
class MaxActivation:
    """The ranking of examples for each feature of one layer.

    Attributes
    ----------
    layer : ``l``; features : (K,) the feature indices ranked (rows below).
    indices : (K, top) example indices, best first.
    values : (K, top) their scores (max activation, or class probability at the head).
    locations : (K, top, 2) ``(row, col)`` of each example's strongest unit; -1 when the
        layer has no spatial locations.
    score : ``"activation"`` or ``"probability"``.
    """

    layer: int
    features: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    locations: np.ndarray
    score: str


def _features(k, C):
    if k is None:
        return np.arange(C)
    ks = np.atleast_1d(np.asarray(k))
    if ks.dtype.kind not in "iu" or ks.ndim != 1 or ks.size == 0:
        raise TypeError(f"k: expected a feature index, a list of them or None, got {k!r}")
    if ks.min() < 0 or ks.max() >= C:
        raise ValueError(f"k: expected feature indices in [0, {C}), got {ks.tolist()}")
    return ks.astype(np.int64)


def example_scores(y, features, score):
    """Per-example scores and locations for a batch of activations ``y = y_(l)``.

    Returns
    -------
    values : (B, K) ``max_idx y_(l),idx,k`` (or the class probability); locations : (B, K, 2).
    """
    B = len(y)
    if y.ndim == 4:
        _, H_l, W_l, _ = y.shape
        flat = y[..., features].reshape(B, H_l * W_l, len(features))
        where = flat.argmax(axis=1)                          # first max in row-major order
        values = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
        locations = np.stack(np.divmod(where, W_l), axis=-1)
        return values, locations
    if score == "probability":
        y = softmax(y.astype(np.float64))
    return y[:, features], np.full((B, len(features), 2), -1, dtype=np.int64)


def max_activating(model, X, layer, k=None, top=9, batch_size=256, descending=True,
                   score="auto", progress=None):
    """Rank the examples of ``X`` by their strongest response in feature map(s) ``k``.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    X : (N, H, W, C_0) data set, streamed in batches of ``batch_size``; an ``np.memmap``
        (e.g. ``np.load(path, mmap_mode="r")``) is read one batch at a time.
    layer : name or number ``l``.
    k : a feature index, a list of them, or None for all ``C_l`` features.
    top : how many examples to keep per feature (capped at N), or None for the whole ranking.
    descending : True ranks the maximally activating first; False the minimally activating.
    score : ``"activation"``, ``"probability"`` (softmax of a flat last layer) or ``"auto"``
        (probability at the classifier head, activation elsewhere).
    progress : True / False to force a progress bar; None shows it on a terminal.

    Returns
    -------
    :class:`MaxActivation` with ``indices``, ``values`` ``(K, top)`` and ``locations``
    ``(K, top, 2)``. Ties are broken by the smaller example index, so the result does not
    depend on ``batch_size``.
    """
    # dtype and shape now; finiteness batch by batch below, so that an np.memmap on disk is
    # read one batch at a time and never held in memory whole
    X = check_array(X, "X", ndim=4, finite=False)
    l = model.index(layer)
    shape = model.output_shapes[l]
    head = l == len(model.layers) and len(shape) == 1
    if score == "auto":
        score = "probability" if head else "activation"
    elif score not in ("activation", "probability"):
        raise ValueError(f"score: expected 'auto', 'activation' or 'probability', got {score!r}")
    elif score == "probability" and not head:
        raise ValueError(f"score: 'probability' needs the flat last layer, got layer {l}")
    features = _features(k, shape[-1])
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    top = len(X) if top is None else min(check_int(top, "top", minimum=1), len(X))
    if not isinstance(descending, bool):
        raise TypeError(f"descending: expected a bool, got {type(descending).__name__}")

    K = len(features)
    best_val = np.empty((0, K))
    best_idx = np.empty((0, K), dtype=np.int64)
    best_loc = np.empty((0, K, 2), dtype=np.int64)
    with Progress(len(X), f"MaxAct {model.names[l]}", enabled=progress) as bar:
        for start in range(0, len(X), batch_size):
            y = model.forward(check_array(X[start:start + batch_size], "X"), upto=l)
            values, locations = example_scores(y, features, score)
            val = np.concatenate([best_val, values])                       # (top + B, K)
            idx = np.concatenate([best_idx, np.broadcast_to(
                np.arange(start, start + len(y))[:, None], values.shape)])
            loc = np.concatenate([best_loc, locations])
            # stable sort: equal scores keep their order, which is by example index
            order = np.argsort(-val if descending else val, axis=0, kind="stable")[:top]
            best_val = np.take_along_axis(val, order, axis=0)
            best_idx = np.take_along_axis(idx, order, axis=0)
            best_loc = np.take_along_axis(loc, order[:, :, None], axis=0)
            bar.update(len(y))
    return MaxActivation(l, features, best_idx.T.copy(), best_val.T.copy(),
                         best_loc.transpose(1, 0, 2).copy(), score)
