"""``tinyconv rf`` and ``tinyconv info``: a model's receptive fields and its layers."""

from ..pretrained import load_model
from ..receptive_field import format_table
from ._types import Command, model_argument


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


RF = Command("receptive field of every layer (size r, jump S, padding P)", model_argument,
             run_rf)
INFO = Command("layers, output shapes and parameter counts", model_argument, run_info)
