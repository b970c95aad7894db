"""What every subcommand of ``tinyconv`` shares: the usage error, the parser, the
:class:`Command` record, the argument types, and the arguments and checks several commands use.

Argument parsing lives in this package only; the commands call the library and print.
"""

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..architectures import INPUT_SHAPE
from ..data import load_mnist, to_float
from ..files import is_file_not_folder, is_writable, writable_dir_problem


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` instead of printing the usage
    block and exiting, so that :func:`tinyconv.cli.main` reports every error the same way."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, a function adding its arguments, and its runner
    ``run(args) -> exit status``. ``interrupted`` is what Ctrl-C prints."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    interrupted: str = "interrupted"


def as_usage_error(err, flags):
    """A library error about an argument (``"layer: expected …"``) as the :class:`UsageError`
    of the option that gave it (``"--layer: expected …"``); ``flags`` maps argument names to
    options. An error about anything else is returned unchanged."""
    name, sep, rest = str(err).partition(": ")
    if sep and name in flags:
        return UsageError(f"{flags[name]}: {rest}")
    return err


# --------------------------------------------------------------------------- argument types


def number_type(convert, accept, expected):
    """An argparse ``type=``: ``convert(text)``, kept if ``accept(value)``; otherwise the
    one-line message ``expected <expected>, got '<text>'``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_int = number_type(int, lambda v: v >= 1, "a whole number >= 1")     # --epochs, --limit
natural_int = number_type(int, lambda v: v >= 0, "a whole number >= 0")      # --seed, --feature
positive_float = number_type(float, lambda v: math.isfinite(v) and v > 0,    # --lr
                             "a positive number")
natural_float = number_type(float, lambda v: math.isfinite(v) and v >= 0,    # --weight-decay
                            "a number >= 0")
unit_float = number_type(float, lambda v: 0 < v <= 1, "a number in (0, 1]")  # --decay
momentum_float = number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")  # --momentum
# --augment: a shift as wide as the digit would move it out of the image entirely
shift_int = number_type(int, lambda v: 0 <= v < INPUT_SHAPE[0],
                        f"a whole number of pixels in 0..{INPUT_SHAPE[0] - 1} (less than the "
                        f"{INPUT_SHAPE[0]}-pixel digit)")




#: ``--out DIR`` of tour, explain and sanity: any non-empty path (an empty one would write
#: into the current directory without anyone having said so).
folder_path = number_type(lambda text: Path(text) if text.strip() else None, lambda p: True,
                          "a folder name")


def model_text(text):
    """An argparse ``type=`` for ``MODEL`` / ``--model``: any non-empty text (the file or the
    name is looked at when the command runs)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a saved model (.npz) or 'mnist', got ''")
    return text


# --------------------------------------------------------------------------- shared arguments


def model_argument(parser):
    """The positional ``MODEL`` of evaluate, rf and info."""
    parser.add_argument("model", metavar="MODEL", type=model_text,
                        help="a saved model (.npz), or 'mnist' for the shipped one (write "
                             "'./mnist' for a file of that name)")


def model_option(parser):
    """``--model`` of tour, explain and explore."""
    parser.add_argument("--model", default="mnist", type=model_text,
                        help="a saved model (.npz), or 'mnist' for the shipped one "
                             "(default: %(default)s)")


def add_data_arguments(parser):
    """``--data``, ``--cache-dir`` and ``--download/--no-download`` (train and evaluate)."""
    parser.add_argument("--data", choices=("bundled", "full"), default="bundled",
                        help="bundled: the 5,000 shipped digits (4,000 train / 1,000 held out), "
                             "no network; full: MNIST's 60,000 / 10,000, downloaded once and "
                             "cached (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="where full MNIST is cached (default: $TINYCONV_CACHE, else "
                             "~/.cache/tinyconv/mnist)")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                        help="fetch missing full-MNIST files (default: yes)")


# --------------------------------------------------------------------------- checks and loading


def check_cache_dir(args):
    """Refuse a ``--cache-dir`` that is a file, or that a download could not write to."""
    folder = args.cache_dir
    if folder is None:
        return
    if is_file_not_folder(folder):
        raise UsageError(f"--cache-dir {folder} is a file, not a directory")
    if args.data == "full" and args.download and writable_dir_problem(folder):
        raise UsageError(f"--cache-dir {folder} is not writable; choose another directory "
                         "or pass --no-download to read an existing cache")


def check_out(path):
    """Refuse an ``--out`` file that cannot be written, before hours of training are spent."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--out {path}: the directory {str(folder)!r} does not exist")
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name such as model.npz")
    if not is_writable(folder):
        raise UsageError(f"--out {path}: the directory {str(folder)!r} is not writable")


def load_digits(args, part):
    """``(images float32 (N, 28, 28, 1), labels (N,), description)`` for ``part`` in
    ``{"train", "test"}`` of ``--data``."""
    if args.data == "bundled":
        split = {"train": "bundled-train", "test": "bundled-test"}[part]
        images, labels = load_mnist(split)
        what = {"train": "bundled training", "test": "held-out bundled"}[part]
    else:
        images, labels = load_mnist(part, download=args.download, cache_dir=args.cache_dir)
        what = {"train": "MNIST training", "test": "MNIST test"}[part]
    return to_float(images), labels, f"{len(labels):,} {what} digits"
