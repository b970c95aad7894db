"""``tinyconv sanity``: do the maps explain? Randomisation, image recovery, deletion/insertion.

``--out`` is replaced whole, as the tour's folder is (:mod:`tinyconv.folders`): a run killed
midway leaves the older figures and ``sanity.json`` together, and a folder holding files
this command did not write is refused before any work.
"""

import json
from pathlib import Path

from ..data import load_mnist, to_float
from ..files import atomic_write
from ..folders import check_folder, staged_folder
from ..pretrained import load_model
from ._types import Command, UsageError, folder_path, natural_int, positive_int

#: The figures ``tinyconv sanity`` writes, by file name.
FIGURES = ("cascade_grid.png", "similarity_cascade.png", "similarity_independent.png",
           "deletion_insertion.png")
#: the folder to :mod:`tinyconv.folders`; before folders had a record it held these files
OUTPUT = dict(writer="sanity", legacy=lambda path: path.name in {*FIGURES, "sanity.json"},
              name="--out")


def sanity_arguments(parser):
    parser.add_argument("--out", type=folder_path, default=Path("tinyconv-sanity"), metavar="DIR",
                        help="directory for the figures and sanity.json (default: %(default)s)")
    parser.add_argument("--examples", type=positive_int, default=100, metavar="N",
                        help="held-out digits to measure on (default: %(default)s)")
    parser.add_argument("--seed", type=natural_int, default=0,
                        help="seeds the randomised weights, SmoothGrad's noise and the "
                             "permuted labels (default: %(default)s)")


def run_sanity(args):
    """Sanity checks of every map on the shipped model: figures plus every number as JSON."""
    # imported here: the checks and their figures load matplotlib, other commands never do
    from ..plots import sanity as figures
    from ..plots.writer import save_png
    from ..sanity import sanity_checks

    try:                                # a file, an unwritable folder, another's files
        check_folder(args.out, **OUTPUT)
    except ValueError as err:
        raise UsageError(str(err)) from None
    X, y = load_mnist("bundled-test")
    X_train, y_train = load_mnist("bundled-train")
    n = min(args.examples, len(y))
    result = sanity_checks(load_model("mnist"), to_float(X[:n]), y[:n], to_float(X_train),
                           y_train, seed=args.seed)
    drawn = dict(zip(FIGURES, (figures.cascade_grid(result),
                               figures.similarity_vs_depth(result, "cascade"),
                               figures.similarity_vs_depth(result, "independent"),
                               figures.deletion_insertion(result)), strict=True))
    with staged_folder(args.out, **OUTPUT) as stage:
        for name, fig in drawn.items():
            save_png(fig, stage / name, 110)
        with atomic_write(stage / "sanity.json", "w") as f:
            json.dump(result, f, indent=1)
    for name in [*drawn, "sanity.json"]:
        print(args.out / name)
    return 0


SANITY = Command("sanity checks of the maps: randomisation, image recovery, deletion / "
                 "insertion", sanity_arguments, run_sanity)
