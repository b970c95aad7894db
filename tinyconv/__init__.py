"""tinyconv: a readable CNN engine (NumPy + numba) for interpreting convolutional networks.

Activations are ``(N, H, W, C)`` — the lecture's ``y_(l),idx,k`` with the feature index ``k``
last; layer 0 is the input. See README.md for where each idea of the lecture lives.
"""

import os

# numba runs prange loops on an OpenMP pool whose idle threads spin by default; when other
# threads share the cores (BLAS's workers, other processes), every parallel call then waits
# for a spinning thread to be scheduled (milliseconds for a microsecond kernel). Idle threads
# that sleep avoid that. The OpenMP runtime reads this once, when numba first starts its pool,
# so it is set here, with the package, and not in tinyconv.kernels, which loads only when a
# layer first needs it; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .activation_max import ActivationMaximization, activation_maximization
from .data import load_mnist, to_float
from .grad_cam import GradCAM, grad_cam, guided_grad_cam
from .input_x_gradient import input_x_gradient
from .integrated_gradients import IntegratedGradients, integrated_gradients
from .interop import from_torch
from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, softmax
from .max_activation import MaxActivation, max_activating
from .model import Sequential
from .occlusion import Occlusion, occlusion
from .pretrained import pretrained
from .projection import project, saliency
from .receptive_field import ReceptiveField, patches, receptive_field, receptive_fields
from .serialize import load, save
from .smoothgrad import smoothgrad
from .training import SGD, Adam, cross_entropy, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Adam", "Conv2D", "Dense", "Flatten", "Layer", "MaxActivation", "MaxPool2D", "Occlusion",
    "ReLU", "ReceptiveField", "SGD", "Sequential", "cross_entropy", "evaluate", "fit",
    "from_torch", "load", "load_mnist", "max_activating", "occlusion", "patches", "predict",
    "pretrained", "project", "receptive_field", "receptive_fields", "saliency", "save",
    "softmax", "to_float",
    # after Zeiler & Fergus
    "ActivationMaximization", "GradCAM", "IntegratedGradients", "activation_maximization",
    "grad_cam", "guided_grad_cam", "input_x_gradient", "integrated_gradients", "smoothgrad",
]
