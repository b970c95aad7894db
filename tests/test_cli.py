"""Tests for the ``tinyconv`` command: ``main([...])`` in-process, plus the installed entry points.

No test touches the network: the full-MNIST cases use an empty cache folder and a mirror on a
closed local port.
"""

import argparse
import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from signals import sigint_as_in_a_terminal

import tinyconv as tc
from tinyconv import cli, tour
from tinyconv import data as tcdata
from tinyconv import files as tcfiles
from tinyconv.architectures import build
from tinyconv.receptive_field import format_table


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, expected_code=None):
    assert code != 0
    if expected_code is not None:
        assert code == expected_code
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tinyconv: error: ")
    assert out == ""


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "small.npz"
    tc.save(build("small", seed=1), path)
    return path


def epoch_rows(out):
    """The per-epoch lines of ``train``: ``{epoch: [loss, acc, held-out loss, held-out acc]}``
    (``None`` for the '-' of epoch 0, before training)."""
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit():
            rows[int(fields[0])] = [None if f == "-" else float(f) for f in fields[1:5]]
    return rows


# ------------------------------------------------------------------ train


def test_train_the_default_architecture_and_see_the_loss_fall(capsys, tmp_path):
    out_file = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--arch", "mnist", "--limit", 300, "--epochs", 1,
                         "--out", out_file)
    assert code == 0, err
    rows = epoch_rows(out)
    assert sorted(rows) == [0, 1]
    before, after = rows[0][2], rows[1][2]
    assert before > 2.0                      # untrained: about log(10) = 2.30
    assert after < before - 0.3              # one epoch on 300 digits already helps
    assert "the first 300 of the 4,000 bundled training digits" in out
    assert f"saved {out_file}" in out
    model = tc.load(out_file)
    assert model.names == build("mnist").names


def test_train_is_deterministic_and_saves_a_loadable_model(capsys, tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        code, out, err = run(capsys, "train", "--arch", "small", "--limit", 200, "--epochs", 2,
                             "--seed", 5, "--out", path)
        assert code == 0, err
        assert sorted(epoch_rows(out)) == [0, 1, 2]
        assert re.search(r"held-out accuracy: \d+\.\d\d% \(\d+ of 1,000", out)
    a, b = (tc.load(p) for p in paths)
    for la, lb in zip(a.layers, b.layers, strict=True):
        for key in la.params:
            np.testing.assert_array_equal(la.params[key], lb.params[key])


def test_train_with_augmentation_and_decay(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--arch", "small", "--limit", 128, "--epochs", 2,
                         "--augment", 2, "--decay", 0.5, "--out", tmp_path / "m.npz")
    assert code == 0, err
    # the shipped recipe: SGD with momentum and weight decay, lr 0.05
    assert "SGD lr=0.05 momentum 0.9, weight decay 0.005, x 0.5 per epoch" in out
    assert "random shifts <= 2 px" in out
    assert sorted(epoch_rows(out)) == [0, 1, 2]


def test_the_command_and_the_python_recipe_give_bit_identical_weights(capsys, tmp_path):
    """``tinyconv train`` is a thin caller of ``train_recipe``: the same recipe from Python,
    on the same digits, gives the same weights bit for bit (decay and shifts included)."""
    out_file = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--arch", "small", "--limit", 96, "--epochs", 2,
                         "--batch-size", 16, "--seed", 3, "--out", out_file)
    assert code == 0, err
    recipe = dataclasses.replace(tc.MNIST_RECIPE, arch="small", epochs=2, batch_size=16, seed=3)
    assert recipe.lr_decay < 1 and recipe.shift > 0          # the schedule and shifts are used
    images, labels = tc.load_mnist("bundled-train")
    ours, _ = tc.train_recipe(recipe, tc.to_float(images[:96]), labels[:96])
    theirs = tc.load(out_file)
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    # negative control: another seed of the same recipe gives other weights
    other, _ = tc.train_recipe(dataclasses.replace(recipe, seed=4),
                               tc.to_float(images[:96]), labels[:96])
    assert not np.array_equal(other.layers[0].params["W"], theirs.layers[0].params["W"])


