"""Bad input to the support layer (training, serialize, data, interop, pretrained): a table
of five kinds per public function — wrong type, wrong shape, out-of-range value, non-finite
value, empty input — each asserting the exception type and that the message names the
caller's argument. Kinds that a function cannot receive are listed in ``NOT_APPLICABLE``
with the reason, so the coverage test sees every gap.
"""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.data import read_idx
from tinyconv.interop import flatten_permutation, nchw_to_nhwc, nhwc_to_nchw
from tinyconv.pretrained import load_model

KINDS = ("type", "shape", "range", "finite", "empty")


def small():
    return tc.Sequential([tc.Conv2D(1, 2, 3, padding=1), tc.ReLU(), tc.Flatten(),
                          tc.Dense(8 * 8 * 2, 3)], (8, 8, 1), seed=0)


def x8(n=2, value=None):
    x = np.random.default_rng(0).random((n, 8, 8, 1)).astype(np.float32)
    if value is not None:
        x[0, 0, 0, 0] = value
    return x


Y = np.array([0, 1])


def nan_model():
    m = small()
    m.layers[0].params["W"][0, 0, 0, 0] = np.nan
    return m


def torch_or_skip():
    return pytest.importorskip("torch")


def from_torch_with(make):
    torch = torch_or_skip()
    return lambda: tc.from_torch(make(torch.nn), (6, 6, 1))


