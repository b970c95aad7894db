import io
import subprocess
import sys

import matplotlib as mpl
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import tinyconv as tc
from tinyconv import measures, plots, tour
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
    fig = plots.extreme_examples(eights, ranking, predicted, n=4,
                                 logits=model.forward(eights))
    check_figure(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    n = min(4, len(eights))
    assert len(titles) == 2 * n
    assert all(t.startswith(("p = ", "1−p = ")) for t in titles)
    low = tc.max_activating(model, eights, "logits", k=8, top=n, descending=False)

    def p_of(title):                      # "p = 0.123" or "1−p = 4.5e-02", maybe "→ 3" after
        value = float(title.split()[2])
        return 1 - value if title.startswith("1−p") else value
    assert [p_of(t) for t in titles[n:]] == pytest.approx(low.values[0], abs=0.06)
    with pytest.raises(ValueError, match="ranking"):
        plots.extreme_examples(X, tc.max_activating(model, X, "conv1", k=0), predicted)


def test_probabilities_near_one_are_shown_as_one_minus_p():
    logits = np.array([30.0, 10.0, 0.0])           # p(0) rounds to 1.0 even in float64
    text = plots.maxact.probability_text(1.0, logits, 0)
    assert text.startswith("1−p = ")
    exact = (np.exp(-20.0) + np.exp(-30.0)) / (1 + np.exp(-20.0) + np.exp(-30.0))
    assert float(text.split("= ")[1]) == pytest.approx(exact, rel=0.05)
    assert plots.maxact.probability_text(0.25, logits, 0) == "p = 0.25"
    # without logits, 1 - p itself (0 when p is exactly 1: no rank information, hence logits)
    assert plots.maxact.probability_text(0.999, None, 0) == "1−p = 1.0e-03"


def test_maxact_montages_draw_the_rankings_given(model, digits):
    X, _ = digits
    rankings = [tc.max_activating(model, X, name, k=[0, 1, 2], top=9)
                for name in ("conv1", "conv2")]
    fig = plots.maxact_montages(model, X, [r.select([2, 0]) for r in rankings])
    check_figure(fig)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 4
    assert [ax.get_title() for ax in fig.axes if ax.get_images()][:2] == ["k = 2", "k = 0"]
    fig = plots.maxact_montages(model, X, [r.select([2, 0]) for r in rankings],
                                scores=[[5.0, 4.0], [3.0, 2.5]], score_name="mean top-9")
    assert [ax.get_title() for ax in fig.axes if ax.get_images()][:2] == \
        ["k = 2\nmean top-9 5", "k = 0\nmean top-9 4"]


def test_the_most_distinctive_maps_are_those_with_the_highest_top9_mean(model, digits):
    X, _ = digits
    ranking = tc.max_activating(model, X, "conv2", k=None, top=9)
    ks, scores = tour.distinctive(ranking, 3)
    means = ranking.values.mean(axis=1)
    np.testing.assert_array_equal(ks, ranking.features[np.argsort(-means)[:3]])
    assert list(scores) == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(means.max())
    assert means[ks].min() >= np.delete(means, ks).max()


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
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert {"gradient", "deconvnet", "guided backprop"} <= set(titles)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "RdBu_r"]
    assert len(maps) == 3 * 2 * len(units)
    # one symmetric scale, and each row's three maps ÷ the row's max |value|: the largest
    # value of a row is ±1, and reached by one rule only
    assert {im.get_clim() for im in maps} == {(-1.0, 1.0)}
    peaks = np.array([np.abs(im.get_array()).max() for im in maps]).reshape(-1, 3)
    np.testing.assert_allclose(peaks.max(axis=1), 1.0)
    # maps are cropped to the unit's field (conv1: 5 px; conv2: its r) and quantified
    assert {np.shape(im.get_array()) for im in maps} == \
        {tc.receptive_field(model, n).size for n, _ in units}
    labels = [ax.get_xlabel() for ax in fig.axes if "HF" in ax.get_xlabel()]
    assert len(labels) == len(maps)


def test_rule_summary_matches_the_measures(model, digits):
    X, _ = digits
    results = projected(model, X, [("conv2", 1)], 2, ["gradient", "guided"])
    summary = tour.rule_summary(model, X, results)
    assert list(summary) == ["gradient", "guided"]
    rf = tc.receptive_field(model, "conv2")
    guided = results[0][1]
    crops = rf.patches(guided.maps, guided.locations)[..., 0]
    assert 0 <= summary["guided"][0] <= 1 and 0 <= summary["guided"][1] <= 1
    # scaling a row does not change either share
    assert summary["guided"][1] == pytest.approx(
        float(np.median(measures.hf_share(crops))))


def test_hf_share_tells_strokes_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((50, 24, 24))
    smooth = np.tile(np.linspace(0, 1, 24), (1, 24, 1))              # a gentle ramp
    assert np.median(measures.hf_share(noise)) == pytest.approx(8 / 9, abs=0.03)
    assert measures.hf_share(smooth)[0] < 0.15
    assert np.isnan(measures.hf_share(np.zeros((1, 5, 5)))[0])   # no energy, no share
    checker = np.indices((1, 6, 6)).sum(axis=0) % 2 * 2 - 1.0         # the worst case
    assert measures.hf_share(checker)[0] > 0.7
    assert measures.hf_share(np.ones((1, 5, 5)))[0] == 0       # a blur keeps a constant
    m = np.array([[[1.0, -2.0], [0.0, 3.0]]])
    assert measures.positive_share(m)[0] == pytest.approx(2 / 3)