def test_train_options_are_the_recipe_fields(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--arch", "small", "--limit", 64, "--epochs", 2,
                         "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.8",
                         "--weight-decay", "1e-4", "--schedule", "cosine", "--augment", 0,
                         "--out", tmp_path / "m.npz")
    assert code == 0, err
    assert "SGD lr=0.05 momentum 0.8, weight decay 0.0001, cosine schedule, batch size 32" in out
    code, out, err = run(capsys, "train", "--momentum", "1", "--out", tmp_path / "m.npz")
    assert_one_line_error(code, out, err, 2)
    assert "--momentum" in err


def test_train_without_augmentation_or_decay(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--arch", "small", "--limit", 128, "--epochs", 2,
                         "--augment", 0, "--decay", 1, "--lr", "1e-3", "--batch-size", 64,
                         "--optimizer", "adam", "--out", tmp_path / "m.npz")
    assert code == 0, err
    assert "Adam lr=0.001, batch size 64, 2 epochs, seed 0\n" in out
    assert sorted(epoch_rows(out)) == [0, 1, 2]


def test_ctrl_c_saves_nothing(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.train, "train_recipe", interrupted)
    out_file = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--arch", "small", "--out", out_file)
    assert code == 130
    # the last line (a first run on the machine says before it that it compiles the kernels)
    assert err.strip().splitlines()[-1] == "interrupted; nothing saved"
    assert "Traceback" not in err
    assert not out_file.exists()
    assert list(tmp_path.iterdir()) == []       # no temporary left either


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_a_real_ctrl_c_in_a_subprocess(tmp_path):
    command = [sys.executable, "-u", "-m", "tinyconv", "train", "--arch", "small",
               "--epochs", "50", "--out", str(tmp_path / "m.npz")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=sigint_as_in_a_terminal) as proc:
        for line in proc.stdout:                # wait until training has started
            if line.split()[:1] == ["0"]:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted; nothing saved"
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_diverging_run_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise FloatingPointError("training diverged: the loss is nan (lr=1000.0); "
                                 "nothing was written — lower the learning rate")

    monkeypatch.setattr(cli.train, "train_recipe", diverge)
    out_file = tmp_path / "m.npz"
    out_file.write_bytes(b"old")
    code, out, err = run(capsys, "train", "--arch", "small", "--lr", 1000, "--out", out_file)
    assert code == 1
    assert "Traceback" not in err and err.count("\n") == 1
    assert "training diverged" in err
    assert out_file.read_bytes() == b"old"


def test_unexpected_errors_are_one_line_unless_debugging(capsys, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(cli.train, "train_recipe", broken)
    argv = ["train", "--arch", "small", "--out", str(tmp_path / "m.npz")]
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "RuntimeError: something broke" in err
    assert "unexpected; run with TINYCONV_DEBUG=1" in err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(argv)


# ------------------------------------------------------------------ evaluate, rf, info


def test_evaluate_prints_accuracy_and_a_confusion_matrix(capsys, small_model_file):
    code, out, err = run(capsys, "evaluate", small_model_file)
    assert code == 0, err
    assert re.search(r"accuracy \d+\.\d\d% \(\d+ of 1,000 held-out bundled digits\)", out)
    lines = out.splitlines()
    top = lines.index("confusion matrix (rows: true digit, columns: predicted digit)")
    header, rows = lines[top + 1].split(), lines[top + 2:top + 12]
    assert header == ["true", *map(str, range(10)), "acc"]
    counts = np.array([[int(n) for n in row.split()[1:11]] for row in rows])
    assert [int(row.split()[0]) for row in rows] == list(range(10))
    assert counts.sum() == 1000
    assert (counts.sum(axis=1) == 100).all()    # the bundled test split: 100 per class


def test_evaluate_the_shipped_model(capsys):
    code, out, err = run(capsys, "evaluate", "mnist")
    assert code == 0, err
    accuracy = float(re.search(r"accuracy (\d+\.\d\d)%", out).group(1))
    assert accuracy >= 97.0


def test_format_confusion_handles_an_empty_row():
    text = cli.train.format_confusion(np.array([[3, 1], [0, 0]]))
    assert text.splitlines()[2].split() == ["0", "3", "1", "75.0%"]
    assert text.splitlines()[3].split() == ["1", "0", "0", "-"]


def test_rf_prints_the_table(capsys, small_model_file):
    code, out, err = run(capsys, "rf", "mnist")
    assert code == 0, err
    assert "conv1" in out and "pool3" in out and "28x28" in out and "24x24" in out
    assert out.strip() == format_table(tc.pretrained("mnist")).strip()
    code, out, err = run(capsys, "rf", small_model_file)
    assert code == 0 and "10x10" in out


def test_info_prints_the_summary(capsys):
    code, out, err = run(capsys, "info", "mnist")
    assert code == 0, err
    assert "logits" in out and "(3, 3, 64)" in out
    assert re.search(r"[\d,]+ parameters, float32", out)


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert name in out
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "--epochs" in out and "--limit" in out


# ------------------------------------------------ bad input: one line, no traceback


@pytest.fixture
def bad_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.zeros(3))
    rgb = tmp_path / "rgb.npz"
    tc.save(tc.Sequential([tc.Conv2D(3, 4, 3), tc.Flatten(), tc.Dense(6 * 6 * 4, 10)],
                          input_shape=(8, 8, 3)), rgb)
    five = tmp_path / "five.npz"
    tc.save(tc.Sequential([tc.Flatten(), tc.Dense(784, 5)], input_shape=(28, 28, 1)), five)
    return {"TEXT": text, "NPZ": npz, "RGB": rgb, "FIVE": five,
            "MISSING": tmp_path / "missing.npz", "DIR": tmp_path,
            "NODIR": tmp_path / "no" / "such" / "m.npz", "OUT": tmp_path / "m.npz"}


