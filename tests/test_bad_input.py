"""Bad input across the public API: the right exception, and a message naming the argument.

One table, one row per case: ``(id, call, exception type, text the message must contain)``.
Each ``call`` takes a fresh fixture dictionary, so cases never share state. A second table
lists inputs that look odd but must *work* (non-contiguous and negative-stride views, float64,
all-zero images, images of 255s).
"""

import contextlib
import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv as tc
from tinyconv import cli
from tinyconv import tour as tour_module
from tinyconv.architectures import build


def small():
    return tc.Sequential([tc.Conv2D(1, 3, 3, padding=1, name="conv1"), tc.ReLU(name="relu1"),
                          tc.MaxPool2D(2, name="pool1"), tc.Flatten(name="flatten"),
                          tc.Dense(4 * 4 * 3, 5, name="logits")], (8, 8, 1), seed=0)


def x8(n=2, dtype=np.float32):
    return np.random.default_rng(0).random((n, 8, 8, 1)).astype(dtype)


def with_nan():
    x = x8()
    x[0, 1, 2, 0] = np.nan
    return x


def with_inf():
    x = x8()
    x[1, 0, 0, 0] = -np.inf
    return x


def fitted():
    m = small()
    m.forward(x8())
    return m


LABELS = np.array([0, 1])

