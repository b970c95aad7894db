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
# OpenBLAS' idle threads spin for a while after each GEMM; between two GEMMs the numba kernels
# then share the cores with them. 2**4 cycles makes them sleep at once (OpenBLAS reads this
# when NumPy first loads it: it takes effect only if tinyconv is imported before NumPy, as the
# tinyconv command does; docs/speed.md has the measurements). A value the user set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .activation_max import ActivationMaximization, activation_maximization
from .data import load_mnist, to_float
from .effective_rf import effective_receptive_field
from .grad_cam import GradCAM, grad_cam, guided_grad_cam
from .input_x_gradient import input_x_gradient
from .integrated_gradients import IntegratedGradients, integrated_gradients
from .interop import from_torch, to_torch
from .layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, softmax
from .max_activation import MaxActivation, max_activating
from .model import Sequential
from .occlusion import Occlusion, occlusion
from .pretrained import pretrained
from .projection import Projection, project, project_top, saliency
from .randomize import randomize
from .receptive_field import ReceptiveField, patches, receptive_field, receptive_fields
from .sanity import sanity_checks
from .serialize import load, save
from .smoothgrad import smoothgrad
from .training import (
    MNIST_RECIPE,
    SGD,
    Adam,
    Recipe,
    cross_entropy,
    evaluate,
    fit,
    predict,
    train_recipe,
)

__version__ = "0.1.0"

__all__ = [
    # the engine and training
    "Adam", "Conv2D", "Dense", "Flatten", "Layer", "MNIST_RECIPE", "MaxPool2D", "ReLU",
    "Recipe", "SGD", "Sequential", "cross_entropy", "evaluate", "fit", "predict", "softmax",
    "train_recipe",
    # data, files, interop
    "from_torch", "load", "load_mnist", "pretrained", "save", "to_float", "to_torch",
    # the lecture's techniques
    "MaxActivation", "Occlusion", "Projection", "ReceptiveField", "effective_receptive_field",
    "max_activating", "occlusion", "patches", "project", "project_top", "receptive_field",
    "receptive_fields", "saliency",
    # after Zeiler & Fergus
    "ActivationMaximization", "GradCAM", "IntegratedGradients", "activation_maximization",
    "grad_cam", "guided_grad_cam", "input_x_gradient", "integrated_gradients", "smoothgrad",
    # do the maps explain? (sanity checks)
    "randomize", "sanity_checks",
]
