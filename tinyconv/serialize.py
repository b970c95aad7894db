"""save / load: one ``.npz`` holding a JSON architecture spec and the parameter arrays.

Never pickle: the spec is a JSON string stored as a uint8 array, every parameter is a plain
numeric array named ``"<l>/<key>"`` (``l`` the layer number, 1-based), and files are read
with ``allow_pickle=False``. Writes are atomic (:func:`tinyconv.files.atomic_write`): an
interrupted save leaves the old file intact.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from .files import atomic_write
from .layers import LAYER_TYPES
from .model import Sequential

FORMAT = "tinyconv-model"
VERSION = 1


def model_spec(model):
    """The architecture as a JSON-able dict (no weights)."""
    return {"format": FORMAT, "version": VERSION, "input_shape": list(model.input_shape),
            "dtype": str(model.dtype),
            "layers": [{"type": type(layer).__name__, "config": layer.config()}
                       for layer in model.layers]}


def model_from_spec(spec):
    """Build an (untrained) :class:`Sequential` from :func:`model_spec` output."""
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"spec: not a {FORMAT} spec")
    if not isinstance(spec.get("version"), int) or spec["version"] > VERSION:
        raise ValueError(f"spec: format version {spec.get('version')!r} is newer than this "
                         f"tinyconv reads ({VERSION}); upgrade tinyconv")
    entries = spec.get("layers")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("config"), dict) for e in entries):
        raise ValueError("spec: 'layers' must be a list of {\"type\": …, \"config\": {…}} "
                         "objects")
    layers = []
    for i, entry in enumerate(entries):
        cls = LAYER_TYPES.get(entry.get("type"))
        if cls is None:
            raise ValueError(f"spec: layer {i + 1} has unknown type {entry.get('type')!r}")
        config = dict(entry["config"])
        for key in ("padding", "kernel", "stride", "dilation", "size"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        layers.append(cls(**config))
    return Sequential(layers, tuple(spec["input_shape"])).astype(spec.get("dtype", "float32"))


def save(model, path):
    """Write ``model`` (architecture + parameters) to ``path`` atomically.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    path : file name; ``.npz`` is used as given (NumPy does not append it here).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a tinyconv Sequential, got {type(model).__name__}")
    path = Path(path)
    arrays = {"spec": np.frombuffer(json.dumps(model_spec(model)).encode(), dtype=np.uint8)}
    for l, layer in enumerate(model.layers, 1):
        for key, value in layer.params.items():
            arrays[f"{l}/{key}"] = value
    with atomic_write(path, "wb") as f:      # a crash or Ctrl-C leaves the old file in place
        np.savez(f, **arrays)


def load(path):
    """Read a model written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, not a tinyconv model, from a newer format version, holds an
        object (pickle) array, or misses or misshapes a parameter; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no model file at {str(path)!r}")
    if not zipfile.is_zipfile(path):     # NumPy's own message would suggest unpickling it
        raise ValueError(f"{path}: not a readable tinyconv model file (not an .npz archive)")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):     # a bare .npy array
            raise ValueError(f"a single {type(f).__name__}, not an .npz archive")
        with f:
            arrays = {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable tinyconv model file ({err})") from None
    # NpzFile hands back raw bytes for zip members that are not .npy arrays
    odd = sorted(name for name, value in arrays.items() if not isinstance(value, np.ndarray))
    if odd:
        raise ValueError(f"{path}: not a tinyconv model file (members {odd} are not arrays)")
    if "spec" not in arrays:
        raise ValueError(f"{path}: not a tinyconv model file (no architecture spec)")
    try:
        spec = json.loads(arrays.pop("spec").tobytes().decode())
        model = model_from_spec(spec)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: bad architecture spec ({err})") from None
    expected = {f"{l}/{key}": layer for l, layer in enumerate(model.layers, 1)
                for key in layer.params}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: parameters do not match the spec (missing {missing}, "
                         f"unexpected {extra})")
    for name, layer in expected.items():
        key = name.split("/")[1]
        value, want = arrays[name], layer.params[key]
        if value.shape != want.shape or value.dtype.kind != "f":
            raise ValueError(f"{path}: parameter {name} ({layer.name}) should be float "
                             f"{want.shape}, found {value.dtype} {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: parameter {name} ({layer.name}) holds NaN or inf")
        layer.params[key] = value.astype(want.dtype)
    return model