CASES = [
    # --- layers: constructor arguments
    ("conv in_channels 0", lambda: tc.Conv2D(0, 3, 3), ValueError, "in_channels"),
    ("conv in_channels str", lambda: tc.Conv2D("1", 3, 3), TypeError, "in_channels"),
    ("conv out_channels float", lambda: tc.Conv2D(1, 2.0, 3), TypeError, "out_channels"),
    ("conv kernel triple", lambda: tc.Conv2D(1, 3, (1, 2, 3)), ValueError, "kernel"),
    ("conv kernel 0", lambda: tc.Conv2D(1, 3, 0), ValueError, "kernel"),
    ("conv stride 0", lambda: tc.Conv2D(1, 3, 3, stride=0), ValueError, "stride"),
    ("conv stride bool", lambda: tc.Conv2D(1, 3, 3, stride=True), TypeError, "stride"),
    ("conv padding word", lambda: tc.Conv2D(1, 3, 3, padding="full"), ValueError, "padding"),
    ("conv padding negative", lambda: tc.Conv2D(1, 3, 3, padding=-1), ValueError, "padding"),
    ("conv dilation 0", lambda: tc.Conv2D(1, 3, 3, dilation=0), ValueError, "dilation"),
    ("conv bias str", lambda: tc.Conv2D(1, 3, 3, bias="yes"), TypeError, "bias"),
    ("layer name int", lambda: tc.ReLU(name=3), TypeError, "name"),
    ("pool size 0", lambda: tc.MaxPool2D(0), ValueError, "size"),
    ("pool stride negative", lambda: tc.MaxPool2D(2, stride=-1), ValueError, "stride"),
    ("pool padding >= window", lambda: tc.MaxPool2D(2, padding=2), ValueError, "padding"),
    ("dense in_features 0", lambda: tc.Dense(0, 3), ValueError, "in_features"),
    ("dense out_features float", lambda: tc.Dense(3, 1.5), TypeError, "out_features"),
    # --- Sequential construction
    ("no layers", lambda: tc.Sequential([], (8, 8, 1)), ValueError, "layers"),
    ("not a layer", lambda: tc.Sequential([object()], (8, 8, 1)), TypeError, "layers[0]"),
    ("input_shape 2-D", lambda: tc.Sequential([tc.ReLU()], (8, 8)), ValueError, "input_shape"),
    ("input_shape zero", lambda: tc.Sequential([tc.ReLU()], (0, 8, 1)), ValueError,
     "input_shape"),
    ("channel mismatch", lambda: tc.Sequential([tc.Conv2D(3, 2, 3)], (8, 8, 1)), ValueError,
     "in_channels"),
    ("kernel larger than input", lambda: tc.Sequential([tc.Conv2D(1, 2, 9)], (8, 8, 1)),
     ValueError, "larger than the padded input"),
    ("pool larger than input", lambda: tc.Sequential([tc.MaxPool2D(9)], (8, 8, 1)), ValueError,
     "larger than the padded input"),
    ("dense without flatten", lambda: tc.Sequential([tc.Dense(64, 2)], (8, 8, 1)), ValueError,
     "in_features"),
    ("dense size mismatch", lambda: tc.Sequential([tc.Flatten(), tc.Dense(60, 2)], (8, 8, 1)),
     ValueError, "in_features"),
    ("duplicate names", lambda: tc.Sequential([tc.ReLU(name="a"), tc.ReLU(name="a")],
                                              (8, 8, 1)), ValueError, "unique"),
    ("reserved name", lambda: tc.Sequential([tc.ReLU(name="input")], (8, 8, 1)), ValueError,
     "input"),
    # --- forward input
    ("x int", lambda: small()(np.zeros((2, 8, 8, 1), np.int64)), TypeError, "x"),
    ("x uint8", lambda: small()(np.zeros((2, 8, 8, 1), np.uint8)), TypeError, "to_float"),
    ("x bool", lambda: small()(np.zeros((2, 8, 8, 1), bool)), TypeError, "x"),
    ("x float16", lambda: small()(x8().astype(np.float16)), TypeError, "float32 or float64"),
    ("x complex", lambda: small()(np.zeros((2, 8, 8, 1), complex)), TypeError, "x"),
    ("x object", lambda: small()(np.empty((2, 8, 8, 1), object)), TypeError, "x"),
    ("x 3-D", lambda: small()(x8()[0]), ValueError, "x"),
    ("x wrong size", lambda: small()(np.zeros((2, 9, 8, 1), np.float32)), ValueError, "x"),
    ("x wrong channels", lambda: small()(np.zeros((2, 8, 8, 3), np.float32)), ValueError, "x"),
    ("x NaN", lambda: small()(with_nan()), ValueError, "x"),
    ("x inf", lambda: small()(with_inf()), ValueError, "x"),
    ("x empty batch", lambda: small()(np.zeros((0, 8, 8, 1), np.float32)), ValueError, "x"),
    ("x list of str", lambda: small()([["a"]]), TypeError, "x"),
    ("layer forward int", lambda: tc.ReLU()(np.arange(4)), TypeError, "x"),
    ("conv forward channels", lambda: tc.Conv2D(2, 1, 1)(x8()), ValueError, "x"),
    # --- backward, index, astype
    ("backward before forward", lambda: small().backward(np.zeros((2, 5), np.float32)),
     ValueError, "forward"),
    ("backward dy shape", lambda: fitted().backward(np.zeros((2, 4), np.float32)), ValueError,
     "dy"),
    ("backward dy NaN", lambda: fitted().backward(np.full((2, 5), np.nan, np.float32)),
     ValueError, "dy"),
    ("backward rule", lambda: fitted().backward(np.zeros((2, 5)), rule="lrp"), ValueError,
     "rule"),
    ("backward start", lambda: fitted().backward(np.zeros((2, 5)), start=9), ValueError,
     "layer"),
    ("index unknown name", lambda: small().index("conv9"), ValueError, "layer"),
    ("index out of range", lambda: small().index(6), ValueError, "layer"),
    ("index float", lambda: small().index(1.0), TypeError, "layer"),
    ("astype int", lambda: small().astype(np.int32), TypeError, "dtype"),
    # --- training
    ("fit X uint8", lambda: tc.fit(small(), np.zeros((2, 8, 8, 1), np.uint8), LABELS),
     TypeError, "X"),
    ("fit y float", lambda: tc.fit(small(), x8(), np.array([0.0, 1.0])), TypeError, "y"),
    ("fit y range", lambda: tc.fit(small(), x8(), np.array([0, 5])), ValueError, "y"),
    ("fit y length", lambda: tc.fit(small(), x8(), np.array([0, 1, 2])), ValueError, "y"),
    ("fit epochs 0", lambda: tc.fit(small(), x8(), LABELS, epochs=0), ValueError, "epochs"),
    ("fit batch_size 0", lambda: tc.fit(small(), x8(), LABELS, batch_size=0), ValueError,
     "batch_size"),
    ("sgd lr negative", lambda: tc.SGD(small(), lr=-1), ValueError, "lr"),
    ("sgd lr nan", lambda: tc.SGD(small(), lr=float("nan")), ValueError, "lr"),
    ("sgd momentum 1.5", lambda: tc.SGD(small(), momentum=1.5), ValueError, "momentum"),
    ("adam betas", lambda: tc.Adam(small(), betas=(1.0, 0.9)), ValueError, "betas"),
    ("cross_entropy 1-D", lambda: tc.cross_entropy(np.zeros(3), np.array([0])), ValueError,
     "logits"),
    ("cross_entropy labels", lambda: tc.cross_entropy(np.zeros((1, 3)), np.array([3])),
     ValueError, "labels"),
    ("evaluate y range", lambda: tc.evaluate(small(), x8(), np.array([0, 7])), ValueError, "y"),
    # --- files and data
    ("save non-model", lambda: tc.save("model", "/tmp/x.npz"), TypeError, "model"),
    ("load missing", lambda: tc.load("/nonexistent/model.npz"), FileNotFoundError, "path"),
    ("load_mnist split", lambda: tc.load_mnist("validation"), ValueError, "split"),
    ("to_float floats", lambda: tc.to_float(x8()), TypeError, "images"),
    ("pretrained name", lambda: tc.pretrained("cifar"), ValueError, "name"),
    ("architecture name", lambda: build("resnet"), ValueError, "resnet"),
    # --- receptive fields
    ("rf layer beyond", lambda: tc.receptive_field(small(), 9), ValueError, "layer"),
    ("rf box row", lambda: tc.receptive_field(small(), "pool1").box(4, 0), ValueError, "row"),
    ("rf box col float", lambda: tc.receptive_field(small(), "pool1").box(0, 0.5), TypeError,
     "col"),
    ("rf box after flatten", lambda: tc.receptive_field(small(), "logits").box(0, 0),
     ValueError, "idx"),
    ("patches idx shape", lambda: tc.patches(small(), x8(), "pool1", np.zeros((3, 2), int)),
     ValueError, "idx"),
    # --- MaxAct
    ("maxact k range", lambda: tc.max_activating(small(), x8(), "conv1", k=3), ValueError, "k"),
    ("maxact top 0", lambda: tc.max_activating(small(), x8(), "conv1", top=0), ValueError,
     "top"),
    ("maxact layer", lambda: tc.max_activating(small(), x8(), "conv7"), ValueError, "layer"),
    ("maxact X 3-D", lambda: tc.max_activating(small(), x8()[0], "conv1"), ValueError, "X"),
    ("maxact batch_size", lambda: tc.max_activating(small(), x8(), 1, batch_size=-3),
     ValueError, "batch_size"),
    # --- occlusion
    ("occlusion size too big", lambda: tc.occlusion(small(), x8()[0], 0, 9), ValueError,
     "size"),
    ("occlusion size 0", lambda: tc.occlusion(small(), x8()[0], 0, 0), ValueError, "size"),
    ("occlusion stride 0", lambda: tc.occlusion(small(), x8()[0], 0, 2, stride=0), ValueError,
     "stride"),
    ("occlusion class range", lambda: tc.occlusion(small(), x8()[0], 5, 2), ValueError,
     "target"),
    ("occlusion feature range", lambda: tc.occlusion(small(), x8()[0], ("conv1", 3), 2),
     ValueError, "target k"),
    ("occlusion baseline shape", lambda: tc.occlusion(small(), x8()[0], 0, 2,
                                                      baseline=np.zeros((3, 3))), ValueError,
     "baseline"),
    ("occlusion image size", lambda: tc.occlusion(small(), np.zeros((9, 9, 1)), 0, 2),
     ValueError, "x"),
    # --- projections
    ("project k range", lambda: tc.project(small(), x8(), "conv1", 3), ValueError, "k"),
    ("project idx outside", lambda: tc.project(small(), x8(), "pool1", 0, idx=(4, 0)),
     ValueError, "idx"),
    ("project dense idx", lambda: tc.project(small(), x8(), "logits", 0, idx=(0, 0)),
     ValueError, "idx"),
    ("project layer 0", lambda: tc.project(small(), x8(), 0, 0), ValueError, "layer"),
    ("project rule", lambda: tc.project(small(), x8(), 1, 0, rule="lrp"), ValueError, "rule"),
    ("saliency class", lambda: tc.saliency(small(), x8(), target=5), ValueError, "target"),
    ("saliency float target", lambda: tc.saliency(small(), x8(), target=1.0), ValueError,
     "target"),
]


