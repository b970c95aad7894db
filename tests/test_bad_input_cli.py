"""Bad input to every ``tinyconv`` command: the five kinds (wrong type, wrong shape,
out-of-range value, non-finite value, empty input) per command. A bad command line exits 2
with one line naming the option; a bad file exits 1 with one line naming the file. Kinds a
command cannot receive are listed with the reason in ``NOT_APPLICABLE``.
"""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import cli

KINDS = ("type", "shape", "range", "finite", "empty")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-cli")
    (root / "notes.txt").write_text("not a model\n")
    rgb = tc.Sequential([tc.Conv2D(3, 4, 3), tc.Flatten(), tc.Dense(6 * 6 * 4, 10)], (8, 8, 3),
                        seed=0)
    tc.save(rgb, root / "rgb.npz")
    good = tc.Sequential([tc.Flatten(), tc.Dense(784, 10)], (28, 28, 1), seed=0)
    tc.save(good, root / "nan.npz")
    with np.load(root / "nan.npz") as f:
        arrays = {name: f[name] for name in f.files}
    arrays["2/W"][0, 0] = np.nan                 # what a damaged or hostile file may hold
    np.savez(root / "nan.npz", **arrays)
    return {"TEXT": root / "notes.txt", "RGB": root / "rgb.npz", "NAN": root / "nan.npz",
            "DIR": root, "OUT": root / "out" / "m.npz", "TOUR": root / "tour"}


CASES = [
    # command, kind, argv, exit status, text the one-line message must contain
    ("train", "type", ["train", "--epochs", "two", "--out", "OUT"], 2, "--epochs"),
    ("train", "shape", ["train", "--out", "DIR"], 2, "--out"),
    ("train", "range", ["train", "--augment", "28", "--out", "OUT"], 2, "--augment"),
    ("train", "finite", ["train", "--lr", "nan", "--out", "OUT"], 2, "--lr"),
    ("train", "empty", ["train", "--out", ""], 2, "--out"),
    ("evaluate", "type", ["evaluate", "TEXT"], 1, "notes.txt"),
    ("evaluate", "shape", ["evaluate", "RGB"], 1, "(8, 8, 3)"),
    ("evaluate", "range", ["evaluate", "mnist", "--data", "huge"], 2, "--data"),
    ("evaluate", "finite", ["evaluate", "NAN"], 1, "nan.npz"),
    ("evaluate", "empty", ["evaluate", ""], 2, "MODEL"),
    ("rf", "type", ["rf", "TEXT"], 1, "notes.txt"),
    ("rf", "finite", ["rf", "NAN"], 1, "nan.npz"),
    ("rf", "empty", ["rf", ""], 2, "MODEL"),
    ("info", "type", ["info", "TEXT"], 1, "notes.txt"),
    ("info", "finite", ["info", "NAN"], 1, "nan.npz"),
    ("info", "empty", ["info", ""], 2, "MODEL"),
    ("tour", "type", ["tour", "--feature", "x", "--out", "TOUR"], 2, "--feature"),
    ("tour", "shape", ["tour", "--layer", "logits", "--out", "TOUR"], 2, "--layer"),
    ("tour", "range", ["tour", "--digit", "11", "--out", "TOUR"], 2, "--digit"),
    ("tour", "finite", ["tour", "--feature", "nan", "--out", "TOUR"], 2, "--feature"),
    ("tour", "empty", ["tour", "--layer", "", "--out", "TOUR"], 2, "--layer"),
    ("explain", "type", ["explain", "--index", "x"], 2, "--index"),
    ("explain", "shape", ["explain", "TEXT", "--out", "TOUR"], 1, "notes.txt"),
    ("explain", "range", ["explain", "--index", "5000", "--out", "TOUR"], 2, "--index"),
    ("explain", "finite", ["explain", "--index", "0", "--target", "inf"], 2, "--target"),
    ("explain", "empty", ["explain", "--out", "TOUR"], 2, "IMAGE"),
    ("explore", "type", ["explore", "--port", "http", "--no-browser"], 2, "--port"),
    ("explore", "range", ["explore", "--port", "70000", "--no-browser"], 2, "--port"),
    ("explore", "finite", ["explore", "--port", "inf", "--no-browser"], 2, "--port"),
    ("explore", "empty", ["explore", "--model", "", "--no-browser"], 2, "--model"),
    ("sanity", "type", ["sanity", "--examples", "many", "--out", "TOUR"], 2, "--examples"),
    ("sanity", "range", ["sanity", "--examples", "0", "--out", "TOUR"], 2, "--examples"),
    ("sanity", "finite", ["sanity", "--seed", "nan", "--out", "TOUR"], 2, "--seed"),
    ("sanity", "empty", ["sanity", "--out", ""], 2, "--out"),
    ("tour", "empty", ["tour", "--out", ""], 2, "--out"),
]

NOT_APPLICABLE = {
    ("rf", "shape"): "any model has receptive fields, whatever its input shape",
    ("rf", "range"): "no numeric option",
    ("info", "shape"): "any model has a summary",
    ("info", "range"): "no numeric option",
    ("explore", "shape"): "no array input; a model of the wrong shape is check_mnist_model's",
    ("sanity", "shape"): "no model or array input: it measures the shipped model",
}


@pytest.mark.parametrize("command, kind, argv, status, text", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_bad_command_line_is_one_line_naming_the_option(files, capsys, monkeypatch, command,
                                                         kind, argv, status, text):
    from tinyconv import tour
    monkeypatch.setattr(tour, "tour", lambda *a, **k: pytest.fail("the tour started"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    code = cli.main([str(files.get(a, a)) for a in argv])
    out, err = capsys.readouterr()
    assert code == status, err
    assert err.count("\n") == 1 and err.startswith("tinyconv: error: "), err
    assert text in err and "Traceback" not in err
    assert out == ""


def test_every_command_has_every_kind_or_a_reason():
    covered = {(c[0], c[1]) for c in CASES}
    for command in cli.COMMANDS:
        for kind in KINDS:
            assert (command, kind) in covered or (command, kind) in NOT_APPLICABLE, \
                (command, kind)
    assert not covered & set(NOT_APPLICABLE)