CASES = [
    # function, kind, call, exception, text the message names
    ("fit", "type", lambda: tc.fit(small(), "images", Y), TypeError, "X"),
    ("fit", "shape", lambda: tc.fit(small(), np.zeros((2, 6, 6, 1)), Y), ValueError, "X"),
    ("fit", "range", lambda: tc.fit(small(), x8(), np.array([0, 3])), ValueError, "y"),
    ("fit", "finite", lambda: tc.fit(small(), x8(value=np.nan), Y), ValueError, "X"),
    ("fit", "empty", lambda: tc.fit(small(), np.zeros((0, 8, 8, 1)), np.zeros(0, int)),
     ValueError, "X"),
    ("predict", "type", lambda: tc.predict(small(), x8(), batch_size="all"), TypeError,
     "batch_size"),
    ("predict", "shape", lambda: tc.predict(small(), np.zeros((2, 8, 8, 3))), ValueError, "X"),
    ("predict", "range", lambda: tc.predict(small(), x8(), batch_size=0), ValueError,
     "batch_size"),
    ("predict", "finite", lambda: tc.predict(small(), x8(value=np.inf)), ValueError, "X"),
    ("predict", "empty", lambda: tc.predict(small(), np.zeros((0, 8, 8, 1))), ValueError, "X"),
    ("evaluate", "type", lambda: tc.evaluate(small(), x8(), [0.5, 1.5]), TypeError, "y"),
    ("evaluate", "shape", lambda: tc.evaluate(small(), x8(), np.array([0, 1, 2])), ValueError,
     "y"),
    ("evaluate", "range", lambda: tc.evaluate(small(), x8(), np.array([0, -1])), ValueError,
     "y"),
    ("evaluate", "finite", lambda: tc.evaluate(small(), x8(value=np.nan), Y), ValueError, "X"),
    ("evaluate", "empty", lambda: tc.evaluate(small(), np.zeros((0, 8, 8, 1)),
                                              np.zeros(0, int)), ValueError, "X"),
    ("cross_entropy", "type", lambda: tc.cross_entropy("z", Y), TypeError, "logits"),
    ("cross_entropy", "shape", lambda: tc.cross_entropy(np.zeros((2, 3)), np.array([0])),
     ValueError, "labels"),
    ("cross_entropy", "range", lambda: tc.cross_entropy(np.zeros((2, 3)), np.array([0, 3])),
     ValueError, "labels"),
    ("cross_entropy", "finite", lambda: tc.cross_entropy(np.full((2, 3), np.nan), Y),
     ValueError, "logits"),
    ("cross_entropy", "empty", lambda: tc.cross_entropy(np.zeros((0, 3)), np.zeros(0, int)),
     ValueError, "logits"),
    ("SGD", "type", lambda: tc.SGD(small(), lr="fast"), ValueError, "lr"),
    ("SGD", "range", lambda: tc.SGD(small(), momentum=-0.1), ValueError, "momentum"),
    ("SGD", "finite", lambda: tc.SGD(small(), weight_decay=np.inf), ValueError,
     "weight_decay"),
    ("Adam", "type", lambda: tc.Adam(small(), betas=0.9), ValueError, "betas"),
    ("Adam", "shape", lambda: tc.Adam(small(), betas=(0.9, 0.99, 0.1)), ValueError, "betas"),
    ("Adam", "range", lambda: tc.Adam(small(), eps=0), ValueError, "eps"),
    ("Adam", "finite", lambda: tc.Adam(small(), lr=np.nan), ValueError, "lr"),
    ("Recipe", "type", lambda: tc.Recipe(epochs="3"), TypeError, "epochs"),
    ("Recipe", "range", lambda: tc.Recipe(lr_decay=1.5), ValueError, "lr_decay"),
    ("Recipe", "finite", lambda: tc.Recipe(lr=float("inf")), ValueError, "lr"),
    ("Recipe", "empty", lambda: tc.Recipe(arch=""), ValueError, "arch"),
    ("train_recipe", "type", lambda: tc.train_recipe("mnist", x8(), Y), TypeError, "recipe"),
    ("save", "type", lambda: tc.save(small(), 3.5), TypeError, "path"),
    ("save", "finite", lambda: tc.save(nan_model(), "never-written.npz"), ValueError,
     "model"),
    ("save", "empty", lambda: tc.save(small(), ""), ValueError, "path"),
    ("load", "type", lambda: tc.load(3.5), TypeError, "path"),
    ("load", "empty", lambda: tc.load(""), ValueError, "path"),
    ("load_mnist", "type", lambda: tc.load_mnist(3), TypeError, "split"),
    ("load_mnist", "range", lambda: tc.load_mnist("test", download="yes"), TypeError,
     "download"),
    ("load_mnist", "empty", lambda: tc.load_mnist("train", mirrors=[]), ValueError, "mirrors"),
    ("read_idx", "type", lambda: read_idx(3.5), TypeError, "path_or_bytes"),
    ("read_idx", "shape", lambda: read_idx(b"\0\0\x08\x01\0\0\0\x05abc"), ValueError,
     "header announces"),
    ("read_idx", "empty", lambda: read_idx(b""), ValueError, "not an IDX file"),
    ("to_float", "type", lambda: tc.to_float(x8()), TypeError, "images"),
    ("pretrained", "type", lambda: tc.pretrained(3), ValueError, "name"),
    ("pretrained", "empty", lambda: tc.pretrained(""), ValueError, "name"),
    ("load_model", "type", lambda: load_model(None), TypeError, "name_or_path"),
    ("load_model", "empty", lambda: load_model(""), ValueError, "name_or_path"),
    ("nhwc_to_nchw", "type", lambda: nhwc_to_nchw(object()), TypeError, "x"),
    ("nhwc_to_nchw", "shape", lambda: nhwc_to_nchw(np.zeros((2, 3))), ValueError, "x"),
    ("nchw_to_nhwc", "shape", lambda: nchw_to_nhwc(np.zeros(3)), ValueError, "x"),
    ("flatten_permutation", "type", lambda: flatten_permutation("hwc"), ValueError, "shape"),
    ("flatten_permutation", "range", lambda: flatten_permutation((2, 0, 3)), ValueError,
     "shape"),
    ("to_torch", "type", lambda: tc.to_torch("model"), TypeError, "model"),
    # telling a torch module from anything else needs torch
    ("from_torch", "type", lambda: torch_or_skip() and tc.from_torch("module", (6, 6, 1)),
     TypeError, "module"),
    ("from_torch", "shape", lambda: tc.from_torch(torch_or_skip().nn.Sequential(), (6, 6)),
     ValueError, "input_shape"),
    ("from_torch", "range", lambda: tc.from_torch(torch_or_skip().nn.Sequential(), (6, 0, 1)),
     ValueError, "input_shape"),
    ("from_torch", "empty", lambda: tc.from_torch(torch_or_skip().nn.Sequential(), (6, 6, 1)),
     ValueError, "module"),
]