@pytest.mark.parametrize("call, error, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), f"message does not name {text!r}: {info.value}"


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60


ODD_BUT_VALID = {
    "negative-stride view": lambda x: x[:, ::-1],
    "non-contiguous view": lambda x: np.concatenate([x, x], axis=3)[..., ::2],
    "Fortran order": lambda x: np.asfortranarray(x),
    "float64": lambda x: x.astype(np.float64),
}


@pytest.mark.parametrize("make", ODD_BUT_VALID.values(), ids=ODD_BUT_VALID.keys())
def test_views_and_other_float_types_work(make):
    model, x = small(), x8(3)
    odd = make(x)
    plain = np.ascontiguousarray(odd).astype(np.float32)
    np.testing.assert_allclose(model(odd), model(plain), rtol=1e-6)
    np.testing.assert_allclose(tc.saliency(model, odd), tc.saliency(model, plain), rtol=1e-5)
    assert tc.max_activating(model, odd, "conv1").indices.shape == (3, 3)


@pytest.mark.parametrize("value", [0.0, 255.0])
def test_constant_images_work(value):
    model = small()
    x = np.full((2, 8, 8, 1), value, np.float32)
    assert np.isfinite(model(x)).all()
    assert np.isfinite(tc.saliency(model, x)).all()


def test_extreme_logits_give_a_finite_loss_and_gradient():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    loss, grad = tc.cross_entropy(logits, np.array([1, 0]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    # row 0: logsumexp 1e4, picked -1e4; row 1: logsumexp 1e4 + log 2, picked -1e4
    assert loss == pytest.approx(2e4 + np.log(2) / 2)


# --------------------------------------------------------------------------- the command line


COMMANDS = ["train", "evaluate", "rf", "info", "tour", "nope", ""]
OPTIONS = ["--arch", "--data", "--cache-dir", "--download", "--no-download", "--epochs",
           "--batch-size", "--lr", "--decay", "--seed", "--limit", "--augment", "--out",
           "--digit", "--layer", "--feature", "--examples", "--model", "--help", "-h",
           "--bogus"]
VALUES = ["0", "1", "-1", "3", "11", "1e400", "nan", "inf", "0.5", "abc", "", "mnist", "small",
          "bundled", "full", "conv2", "logits", "flatten", "FILE", "DIR", "MISSING", "OUT",
          "NOTMODEL"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """Files the random command lines may name, in a folder of their own."""
    root = tmp_path_factory.mktemp("argv")
    (root / "file.txt").write_text("not a model")
    (root / "dir").mkdir()
    return {"FILE": str(root / "file.txt"), "DIR": str(root / "dir"),
            "MISSING": str(root / "missing" / "m.npz"), "OUT": str(root / "dir" / "out.npz"),
            "NOTMODEL": str(root / "file.txt"), "root": root}


def fake_train_recipe(recipe, X, y, validation=None, model=None, **kwargs):
    """Training is tested elsewhere; here only what happens around it matters."""
    return model, [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0,
                    "val_accuracy": 0.5, "seconds": 0.0}]


def fake_evaluate(model, X, y, batch_size=256):
    K = 10
    return {"loss": 1.0, "accuracy": 0.5, "predictions": np.zeros(len(y), np.int64),
            "confusion": np.zeros((K, K), np.int64)}


def fake_tour(out_dir, **kwargs):
    return [out_dir]


@settings(max_examples=60)
@given(command=st.sampled_from(COMMANDS),
       rest=st.lists(st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES)), max_size=6))
def test_random_command_lines_exit_cleanly(sandbox, command, rest):
    """Whatever the command line, the command exits 0, or with one line and no traceback."""
    argv = [sandbox.get(t, t) for t in ([command] if command else []) + rest]
    out, err = io.StringIO(), io.StringIO()
    saved = {name: getattr(cli, name) for name in ("train_recipe", "evaluate")}
    saved_tour, saved_env, saved_cwd = tour_module.tour, dict(os.environ), os.getcwd()
    try:
        cli.train_recipe, cli.evaluate = fake_train_recipe, fake_evaluate
        tour_module.tour = fake_tour
        # downloads go to a closed local port and a private cache: nothing leaves the machine
        os.environ["TINYCONV_MNIST_MIRRORS"] = "http://127.0.0.1:9/"
        os.environ["TINYCONV_CACHE"] = str(sandbox["root"] / "cache")
        os.environ.pop("TINYCONV_DEBUG", None)
        os.chdir(sandbox["root"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        cli.train_recipe, cli.evaluate = saved["train_recipe"], saved["evaluate"]
        tour_module.tour = saved_tour
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    message = err.getvalue()
    assert code in (0, 1, 2), (argv, code, message)
    assert "Traceback" not in message, argv
    if code:
        assert message.count("\n") == 1 and message.startswith("tinyconv: error: "), \
            (argv, message)
