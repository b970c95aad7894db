"""Named MNIST architectures: ``build("mnist")`` and ``build("small")``, plus augmentation.

Both take ``(28, 28, 1)`` images (``to_float`` of MNIST digits) and return 10 logits.

**Why "mnist" looks the way it does.** The lecture's techniques ask what one unit
``y_(l),idx,k`` responds to, and the answer is only interesting if units of different layers
see patches of different sizes. With three ``"same"`` convolutions, each followed by a
2×2 max-pool, the receptive field (Araujo et al. 2019: ``r_l = r_(l-1) + (k_eff - 1) S_(l-1)``,
``S_l = S_(l-1) s``) grows layer by layer:

====== ======= =========== ===============================
layer  r       S (jump)    sees
====== ======= =========== ===============================
conv1  5       1           a piece of one stroke
pool1  6       2
conv2  14      2           a stroke end, a corner, a loop
pool2  16      4
conv3  24      4           most of the digit
pool3  28      8           the whole 28×28 image
====== ======= =========== ===============================

so MaxAct patches, deconvnet projections and occlusion maps show the hierarchy the paper
describes (Zeiler & Fergus 2014, Sec. 4.1): edges and blobs, then parts, then near-whole
digits. 5×5 first-layer filters are big enough to look like the stroke detectors of
Fig. 2 when plotted; 16/32/64 channels keep the model under 40k parameters (≈ 150 kB
saved), small enough to train on the 4,000 bundled digits in about a minute on two cores
(``tinyconv train``; 98.2% on the 1,000 held-out digits).

:func:`check_mnist_model` is the one check that a model fits these digits (used by
``tinyconv evaluate`` and the tour).

"small" (3×3 kernels, 8 and 16 channels, two pools; receptive fields 3, 4, 8, 10) is for
tests and quick experiments: a few thousand parameters, one epoch in seconds.
"""

import numpy as np

from .checks import check_choice, check_int
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from .model import Sequential
from .units import conv_layers

INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10


def mnist_layers():
    """conv 5×5×16 – relu – pool – conv 5×5×32 – relu – pool – conv 3×3×64 – relu – pool –
    flatten – dense 10. Spatial sizes 28 → 14 → 7 → 3: pool3 floors 7 / 2, dropping the last
    row and column of conv3, whose pixels the pool3 units still see through conv3's row 5 and
    column 5 (field 24, jump 4)."""
    return [
        Conv2D(1, 16, kernel=5, padding="same", name="conv1"), ReLU(name="relu1"),
        MaxPool2D(2, name="pool1"),
        Conv2D(16, 32, kernel=5, padding="same", name="conv2"), ReLU(name="relu2"),
        MaxPool2D(2, name="pool2"),
        Conv2D(32, 64, kernel=3, padding="same", name="conv3"), ReLU(name="relu3"),
        MaxPool2D(2, name="pool3"),
        Flatten(name="flatten"), Dense(3 * 3 * 64, N_CLASSES, name="logits"),
    ]


def small_layers():
    """conv 3×3×8 – relu – pool – conv 3×3×16 – relu – pool – flatten – dense 10."""
    return [
        Conv2D(1, 8, kernel=3, padding="same", name="conv1"), ReLU(name="relu1"),
        MaxPool2D(2, name="pool1"),
        Conv2D(8, 16, kernel=3, padding="same", name="conv2"), ReLU(name="relu2"),
        MaxPool2D(2, name="pool2"),
        Flatten(name="flatten"), Dense(7 * 7 * 16, N_CLASSES, name="logits"),
    ]


# name -> (function returning the layers, one-line description for `tinyconv train --help`)
ARCHITECTURES = {
    "mnist": (mnist_layers, "3 conv + 3 pool, receptive fields 5..28 (the shipped model)"),
    "small": (small_layers, "2 conv + 2 pool, 3x3 kernels; fast, for tests"),
}


def build(name="mnist", seed=0):
    """An initialised :class:`~tinyconv.model.Sequential` for ``(28, 28, 1)`` input.

    Parameters
    ----------
    name : a key of :data:`ARCHITECTURES` (``"mnist"`` or ``"small"``).
    seed : int; the parameters are drawn in layer order from ``default_rng(seed)``, so one
        seed gives one model bit for bit.

    Raises
    ------
    ValueError
        For an unknown ``name``, listing the valid ones.
    """
    check_choice(name, "arch", ARCHITECTURES)
    seed = check_int(seed, "seed", minimum=0)
    make_layers, _ = ARCHITECTURES[name]
    return Sequential(make_layers(), INPUT_SHAPE, seed=seed)


def check_mnist_model(model, where="model", need_conv=False):
    """Refuse a model that does not take MNIST digits or does not give 10 logits.

    Parameters
    ----------
    model : a :class:`~tinyconv.model.Sequential`.
    where : what the message names (the argument, or the file the model came from).
    need_conv : also require at least one :class:`~tinyconv.layers.Conv2D` (the tour's
        figures are about convolutional feature maps).

    Raises
    ------
    TypeError
        If ``model`` is not a ``Sequential``.
    ValueError
        If its input is not ``(28, 28, 1)``, its output not ``(10,)``, or (with
        ``need_conv``) it has no convolution; the message names ``where``.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a tinyconv Sequential, got {type(model).__name__}")
    if model.input_shape != INPUT_SHAPE:
        raise ValueError(f"{where}: the model takes inputs of shape {model.input_shape}, "
                         f"but MNIST digits are {INPUT_SHAPE}")
    if model.output_shapes[-1] != (N_CLASSES,):
        raise ValueError(f"{where}: the model outputs shape {model.output_shapes[-1]}, "
                         f"but MNIST has {N_CLASSES} classes")
    if need_conv and not conv_layers(model):
        raise ValueError(f"{where}: expected a model with at least one Conv2D layer")


def shift_images(X, max_shift, rng):
    """Shift each image by a random whole number of pixels, filling with zeros.

    A light augmentation for small training sets: MNIST digits are centred by their centre
    of mass, so a shift of up to ``max_shift`` pixels is still a plausible digit.

    Parameters
    ----------
    X : (N, H, W, C) images.
    max_shift : int >= 0; each example gets ``(dy, dx)`` drawn uniformly from
        ``[-max_shift, max_shift]``.
    rng : ``numpy.random.Generator`` (so the shifts are fixed by the caller's seed).

    Returns
    -------
    (N, H, W, C) array of the same dtype: ``out[i, r, c] = X[i, r - dy_i, c - dx_i]``, zero
    where that falls outside the image.
    """
    max_shift = check_int(max_shift, "max_shift", minimum=0)
    N, H, W, _ = X.shape
    shifts = rng.integers(-max_shift, max_shift + 1, size=(N, 2))
    out = np.zeros_like(X)
    for i, (dy, dx) in enumerate(shifts):
        # source rows [r0, r1) land at rows [r0 + dy, r1 + dy)
        r0, r1 = max(0, -dy), min(H, H - dy)
        c0, c1 = max(0, -dx), min(W, W - dx)
        out[i, r0 + dy:r1 + dy, c0 + dx:c1 + dx] = X[i, r0:r1, c0:c1]
    return out
