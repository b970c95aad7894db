"""Sequential: a stack of layers, its activations ``y_(0) … y_(L)``, and backward from any layer.

Layer 0 is the input: ``model.activations(x)[l]`` is ``y_(l)``, the output of
``model.layers[l - 1]``, shape ``(N, *model.output_shapes[l])``. ``backward(dy, rule, start=l)``
sends a signal ``dy`` shaped like ``y_(l)`` back to the input through layers ``l … 1``
with one of the three rules (see :mod:`tinyconv.layers`); every technique of the toolkit
(saliency, deconvnet, guided backprop, training) is a call to it.
"""

import threading
from contextlib import contextmanager

import numpy as np

from .checks import check_array, check_dtype
from .cpu_share import share_cores
from .layers import Layer, check_rule

#: What a model used from a second thread while a call runs raises (a ``RuntimeError``).
BUSY_MESSAGE = ("model: {call}() was called while another thread is using this model; a "
                "model keeps each pass's intermediate results for its backward pass, so it "
                "serves one thread at a time: use one model per thread (copy.deepcopy(model))")

#: What a backward pass through another thread's forward pass raises (a ``RuntimeError``).
OTHER_THREAD_MESSAGE = ("model: backward() goes back through the last forward pass, which "
                        "ran on another thread; run forward and backward on one thread, and "
                        "use one model per thread (copy.deepcopy(model))")


