"""The shipped model must teach: scripts/teaching_measures.py on tinyconv/data/mnist_cnn.npz.

The measures are calibrated first (a random filter, a smooth edge, a Gabor, a checkerboard),
so that a target met or missed means what the figures show; then the shipped file is measured
once and each target is its own test.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.architectures import build

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "teaching_measures.py"


def load_script():
    spec = importlib.util.spec_from_file_location("teaching_measures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tm = load_script()

# 5x5 grid centred on the middle pixel: rows r, columns c in [-2, 2]
R, C = np.mgrid[-2:3, -2:3].astype(np.float64)


def oriented(theta):
    """The coordinate across an edge at angle theta."""
    return C * np.cos(theta) + R * np.sin(theta)


# ----------------------------------------------------------------------- calibration


@pytest.mark.parametrize("theta", [0.0, np.pi / 6, np.pi / 4, np.pi / 2])
def test_a_smooth_edge_keeps_its_energy(theta):
    share = tm.hf_share(np.tanh(oriented(theta)))
    assert 0.01 < share < 0.05          # about 0.02 (0.026 upright, 0.044 diagonal)


@pytest.mark.parametrize("theta", [0.0, np.pi / 6, np.pi / 4])
def test_a_gabor_loses_about_a_quarter(theta):
    gabor = np.exp(-(R ** 2 + C ** 2) / (2 * 1.75 ** 2)) * np.cos(2 * np.pi * oriented(theta) / 5)
    assert 0.20 < tm.hf_share(gabor) < 0.32    # about 0.26


def test_he_initialised_filters_are_mostly_high_frequency():
    shares = tm.filter_hf_shares(build("mnist", seed=0), "conv1")
    assert shares.shape == (16,)
    assert 0.70 < np.median(shares) < 0.90      # 0.80 for seed 0


def test_white_noise_and_a_checkerboard_are_high_frequency(rng):
    noise = rng.normal(size=(500, 5, 5))
    assert 0.70 < np.median(tm.hf_share(noise)) < 0.80     # 0.75 with edges replicated
    assert tm.hf_share((-1.0) ** (R + C)) > 0.95


def test_a_constant_has_no_high_frequency_and_zero_has_no_share():
    assert tm.hf_share(np.full((5, 5), 3.0)) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(tm.hf_share(np.zeros((5, 5))))


def test_the_share_does_not_depend_on_scale_or_sign(rng):
    f = rng.normal(size=(4, 7, 7))
    np.testing.assert_allclose(tm.hf_share(-3.5 * f), tm.hf_share(f), rtol=1e-12)


def test_blur_replicates_the_border():
    # a ramp along the columns: the blur keeps every interior pixel, and at the border the
    # replicated pixel pulls the mean a third of a step inwards
    ramp = np.tile(np.arange(5.0), (5, 1))
    blurred = tm.box_blur(ramp)
    np.testing.assert_allclose(blurred[:, 1:4], ramp[:, 1:4])
    np.testing.assert_allclose(blurred[:, 0], 1 / 3)
    np.testing.assert_allclose(blurred[:, 4], 4 - 1 / 3)


def test_weak_filters_counts_filters_below_a_tenth_of_the_largest():
    model = build("mnist", seed=0)
    assert tm.weak_filters(model) == 0
    W = model.layers[0].params["W"]
    W[..., 3] *= 0.01
    W[..., 7] = 0
    assert tm.weak_filters(model) == 2


def test_an_untrained_model_fails_the_projection_targets():
    # negative control for the deconvnet measure: random weights project noise
    images, _ = tc.load_mnist("bundled-test")
    X = tc.to_float(images[:200])
    model = build("mnist", seed=0)
    shares = tm.projection_hf_shares(model, X, "conv2", every=8, top=3)
    assert shares.shape == (4 * 3,)
    assert np.median(shares) > 0.5


def test_failures_name_each_missed_target():
    good = {"filter_hf": 0.2, "projection_hf_conv2": 0.2, "projection_hf_conv3": 0.2,
            "weak_filters": 0, "accuracy": 0.985}
    assert tm.failures(good) == []
    bad = {**good, "filter_hf": 0.5, "weak_filters": 3, "accuracy": 0.97}
    missed = tm.failures(bad)
    assert len(missed) == 3
    assert any(m.startswith("filter_hf") for m in missed)
    assert any(m.startswith("accuracy") for m in missed)


# ----------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def shipped():
    return tm.measure(tc.load(tm.SHIPPED))


def test_the_command_prints_the_measures_as_json(shipped, monkeypatch, capsys):
    monkeypatch.setattr(tm, "measure", lambda model: shipped)
    status = tm.main([str(tm.SHIPPED), "--json"])
    assert json.loads(capsys.readouterr().out) == shipped
    assert status == (0 if not tm.failures(shipped) else 1)


def test_shipped_conv1_filters_are_smooth(shipped):
    assert shipped["filter_hf"] <= 0.35


@pytest.mark.parametrize("layer", ["conv2", "conv3"])
def test_shipped_projections_look_like_strokes(shipped, layer):
    assert shipped[f"projection_hf_{layer}"] <= 0.30


def test_shipped_conv1_has_at_most_two_weak_filters(shipped):
    assert shipped["weak_filters"] <= 2


def test_shipped_model_keeps_its_accuracy(shipped):
    assert shipped["accuracy"] >= 0.98
