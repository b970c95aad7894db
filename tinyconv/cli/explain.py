"""``tinyconv explain`` (every interpretation method on the user's own image) and
``tinyconv explore`` (the live explorer on 127.0.0.1)."""

from pathlib import Path

from ..architectures import check_mnist_model
from ..data import load_mnist, to_float
from ..folders import check_folder
from ..pretrained import load_model
from ._types import Command, UsageError, folder_path, model_option, natural_int


def explain_arguments(parser):
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="PNG / JPEG files (any size, colour or grey, either polarity)")
    parser.add_argument("--index", type=natural_int, action="append", default=[], metavar="N",
                        help="explain held-out bundled digit N instead (repeatable)")
    parser.add_argument("--method", action="append", default=None, metavar="M",
                        help="saliency, gradient, deconvnet, guided, occlusion, maxact, "
                             "input_x_gradient, smoothgrad, integrated_gradients, grad_cam, "
                             "guided_grad_cam; repeatable (default: all)")
    parser.add_argument("--layer", default=None, metavar="L",
                        help="the unit's layer (name or number) for gradient / deconvnet / "
                             "guided / maxact (default: the class score)")
    parser.add_argument("--feature", type=natural_int, default=None, metavar="K",
                        help="the unit's feature k in --layer (default: the strongest map)")
    parser.add_argument("--target", type=natural_int, default=None, metavar="C",
                        help="the class explained (default: the predicted class)")
    model_option(parser)
    parser.add_argument("--out", type=folder_path, default=Path("explain"), metavar="DIR",
                        help="folder for the PNGs and JSON (default: %(default)s)")


def run_explain(args):
    """Each image through each method: one PNG per method and one JSON per image."""
    # imported here: explain draws its figures, which the other commands never load
    from .. import explain as ex

    if not args.images and not args.index:
        raise UsageError("give at least one IMAGE or --index N")
    if args.feature is not None and args.layer is None:
        raise UsageError("--feature K needs --layer L (the layer whose feature k is meant)")
    methods = args.method or ex.available_methods()
    unknown = [m for m in methods if m not in ex.available_methods()]
    if unknown:
        raise UsageError(f"--method: expected some of {', '.join(ex.available_methods())}, "
                         f"got {', '.join(unknown)}")
    try:                                # a file, an unwritable folder, another's files
        check_folder(args.out, **ex.OUTPUT, name="--out")
    except ValueError as err:
        raise UsageError(str(err)) from None
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


def explore_arguments(parser):
    model_option(parser)
    parser.add_argument("--port", type=natural_int, default=8000,
                        help="port on 127.0.0.1; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the address but do not open a browser")


def run_explore(args):
    """Serve the explorer page on 127.0.0.1 until Ctrl-C."""
    from ..explore.server import serve

    if args.port > 65535:
        raise UsageError(f"--port: expected a number in 0..65535, got {args.port}")
    model = load_model(args.model)
    check_mnist_model(model, args.model)
    return serve(model, port=args.port, browser=not args.no_browser)


EXPLAIN = Command("every interpretation method on your own image: PNGs + JSON",
                  explain_arguments, run_explain)
EXPLORE = Command("the live explorer in the browser (a local server on 127.0.0.1)",
                  explore_arguments, run_explore, interrupted="explorer stopped")
