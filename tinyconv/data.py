"""MNIST: the bundled 5,000-digit subset, an IDX parser and a verified download with a cache.

Every loader returns ``images`` uint8 ``(N, 28, 28, 1)`` (NHWC, one channel, values 0..255)
and ``labels`` int64 ``(N,)``; :func:`to_float` turns the images into what a model takes.

The bundled subset (``tinyconv/data/mnist_5k.npz``, made by ``scripts/make_bundled_mnist.py``)
needs no network: 500 digits per class, split once, stratified, into 400 + 100 per class.
The full set (LeCun, Cortes & Burges) is four gzip IDX files, fetched only on request from
the first mirror that answers, checked against the published SHA-256 sums, and cached.
"""

import gzip
import hashlib
import os
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .checks import check_choice
from .files import atomic_write, is_writable
from .progress import Progress

SPLITS = ("bundled", "bundled-train", "bundled-test", "train", "test")
BUNDLED_FILE = "mnist_5k.npz"

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRRORS_ENV = "TINYCONV_MNIST_MIRRORS"  # comma-separated base URLs, tried in order

# Published SHA-256 of each gzip file, laid out as `sha256sum` prints them (torchvision
# checks the same values). One table, so that tests can point it at small generated files.
SHA256 = dict(
    line.split()[::-1]
    for line in """
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
""".split("\n")
    if line
)
FILES = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TIMEOUT = 60  # seconds without a byte before a mirror counts as failed
CHUNK = 1 << 16


class ChecksumError(OSError):
    """A file's SHA-256 differs from the published one (a corrupt cache or a bad mirror)."""


class DownloadError(OSError):
    """No mirror delivered a file; the message lists each mirror and why it failed."""


def load_mnist(split="bundled", download=False, cache_dir=None, mirrors=None):
    """Load MNIST digits.

    Parameters
    ----------
    split : {"bundled", "bundled-train", "bundled-test", "train", "test"}
        ``"bundled"`` is the shipped subset (5,000 digits, 500 per class), whose fixed
        stratified split is ``"bundled-train"`` (4,000) and ``"bundled-test"`` (1,000).
        ``"train"`` (60,000) and ``"test"`` (10,000) are the full MNIST sets, read from the
        cache and fetched only when ``download=True``.
    download : bool
        Fetch missing (or corrupt) full-MNIST files from the mirrors.
    cache_dir : str or os.PathLike, optional
        Where the full set lives; default :func:`default_cache_dir`.
    mirrors : sequence of str, optional
        Base URLs tried in order; default ``$TINYCONV_MNIST_MIRRORS`` (comma-separated),
        else :data:`DEFAULT_MIRRORS`.

    Returns
    -------
    images : ndarray of uint8, shape (N, 28, 28, 1)
    labels : ndarray of int64, shape (N,)

    Raises
    ------
    FileNotFoundError
        A full-MNIST file is not cached and ``download`` is False.
    ChecksumError
        A cached file does not match its published SHA-256 and ``download`` is False.
    DownloadError
        Every mirror failed (the message lists each failure).
    PermissionError
        The cache directory cannot be written when a download is needed.
    """
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    check_choice(split, "split", SPLITS)
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
        raise TypeError(f"cache_dir must be a path or None, got {type(cache_dir).__name__}")
    mirrors = _mirror_list(mirrors)
    if split.startswith("bundled"):
        return _load_bundled(split)

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    images_file, labels_file = FILES[split]
    images = read_idx(_fetch(images_file, folder, download, mirrors), name=images_file)
    labels = read_idx(_fetch(labels_file, folder, download, mirrors), name=labels_file)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{images_file} / {labels_file}: expected images (N, 28, 28) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    return images[..., None], labels.astype(np.int64)