def test_ink_share_is_the_share_of_a_maps_mass_on_the_digit():
    x = np.array([[0.0, 0.5], [1.0, 0.0]])                  # ink on the anti-diagonal
    assert measures.ink_share(np.array([[1.0, -2.0], [3.0, 4.0]]), x) == pytest.approx(0.5)
    assert measures.ink_share(x * -3.0, x) == 1.0          # input × anything: all on the ink
    assert np.isnan(measures.ink_share(np.zeros((2, 2)), x))
    maps, images = np.ones((3, 4, 5)), np.ones((3, 4, 5))
    assert measures.ink_share(maps, images).shape == (3,)
    with pytest.raises(ValueError, match="^images:"):
        measures.ink_share(maps, images[:, :, :4])


def test_saliency_patches_pair_each_map_with_its_patch(model, digits):
    X, _ = digits
    units = [("conv1", 0), ("conv2", 1)]
    results = [r for (r,) in projected(model, X, units, 4, ["gradient"])]
    fig = plots.saliency_patches(model, X, results)
    check_figure(fig)
    images = [im for ax in fig.axes for im in ax.get_images()]
    maps = [im for im in images if im.get_cmap().name == "RdBu_r"]
    patches = [im for im in images if im.get_cmap().name != "RdBu_r"]
    assert len(maps) == len(patches) == 4 * len(units)
    for n, (name, _) in enumerate(units):
        rf = tc.receptive_field(model, name)
        mine = maps[4 * n:4 * n + 4]
        assert {np.shape(im.get_array()) for im in mine} == {rf.size}
        # one symmetric scale per unit, its largest |gradient|
        scale = np.abs(rf.patches(results[n].maps, results[n].locations)).max()
        assert {im.get_clim() for im in mine} == {(-scale, scale)}
        np.testing.assert_array_equal(
            patches[4 * n].get_array(),
            rf.patches(X[results[n].examples[:1]], results[n].locations[:1])[0, ..., 0])


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
    layer = tour.relu_after(model, "conv2")
    assert layer == "relu2" and tour.relu_after(model, "relu2") == "relu2"
    results = tour.occlusion_results(model, x, 8, (6, 10), layer, 1)
    assert results["fmap"].min() >= 0                          # a post-ReLU feature map
    assert results["feature"].original >= 0                   # so its total is >= 0 too
    fig = plots.occlusion_figure(x, 8, **results)
    check_figure(fig)
    # (d) has its own bar; b, c and e share one
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 2
    assert "k = 1" in fig.axes[3].get_title()                 # the k it was given
    b, c, d, e = (fig.axes[i].get_images()[0] for i in (1, 2, 3, 4))
    assert b.get_clim() == c.get_clim() == e.get_clim() == (-1.0, 1.0)   # fixed, symmetric
    assert b.norm is c.norm is e.norm                          # one scale, not three equal ones
    assert d.get_clim()[0] == 0 and d.get_cmap()(0.0)[:3] == pytest.approx((1, 1, 1), abs=0.02)
    # (f): a categorical legend naming every class that occurs, the label not in red
    legend = fig.axes[5].get_legend()
    present = np.unique(results["argmax"].occluded.astype(int))
    assert [t.get_text().split()[0] for t in legend.get_texts()] == [str(v) for v in present]
    colours = plots.occlusion.class_colours(8)
    assert colours[8] == "#dddddd"
    reds = [mpl.colors.to_rgb(col) for col in colours]
    assert not any(r > 0.7 and g < 0.3 and bl < 0.3 for r, g, bl in reds)   # no "drop" red
    with pytest.raises(ValueError, match="sweeps"):
        plots.occlusion_figure(x, 8, **{**results, "sweeps": results["sweeps"][:1]})
    with pytest.raises(ValueError, match="fmap: expected a non-negative"):
        plots.occlusion_figure(x, 8, **{**results, "fmap": results["fmap"] - 1})


def test_occlusion_scale_does_not_depend_on_the_digit(model, digits):
    # the same small drop must look equally pale whichever figure it is drawn in
    X, y = digits
    clims = set()
    for digit in (3, 8):
        x = X[tour.example_of(model, X, y, digit)]
        fig = plots.occlusion_figure(x, digit, **tour.occlusion_results(
            model, x, digit, (6, 10), "relu2", 1))
        clims |= {fig.axes[i].get_images()[0].get_clim() for i in (1, 2, 4)}
    assert clims == {(-1.0, 1.0)}


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
    table = fig.axes[2].get_images()[0]                 # coordinates are not coloured by value
    assert np.ptp(table.get_array()) == 0
    unpooled = [t.get_text() for t in fig.axes[3].texts]
    assert unpooled == ["0", "13", "0", "15"] + ["0"] * 4 + ["0", "5", "0", "7"] + ["0"] * 4


def test_effective_receptive_fields(model, digits):
    X, _ = digits
    erfs = tour.erf_results(model, X[:20], ["conv1", "conv2"], features=4)
    # averaged over evenly spaced features, as Luo et al. average over units
    assert [list(ks) for _, _, ks, _ in erfs] == [[0, 2, 5, 7], [0, 5, 10, 15]]
    np.testing.assert_allclose(erfs[1][3], tc.effective_receptive_field(
        model, X[:20], "conv2", erfs[1][2], erfs[1][1]))
    fig = plots.effective_receptive_fields(tc.receptive_fields(model), erfs, 20)
    assert "mean over 4 features" in fig.axes[0].get_title()
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
