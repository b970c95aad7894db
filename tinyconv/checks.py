"""Argument checks shared by every module: bad input fails early, naming the argument.

Each check returns the (possibly converted) value, so call sites read
``x = check_array(x, "x", ndim=4)``. Messages follow one pattern:
``"<argument>: expected <what>, got <what came>"``.
"""

import numbers

import numpy as np


def check_array(x, name, ndim=None, shape=None, finite=True, allow_empty=False):
    """Validate a floating-point array and return it C-contiguous.

    Parameters
    ----------
    x : array-like. Non-contiguous and negative-stride views are accepted (copied), and so is
        float32 or float64 in the other byte order (converted to the machine's).
    name : the argument's name, used in messages.
    ndim : required number of dimensions, or None.
    shape : required shape; ``None`` entries match anything.
    finite : reject NaN and inf.
    allow_empty : accept a zero-size batch.

    Raises
    ------
    TypeError
        For any dtype but float32 and float64 (ints, bools, complex, object, float16): casting
        uint8 images silently would hide a missing ``/ 255`` — use :func:`tinyconv.to_float`;
        the numba kernels compile for float32 and float64 only.
    ValueError
        For a wrong ndim or shape, an empty batch, NaN or inf.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name}: expected a floating-point array, got {type(x).__name__}"
                            f" that NumPy cannot convert ({err})") from None
    if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) and not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))     # e.g. big-endian '>f4' read from a file
    if x.dtype not in (np.float32, np.float64):
        hint = " (scale images with tinyconv.to_float)" if x.dtype.kind in "ui" else ""
        raise TypeError(f"{name}: expected a floating-point array (float32 or float64), "
                        f"got dtype {x.dtype}{hint}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
    if shape is not None:
        if len(shape) != x.ndim or any(
                s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {x.shape}")
    if x.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected a non-empty array, got shape {x.shape}")
    if finite and not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or inf")
    return np.ascontiguousarray(x)


#: The dtypes a model computes in: the numba kernels compile for these two.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, name="dtype"):
    """Return ``dtype`` as a native-order ``numpy.dtype`` if it is float32 or float64.

    Raises
    ------
    TypeError
        For anything else (ints would truncate every weight, complex and float16 or
        longdouble have no kernels), naming ``name``.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r} ({err})") from None
    if dt.kind == "f" and dt.itemsize in (4, 8):
        dt = dt.newbyteorder("=")
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64 (the kernels compile for these "
                        f"two), got {dt}")
    return dt


def check_int(v, name, minimum=None, maximum=None):
    """Return ``v`` as an int if it is an integer (not a bool) within ``[minimum, maximum]``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {v}")
    return v


def check_pair(v, name, minimum=None):
    """An int or a pair of ints -> ``(h, w)``, each checked by :func:`check_int`."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or an (h, w) pair, got {v!r}")
        return tuple(check_int(e, name, minimum) for e in v)
    if isinstance(v, str) or not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{name}: expected an int or an (h, w) pair, got {type(v).__name__} {v!r}")
    v = check_int(v, name, minimum)
    return v, v


def check_choice(v, name, choices):
    """Return ``v`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {v!r}")
    return v
