"""What tests/test_determinism.py compares across thread counts, computed in a fresh process.

``python tests/thread_probe.py OUT.npz`` writes every array below to ``OUT.npz``. The thread
counts must be in the environment before NumPy and numba load (``OPENBLAS_NUM_THREADS``,
``NUMBA_NUM_THREADS``), which is why this runs in a process of its own.

The arrays: the shipped model's activations and the input gradients of the three backward
rules (Springenberg et al. 2014, Fig. 1) for 64 bundled digits, with the weight gradients of
``rule="gradient"``; the weights after a short :func:`tinyconv.train_recipe` whose batches of
20 digits make the weight gradients sum over row counts that BLAS may block by its thread
count; and ``max_activating(top=None)`` at the classifier head and at conv3 (Zeiler & Fergus
2014, §4) for every batch size of :data:`BATCH_SIZES`, on digits that include exact and near
copies, so that some scores tie or differ by round-off only.
"""

import dataclasses
import sys

import numpy as np

import tinyconv as tc

#: The batch sizes of max_activating (the issue's: one example, an odd size, a block, the
#: default, all of them).
BATCH_SIZES = (1, 7, 64, 256, 1000)


def digits_with_ties(X):
    """300 digits, then exact copies of 20 of them and copies of 20 more scaled by
    ``1 + 2e-7`` (below float32 round-off): 340 examples, some with tied scores."""
    base = X[:300]
    return np.concatenate([base, base[::15], base[7::15] * np.float32(1 + 2e-7)])


def probe():
    """Every array this module compares, by name."""
    out = {}
    X_test, _ = tc.load_mnist("bundled-test")
    X_test = tc.to_float(X_test)
    model = tc.pretrained("mnist")
    x = X_test[:64]
    for l, y in enumerate(model.activations(x)[1:], 1):
        out[f"forward {model.names[l]}"] = y
    dy = np.random.default_rng(0).standard_normal((len(x), 10)).astype(np.float32)
    for rule in tc.layers.RULES:
        model.forward(x)
        out[f"backward {rule} dx"] = model.backward(dy, rule=rule)
    for layer in model.layers:
        for key, g in layer.grads.items():
            out[f"backward gradient d{key} {layer.name}"] = g

    X, y = tc.load_mnist("bundled-train")
    recipe = dataclasses.replace(tc.MNIST_RECIPE, epochs=1, batch_size=20)
    trained, _ = tc.train_recipe(recipe, tc.to_float(X[:100]), y[:100], progress=False)
    for layer in trained.layers:
        for key, w in layer.params.items():
            out[f"train_recipe {layer.name}.{key}"] = w

    ties = digits_with_ties(X_test)
    for layer in ("logits", "conv3"):
        for batch_size in BATCH_SIZES:
            ranking = tc.max_activating(model, ties, layer, top=None, batch_size=batch_size,
                                        progress=False)
            out[f"max_activating {layer} {batch_size} indices"] = ranking.indices
            out[f"max_activating {layer} {batch_size} values"] = ranking.values
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **probe())
