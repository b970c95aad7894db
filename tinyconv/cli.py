"""The ``tinyconv`` command: train, evaluate and inspect MNIST models from a shell.

::

    tinyconv train --out model.npz    # the shipped model's recipe: 4,000 bundled digits, no network
    tinyconv evaluate model.npz       # accuracy on the 1,000 held-out digits + confusion matrix
    tinyconv rf mnist                 # receptive field of every layer of the shipped model
    tinyconv info mnist               # its layers, output shapes and parameter counts

The options of ``train`` are the fields of a :class:`~tinyconv.training.Recipe`; their
defaults, ``MNIST_RECIPE``, made the shipped ``tinyconv/data/mnist_cnn.npz``. ``train`` only
reads digits, calls :func:`~tinyconv.training.train_recipe` and saves, so
``train_recipe(MNIST_RECIPE, X, y)`` gives the same weights bit for bit from Python.

Every subcommand is a pair of small functions (one adds its arguments, one runs it) listed
in :data:`COMMANDS`; :func:`main` builds the parser from that table.

Errors are one line on stderr, ``tinyconv: error: …``, never a traceback. Exit codes:
0 success, 1 a failure while working (a file that is not a model, a failed download,
a diverging run), 2 a bad command line (checked before any work starts), 130 Ctrl-C.
``TINYCONV_DEBUG=1`` re-raises the exception instead, traceback and all.
"""

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .architectures import ARCHITECTURES, check_mnist_model
from .data import load_mnist, to_float
from .files import is_writable, writable_dir_problem
from .pretrained import load_model
from .receptive_field import format_table
from .serialize import save
from .training import MNIST_RECIPE, OPTIMIZERS, SCHEDULES, Recipe, evaluate, train_recipe

