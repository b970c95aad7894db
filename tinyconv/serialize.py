"""save / load: one ``.npz`` holding a JSON architecture spec and the parameter arrays.

Never pickle: the spec is a JSON string stored as a uint8 array, every parameter is a plain
numeric array named ``"<l>/<key>"`` (``l`` the layer number, 1-based), and files are read
with ``allow_pickle=False``. Writes are atomic (:func:`tinyconv.files.atomic_write`): an
interrupted save leaves the old file intact.

A model file may come from anyone, so :func:`load` trusts nothing in it: it reads the array
*headers* (shape and dtype, from the zip directory, without the data) and the spec, checks
them against each other and against the limits below, and only then builds the layers and
reads the weights. A 500-byte file cannot make it allocate more than the limits allow.
"""

import json
import math
import os
import zipfile

import numpy as np

from .files import atomic_write, check_path
from .layers import LAYER_TYPES
from .model import Sequential

FORMAT = "tinyconv-model"
VERSION = 1

#: The largest model :func:`load` accepts (a file beyond any of them is refused unread).
MAX_SPEC_BYTES = 1_000_000        # the JSON architecture spec
MAX_LAYERS = 1_000
MAX_PARAMETERS = 50_000_000       # 200 MB in float32, 400 MB in float64
MAX_INPUT_VALUES = 16_777_216     # H * W * C of one example (2**24)
DTYPES = ("float32", "float64")


def model_spec(model):
    """The architecture as a JSON-able dict (no weights)."""
    return {"format": FORMAT, "version": VERSION, "input_shape": list(model.input_shape),
            "dtype": str(model.dtype),
            "layers": [{"type": type(layer).__name__, "config": layer.config()}
                       for layer in model.layers]}


def check_spec(spec):
    """The structure of a :func:`model_spec` dict and the limits :func:`load` states, checked
    before anything is built -> the list of layer entries."""
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
    if len(entries) > MAX_LAYERS:
        raise ValueError(f"spec: {len(entries):,} layers, more than the {MAX_LAYERS:,} "
                         "tinyconv loads")
    shape = spec.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"spec: input_shape must be (H, W, C) positive ints, got {shape!r}")
    if math.prod(shape) > MAX_INPUT_VALUES:
        raise ValueError(f"spec: input_shape {tuple(shape)} has {math.prod(shape):,} values per "
                         f"example, more than the {MAX_INPUT_VALUES:,} tinyconv loads")
    if spec.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"spec: dtype must be one of {', '.join(DTYPES)}, got "
                         f"{spec.get('dtype')!r}")
    for i, entry in enumerate(entries):
        if entry.get("type") not in LAYER_TYPES:
            raise ValueError(f"spec: layer {i + 1} has unknown type {entry.get('type')!r}")
        if declared_shapes(entry) is None:
            # the constructor checks its arguments before it allocates: let it say what is
            # wrong (no layer before this one has been built yet)
            layer_from(entry)
            raise ValueError(f"spec: layer {i + 1} ({entry['type']}) has a malformed config")
    return entries


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def declared_shapes(entry):
    """``{key: shape}`` of the parameters a spec entry's layer will allocate, read from its
    config without building it; None when the config is malformed (the layer's own
    constructor then says what is wrong, before it allocates anything)."""
    config = entry["config"]
    if entry["type"] == "Dense":
        n_in, n_out = config.get("in_features"), config.get("out_features")
        return {"W": (n_in, n_out), "b": (n_out,)} if _whole(n_in) and _whole(n_out) else None
    if entry["type"] == "Conv2D":
        kernel = config.get("kernel")
        kernel = [kernel, kernel] if not isinstance(kernel, list) else kernel
        c_in, c_out = config.get("in_channels"), config.get("out_channels")
        if len(kernel) != 2 or not all(map(_whole, (*kernel, c_in, c_out))):
            return None
        shapes = {"W": (*kernel, c_in, c_out)}
        if config.get("bias", True) is True:
            shapes["b"] = (c_out,)
        return shapes
    return {}


def model_from_spec(spec):
    """Build an (untrained) :class:`Sequential` from :func:`model_spec` output."""
    layers = [layer_from(entry) for entry in check_spec(spec)]
    return Sequential(layers, tuple(spec["input_shape"])).astype(spec.get("dtype", "float32"))


def layer_from(entry):
    """The layer a spec entry describes (JSON lists back to the tuples the layers take)."""
    config = dict(entry["config"])
    for key in ("padding", "kernel", "stride", "dilation", "size"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    return LAYER_TYPES[entry["type"]](**config)


def save(model, path):
    """Write ``model`` (architecture + parameters) to ``path`` atomically.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    path : file name; ``.npz`` is used as given (NumPy does not append it here).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a tinyconv Sequential, got {type(model).__name__}")
    path = check_path(path)
    arrays = {"spec": np.frombuffer(json.dumps(model_spec(model)).encode(), dtype=np.uint8)}
    for l, layer in enumerate(model.layers, 1):
        for key, value in layer.params.items():
            # load refuses such a file, so writing one would only lose the model later
            if not np.isfinite(value).all():
                raise ValueError(f"model: layer {l} ({layer.name}) parameter {key} holds "
                                 f"{value.size - np.count_nonzero(np.isfinite(value))} NaN "
                                 "or inf values; a file with them could never be loaded")
            arrays[f"{l}/{key}"] = value
    with atomic_write(path, "wb") as f:      # a crash or Ctrl-C leaves the old file in place
        np.savez(f, **arrays)


def read_headers(path):
    """``{name: (shape, dtype)}`` of every array in the .npz at ``path``, from the .npy headers
    alone (no data is read), with each header checked against the member's stored size."""
    headers = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename.removesuffix(".npy")
            with z.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"unknown .npy version {version}")
                    shape, _, dtype = read(member, max_header_size=10_000)
                except (ValueError, SyntaxError) as err:
                    raise ValueError(f"members [{info.filename!r}] are not arrays ({err})"
                                     ) from None
                offset = member.tell()
            if dtype.hasobject:
                raise ValueError(f"member {name!r} holds Python objects (pickle), which "
                                 "tinyconv never reads")
            n = math.prod(shape)
            if n * dtype.itemsize + offset != info.file_size:
                raise ValueError(f"member {name!r}: its header announces {dtype} {shape} "
                                 f"({n * dtype.itemsize:,} bytes) but it stores "
                                 f"{info.file_size - offset:,}")
            headers[name] = (tuple(shape), dtype)
    return headers


