import io
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import tinyconv as tc
from tinyconv import plots, tour
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


def test_extreme_examples_take_both_ends_from_one_ranking(model, digits):
    X, y = digits
    eights = X[y == 8]
    ranking = tc.max_activating(model, eights, "logits", k=8, top=None)
    predicted = tc.predict(model, eights).argmax(axis=1)
    fig = plots.extreme_examples(eights, ranking, predicted, n=4)
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    n = min(4, len(eights))
    assert len(titles) == 2 * n
    assert all(t.startswith("p = ") for t in titles)
    low = tc.max_activating(model, eights, "logits", k=8, top=n, descending=False)
    assert [float(t.split()[2]) for t in titles[n:]] == \
        pytest.approx(low.values[0].round(3).tolist())
    with pytest.raises(ValueError, match="ranking"):
        plots.extreme_examples(X, tc.max_activating(model, X, "conv1", k=0), predicted)


def test_maxact_montages_draw_the_rankings_given(model, digits):
    X, _ = digits
    rankings = [tc.max_activating(model, X, name, k=[0, 1, 2], top=9)
                for name in ("conv1", "conv2")]
    fig = plots.maxact_montages(model, X, [r.select([2, 0]) for r in rankings])
    check_figure(fig)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 4
    assert [ax.get_title() for ax in fig.axes if ax.get_images()][:2] == ["k = 2", "k = 0"]


def projected(model, X, units, n, rules):
    rankings = {name: tc.max_activating(model, X, name, k=k, top=n) for name, k in units}
    return [tuple(tc.project_top(model, X, rankings[name], k, n, rule) for rule in rules)
            for name, k in units]


def test_projections_and_rules(model, digits):
    X, _ = digits
    units = [("conv1", 0), ("conv2", 1)]
    fig = plots.projections(model, X, [r for (r,) in projected(model, X, units, 4,
                                                                ["deconvnet"])])
    check_figure(fig)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    fig = plots.compare_rules(model, X, projected(model, X, units, 2,
                                                  ["gradient", "deconvnet", "guided"]))
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"input", "gradient", "deconvnet", "guided backprop"} <= set(titles)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "RdBu_r"]
    assert len(maps) == 3 * 2 * len(units)
    assert all(np.nanmax(np.abs(im.get_array())) <= 1 + 1e-6 for im in maps)


def test_project_top_projects_each_example_from_its_strongest_unit(model, digits):
    X, _ = digits
    ranking = tc.max_activating(model, X, "conv2", k=[3, 1], top=5)
    result = tc.project_top(model, X, ranking, 1, n=3, rule="guided")
    examples, _, locations = ranking.row(1)
    np.testing.assert_array_equal(result.examples, examples[:3])
    np.testing.assert_array_equal(
        result.maps, tc.project(model, X[examples[:3]], "conv2", 1, idx=locations[:3],
                                rule="guided"))
    with pytest.raises(ValueError, match="k: feature 0 is not in this ranking"):
        tc.project_top(model, X, ranking, 0)


def test_occlusion_figure(model, digits):
    X, y = digits
    x = X[tour.example_of(model, X, y, 8)]
    results = tour.occlusion_results(model, x, 8, (6, 10), "conv2", 1)
    fig = plots.occlusion_figure(x, 8, **results)
    check_figure(fig)
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 5
    assert "k = 1" in fig.axes[3].get_title()                 # the k it was given
    with pytest.raises(ValueError, match="sweeps"):
        plots.occlusion_figure(x, 8, **{**results, "sweeps": results["sweeps"][:1]})


def test_receptive_field_growth_draws_one_box_per_unit(model, digits):
    X, _ = digits
    shown = [(l, tc.units.centre_unit(model, l)) for l in (1, 3, 4, 6)]
    fig = plots.receptive_field_growth(X[0], tc.receptive_fields(model), shown)
    check_figure(fig)
    image_ax = fig.axes[0]
    # four layers and the image's own border
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
    erfs = tour.erf_results(model, X[:20], ["conv1", "conv2"])
    fig = plots.effective_receptive_fields(tc.receptive_fields(model), erfs, 20)
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
    assert plots.conv_layers(model) == [model.index("conv1"), model.index("conv2")]
    assert plots.centre_unit(model, "conv2") == (7, 7)
    i = tour.example_of(model, X, y, 3)
    assert y[i] == 3
    with pytest.raises(ValueError, match="digit"):
        tour.example_of(model, X[y != 3], y[y != 3], 3)


def test_every_plot_module_is_short():
    from pathlib import Path
    for path in Path(plots.__file__).parent.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) < 300, path.name


def test_importing_plots_selects_no_backend():
    code = ("import sys, tinyconv.plots; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