DEBUG_ENV = "TINYCONV_DEBUG"
EXPECTED_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` instead of printing the usage
    block and exiting, so that :func:`main` reports every error the same way."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


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
natural_int = number_type(int, lambda v: v >= 0, "a whole number >= 0")      # --seed, --augment
positive_float = number_type(float, lambda v: math.isfinite(v) and v > 0,    # --lr
                             "a positive number")
natural_float = number_type(float, lambda v: math.isfinite(v) and v >= 0,    # --weight-decay
                            "a number >= 0")
unit_float = number_type(float, lambda v: 0 < v <= 1, "a number in (0, 1]")  # --decay
momentum_float = number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")  # --momentum


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
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--cache-dir {folder} is a file, not a directory")
    if args.data == "full" and args.download and writable_dir_problem(folder):
        raise UsageError(f"--cache-dir {folder} is not writable; choose another directory "
                         "or pass --no-download to read an existing cache")


def check_out(path):
    """Refuse an ``--out`` that cannot be written, before hours of training are spent."""
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


# --------------------------------------------------------------------------- train


def train_arguments(parser):
    """The fields of a :class:`~tinyconv.training.Recipe` (defaults: ``MNIST_RECIPE``), the
    data, ``--limit`` and ``--out``."""
    r = MNIST_RECIPE
    parser.add_argument("--arch", choices=list(ARCHITECTURES), default=r.arch,
                        help="; ".join(f"{name}: {text}"
                                       for name, (_, text) in ARCHITECTURES.items())
                        + " (default: %(default)s)")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, default=r.epochs,
                        help="passes over the training digits (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=r.batch_size, metavar="N",
                        help="digits per optimizer step (default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=r.optimizer,
                        help="adam, or sgd with --momentum and --weight-decay "
                             "(default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=r.lr,
                        help="learning rate of the first epoch (default: %(default)s)")
    parser.add_argument("--schedule", choices=SCHEDULES, default=r.schedule,
                        help="exponential: lr x FACTOR per epoch (--decay); cosine: from lr "
                             "down towards 0 over the epochs (default: %(default)s)")
    parser.add_argument("--decay", type=unit_float, default=r.lr_decay, metavar="FACTOR",
                        help="multiply the learning rate by FACTOR after each epoch "
                             "(default: %(default)s)")
    parser.add_argument("--momentum", type=momentum_float, default=r.momentum,
                        help="SGD's momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=natural_float, default=r.weight_decay,
                        metavar="L2", help="SGD's L2 weight decay (default: %(default)s)")
    parser.add_argument("--seed", type=natural_int, default=r.seed,
                        help="seeds the weights, the shuffling and --augment; one seed, one "
                             "model bit for bit (default: %(default)s)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="train on the first N training digits only")
    parser.add_argument("--augment", type=natural_int, default=r.shift, metavar="PIXELS",
                        help="shift each training digit by up to PIXELS pixels, redrawn every "
                             "epoch; 0 turns this off (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("model.npz"),
                        help="where to save the trained model (default: %(default)s)")


def recipe_from(args):
    """The :class:`~tinyconv.training.Recipe` that ``tinyconv train``'s options describe."""
    return Recipe(arch=args.arch, seed=args.seed, optimizer=args.optimizer, lr=args.lr,
                  schedule=args.schedule, lr_decay=args.decay, momentum=args.momentum,
                  weight_decay=args.weight_decay, batch_size=args.batch_size,
                  epochs=args.epochs, shift=args.augment)


def run_train(args):
    """Train by the recipe of the options (:func:`~tinyconv.training.train_recipe`), one
    line per epoch, then save atomically."""
    check_cache_dir(args)
    check_out(args.out)
    recipe = recipe_from(args)
    X, y, train_text = load_digits(args, "train")
    if args.limit is not None:
        X, y = X[:args.limit], y[:args.limit]
        train_text = f"the first {len(y):,} of the {train_text}"
    X_test, y_test, test_text = load_digits(args, "test")
    model = recipe.build()
    print(f"training {args.arch!r} ({model.n_parameters():,} parameters) on {train_text}; "
          f"testing on {test_text}")
    print(recipe.describe())
    print(f"{'epoch':>5}  {'loss':>7}  {'train acc':>9}  {'held-out loss':>13}  "
          f"{'held-out acc':>12}  {'seconds':>7}")
    before = evaluate(model, X_test, y_test)
    print(f"{0:>5}  {'-':>7}  {'-':>9}  {before['loss']:>13.4f}  "
          f"{before['accuracy']:>12.4f}  {'-':>7}")
    start = time.perf_counter()
    _, history = train_recipe(recipe, X, y, validation=(X_test, y_test), model=model,
                              on_epoch=print_epoch)
    seconds = time.perf_counter() - start
    final = history[-1]["val_accuracy"]
    print(f"held-out accuracy: {final:.2%} ({round(final * len(y_test)):,} of {test_text}); "
          f"training took {seconds:.0f} s")
    save(model, args.out)
    print(f"saved {args.out}")
    return 0


def print_epoch(record):
    print(f"{record['epoch']:>5}  {record['loss']:>7.4f}  {record['accuracy']:>9.4f}  "
          f"{record['val_loss']:>13.4f}  {record['val_accuracy']:>12.4f}  "
          f"{record['seconds']:>7.1f}", flush=True)


# --------------------------------------------------------------------------- evaluate


def evaluate_arguments(parser):
    model_argument(parser)
    add_data_arguments(parser)


def run_evaluate(args):
    """Accuracy on the held-out digits and the confusion matrix."""
    check_cache_dir(args)
    model = load_model(args.model)
    check_mnist_model(model, where=args.model)
    X, y, text = load_digits(args, "test")
    scores = evaluate(model, X, y)
    correct = int((scores["predictions"] == y).sum())
    print(f"{args.model}: accuracy {scores['accuracy']:.2%} ({correct:,} of {text}), "
          f"loss {scores['loss']:.4f}")
    print()
    print(format_confusion(scores["confusion"]))
    return 0


def format_confusion(confusion):
    """Rows: true class, columns: predicted class, and each row's accuracy (its recall)."""
    K = len(confusion)
    width = max(4, len(str(confusion.max())) + 1)
    lines = ["confusion matrix (rows: true digit, columns: predicted digit)",
             "true" + "".join(f"{k:>{width}}" for k in range(K)) + "     acc"]
    for k, row in enumerate(confusion):
        total = row.sum()
        acc = f"{row[k] / total:8.1%}" if total else f"{'-':>8}"
        lines.append(f"{k:>4}" + "".join(f"{n:>{width}}" for n in row) + acc)
    return "\n".join(lines)


# --------------------------------------------------------------------------- rf, info


def model_argument(parser):
    parser.add_argument("model", metavar="MODEL",
                        help="a saved model (.npz), or 'mnist' for the shipped one")


def run_rf(args):
    """The receptive field of every layer: r (size), S (jump), P (padding)."""
    print(format_table(load_model(args.model)))
    return 0


def run_info(args):
    """The layers, their output shapes and parameter counts."""
    model = load_model(args.model)
    print(model.summary())
    print(f"{model.n_parameters():,} parameters, {model.dtype}")
    return 0


# --------------------------------------------------------------------------- tour


def tour_arguments(parser):
    """``--out``, ``--digit``, ``--layer``, ``--feature``, ``--examples``, ``--model``."""
    parser.add_argument("--out", type=Path, default=Path("tinyconv-tour"), metavar="DIR",
                        help="directory for the PNGs and index.html (default: %(default)s)")
    parser.add_argument("--digit", type=int, choices=range(10), default=8, metavar="0..9",
                        help="digit class of the most/least probable examples and of the "
                             "occlusion figure (default: %(default)s)")
    parser.add_argument("--layer", default="conv2",
                        help="layer of the unit shown by the projection figures, one with "
                             "feature maps (default: %(default)s)")
    parser.add_argument("--feature", type=int, default=3,
                        help="feature map of that layer (default: %(default)s)")
    parser.add_argument("--examples", type=int, default=None, metavar="N",
                        help="use only the first N held-out digits (quicker; default: all)")
    parser.add_argument("--model", default="mnist",
                        help="a saved model (.npz), or 'mnist' for the shipped one "
                             "(default: %(default)s)")


def run_tour(args):
    """Run :func:`tinyconv.tour.tour`; print each file written, then the page."""
    # imported here: the tour draws with matplotlib, which the other commands never load
    from .tour import tour
    start = time.perf_counter()
    paths = tour(args.out, digit=args.digit, layer=args.layer, feature=args.feature,
                 examples=args.examples, model=load_model(args.model))
    for path in paths[:-1]:
        print(path)
    print(f"{len(paths) - 1} figures in {time.perf_counter() - start:.0f} s; "
          f"open {paths[-1]}")
    return 0


# --------------------------------------------------------------------------- explain


def explain_arguments(parser):
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="PNG / JPEG files (any size, colour or grey, either polarity)")
    parser.add_argument("--index", type=natural_int, action="append", default=[], metavar="N",
                        help="explain held-out bundled digit N instead (repeatable)")
    parser.add_argument("--method", action="append", default=None, metavar="M",
                        help="saliency, gradient, deconvnet, guided, occlusion, maxact (and "
                             "input_x_gradient, smoothgrad, integrated_gradients, grad_cam "
                             "when installed); repeatable (default: all)")
    parser.add_argument("--layer", default=None, metavar="L",
                        help="the unit's layer (name or number) for gradient / deconvnet / "
                             "guided / maxact (default: the class score)")
    parser.add_argument("--feature", type=natural_int, default=None, metavar="K",
                        help="the unit's feature k in --layer (default: the strongest map)")
    parser.add_argument("--target", type=natural_int, default=None, metavar="C",
                        help="the class explained (default: the predicted class)")
    parser.add_argument("--model", default="mnist",
                        help="a saved model (.npz) or 'mnist' (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("explain"), metavar="DIR",
                        help="folder for the PNGs and JSON (default: %(default)s)")


def run_explain(args):
    """Each image through each method: one PNG per method and one JSON per image."""
    from . import explain as ex
    from .files import writable_dir_problem

    if not args.images and not args.index:
        raise UsageError("give at least one IMAGE or --index N")
    if args.feature is not None and args.layer is None:
        raise UsageError("--feature K needs --layer L (the layer whose feature k is meant)")
    methods = args.method or ex.available_methods()
    unknown = [m for m in methods if m not in ex.available_methods()]
    if unknown:
        raise UsageError(f"--method: expected some of {', '.join(ex.available_methods())}, "
                         f"got {', '.join(unknown)}")
    problem = writable_dir_problem(args.out)
    if problem:
        raise UsageError(f"--out {args.out} {problem}")
    model = load_model(args.model)
    check_mnist_model(model, args.model)
    layer = int(args.layer) if args.layer is not None and args.layer.isdigit() else args.layer
    images, labels = load_mnist("bundled-test")
    X_test = to_float(images)
    inputs = []
    for n in args.index:
        if n >= len(X_test):
            raise UsageError(f"--index: expected a number below {len(X_test)}, got {n}")
        inputs.append((X_test[n:n + 1], [f"held-out digit {n} (label {labels[n]})"],
                       f"bundled-test[{n}]", f"digit{n}"))
    for path in args.images:
        x, notes = ex.load_input(path)
        inputs.append((x, notes, str(path), Path(path).stem))
    for x, notes, source, stem in inputs:
        result = ex.explain(model, x, methods, layer=layer, feature=args.feature,
                            target=args.target, data=(X_test, labels))
        print(f"{source}: predicted {result['prediction']} "
              f"(p = {result['probabilities'][result['prediction']]:.3f})")
        for note in notes:
            print(f"  {note}")
        for path in ex.write_report(result, x, notes, source, args.out, stem):
            print(f"  wrote {path}")
    return 0


# --------------------------------------------------------------------------- explore


def explore_arguments(parser):
    parser.add_argument("--model", default="mnist",
                        help="a saved model (.npz) or 'mnist' (default: %(default)s)")
    parser.add_argument("--port", type=natural_int, default=8000,
                        help="port on 127.0.0.1; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the address but do not open a browser")


def run_explore(args):
    """Serve the explorer page on 127.0.0.1 until Ctrl-C."""
    from .explore.server import serve

    if args.port > 65535:
        raise UsageError(f"--port: expected a number in 0..65535, got {args.port}")
    model = load_model(args.model)
    check_mnist_model(model, args.model)
    return serve(model, port=args.port, browser=not args.no_browser)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, a function adding its arguments, and its runner
    ``run(args) -> exit status``. ``interrupted`` is what Ctrl-C prints."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    interrupted: str = "interrupted"


COMMANDS = {
    "train": Command("train a model on MNIST digits and save it", train_arguments, run_train,
                     interrupted="interrupted; nothing saved"),
    "evaluate": Command("accuracy and confusion matrix on the held-out digits",
                        evaluate_arguments, run_evaluate),
    "rf": Command("receptive field of every layer (size r, jump S, padding P)",
                  model_argument, run_rf),
    "info": Command("layers, output shapes and parameter counts", model_argument, run_info),
    "tour": Command("the interpretation tour: every figure as a PNG, plus index.html",
                    tour_arguments, run_tour),
    "explain": Command("every interpretation method on your own image: PNGs + JSON",
                       explain_arguments, run_explain),
    "explore": Command("the live explorer in the browser (a local server on 127.0.0.1)",
                       explore_arguments, run_explore, interrupted="explorer stopped"),
}


def build_parser():
    parser = Parser(prog="tinyconv", description="A readable CNN engine for interpreting "
                    "convolutional networks: train, evaluate and inspect MNIST models.",
                    epilog=f"Set {DEBUG_ENV}=1 to see the traceback of an error.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def one_line(message):
    """Fold a multi-line message (e.g. one failure per download mirror) onto one line."""
    first, *rest = [line.strip() for line in str(message).splitlines() if line.strip()] or [""]
    return " ".join([first, "; ".join(rest)]) if rest else first


def report(message):
    print(f"tinyconv: error: {one_line(message)}", file=sys.stderr)


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    debug = bool(os.environ.get(DEBUG_ENV))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        report(err)
        return 2
    except SystemExit as exit_:  # --help and --version print, then "exit"
        return exit_.code if isinstance(exit_.code, int) else 0
    if args.command is None:
        report(f"choose a command: {', '.join(COMMANDS)} (see 'tinyconv --help')")
        return 2
    command = COMMANDS[args.command]
    try:
        return command.run(args)
    except UsageError as err:
        report(err)
        return 2
    except KeyboardInterrupt:
        print(command.interrupted, file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as err:
        if debug:
            raise
        report(err)
        return 1
    except Exception as err:
        if debug:
            raise
        report(f"{type(err).__name__}: {err} "
               f"(unexpected; run with {DEBUG_ENV}=1 for the traceback)")
        return 1


# --------------------------------------------------------------------------- sanity


def sanity_arguments(parser):
    parser.add_argument("--out", type=Path, default=Path("tinyconv-sanity"), metavar="DIR",
                        help="directory for the figures and sanity.json (default: %(default)s)")
    parser.add_argument("--examples", type=positive_int, default=100, metavar="N",
                        help="held-out digits to measure on (default: %(default)s)")
    parser.add_argument("--seed", type=natural_int, default=0,
                        help="seeds the randomised weights, SmoothGrad's noise and the "
                             "permuted labels (default: %(default)s)")


def run_sanity(args):
    """Sanity checks of every map on the shipped model: figures plus every number as JSON."""
    import json

    from .files import atomic_write, writable_dir_problem
    from .plots import sanity as figures
    from .sanity import sanity_checks
    problem = writable_dir_problem(args.out)
    if problem:
        raise UsageError(f"--out {args.out} {problem}")
    X, y = load_mnist("bundled-test")
    X_train, y_train = load_mnist("bundled-train")
    n = min(args.examples, len(y))
    result = sanity_checks(load_model("mnist"), to_float(X[:n]), y[:n], to_float(X_train),
                           y_train, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    drawn = {"cascade_grid.png": figures.cascade_grid(result),
             "similarity_cascade.png": figures.similarity_vs_depth(result, "cascade"),
             "similarity_independent.png": figures.similarity_vs_depth(result, "independent"),
             "deletion_insertion.png": figures.deletion_insertion(result)}
    for name, fig in drawn.items():
        with atomic_write(args.out / name) as f:
            fig.savefig(f, format="png", dpi=110)
        print(args.out / name)
    with atomic_write(args.out / "sanity.json", "w") as f:
        json.dump(result, f, indent=1)
    print(args.out / "sanity.json")
    return 0


COMMANDS["sanity"] = Command("sanity checks of the maps: randomisation, image recovery, "
                             "deletion / insertion", sanity_arguments, run_sanity)
