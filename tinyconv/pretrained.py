"""The shipped MNIST CNN: ``pretrained("mnist")``.

The weights in ``tinyconv/data/mnist_cnn.npz`` were trained by ``tinyconv train`` on the
4,000 bundled training digits, i.e. by :data:`tinyconv.training.MNIST_RECIPE`
(``train_recipe(MNIST_RECIPE, X, y)`` gives them again, bit for bit with the same library
versions and BLAS kernels); the model takes
``to_float(images)``, i.e. ``(N, 28, 28, 1)`` float32 in ``[0, 1]``, and returns logits
``(N, 10)``.
"""

import os
from importlib import resources

from .checks import check_choice
from .files import check_path
from .serialize import load

MODELS = {"mnist": "mnist_cnn.npz"}


def pretrained(name="mnist"):
    """Load a shipped model by name (``"mnist"``) -> :class:`~tinyconv.model.Sequential`."""
    check_choice(name, "name", MODELS)
    with resources.as_file(resources.files("tinyconv") / "data" / MODELS[name]) as path:
        if not path.is_file():
            raise FileNotFoundError(f"the shipped model file {path} is missing from this "
                                    "installation; reinstall tinyconv")
        return load(path)


def load_model(name_or_path):
    """A shipped model by name, or a model saved at a path -> :class:`~tinyconv.model.Sequential`.

    The rule: a ``str`` that is a name of :data:`MODELS` (``"mnist"``: no path separator, no
    ``.npz``) always means the shipped model, even when a file or folder of that name is in
    the current directory; ``"./mnist"``, a ``Path`` or anything else is a file to load.

    Raises
    ------
    TypeError
        If ``name_or_path`` is neither a str nor a path.
    IsADirectoryError, FileNotFoundError
        If the path is a folder or names nothing; the message says which, and names it.
    ValueError
        If the file is not a tinyconv model (see :func:`tinyconv.serialize.load`).
    """
    if isinstance(name_or_path, str) and name_or_path in MODELS:
        return pretrained(name_or_path)
    path = check_path(name_or_path, "name_or_path")
    hint = (f"give a .npz written by 'tinyconv train', or {' or '.join(map(repr, MODELS))} "
            "(as a bare name) for the shipped model")
    shown = repr(os.fspath(name_or_path))    # as the caller wrote it: './mnist', not 'mnist'
    if path.is_dir():
        raise IsADirectoryError(f"{shown} is a directory, not a model file; {hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {shown}; {hint}")
    return load(name_or_path)