class Sequential:
    """A feed-forward stack of layers with a fixed input shape.

    Parameters
    ----------
    layers : list of :class:`~tinyconv.layers.Layer`.
    input_shape : ``(H, W, C)`` of one example (channel last).
    seed : if given, every layer's parameters are redrawn from one generator seeded with it,
        in order, so the same seed gives the same model bit for bit.

    Raises
    ------
    ValueError
        At construction, if one layer's output does not fit the next (e.g. a Dense whose
        ``in_features`` differs from the flattened size), naming the layer, or if one layer
        object stands at two positions (each keeps the cache of its own forward pass).

    Notes
    -----
    **Threads.** A model keeps the intermediate results of its last forward pass (in its
    layers) for the backward pass, so one model serves one thread at a time. Calls are
    guarded, never silently wrong: :meth:`forward`, :meth:`activations` or :meth:`backward`
    called while another thread is inside one of them raises ``RuntimeError`` at once
    (:data:`BUSY_MESSAGE`), and so does a :meth:`backward` whose forward pass ran on another
    thread. To use several threads, give each its own model: ``copy.deepcopy(model)``
    copies the parameters, and the copy starts with empty scratch memory. One model may pass
    from thread to thread between calls; each thread keeps its own scratch buffers
    (:class:`tinyconv.workspace.ConvWorkspace`), freed when the thread ends. Processes share
    nothing: each builds or loads its own model.
    """

    def __init__(self, layers, input_shape, seed=None):
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer, got none")
        first = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a tinyconv layer, got "
                                f"{type(layer).__name__}")
            j = first.setdefault(id(layer), i)
            if j != i:
                raise ValueError(
                    f"layers[{i}]: the same {type(layer).__name__} object as layers[{j}]; a "
                    "layer keeps the cache of its own forward pass, so each position needs its "
                    "own object (copy.deepcopy(layer) for one with the same parameters)")
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                for d in input_shape):
            raise ValueError(f"input_shape: expected (H, W, C) positive ints, got {input_shape!r}")
        self.layers = layers
        self._reached = -1          # how far the last forward pass went (for backward)
        self._began = 0             # where it began: the caches below are an older pass'
        self._dtype = np.dtype(np.float32)   # the dtype when no layer has parameters
        self._guard()
        self.input_shape = tuple(int(d) for d in input_shape)
        self._name_layers()
        # output_shapes[l] is the shape of y_(l) for one example; computing it checks the stack
        shapes = [self.input_shape]
        for layer in layers:
            shapes.append(tuple(int(d) for d in layer.output_shape(shapes[-1])))
        self.output_shapes = shapes
        if seed is not None:
            self.init_params(seed)

    def _guard(self):
        """The per-model lock and the thread whose forward pass the layers' caches hold."""
        self._lock = threading.RLock()
        self._owner = None

    def __getstate__(self):
        # a copy gets its own lock; the caches it copies belong to no thread yet
        state = dict(self.__dict__)
        del state["_lock"], state["_owner"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._guard()

    @contextmanager
    def _exclusive(self, call):
        """Run the body as the model's only user, or raise ``RuntimeError`` at once (see the
        class notes); a call nested in another on the same thread is let through. BLAS
        shares the cores with other programs meanwhile (:func:`tinyconv.cpu_share.share_cores`)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(BUSY_MESSAGE.format(call=call))
        try:
            with share_cores():
                yield
        finally:
            self._lock.release()

    def _name_layers(self):
        """Give unnamed layers ``<type><count>`` names (conv1, relu1, …); names must be unique."""
        counts, taken = {}, {layer.name for layer in self.layers if layer.name}
        for layer in self.layers:
            kind = {"Conv2D": "conv", "MaxPool2D": "pool"}.get(
                type(layer).__name__, type(layer).__name__.lower())
            counts[kind] = counts.get(kind, 0) + 1
            if layer.name is None:
                name, n = f"{kind}{counts[kind]}", counts[kind]
                while name in taken:
                    n += 1
                    name = f"{kind}{n}"
                layer.name = name
                taken.add(name)
        names = [layer.name for layer in self.layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"layers: names must be unique, {dup} appear more than once")
        if "input" in names:
            raise ValueError("layers: the name 'input' is reserved for layer 0")

    # ------------------------------------------------------------------ structure

    def __len__(self):
        return len(self.layers)

    @property
    def names(self):
        """``["input", name of layer 1, …, name of layer L]``, indexable by ``l``."""
        return ["input"] + [layer.name for layer in self.layers]

    @property
    def dtype(self):
        """The dtype the model computes in: its parameters' (float32 unless :meth:`astype`
        changed it), or, with no parameters, the one :meth:`astype` last set."""
        return next((layer.dtype for layer in self.layers if layer.dtype is not None),
                    self._dtype)

    def index(self, layer):
        """Layer number ``l`` (0 = input, ``L = len(model)`` = output) of a name or an int.

        Negative ints count from the end (``-1`` is ``L``). Unknown names or out-of-range
        numbers raise ``ValueError`` listing the valid ones.
        """
        L = len(self.layers)
        if isinstance(layer, str):
            if layer not in self.names:
                raise ValueError(f"layer: expected one of {self.names}, got {layer!r}")
            return self.names.index(layer)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer: expected a layer name or number, got {type(layer).__name__}")
        l = int(layer) + (L + 1 if layer < 0 else 0)
        if not 0 <= l <= L:
            raise ValueError(f"layer: expected a number in [0, {L}] (or a name in "
                             f"{self.names}), got {layer}")
        return l

    def spatial(self, layer):
        """True if ``y_(l)`` is ``(H, W, C)`` (so it has locations ``idx``), False if flat."""
        return len(self.output_shapes[self.index(layer)]) == 3

    def init_params(self, seed):
        """Redraw every layer's parameters from ``numpy.random.default_rng(seed)``, in order."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init_params(rng)
        return self

    def astype(self, dtype):
        """Compute in ``dtype``, float32 or float64 (e.g. float64 for gradient checks): casts
        every parameter, and sets the dtype inputs are cast to; returns self. Anything else
        raises ``TypeError`` naming ``dtype``."""
        dtype = check_dtype(dtype)
        for layer in self.layers:
            layer.astype(dtype)
        self._dtype = dtype
        return self

    def parameters(self):
        """``[(layer, key), …]`` for every parameter array, in layer order (for optimizers)."""
        return [(layer, key) for layer in self.layers for key in layer.params]

    def n_parameters(self, layer=None):
        """How many numbers training adjusts: in the whole model, or in layer ``l`` only
        (a name or number; 0, the input, has none)."""
        if layer is None:
            return sum(self.n_parameters(l) for l in range(1, len(self.layers) + 1))
        l = self.index(layer)
        return 0 if l == 0 else sum(p.size for p in self.layers[l - 1].params.values())

    def summary(self):
        """A table: layer number, name, type, output shape, number of parameters."""
        rows = [f"{'l':>3}  {'name':<10} {'type':<10} {'output shape':<16} params"]
        rows.append(f"{0:>3}  {'input':<10} {'':<10} {str(self.output_shapes[0]):<16} 0")
        for l, layer in enumerate(self.layers, 1):
            rows.append(f"{l:>3}  {layer.name:<10} {type(layer).__name__:<10} "
                        f"{str(self.output_shapes[l]):<16} {self.n_parameters(l)}")
        return "\n".join(rows)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n], input_shape={self.input_shape})"

    # ------------------------------------------------------------------ forward / backward

    def _check_input(self, x, start=0):
        shape = self.output_shapes[start]               # the input_shape at start = 0
        x = check_array(x, "x", ndim=len(shape) + 1)
        if x.shape[1:] != shape:
            what = (f"examples of shape {shape} (H, W, C)" if start == 0 else
                    f"y_({start}) of shape {shape} per example (start={start})")
            raise ValueError(f"x: expected {what}, got {x.shape[1:]}")
        return x.astype(self.dtype, copy=False)

    def activations(self, x, upto=None):
        """All activations ``[y_(0), y_(1), …, y_(upto)]`` (``upto`` defaults to ``L``).

        Parameters
        ----------
        x : (N, H, W, C_0) floating-point input (cast to the model's dtype).
        upto : layer name or number at which to stop (saves the layers above it).

        Returns
        -------
        list of arrays, ``ys[l]`` of shape ``(N, *output_shapes[l])``. The layers keep the
        caches of this pass, so :meth:`backward` can follow.
        """
        upto = len(self.layers) if upto is None else self.index(upto)
        ys = [self._check_input(x)]
        with self._exclusive("activations"):
            for layer in self.layers[:upto]:
                ys.append(layer.forward(ys[-1], check=False))
            self._reached, self._began, self._owner = upto, 0, threading.get_ident()
        return ys

    def _rectifier_below_pool(self, i, end):
        """Whether layer ``i`` is a rectifier and layer ``i + 1``, below ``end`` (the pass runs
        layers ``… end - 1``), takes it into its own pass (:attr:`Layer.rectifier`,
        :attr:`Layer.takes_rectifier`)."""
        return (self.layers[i].rectifier and i + 1 < end
                and self.layers[i + 1].takes_rectifier)

    def steps(self, start=0, upto=None):
        """The passes :meth:`forward` makes from ``y_(start)`` to ``y_(upto)``: ``[(a, b)]``,
        each running layers ``a … b - 1`` (``y_(a) -> y_(b)``) in one go, bottom up.

        A step is one layer, or a ReLU and the max-pool just above it, which run as one pass
        over the ReLU's input (the same numbers: ``maxpool(max(y, 0))``, and the pool's
        switches point at the same units) when both are below ``upto``. A timing of the
        forward pass step by step (``benchmarks/bench_layers.py``) follows these steps."""
        upto = len(self.layers) if upto is None else self.index(upto)
        start = self.index(start)
        if start > upto:
            raise ValueError(f"start: expected a layer at or below upto ({upto}), got {start}")
        out, i = [], start
        while i < upto:
            end = i + 2 if self._rectifier_below_pool(i, upto) else i + 1
            out.append((i, end))
            i = end
        return out

    def forward(self, x, upto=None, start=0, param_grads=False):
        """``y_(L)`` (or ``y_(upto)``) for input ``x`` of shape ``(N, H, W, C_0)``.

        ``start = l`` takes ``x`` for ``y_(l)``, shaped ``(N, *output_shapes[l])``, and runs
        layers ``l + 1 …`` only: a technique that has ``y_(l)`` already (Integrated Gradients
        computes it without the layers below, see :func:`tinyconv.gradient_sums.affine_prefix`). A
        backward pass after it goes down to ``y_(l)`` at most (``stop=l``).

        ``param_grads=True`` says that a backward pass for the parameter gradients follows (a
        training step): the layers with parameters are told, and may compute ``y`` the way
        that leaves what their weight gradient reuses (Conv2D: by im2col, not Winograd, for a
        5x5 kernel). It changes speed only; the backward is right either way.
        """
        upto = len(self.layers) if upto is None else self.index(upto)
        start = self.index(start)
        steps = self.steps(start, upto)
        y = self._check_input(x, start)
        with self._exclusive("forward"):
            for i, end in steps:
                layer = self.layers[i]
                if end == i + 2:
                    # a ReLU and the max-pool above it in one pass, the same numbers: the
                    # ReLU keeps its input for its backward, the pool takes max(y, 0) itself
                    layer.keep(y)
                    y = self.layers[i + 1].forward(y, check=False, rectify=True)
                elif param_grads and layer.params:
                    y = layer.forward(y, check=False, param_grads=True)
                else:
                    y = layer.forward(y, check=False)
            self._reached, self._began, self._owner = upto, start, threading.get_ident()
        return y

    __call__ = forward

    def backward(self, dy, rule="gradient", start=None, input_grad=True, stop=0,
                 param_grads=True):
        """Send ``dy`` (shaped like ``y_(start)``) back to the input (or down to ``y_(stop)``).

        Parameters
        ----------
        dy : (N, *output_shapes[start]) array: for the true gradient, ``d loss / d y_(start)``;
            for a projection, a one-hot signal on the unit ``y_(l),idx,k``.
        rule : one of :data:`tinyconv.layers.RULES` (only ReLU's backward differs).
        start : layer name or number ``l``; defaults to ``L``. The last forward pass must have
            reached it.
        input_grad : False to stop once every parameter has its gradient: the layers below
            the lowest one with parameters are skipped, and that one computes no ``dx``
            (training never uses ``d loss / d x``, and for a first convolution on one input
            channel it is a large part of the whole backward pass).
        stop : layer name or number ``l < start``: go back only to ``y_(stop)`` and return the
            signal there, ``(N, *output_shapes[stop])`` (Grad-CAM's ``d y_(L),c / d y_(l)``);
            0, the default, goes to the input. It may not go below where the last forward pass
            began (its ``start``).
        param_grads : False to leave every layer's ``grads`` as they are, for a map of the
            input that never reads them (for a convolution ``dW = cols^T dy`` costs as much
            as its forward GEMM). The rules differ only in ReLU, which has no parameters, and
            a layer with parameters writes ``grads`` only under ``"gradient"``; so the layers
            with parameters go back under another rule, and nothing else changes.

        Returns
        -------
        dx : (N, H, W, C_0) array (``y_(stop)``'s shape with ``stop``), or None if
        ``input_grad`` is False. With ``rule="gradient"`` and ``param_grads`` the layers'
        ``grads`` hold the parameter gradients of this pass.
        """
        check_rule(rule)
        start = len(self.layers) if start is None else self.index(start)
        stop = self.index(stop)
        if stop >= start and start > 0:
            raise ValueError(f"stop: expected a layer below start ({start}), got {stop}")
        with self._exclusive("backward"):
            if self._reached >= 0 and self._owner != threading.get_ident():
                raise RuntimeError(OTHER_THREAD_MESSAGE)
            return self._backward(dy, rule, start, input_grad, stop, param_grads)

    def _backward(self, dy, rule, start, input_grad, stop=0, param_grads=True):
        if self._reached < 0:
            raise ValueError("start: no forward pass has run yet, so there is nothing to go "
                             "back through; call forward(x) before backward()")
        if start > self._reached:
            raise ValueError(f"start: the last forward pass stopped at layer {self._reached}, "
                             f"so it cannot go back from layer {start}; run forward first")
        if start == 0:
            dy = check_array(dy, "dy", shape=(None, *self.input_shape))
            return dy if input_grad else None
        # without input_grad, go down to the lowest layer with parameters and no further
        bottom = stop if input_grad else next(
            (i for i in range(stop, start) if self.layers[i].params), start)
        if bottom < self._began:
            raise ValueError(f"stop: the last forward pass began at layer {self._began} (its "
                             f"start), so a backward pass can go down to y_({self._began}) "
                             f"at most, not to y_({bottom}); pass stop={self._began}, or run "
                             "forward from lower down first")
        dy = check_array(dy, "dy", ndim=len(self.output_shapes[start]) + 1)
        for i in reversed(range(bottom, start)):
            layer = self.layers[i]
            # only "gradient" writes grads, and only ReLU (no parameters) reads the rule else
            layer_rule = rule if param_grads or not layer.params else "deconvnet"
            # the top layer checks dy against its cached forward shape; the rest trust each other
            if i == bottom and not input_grad:
                layer.backward(dy, rule=layer_rule, check=i == start - 1, input_grad=False)
                return None
            if self._rectifier_below_pool(i, start):
                # dy is the new array the max-pool above just made: the ReLU masks it in
                # place instead of making another of its size
                dy = layer.backward(dy, rule=layer_rule, check=False, overwrite=True)
                continue
            dy = layer.backward(dy, rule=layer_rule, check=i == start - 1)
        return dy if input_grad else None
