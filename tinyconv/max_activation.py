"""``MaxAct_(l),k``: the examples that drive a feature map hardest (Zeiler & Fergus 2014, §4).

For each example ``i`` and feature ``k`` of layer ``l`` the score is the strongest response
over locations, ``max_idx y_(l),idx,k`` (and where it is); the examples are ranked by it. At
the classifier head (the last layer, when flat) the score is the class probability
``softmax(y_(L))_k`` — the lecture's "maximally / minimally activating 8s".

The data set is streamed in batches and only the running top list is kept: memory is
``O(K * top)`` on top of one batch, never ``O(N * H * W * K)``. The model runs on blocks of
:data:`BLOCK` examples counted from the first, whatever the batch size, so the scores and the
ranking do not depend on ``batch_size``.
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int
from .layers import softmax
from .progress import Progress
from .units import check_features, strongest_responses

#: The model sees examples ``j*BLOCK .. (j+1)*BLOCK - 1`` of ``X`` together, in every call.
#: BLAS sums each number of a matrix product in an order that depends on the product's shape
#: (OpenBLAS takes another kernel for a small one), so an example's score may change in its
#: last bits with the batch it shares a forward pass with; blocks that do not depend on
#: ``batch_size`` give every example the same products, and so the same score, in any call.
BLOCK = 64


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

    def _position(self, k):
        where = np.flatnonzero(self.features == k)
        if len(where) == 0:
            raise ValueError(f"k: feature {k!r} is not in this ranking (features "
                             f"{self.features.tolist()})")
        return int(where[0])

    def row(self, k):
        """Feature ``k``'s ranking: examples ``(top,)``, values ``(top,)`` and locations
        ``(top, 2)``; ``ValueError`` naming ``k`` if it was not ranked."""
        j = self._position(k)
        return self.indices[j], self.values[j], self.locations[j]

    def select(self, ks):
        """The same ranking for the features ``ks`` only, in that order."""
        rows = [self._position(k) for k in ks]
        return MaxActivation(self.layer, self.features[rows], self.indices[rows],
                             self.values[rows], self.locations[rows], self.score)


def example_scores(y, features, score):
    """Per-example scores and locations for a batch of activations ``y = y_(l)``.

    Returns
    -------
    values : (B, K) ``max_idx y_(l),idx,k`` (or the class probability); locations : (B, K, 2).
    """
    B = len(y)
    if y.ndim == 4:
        return strongest_responses(y, features)
    if score == "probability":
        y = softmax(y.astype(np.float64))
    return y[:, features], np.full((B, len(features), 2), -1, dtype=np.int64)


def max_activating(model, X, layer, k=None, top=9, batch_size=256, descending=True,
                   score="auto", progress=None):
    """Rank the examples of ``X`` by their strongest response in feature map(s) ``k``.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    X : (N, H, W, C_0) data set, streamed in steps of ``batch_size`` examples, rounded up
        to a multiple of :data:`BLOCK`; an ``np.memmap`` (e.g.
        ``np.load(path, mmap_mode="r")``) is read one step at a time.
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
    ``(K, top, 2)``. Equal scores are ranked by the smaller example index.

    Notes
    -----
    The scores, and so the ranking, are the same bit for bit for every ``batch_size``, ties
    and near-ties included: the model runs on blocks of :data:`BLOCK` examples counted from
    the first example of ``X``, and a step of ``batch_size`` is rounded up to whole blocks.
    Other products may round the last bits otherwise: one forward pass over all of ``X``
    (another shape), or, with some BLAS kernels, another BLAS thread count (README, "The
    shipped model and `tinyconv train`"); numba's thread count changes nothing.
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
    features = check_features(model, l, k)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    top = len(X) if top is None else min(check_int(top, "top", minimum=1), len(X))
    if not isinstance(descending, bool):
        raise TypeError(f"descending: expected a bool, got {type(descending).__name__}")

    K = len(features)
    best_val = np.empty((0, K))
    best_idx = np.empty((0, K), dtype=np.int64)
    best_loc = np.empty((0, K, 2), dtype=np.int64)
    step = -(-batch_size // BLOCK) * BLOCK          # whole blocks, so blocks start at j*BLOCK
    with Progress(len(X), f"MaxAct {model.names[l]}", enabled=progress) as bar:
        for start in range(0, len(X), step):
            batch = check_array(X[start:start + step], "X")
            scored = [example_scores(model.forward(batch[b:b + BLOCK], upto=l), features, score)
                      for b in range(0, len(batch), BLOCK)]
            values = np.concatenate([v for v, _ in scored])                 # (B, K)
            locations = np.concatenate([loc for _, loc in scored])          # (B, K, 2)
            val = np.concatenate([best_val, values])                       # (top + B, K)
            idx = np.concatenate([best_idx, np.broadcast_to(
                np.arange(start, start + len(batch))[:, None], values.shape)])
            loc = np.concatenate([best_loc, locations])
            # stable sort: equal scores keep their order, which is by example index
            order = np.argsort(-val if descending else val, axis=0, kind="stable")[:top]
            best_val = np.take_along_axis(val, order, axis=0)
            best_idx = np.take_along_axis(idx, order, axis=0)
            best_loc = np.take_along_axis(loc, order[:, :, None], axis=0)
            bar.update(len(batch))
    return MaxActivation(l, features, best_idx.T.copy(), best_val.T.copy(),
                         best_loc.transpose(1, 0, 2).copy(), score)