BAD = [
    # (argv, exit status, a piece of the message)
    ([], 2, "choose a command"),
    (["fly"], 2, "invalid choice"),
    (["evaluate"], 2, "MODEL"),
    (["evaluate", "MISSING"], 1, "no model file"),
    (["evaluate", "DIR"], 1, "is a directory"),
    (["evaluate", "TEXT"], 1, "not a readable tinyconv model file"),
    (["rf", "TEXT"], 1, "not a readable tinyconv model file"),
    (["info", "NPZ"], 1, "not a tinyconv model file"),
    (["evaluate", "RGB"], 1, "(8, 8, 3)"),
    (["evaluate", "FIVE"], 1, "10 classes"),
    (["evaluate", "mnist", "--data", "huge"], 2, "invalid choice"),
    (["train", "--epochs", "0", "--out", "OUT"], 2, "--epochs"),
    (["train", "--epochs", "-3", "--out", "OUT"], 2, "--epochs"),
    (["train", "--epochs", "two", "--out", "OUT"], 2, "--epochs"),
    (["train", "--batch-size", "0", "--out", "OUT"], 2, "--batch-size"),
    (["train", "--lr", "0", "--out", "OUT"], 2, "--lr"),
    (["train", "--lr", "-0.1", "--out", "OUT"], 2, "--lr"),
    (["train", "--lr", "inf", "--out", "OUT"], 2, "--lr"),
    (["train", "--limit", "0", "--out", "OUT"], 2, "--limit"),
    (["train", "--decay", "0", "--out", "OUT"], 2, "--decay"),
    (["train", "--decay", "1.5", "--out", "OUT"], 2, "--decay"),
    (["train", "--augment", "-1", "--out", "OUT"], 2, "--augment"),
    (["train", "--seed", "-1", "--out", "OUT"], 2, "--seed"),
    (["train", "--arch", "lenet", "--out", "OUT"], 2, "'mnist'"),
    (["train", "--data", "huge", "--out", "OUT"], 2, "invalid choice"),
    (["train", "--cache-dir", "TEXT", "--out", "OUT"], 2, "is a file"),
    (["train", "--out", "NODIR"], 2, "does not exist"),
    (["train", "--out", "DIR"], 2, "is a directory"),
    (["train", "--no-download", "--data", "full", "--cache-dir", "DIR", "--out", "OUT"], 1,
     "not in the cache"),
]


@pytest.mark.parametrize(("argv", "status", "message"), BAD,
                         ids=[" ".join(a) or "nothing" for a, _, _ in BAD])
