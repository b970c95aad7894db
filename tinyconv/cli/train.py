"""``tinyconv train`` and ``tinyconv evaluate``: the shipped model's recipe from a shell, and
accuracy with a confusion matrix on the held-out digits."""

import time
from pathlib import Path

from ..architectures import ARCHITECTURES, check_mnist_model
from ..pretrained import load_model
from ..serialize import save
from ..training import MNIST_RECIPE, OPTIMIZERS, SCHEDULES, Recipe, evaluate, train_recipe
from ._types import (
    Command,
    add_data_arguments,
    check_cache_dir,
    check_out,
    load_digits,
    model_argument,
    momentum_float,
    natural_float,
    natural_int,
    positive_float,
    positive_int,
    shift_int,
    unit_float,
)


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
    parser.add_argument("--augment", type=shift_int, default=r.shift, metavar="PIXELS",
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


TRAIN = Command("train a model on MNIST digits and save it", train_arguments, run_train,
                interrupted="interrupted; nothing saved")
EVALUATE = Command("accuracy and confusion matrix on the held-out digits", evaluate_arguments,
                   run_evaluate)
