"""``tinyconv tour``: every figure of the interpretation tour as a PNG, plus ``index.html``.

The flags are checked against the model before any figure is drawn, and a bad one is a usage
error (exit status 2) that names the flag: ``--layer: expected a layer with feature maps …``.
"""

import time
from pathlib import Path

from ..architectures import check_mnist_model
from ..pretrained import load_model
from ._types import (
    Command,
    as_usage_error,
    folder_path,
    model_option,
    natural_int,
    positive_int,
)

#: the tour's argument names and the options that give them, for messages
FLAGS = {"out_dir": "--out", "digit": "--digit", "layer": "--layer", "feature": "--feature",
         "examples": "--examples"}


def tour_arguments(parser):
    """``--out``, ``--digit``, ``--layer``, ``--feature``, ``--examples``, ``--model``."""
    parser.add_argument("--out", type=folder_path, default=Path("tinyconv-tour"), metavar="DIR",
                        help="directory for the PNGs and index.html, replaced whole; one "
                             "holding files the tour did not write is refused "
                             "(default: %(default)s)")
    parser.add_argument("--digit", type=int, choices=range(10), default=8, metavar="0..9",
                        help="digit class of the most/least probable examples and of the "
                             "occlusion figure (default: %(default)s)")
    parser.add_argument("--layer", default="conv2",
                        help="layer of the unit shown by the projection figures, one with "
                             "feature maps (default: %(default)s)")
    parser.add_argument("--feature", type=natural_int, default=3,
                        help="feature map of that layer (default: %(default)s)")
    parser.add_argument("--examples", type=positive_int, default=None, metavar="N",
                        help="use only the first N held-out digits (quicker; default: all)")
    model_option(parser)


def run_tour(args):
    """Check the flags against the model, run :func:`tinyconv.tour.tour`; print each file
    written, then the page."""
    # imported here: the tour draws with matplotlib, which the other commands never load
    from .. import tour as tour_module

    model = load_model(args.model)
    check_mnist_model(model, args.model, need_conv=True)
    layer = int(args.layer) if args.layer.isdigit() else args.layer
    try:
        tour_module.check_arguments(model, args.out, args.digit, layer, args.feature,
                                    args.examples)
    except (ValueError, TypeError) as err:
        raise as_usage_error(err, FLAGS) from None
    start = time.perf_counter()
    paths = tour_module.tour(args.out, digit=args.digit, layer=layer, feature=args.feature,
                             examples=args.examples, model=model)
    for path in paths[:-1]:
        print(path)
    print(f"{len(paths) - 1} figures in {time.perf_counter() - start:.0f} s; "
          f"open {paths[-1]}")
    return 0


TOUR = Command("the interpretation tour: every figure as a PNG, plus index.html",
               tour_arguments, run_tour)