def test_bad_input_is_one_line(capsys, bad_files, argv, status, message):
    argv = [str(bad_files.get(a, a)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, status)
    assert message in err
    assert not bad_files["OUT"].exists()


def write_idx(path, array):
    """A gzip IDX file (unsigned bytes): magic 0x0000080N, N big-endian uint32 sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_train_and_evaluate_on_full_mnist_from_the_cache(capsys, tmp_path, monkeypatch):
    # a stand-in "full MNIST" made of bundled digits, cached with matching checksums
    images, labels = tc.load_mnist("bundled")
    cache = tmp_path / "cache"
    cache.mkdir()
    parts = {"train": slice(0, 300), "test": slice(300, 400)}
    sums = {}
    for part, (images_file, labels_file) in tcdata.FILES.items():
        write_idx(cache / images_file, images[parts[part], :, :, 0])
        write_idx(cache / labels_file, labels[parts[part]])
        for name in (images_file, labels_file):
            sums[name] = hashlib.sha256((cache / name).read_bytes()).hexdigest()
    monkeypatch.setattr(tcdata, "SHA256", sums)
    out_file = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--data", "full", "--cache-dir", cache, "--arch",
                         "small", "--epochs", 1, "--no-download", "--out", out_file)
    assert code == 0, err
    assert "on 300 MNIST training digits; testing on 100 MNIST test digits" in out
    code, out, err = run(capsys, "evaluate", out_file, "--data", "full", "--cache-dir", cache,
                         "--no-download")
    assert code == 0, err
    assert re.search(r"of 100 MNIST test digits\)", out)


def test_download_failure_is_one_line(capsys, tmp_path, monkeypatch):
    # port 9 (discard) on localhost: nothing listens, the connection is refused at once
    monkeypatch.setenv("TINYCONV_MNIST_MIRRORS", "http://127.0.0.1:9/,http://127.0.0.1:9/b/")
    code, out, err = run(capsys, "train", "--data", "full", "--cache-dir", tmp_path / "cache",
                         "--out", tmp_path / "m.npz")
    assert_one_line_error(code, "", err, 1)
    assert "could not download train-images-idx3-ubyte.gz" in err
    assert err.count("127.0.0.1:9") == 2        # both mirrors' failures, on the one line


def test_unwritable_cache_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tcfiles, "is_writable", lambda folder: False)
    code, out, err = run(capsys, "train", "--data", "full", "--cache-dir", tmp_path,
                         "--out", tmp_path / "m.npz")
    assert_one_line_error(code, out, err, 2)
    assert "not writable" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (not root)")
def test_unwritable_cache_dir_by_permissions(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = run(capsys, "train", "--data", "full", "--cache-dir", locked / "mnist",
                             "--out", tmp_path / "m.npz")
    finally:
        locked.chmod(0o700)
    assert_one_line_error(code, out, err, 2)
    assert "not writable" in err


def test_one_line_folds_multi_line_messages():
    assert cli.one_line("a:\n  b: x\n  c: y\n") == "a: b: x; c: y"
    assert cli.one_line("single") == "single"


# ------------------------------------------------------------------ the installed command


def test_installed_command_and_python_dash_m():
    exe = shutil.which("tinyconv")
    commands = [[sys.executable, "-m", "tinyconv"]] + ([[exe]] if exe else [])
    for command in commands:
        done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: tinyconv")
        done = subprocess.run([*command, "rf", "no-such-model.npz"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.startswith("tinyconv: error: no model file")
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_tour_arguments_and_runner(monkeypatch, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.tour.tour_arguments(parser)
    args = parser.parse_args([])
    assert (args.out, args.digit, args.layer, args.feature, args.examples, args.model) == \
        (Path("tinyconv-tour"), 8, "conv2", 3, None, "mnist")
    args = parser.parse_args(["--out", str(tmp_path), "--digit", "3", "--layer", "conv3",
                              "--feature", "7", "--examples", "50", "--model", "m.npz"])
    seen = {}

    def fake_tour(out_dir, **kwargs):
        seen.update(kwargs, out_dir=out_dir)
        return [Path(out_dir) / "fig1_kernels.png", Path(out_dir) / "index.html"]

    shipped = tc.pretrained("mnist")
    monkeypatch.setattr(tour, "tour", fake_tour)
    monkeypatch.setattr(cli.tour, "load_model", lambda name: shipped if name == "m.npz" else None)
    assert cli.tour.run_tour(args) == 0
    assert seen == {"out_dir": tmp_path, "digit": 3, "layer": "conv3", "feature": 7,
                    "examples": 50, "model": shipped}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(tmp_path / "fig1_kernels.png")
    assert lines[-1].endswith(str(tmp_path / "index.html"))


def test_only_the_tour_loads_matplotlib():
    """``tinyconv info`` and friends never import the drawing stack."""
    code = ("import sys; from tinyconv import cli; "
            "sys.exit('matplotlib' in sys.modules or 'tinyconv.tour' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_tour_command_writes_the_figures(tmp_path, capsys):
    out = tmp_path / "tour"
    assert cli.main(["tour", "--out", str(out), "--examples", "60"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" in printed and (out / "index.html").is_file()
    assert len(list(out.glob("*.png"))) == 16


@pytest.mark.parametrize("argv, code, text", [
    (["tour", "--digit", "11"], 2, "--digit"),
    (["tour", "--layer", "conv9"], 2, "--layer"),
    (["tour", "--layer", "logits"], 2, "--layer"),
    (["tour", "--feature", "99"], 2, "--feature"),
])
def test_tour_bad_input_is_one_line(tmp_path, capsys, argv, code, text):
    assert cli.main([*argv, "--out", str(tmp_path / "t")]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and text in err and "Traceback" not in err


def test_tour_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert cli.main(["tour", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err


# ------------------------------------------------ the current directory, pipes, Ctrl-C


@pytest.mark.parametrize("kind", ["folder", "file"])
@pytest.mark.parametrize("command", ["info", "rf", "evaluate"])
def test_a_local_mnist_does_not_shadow_the_shipped_model(capsys, tmp_path, monkeypatch,
                                                          kind, command):
    monkeypatch.chdir(tmp_path)
    if kind == "folder":
        (tmp_path / "mnist").mkdir()
    else:
        (tmp_path / "mnist").write_text("my notes")
    code, out, err = run(capsys, command, "mnist")
    assert code == 0, err
    # a path that names it still means the local one, and says what was found
    code, out, err = run(capsys, command, "./mnist")
    assert_one_line_error(code, out, err, 1)
    assert ("is a directory" if kind == "folder" else "not a readable") in err
    assert "./mnist" in err


def test_the_default_tour_with_a_local_mnist_folder_uses_the_shipped_model(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    seen = {}
    monkeypatch.setattr(tour, "tour", lambda out_dir, **kw: seen.update(kw) or [out_dir])
    assert cli.main(["tour", "--out", str(tmp_path / "t")]) == 0, capsys.readouterr().err
    assert seen["model"].names == tc.pretrained("mnist").names


def test_the_name_rule_of_load_model(tmp_path, monkeypatch):
    from tinyconv.pretrained import load_model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    assert load_model("mnist").names == tc.pretrained("mnist").names
    for text in ("./mnist", str(tmp_path / "mnist"), Path("mnist")):
        with pytest.raises(IsADirectoryError, match="directory"):
            load_model(text)
    with pytest.raises(FileNotFoundError, match=r"mnist\.npz"):
        load_model("mnist.npz")
    with pytest.raises(TypeError, match="name_or_path"):
        load_model(3)


@pytest.mark.parametrize("argv, text", [
    (["tour", "--layer", "conv9"], "--layer"),
    (["tour", "--layer", "logits"], "--layer"),
    (["tour", "--layer", "input"], "--layer"),
    (["tour", "--feature", "99"], "--feature"),
    (["tour", "--feature", "-1"], "--feature"),
    (["tour", "--digit", "x"], "--digit"),
    (["tour", "--examples", "0"], "--examples"),
])
def test_tour_flags_are_usage_errors_before_any_work(tmp_path, capsys, monkeypatch, argv, text):
    monkeypatch.setattr(tour, "tour", lambda *a, **k: pytest.fail("the tour started"))
    code, out, err = run(capsys, *argv, "--out", tmp_path / "t")
    assert_one_line_error(code, out, err, 2)
    assert text in err and "error: layer:" not in err and "error: feature:" not in err


@pytest.mark.parametrize("shift", [28, 29, 100])
def test_a_shift_as_large_as_the_digit_is_a_usage_error(capsys, tmp_path, shift):
    code, out, err = run(capsys, "train", "--augment", shift, "--out", tmp_path / "m.npz")
    assert_one_line_error(code, out, err, 2)
    assert "--augment" in err and "broadcast" not in err


def test_version(capsys):
    code, out, err = run(capsys, "--version")
    assert code == 0 and out.strip() == f"tinyconv {tc.__version__}"


@pytest.mark.skipif(os.name != "posix", reason="pipes and SIGPIPE")
@pytest.mark.parametrize("command", [["evaluate", "mnist"], ["info", "mnist"]])
def test_a_closed_pipe_is_not_an_error(command):
    """``tinyconv evaluate mnist | head -1``: the reader has gone when the output comes;
    a pipe whose read end is already closed makes that deterministic."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run([sys.executable, "-m", "tinyconv", *command], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == "" and done.returncode == 141


def test_a_closed_pipe_in_process(monkeypatch):
    """The same in-process: a BrokenPipeError from print is the reader's choice, not ours."""
    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(cli.info, "print", broken, raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert cli.main(["info", "mnist"]) == 141


def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path):
    """A KeyboardInterrupt while ``python -m tinyconv`` imports its command layer."""
    code = ("import runpy, sys\n"
            "class Stop:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.startswith('tinyconv.cli'):\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Stop())\n"
            "sys.argv = ['tinyconv', 'info', 'mnist']\n"
            "runpy.run_module('tinyconv', run_name='__main__', alter_sys=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130
    assert done.stderr.strip() == "interrupted" and "Traceback" not in done.stderr


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_a_real_ctrl_c_while_the_package_imports_is_one_line():
    """The console script of pyproject.toml, sent SIGINT while ``tinyconv/__init__.py`` runs:
    a finder says so when the package asks for its first module, then waits for the signal."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    module, function = tomllib.loads(pyproject.read_text())["project"]["scripts"]["tinyconv"] \
        .split(":")
    code = textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        class Slow:
            def find_spec(self, name, path=None, target=None):
                if name.startswith("tinyconv."):                  # the package is importing
                    sys.meta_path.remove(self)
                    print("importing", flush=True)
                    time.sleep(120)
        sys.meta_path.insert(0, Slow())
        sys.argv = ["tinyconv", "info", "mnist"]
        # what the installed console script does
        from {module} import {function}
        sys.exit({function}())
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline() == "importing\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted"


class CtrlCInAFinaliser:
    """An object whose finaliser is hit by Ctrl-C, as a matplotlib weakref callback can be."""

    def __del__(self):
        raise KeyboardInterrupt


def work_after_a_dropped_ctrl_c(args):
    """A command's work that a Ctrl-C in a finaliser should stop before it finishes."""
    CtrlCInAFinaliser()                          # dropped at once: Python prints and carries on
    time.sleep(5)                                # the work that a lost Ctrl-C would let finish
    print("finished")
    return 0


#: The command of :func:`work_after_a_dropped_ctrl_c`, for ``cli.COMMANDS["slow"]``.
SLOW = cli.Command("work for 5 s", lambda parser: None, work_after_a_dropped_ctrl_c,
                   interrupted="stopped")


def test_a_ctrl_c_that_lands_in_a_finaliser_still_stops_the_command(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "slow", SLOW)
    hook = sys.unraisablehook
    code, out, err = run(capsys, "slow")
    assert (code, out, err) == (130, "", "stopped\n")
    assert sys.unraisablehook == hook                 # put back when the command ends


def test_a_ctrl_c_in_a_finaliser_wakes_the_command_under_a_handler_of_the_callers(monkeypatch,
                                                                               capsys):
    # a program that embeds the command may have its own SIGINT handler: the Ctrl-C sent
    # again is then still a real signal, which runs that handler and wakes a waiting command
    # (a simulated one would wait out the sleep and let the work finish)
    def handler(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "slow", SLOW)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        started = time.monotonic()
        code, out, err = run(capsys, "slow")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (code, out, err) == (130, "", "stopped\n")
    assert time.monotonic() - started < 4


class BusyFinaliser:
    """An object whose finaliser runs for a while, as the garbage collector's can: a Ctrl-C
    that arrives meanwhile is raised in it, and dropped."""

    def __del__(self):
        end = time.monotonic() + 2
        while time.monotonic() < end:
            time.sleep(0.001)


def test_a_ctrl_c_sent_again_into_another_finaliser_is_sent_once_more(monkeypatch, capsys):
    # the Ctrl-C sent again lands in a second finaliser while the thread that sent it is
    # still running (held here for 50 ms after it sends): it must be sent once more, not lost
    send = cli._send_ctrl_c

    def send_then_linger():
        send()
        time.sleep(0.05)

    def work(args):
        pair = [BusyFinaliser(), CtrlCInAFinaliser()]
        del pair                 # the Ctrl-C's finaliser runs first, then the busy one's
        time.sleep(5)
        print("finished")
        return 0

    monkeypatch.setattr(cli, "_send_ctrl_c", send_then_linger)
    monkeypatch.setitem(cli.COMMANDS, "slow", cli.Command("", lambda parser: None, work,
                                                          interrupted="stopped"))
    started = time.monotonic()
    code, out, err = run(capsys, "slow")
    assert (code, out, err) == (130, "", "stopped\n")
    assert time.monotonic() - started < 4


def test_without_a_thread_to_send_it_a_dropped_ctrl_c_still_ends_in_130(monkeypatch, capsys):
    # a process that can start no more threads: the command runs to its end, then exits 130
    def no_thread(self):
        raise RuntimeError("can't start new thread")

    def work(args):
        CtrlCInAFinaliser()
        print("finished")
        return 0

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    monkeypatch.setitem(cli.COMMANDS, "quick", cli.Command("", lambda parser: None, work))
    hook = sys.unraisablehook
    assert run(capsys, "quick") == (130, "finished\n", "interrupted\n")
    assert sys.unraisablehook == hook


def test_a_ctrl_c_dropped_as_the_command_ends_is_not_raised_after_it(monkeypatch, capsys):
    def work(args):
        CtrlCInAFinaliser()                      # the very last thing the command does
        return 0

    monkeypatch.setitem(cli.COMMANDS, "quick", cli.Command("", lambda parser: None, work))
    code, out, err = run(capsys, "quick")
    for _ in range(20):                           # nothing arrives after main() returned
        time.sleep(0.005)
    assert (code, out, err) == (130, "", "interrupted\n")


def test_main_in_another_thread_leaves_the_hook_alone(monkeypatch, capsys):
    hooks = []

    def work(args):
        hooks.append(sys.unraisablehook)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "look", cli.Command("", lambda parser: None, work))
    codes = []
    thread = threading.Thread(target=lambda: codes.append(cli.main(["look"])))
    thread.start()
    thread.join()
    assert codes == [0] and hooks == [sys.unraisablehook]


def test_other_exceptions_in_finalisers_are_still_reported(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    class Broken:
        def __del__(self):
            raise ValueError("from a finaliser")

    def work(args):
        Broken()
        return 0

    monkeypatch.setitem(cli.COMMANDS, "broken", cli.Command("", lambda parser: None, work))
    assert run(capsys, "broken")[0] == 0
    assert [str(event.exc_value) for event in seen] == ["from a finaliser"]
    assert sys.unraisablehook == seen.append          # put back when the command ends


def test_a_new_command_is_one_entry_in_the_table(monkeypatch, capsys):
    hello = cli.Command("say hello", lambda parser: parser.add_argument("--name"),
                        lambda args: print(f"hello {args.name}") or 0)
    monkeypatch.setitem(cli.COMMANDS, "hello", hello)
    code, out, err = run(capsys, "hello", "--name", "digits")
    assert code == 0 and out == "hello digits\n"
    code, out, _ = run(capsys, "--help")
    assert "say hello" in out


def test_every_module_of_the_command_layer_is_short():
    folder = Path(cli.__file__).parent
    lengths = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert len(lengths) >= 5 and max(lengths.values()) < 400, lengths