def check_arrays(headers, entries):
    """The spec's layers against the arrays' headers: same names, shapes and float dtypes, and
    no more than :data:`MAX_PARAMETERS` in all (before any layer is built)."""
    expected = {}
    for l, entry in enumerate(entries, 1):
        shapes = declared_shapes(entry)      # not None: check_spec refused malformed configs
        label = entry["config"].get("name") or entry["type"]
        expected.update({f"{l}/{key}": (shape, label) for key, shape in shapes.items()})
    missing = sorted(set(expected) - set(headers))
    extra = sorted(set(headers) - set(expected))
    if missing or extra:
        raise ValueError(f"parameters do not match the spec (missing {missing}, "
                         f"unexpected {extra})")
    for name, (want, label) in expected.items():
        shape, dtype = headers[name]
        if shape != want or dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise ValueError(f"parameter {name} ({label}) should be float {want}, "
                             f"found {dtype} {shape}")
    total = sum(math.prod(shape) for shape, _ in expected.values())
    if total > MAX_PARAMETERS:
        raise ValueError(f"the spec declares {total:,} parameters, more than the "
                         f"{MAX_PARAMETERS:,} tinyconv loads")


def load(path):
    """Read a model written by :func:`save`.

    A model file is untrusted input: before any layer is built, the architecture spec and the
    arrays' headers are checked against each other and against these limits, so a small
    crafted file cannot make ``load`` allocate more than they allow:

    * the JSON spec: at most 1,000,000 bytes (:data:`MAX_SPEC_BYTES`);
    * at most 1,000 layers (:data:`MAX_LAYERS`);
    * at most 50,000,000 parameters in all (:data:`MAX_PARAMETERS`; 200 MB in float32);
    * at most 16,777,216 input values ``H * W * C`` per example (:data:`MAX_INPUT_VALUES`);
    * dtype float32 or float64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, not a tinyconv model, from a newer format version, beyond a
        limit above, holds an object (pickle) array, an array whose header disagrees with
        its stored size, NaN or inf, or misses or misshapes a parameter; the message names
        the file.
    """
    # messages name the file as the caller wrote it ('./m.npz', not Path's 'm.npz')
    path, where = check_path(path), os.fspath(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no model file at {where!r}")
    if not zipfile.is_zipfile(path):     # NumPy's own message would suggest unpickling it
        raise ValueError(f"{where}: not a readable tinyconv model file (not an .npz archive)")
    try:
        headers = read_headers(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{where}: not a readable tinyconv model file ({err})") from None
    if "spec" not in headers:
        raise ValueError(f"{where}: not a tinyconv model file (no architecture spec)")
    spec_shape, spec_dtype = headers.pop("spec")
    if spec_dtype != np.uint8 or len(spec_shape) != 1:
        raise ValueError(f"{where}: bad architecture spec (not a byte string)")
    if spec_shape[0] > MAX_SPEC_BYTES:
        raise ValueError(f"{where}: bad architecture spec ({spec_shape[0]:,} bytes, more than "
                         f"the {MAX_SPEC_BYTES:,} tinyconv loads)")
    try:
        with np.load(path, allow_pickle=False) as f:
            raw = f["spec"]
        spec = json.loads(raw.tobytes().decode())
        entries = check_spec(spec)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: bad architecture spec ({err})") from None
    try:
        check_arrays(headers, entries)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    try:
        model = model_from_spec(spec)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: bad architecture spec ({err})") from None
    expected = {f"{l}/{key}": layer for l, layer in enumerate(model.layers, 1)
                for key in layer.params}
    if set(expected) != set(headers):   # declared_shapes and the layers disagree: a bug here
        raise ValueError(f"{where}: parameters do not match the spec (missing "
                         f"{sorted(set(expected) - set(headers))}, unexpected "
                         f"{sorted(set(headers) - set(expected))})")
    with np.load(path, allow_pickle=False) as f:
        for name, layer in expected.items():
            key = name.split("/")[1]
            value, want = f[name], layer.params[key]
            if value.shape != want.shape or value.dtype.kind != "f":
                raise ValueError(f"{where}: parameter {name} ({layer.name}) should be float "
                                 f"{want.shape}, found {value.dtype} {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{where}: parameter {name} ({layer.name}) holds NaN or inf")
            layer.params[key] = value.astype(want.dtype)
    return model
