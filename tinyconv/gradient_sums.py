"""Gradients summed over many copies of a batch: what SmoothGrad and Integrated Gradients share.

Both methods send many altered copies of each example through the model (``n`` noisy copies,
or ``m`` points on a path) and sum the class score's gradient over them. The copies of ``N``
examples go through as one long batch in which point ``p = j N + i`` is copy ``j`` of example
``i``, a chunk of ``batch_size`` points at a time; within a chunk, the points of one copy are
a run of consecutive examples (:func:`runs`), so a sum over copies is a sum of slices.

The first layers of a CNN are *affine*: a convolution, a dense layer, a flattening give
``y = A x + c`` with one matrix ``A`` whatever ``x`` is (each layer says so, ``Layer.affine``).
Up to the first that is not, ``y_(a) = A x + c`` too (:func:`affine_prefix`), and two things
follow that save work:

* **the gradient through them is one matrix.** ``dF/dx = A^T dF/dy_(a)`` at every input, so
  ``Σ_j w_j dF/dx(x_j) = A^T Σ_j w_j dF/dy_(a)(x_j)``: the sum is taken at ``y_(a)`` and sent
  back through the affine layers once (:func:`back_through_prefix`), not once per copy;
* **a straight line stays a straight line.** ``y_(a)(x' + α (x - x')) = y_(a)(x') + α
  (y_(a)(x) - y_(a)(x'))``: Integrated Gradients' path points can start at ``y_(a)``, two
  passes through the affine layers instead of one per point.

On the shipped MNIST model ``a = 1`` (conv1): its backward runs once per example instead of
once per copy, and Integrated Gradients' forward through it a few times per example instead of
once per path point (why it pays: ``docs/speed.md``). The results are the definition's up to
rounding, since the sums are taken in another order (``tests/test_gradient_sums.py`` compares
them). A sum at ``y_(a)`` is larger than one at the input (16 times on the shipped model), so
the examples go through in groups (:func:`example_groups`).
"""

import numpy as np

from .workspace import example_ranges

#: About this many bytes of sums, and of the arrays that go with them, per group of examples
#: (:func:`example_groups`).
GROUP_BYTES = 64 << 20


def example_groups(N, bytes_per_example):
    """Slices that cut examples ``0 … N-1`` into groups of about :data:`GROUP_BYTES` (one
    example at least), for ``bytes_per_example`` of sums and copies per example."""
    return [slice(n0, n1) for n0, n1 in example_ranges(N, bytes_per_example, GROUP_BYTES)]


def units(model, l):
    """The number of units of ``y_(l)`` per example."""
    return int(np.prod(model.output_shapes[l]))


def runs(start, stop, N):
    """The points ``start … stop - 1`` of a long batch of copies (point ``p = j N + i`` is copy
    ``j`` of example ``i``) as runs of consecutive examples.

    Yields
    ------
    ``(j, examples, rows)``: copy ``j`` of the examples ``examples`` (a slice of ``0 … N-1``)
    is the chunk's rows ``rows`` (a slice of ``0 … stop - start - 1``), the chunk being the
    points ``start … stop - 1``. No example appears twice in one run.
    """
    for j in range(start // N, (stop - 1) // N + 1):
        p0, p1 = max(start, j * N), min(stop, (j + 1) * N)
        yield j, slice(p0 - j * N, p1 - j * N), slice(p0 - start, p1 - start)


def affine_prefix(model):
    """``a``: the number of leading layers that are affine, so that ``y_(a) = A x + c``; at
    most ``L - 1`` (a pass from ``y_(a)`` runs at least the last layer). 0 if the first layer
    is not affine; 1 (conv1) on the shipped MNIST model."""
    a = 0
    while a < len(model.layers) - 1 and model.layers[a].affine:
        a += 1
    return a


def sum_dtype(model, a):
    """The dtype to sum gradients in at ``y_(a)``: float64 at the input (``a = 0``); above the
    affine layers the model's own, since the sum goes back through them in it."""
    return np.dtype(np.float64) if a == 0 else model.dtype


def back_through_prefix(model, x, signal, a):
    """``A^T signal``: a signal at ``y_(a)`` sent back to the input through the affine layers
    ``a … 1`` (any rule: they hold no ReLU).

    Parameters
    ----------
    x : (N, H, W, C_0) input (for the layers' caches of one forward pass; ``A`` does not depend
        on it).
    signal : (N, *output_shapes[a]) the signal at ``y_(a)``, e.g. ``Σ_j w_j dF/dy_(a)``.
    a : :func:`affine_prefix` or less; 0 returns ``signal`` as it is.

    Returns
    -------
    (N, H, W, C_0) array.
    """
    if a == 0:
        return signal
    model.forward(x, upto=a)
    return model.backward(signal.astype(model.dtype), start=a, param_grads=False)