#: ``(function, kind) -> why no case exists``
NOT_APPLICABLE = {
    ("SGD", "shape"): "takes only scalars",
    ("SGD", "empty"): "a model without parameters is legal (it trains nothing)",
    ("Adam", "empty"): "a model without parameters is legal (it trains nothing)",
    ("Recipe", "shape"): "plain scalar fields",
    ("train_recipe", "shape"): "X and y go to fit (its rows above)",
    ("train_recipe", "range"): "the recipe's fields are checked by Recipe",
    ("train_recipe", "finite"): "X goes to fit (its rows above)",
    ("train_recipe", "empty"): "X goes to fit (its rows above)",
    ("save", "shape"): "a model has no shape to get wrong; tests/test_serialize.py",
    ("save", "range"): "no numeric argument",
    ("load", "shape"): "misshapen arrays in a file: tests/test_serialize.py",
    ("load", "range"): "the file's limits: tests/test_serialize.py",
    ("load", "finite"): "NaN in a file: tests/test_serialize.py",
    ("load_mnist", "shape"): "IDX shapes: read_idx's rows",
    ("load_mnist", "finite"): "uint8 data cannot be NaN",
    ("read_idx", "range"): "any header value is a shape; the payload length is checked",
    ("read_idx", "finite"): "bytes cannot be NaN",
    ("to_float", "shape"): "any shape is scaled",
    ("to_float", "range"): "uint8 is always in range",
    ("to_float", "finite"): "uint8 cannot be NaN",
    ("to_float", "empty"): "an empty uint8 array scales to an empty float array",
    ("pretrained", "shape"): "takes a name", ("pretrained", "range"): "takes a name",
    ("pretrained", "finite"): "takes a name",
    ("load_model", "shape"): "takes a name", ("load_model", "range"): "takes a name",
    ("load_model", "finite"): "takes a name",
    ("nhwc_to_nchw", "range"): "any values", ("nhwc_to_nchw", "finite"): "moves NaN as is",
    ("nhwc_to_nchw", "empty"): "an empty batch transposes",
    ("nchw_to_nhwc", "type"): "same check as nhwc_to_nchw",
    ("nchw_to_nhwc", "range"): "any values", ("nchw_to_nhwc", "finite"): "moves NaN as is",
    ("nchw_to_nhwc", "empty"): "an empty batch transposes",
    ("flatten_permutation", "shape"): "the range row (a 0 extent)",
    ("flatten_permutation", "finite"): "ints only", ("flatten_permutation", "empty"): "range row",
    ("to_torch", "shape"): "a model", ("to_torch", "range"): "a model",
    ("to_torch", "finite"): "weights are finite by construction and save's check",
    ("to_torch", "empty"): "a Sequential has at least one layer",
    ("from_torch", "finite"): "torch weights are copied as they are, bit for bit",
}


@pytest.mark.parametrize("function, kind, call, error, text", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_names_the_argument(function, kind, call, error, text, tmp_path,
                                      monkeypatch):
    monkeypatch.chdir(tmp_path)                  # nothing may be written outside tmp_path
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), str(info.value)
    assert "Traceback" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_every_function_has_every_kind_or_a_reason():
    covered = {(c[0], c[1]) for c in CASES}
    functions = {c[0] for c in CASES}
    for function in functions:
        for kind in KINDS:
            assert (function, kind) in covered or (function, kind) in NOT_APPLICABLE, \
                (function, kind)
    assert not covered & set(NOT_APPLICABLE)