def read_idx(path_or_bytes, name=None):
    """Parse an IDX file (LeCun's MNIST format), gzip-compressed or raw.

    The header is big-endian: two zero bytes, the type code ``0x08`` (unsigned byte), the
    number of dimensions ``ndim``, then ``ndim`` uint32 sizes; the payload follows, C order.
    MNIST images have magic 2051 (``0x00000803``: 3 dims), labels 2049 (``0x00000801``).

    Parameters
    ----------
    path_or_bytes : str, os.PathLike or bytes
        A file, or its content.
    name : str, optional
        What to call the data in error messages (default: the path, or ``"<bytes>"``).

    Returns
    -------
    ndarray of uint8, shape given by the header, e.g. (N, 28, 28) or (N,)

    Raises
    ------
    ValueError
        Corrupt gzip data, a wrong magic number, or a payload whose length differs from
        the one the header announces.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data, name = bytes(path_or_bytes), name or "<bytes>"
    elif isinstance(path_or_bytes, str | os.PathLike):
        data, name = Path(path_or_bytes).read_bytes(), name or os.fspath(path_or_bytes)
    else:
        kind = type(path_or_bytes).__name__
        raise TypeError(f"path_or_bytes must be a path or bytes, got {kind}")
    if data[:2] == b"\x1f\x8b":  # the gzip magic; MNIST is distributed compressed
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{name}: corrupt gzip data ({exc})") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] == 0:
        seen = int.from_bytes(data[:4].ljust(4, b"\x00"), "big")
        raise ValueError(
            f"{name}: not an IDX file of unsigned bytes: expected magic 0x000008NN "
            f"(2051 for images, 2049 for labels), got 0x{seen:08x} ({seen})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * d : 8 + 4 * d], "big") for d in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(
            f"{name}: header announces shape {shape} ({expected} bytes with the header), "
            f"but the data has {len(data)} bytes"
        )
    # copy: frombuffer over bytes is read-only, and callers may want to edit the images
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def to_float(images):
    """Scale uint8 images to float32 in [0, 1] (divide by 255), the input a model takes.

    Parameters
    ----------
    images : ndarray of uint8, any shape, e.g. (N, 28, 28, 1)

    Returns
    -------
    ndarray of float32, same shape
    """
    images = np.asarray(images)
    # Only uint8 is accepted: dividing images that are already float would silently
    # shrink them a second time.
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (0..255), got dtype {images.dtype}")
    return images.astype(np.float32) / np.float32(255)


def default_cache_dir():
    """Where the full MNIST files are cached.

    Returns
    -------
    pathlib.Path
        ``$TINYCONV_CACHE`` if set, else ``$XDG_CACHE_HOME/tinyconv/mnist``, else
        ``~/.cache/tinyconv/mnist``.
    """
    if os.environ.get("TINYCONV_CACHE"):
        return Path(os.environ["TINYCONV_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinyconv" / "mnist"


def _mirror_list(mirrors):
    """Validate ``mirrors`` (or take the environment / defaults) -> tuple of base URLs."""
    if mirrors is None:
        env = [m.strip() for m in os.environ.get(MIRRORS_ENV, "").split(",") if m.strip()]
        return tuple(env) or DEFAULT_MIRRORS
    # a bare string is a Sequence too, but one of characters, not of URLs
    listed = isinstance(mirrors, Sequence) and not isinstance(mirrors, str)
    if not listed or not all(isinstance(m, str) for m in mirrors):
        raise TypeError(f"mirrors must be a sequence of URL strings, got {mirrors!r}")
    if not mirrors:
        raise ValueError("mirrors must name at least one base URL, got an empty sequence")
    return tuple(mirrors)


def _load_bundled(split):
    """Read the shipped subset: (5000 | 4000 | 1000, 28, 28, 1) uint8 and (N,) int64."""
    ref = resources.files(__package__).joinpath("data", BUNDLED_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
        images, labels, test = npz["images"], npz["labels"], npz["test_mask"]
    keep = {"bundled": slice(None), "bundled-train": ~test, "bundled-test": test}[split]
    return images[keep][..., None], labels[keep].astype(np.int64)


def _fetch(name, folder, download, mirrors):
    """Return the verified bytes of ``folder/name``, downloading it if allowed and needed."""
    path = folder / name
    expected = SHA256[name]
    if path.is_file():
        data = path.read_bytes()
        # hashed on every load: a file damaged on disk must never be parsed as MNIST
        seen = hashlib.sha256(data).hexdigest()
        if seen == expected:
            return data
        if not download:
            raise ChecksumError(
                f"cached file {path} is corrupt: SHA-256 {seen}, expected {expected}; "
                "delete it, or call load_mnist(..., download=True) to fetch it again"
            )
    elif not download:
        raise FileNotFoundError(
            f"{name} is not in the cache {folder}; call load_mnist(..., download=True) "
            "or run `tinyconv train --data full` to download the full MNIST set "
            "(or use split='bundled', which needs no download)"
        )
    _download(name, path, mirrors)
    return path.read_bytes()


def _download(name, path, mirrors):
    """Fetch ``name`` from the first mirror that delivers it intact, into ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # keep the kind (PermissionError, NotADirectoryError, ...)
        raise type(exc)(
            f"cannot create the cache directory {path.parent} ({exc.strerror}); "
            "pass cache_dir= or set TINYCONV_CACHE to a writable directory"
        ) from exc
    if not is_writable(path.parent):
        raise PermissionError(
            f"the cache directory {path.parent} is not writable; pass cache_dir= "
            "or set TINYCONV_CACHE to a writable directory"
        )
    import http.client  # here, not at the top: only a download needs the HTTP stack

    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            _download_one(url, path, SHA256[name])
            return
        # OSError covers HTTP errors, refused connections, timeouts and checksum errors;
        # HTTPException a garbled response; ValueError a malformed mirror URL.
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
    raise DownloadError(f"could not download {name} from any mirror:\n" + "\n".join(failures))


def _download_one(url, path, expected):
    """Stream ``url`` to a temporary file beside ``path``; verify; then rename into place.

    Nothing is left behind on failure, so the cache only ever holds complete, verified files.
    """
    import urllib.request

    with atomic_write(path, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        length = resp.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        digest, received = hashlib.sha256(), 0
        with Progress(total, f"downloading {path.name}") as bar:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            # http.client returns a short body silently when the connection drops
            raise OSError(f"incomplete download: received {received} of {total} bytes")
        # raised inside atomic_write: the unverified bytes never take the file's name
        if digest.hexdigest() != expected:
            raise ChecksumError(f"SHA-256 {digest.hexdigest()}, expected {expected}")
