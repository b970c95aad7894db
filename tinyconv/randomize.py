"""Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", §3.1).

If a map explains what a *trained* network computes, it must change when the network's
weights are replaced by random ones. :func:`randomize` returns a copy of a model in which the
named layers are re-drawn exactly as at construction (each layer's own ``init_params``,
He-normal weights and zero biases); the original is never touched.

Two schedules of the paper:

* **cascading** (§3.1, Fig. 2): randomise the top layer, then the top two, and so on down to
  the first convolution — ``logits``, ``logits + conv3``, …;
* **independent** (§3.1, Fig. 4 of the paper's appendix): one layer at a time, the rest trained.

Layer ``l`` of a randomised copy always draws from ``default_rng([seed, l])``, so the logits of
the cascade's second step are the same random numbers as those of its first: each step adds one
randomised layer and changes nothing else.
"""

import numpy as np

from .checks import check_int
from .serialize import model_from_spec, model_spec


def parameter_layers(model):
    """The layer numbers ``l`` that have parameters (convolutions and dense), bottom up."""
    return [l for l, layer in enumerate(model.layers, 1) if layer.params]


def copy_model(model):
    """An independent copy of ``model``: the architecture rebuilt from
    :func:`~tinyconv.serialize.model_spec` (the JSON spec :func:`tinyconv.save` writes) and
    every parameter array copied, so no array is shared and no cache comes along."""
    twin = model_from_spec(model_spec(model))
    for mine, theirs in zip(twin.layers, model.layers, strict=True):
        mine.params = {key: value.copy() for key, value in theirs.params.items()}
        mine.grads = {key: np.zeros_like(value) for key, value in mine.params.items()}
    return twin


def _layer_numbers(model, layers):
    """``layers`` (a name, a number, or a list of them) as sorted unique ``l`` with params."""
    if isinstance(layers, (str, int, np.integer)) and not isinstance(layers, bool):
        layers = [layers]
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers: expected a layer name or number, or a list of them, got "
                        f"{type(layers).__name__}")
    numbers = []
    for layer in layers:
        try:
            l = model.index(layer)
        except (ValueError, TypeError) as err:
            raise type(err)(f"layers: {err}") from None
        if l == 0 or not model.layers[l - 1].params:
            with_params = [model.names[p] for p in parameter_layers(model)]
            raise ValueError(f"layers: {model.names[l]!r} has no parameters to randomise; "
                             f"expected some of {with_params}")
        numbers.append(l)
    return sorted(set(numbers))


def randomize(model, layers, seed=0):
    """A copy of ``model`` with the parameters of ``layers`` re-initialised.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential` (left bit-identical).
    layers : a layer name or number, or a list of them; each must have parameters. An empty
        list gives an exact copy.
    seed : int >= 0; layer ``l`` draws from ``numpy.random.default_rng([seed, l])`` through
        its own ``init_params`` (He-normal weights, zero biases: as at construction).

    Returns
    -------
    :class:`~tinyconv.model.Sequential` of the same architecture and dtype; the layers not named
    hold copies of the original parameters, bit for bit.
    """
    seed = check_int(seed, "seed", minimum=0)
    numbers = _layer_numbers(model, layers)
    twin = copy_model(model)
    for l in numbers:
        twin.layers[l - 1].init_params(np.random.default_rng([seed, l]))
    return twin


def cascade(model, seed=0):
    """The cascading randomisation, top down (Adebayo et al. 2018, §3.1).

    Returns
    -------
    list of ``(name, model)``: ``name`` is the lowest layer randomised so far, and ``model``
    has every parameter layer from ``name`` up to the output randomised (e.g. for the MNIST
    model ``logits``, then ``conv3`` = logits + conv3, ``conv2``, ``conv1``).
    """
    top_down = parameter_layers(model)[::-1]
    return [(model.names[l], randomize(model, top_down[:i + 1], seed))
            for i, l in enumerate(top_down)]


def independent(model, seed=0):
    """One layer at a time (Adebayo et al. 2018, §3.1, "independent randomization").

    Returns
    -------
    list of ``(name, model)``, top down: only layer ``name`` randomised, the others trained.
    The random weights of a layer are the same as in :func:`cascade` (same seed).
    """
    return [(model.names[l], randomize(model, [l], seed))
            for l in parameter_layers(model)[::-1]]
