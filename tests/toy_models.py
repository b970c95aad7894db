"""Small random models shared by the toolkit tests (seeded, float64 where gradients matter)."""

import numpy as np

import tinyconv as tc


def small_cnn(seed=0, dtype=np.float64, input_shape=(11, 9, 2)):
    """conv(3x2, same) - relu - pool(2, stride 1 x 2) - conv(3, stride 2, dil 1) - relu -
    flatten - dense 4: non-square everywhere, overlapping pooling, odd sizes."""
    H, W, C = input_shape
    layers = [
        tc.Conv2D(C, 5, (3, 2), padding="same", name="conv1"), tc.ReLU(name="relu1"),
        tc.MaxPool2D(2, stride=(1, 2), name="pool1"),
        tc.Conv2D(5, 6, 3, stride=2, padding=1, name="conv2"), tc.ReLU(name="relu2"),
        tc.Flatten(name="flatten"),
    ]
    probe = tc.Sequential(layers, input_shape)
    layers.append(tc.Dense(probe.output_shapes[-1][0], 4, name="logits"))
    return tc.Sequential(layers, input_shape, seed=seed).astype(dtype)


def random_input(model, n, seed=0):
    """(n, H, W, C) standard-normal input in the model's dtype."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *model.input_shape)).astype(model.dtype)
