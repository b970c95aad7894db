"""tinyconv: a readable CNN engine (NumPy + numba) for interpreting convolutional networks.

Activations are ``(N, H, W, C)`` — the lecture's ``y_(l),idx,k`` with the feature index ``k``
last; layer 0 is the input. See README.md for where each idea of the lecture lives.
"""

from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, softmax
from .model import Sequential
from .serialize import load, save
from .training import SGD, Adam, cross_entropy, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Adam", "Conv2D", "Dense", "Flatten", "Layer", "MaxPool2D", "ReLU", "SGD", "Sequential",
    "cross_entropy", "evaluate", "fit", "load", "predict", "save", "softmax",
]
