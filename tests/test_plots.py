import io
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import tinyconv as tc
from tinyconv import plots
from tinyconv.architectures import build


@pytest.fixture(scope="module")
def model():
    """Untrained but seeded: the figures' mechanics do not depend on what was learned."""
    return build("small", seed=0)


@pytest.fixture(scope="module")
def digits():
    images, labels = tc.load_mnist("bundled-test")
    return tc.to_float(images[:80]), labels[:80]


def check_figure(fig):
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= 1
    assert fig.get_suptitle().strip()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)     # renders without pyplot or a chosen backend
    image = matplotlib.image.imread(io.BytesIO(buffer.getvalue()))
    assert image.std() > 0


def test_filters_share_one_scale_centred_at_zero(model):
    fig = plots.filters(model)
    check_figure(fig)
    images = [im for ax in fig.axes for im in ax.get_images()]
    W = model.layers[0].params["W"]
    assert len(images) == W.shape[-1]
    limits = {im.get_clim() for im in images}
    assert len(limits) == 1                                   # shared
    vmin, vmax = limits.pop()
    assert vmin == -vmax and vmax == pytest.approx(np.abs(W).max())
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_filters_refuse_a_layer_that_is_not_a_convolution(model):
    with pytest.raises(ValueError, match="layer: expected a Conv2D"):
        plots.filters(model, "relu1")


def test_extreme_examples_titles_carry_the_probabilities(model, digits):
    X, y = digits
    fig = plots.extreme_examples(model, X, y, digit=8, n=4)
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 * min(4, int(np.sum(y == 8)))
    assert all(t.startswith("p = ") for t in titles)
    with pytest.raises(ValueError, match="digit"):
        plots.extreme_examples(model, X[y != 8], y[y != 8], digit=8)


def test_maxact_montages_reuse_a_ranking(model, digits, monkeypatch):
    X, _ = digits
    rankings = [tc.max_activating(model, X, name, k=[0, 1], top=9)
                for name in ("conv1", "conv2")]

    def refuse(*args, **kwargs):
        raise AssertionError("a ranking was recomputed")

    monkeypatch.setattr(plots, "max_activating", refuse)
    fig = plots.maxact_montages(model, X, features=2, rankings=rankings)
    check_figure(fig)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 4


def test_projections_and_rules(model, digits):
    X, _ = digits
    units = [("conv1", 0), ("conv2", 1)]
    fig = plots.projections(model, X, units, top=4)
    check_figure(fig)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    fig = plots.compare_rules(model, X, units, n=2)
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"input", "gradient", "deconvnet", "guided backprop"} <= set(titles)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "RdBu_r"]
    assert len(maps) == 3 * 2 * len(units)
    assert all(np.nanmax(np.abs(im.get_array())) <= 1 + 1e-6 for im in maps)


def test_occlusion_figure(model, digits):
    X, y = digits
    x = X[plots.example_of(model, X, y, 8)]
    fig = plots.occlusion_figure(model, x, 8, sizes=(6, 10))
    check_figure(fig)
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 5
    with pytest.raises(ValueError, match="sizes"):
        plots.occlusion_figure(model, x, 8, sizes=(4,))


def test_receptive_field_growth_draws_one_box_per_layer(model, digits):
    X, _ = digits
    fig = plots.receptive_field_growth(model, X[0])
    check_figure(fig)
    image_ax = fig.axes[0]
    # conv1, pool1, conv2, pool2 and the image's own border
    assert len(image_ax.patches) == 5
    assert len(image_ax.get_legend().get_texts()) == 5


def test_pooling_switches_shows_the_toolkit_numbers():
    x = np.arange(16.0).reshape(4, 4)[::-1]        # rows 12..15, 8..11, 4..7, 0..3
    fig = plots.pooling_switches(x)
    check_figure(fig)
    texts = [t.get_text() for t in fig.axes[1].texts]            # the pooled map
    assert texts == ["13", "15", "5", "7"]
    switches = [t.get_text() for t in fig.axes[2].texts if t.get_text()]
    assert switches == ["(0, 1)", "(0, 3)", "(2, 1)", "(2, 3)"]
    unpooled = [t.get_text() for t in fig.axes[3].texts]
    assert unpooled == ["0", "13", "0", "15"] + ["0"] * 4 + ["0", "5", "0", "7"] + ["0"] * 4


def test_effective_receptive_fields(model, digits):
    X, _ = digits
    fig = plots.effective_receptive_fields(model, X[:20], batch_size=7)
    check_figure(fig)
    heat = [im for ax in fig.axes for im in ax.get_images()]
    assert len(heat) == 2
    for im, name in zip(heat, ("conv1", "conv2"), strict=True):
        a = np.asarray(im.get_array())
        assert a.max() == pytest.approx(1.0)
        # nothing outside the theoretical box: the gradient there is exactly 0
        r0, r1, c0, c1 = tc.receptive_field(model, name).box(*plots.centre_unit(model, name))
        outside = a.copy()
        outside[r0:r1, c0:c1] = 0
        assert np.all(outside == 0)


def test_helpers(model, digits):
    X, y = digits
    assert plots.conv_layers(model) == ["conv1", "conv2"]
    assert plots.centre_unit(model, "conv2") == (7, 7)
    i = plots.example_of(model, X, y, 3)
    assert y[i] == 3
    with pytest.raises(ValueError, match="digit"):
        plots.example_of(model, X[y != 3], y[y != 3], 3)
    k = plots.strongest_feature(model, X[i], "conv2")
    totals = model.forward(X[i:i + 1], upto="conv2")[0].sum(axis=(0, 1))
    assert k == int(np.argmax(totals))


def test_importing_plots_selects_no_backend():
    code = ("import sys, tinyconv.plots; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
