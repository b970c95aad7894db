"""The shipped MNIST CNN: ``pretrained("mnist")``.

The weights in ``tinyconv/data/mnist_cnn.npz`` were trained by ``tinyconv train`` on the
4,000 bundled training digits, i.e. by :data:`tinyconv.training.MNIST_RECIPE`
(``train_recipe(MNIST_RECIPE, X, y)`` gives them again); the model takes
``to_float(images)``, i.e. ``(N, 28, 28, 1)`` float32 in ``[0, 1]``, and returns logits
``(N, 10)``.
"""

from importlib import resources
from pathlib import Path

from .checks import check_choice
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
    """A shipped model by name (``"mnist"``), or a model saved at a ``.npz`` path."""
    if name_or_path in MODELS and not Path(name_or_path).exists():
        return pretrained(name_or_path)
    if not Path(name_or_path).is_file():
        raise FileNotFoundError(f"no model file at {str(name_or_path)!r}; give a .npz written "
                                f"by 'tinyconv train', or one of {', '.join(MODELS)} for the "
                                "shipped model")
    return load(name_or_path)
