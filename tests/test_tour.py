import contextlib
import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinyconv as tc
from tinyconv import gallery, tour, tour_after
from tinyconv.architectures import build
from tinyconv.folders import MANIFEST

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    """The shipped model; before it exists, the same architecture with seeded weights (the
    tour's mechanics — files, links, argument checks — do not depend on training)."""
    try:
        return tc.pretrained("mnist")
    except FileNotFoundError:
        return build("mnist", seed=0)


@pytest.fixture(scope="module")
def run(model, tmp_path_factory):
    """One tour with its progress lines forced on, and what it wrote to stderr."""
    out = tmp_path_factory.mktemp("tour") / "new" / "folder"    # created by the tour
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        paths = tour.tour(out, examples=60, progress=True, model=model)
    return out, paths, err.getvalue()


@pytest.fixture(scope="module")
def written(run):
    return run[:2]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src, self.href = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.src.append(attrs["src"])
        if tag == "a" and not attrs["href"].startswith("#"):
            self.href.append(attrs["href"])


def test_writes_sixteen_pngs_then_the_index(written):
    out, paths = written
    assert len(paths) == 17
    assert [p.suffix for p in paths] == [".png"] * 16 + [".html"]
    assert paths[9].name == "fig10_saliency.png"
    assert [p.name.split("_")[0] for p in paths[:-1]] == [f"fig{n}" for n in range(1, 17)]
    assert paths[-1] == out / "index.html"
    assert all(p.parent == out and p.is_file() for p in paths)
    # no temporary files left behind: only the figures, the page and the folder's record
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in paths] + [MANIFEST])


def test_every_png_is_a_readable_non_blank_image(written):
    _, paths = written
    for path in paths[:-1]:
        assert path.read_bytes()[:8] == PNG_MAGIC, path.name
        image = matplotlib.image.imread(path)
        height, width = image.shape[:2]
        assert width >= 300 and height >= 200, (path.name, image.shape)
        assert np.ptp(image[..., :3]) > 0.5, path.name       # ink on the page


def test_index_links_every_figure(written):
    out, paths = written
    page = Links()
    page.feed(paths[-1].read_text(encoding="utf-8"))
    pngs = {p.name for p in paths[:-1]}
    assert set(page.src) == pngs
    assert set(page.href) == pngs
    for link in page.src + page.href:
        assert not Path(link).is_absolute() and (out / link).is_file()
    text = paths[-1].read_text(encoding="utf-8")
    assert len(re.findall(r"<figcaption>\S", text)) == 16     # a caption each


def sections(page):
    return re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S)


def test_each_figure_says_how_to_read_it_and_how_to_redraw_it(written):
    _, paths = written
    page = paths[-1].read_text(encoding="utf-8")
    found = sections(page)
    assert [stem for stem, _ in found] == [p.stem for p in paths[:-1]]
    for stem, body in found:
        howto = re.search(r'<p class="howto"><b>How to read this figure.</b> (.*?)</p>', body,
                          flags=re.S)
        assert howto and len(howto.group(1)) > 150, stem
        assert "see" in howto.group(1).split(".")[-2], stem     # ends with what to see
        command = re.search(r'<p class="redraw">.*?<code>(.*?)</code>', body, flags=re.S)
        assert command, stem
        assert command.group(1).startswith(("tinyconv tour", "python demos/fig")), stem
        if command.group(1).startswith("python demos/"):
            script = command.group(1).split()[1]
            assert (Path(__file__).parent.parent / script).is_file(), script
    # the digit's figures name the option that changes it, the unit's the two that change it
    by_stem = dict(found)
    assert "--digit" in by_stem["fig6_occlusion_8"] and "--digit" in by_stem["fig2_extreme_8s"]
    for stem in ("fig4_projections", "fig5_rules", "fig10_saliency"):
        assert "--layer" in by_stem[stem] and "--feature" in by_stem[stem], stem


#: figures 11-16: what each caption must quote from the run, and the script that re-draws it
AFTER = {
    "fig11_every_map": (r"on the digit's own pixels .*gradient \d+%.*F\(x\) − F\(0\) = \d",
                        "demos/fig11_every_map.py"),
    "fig12_class_models": (r"calls \d+ of the 10 class models .* median y_c of \d",
                           "demos/fig12_class_models.py"),
    "fig13_preferred_images": (rf"features \d+(, \d+){{{tour_after.PREFERRED_UNITS - 1}}}\)"
                               r".*\d\.\d–\d\.\d× the strongest",
                               "demos/fig13_preferred_images.py"),
    "fig14_cascade": (rf"mean over {tour_after.SANITY_DIGITS} held-out digits .*guided backprop "
                      r"-?\d\.\d\d",
                      "demos/fig14_sanity.py"),
    "fig15_similarity": (r"guided backprop -?\d\.\d\d ± \d\.\d\d", "demos/fig14_sanity.py"),
    "fig16_deletion_insertion": (r"Deletion .*random order \d\.\d{3}.*Insertion .*random order",
                                 "demos/fig14_sanity.py"),
}


def test_the_figures_after_zeiler_fergus_quote_the_run_and_say_how_to_redraw(written):
    _, paths = written
    by_stem = dict(sections(paths[-1].read_text(encoding="utf-8")))
    assert list(by_stem)[10:] == list(AFTER)
    for stem, (caption, script) in AFTER.items():
        body = html.unescape(by_stem[stem])
        found = re.search(r"<figcaption>(.*?)</figcaption>", body, flags=re.S).group(1)
        assert re.search(caption, found, flags=re.S), (stem, found)
        assert re.search(r'<p class="howto"><b>How to read this figure.</b> .{300}', body,
                         flags=re.S), stem
        assert script in re.search(r"<code>(.*?)</code>", body, flags=re.S).group(1), stem
    # the sanity figures name the command of the full run, the every-map figure the digit
    assert all("tinyconv sanity" in by_stem[s] for s in list(AFTER)[3:])
    assert "--digit" in by_stem["fig11_every_map"]


def test_the_sanity_digits_start_with_the_tours_own():
    y = np.arange(20) % 10
    assert tour_after.sanity_digits(y, 5, n=4).tolist() == [5, 0, 1, 2]
    assert tour_after.sanity_digits(y, 0, n=3).tolist() == [0, 1, 2]
    assert tour_after.sanity_digits(y[:2], 1, n=8).tolist() == [1, 0]    # fewer than n


def test_the_preferred_images_reuse_the_tours_ranking(model, monkeypatch):
    X = tc.to_float(tc.load_mnist("bundled-test")[0][:30])
    y = tc.load_mnist("bundled-test")[1][:30]
    ranking = tc.max_activating(model, X, "conv3", k=None, top=9)

    def rank_again(*args, **kwargs):
        raise AssertionError("figure 13 ranked the digits again")
    monkeypatch.setattr(gallery, "max_activating", rank_again)
    entries = tour_after.after_figures(model, X, y, model.forward(X), int(np.argmax(y == 8)),
                                       "conv3", "relu3", ranking, lambda line: None)
    name, _, make, _, _ = entries[2]
    assert name == "fig13_preferred_images.png"
    fig, caption = make()
    ks = [int(k) for k in re.search(r"features ([\d, ]+)\)", caption).group(1).split(", ")]
    best = np.argsort(-ranking.values[:, 0])[:tour_after.PREFERRED_UNITS]
    assert ks == ranking.features[best].tolist()


def test_the_page_shows_figures_at_native_size_with_titled_navigation(written):
    _, paths = written
    page = paths[-1].read_text(encoding="utf-8")
    assert "max-width: 100%" not in page                          # never shrink a figure
    assert re.search(r"img \{[^}]*max-width: none", page)
    assert "overflow-x: auto" in page                              # wide ones scroll
    nav = re.search(r"<nav>(.*?)</nav>", page, flags=re.S).group(1)
    titles = re.findall(r'<a href="#[^"]+">(\d+)\. ([^<]+)</a>', nav)
    assert [int(n) for n, _ in titles] == list(range(1, 17))
    assert all(len(t) > 10 for _, t in titles)


def test_progress_prints_one_line_per_figure(run):
    _, paths, err = run
    lines = [line.split("\r")[-1] for line in err.splitlines()]
    steps = [line for line in lines if re.match(r"\[\d+/16\] ", line)]
    assert [int(re.match(r"\[(\d+)/", s).group(1)) for s in steps] == list(range(1, 17))
    assert steps[3].startswith("[4/16] Deconvnet projections")
    assert any("compiles the numba kernels" in line for line in lines)   # slow steps said
    # the sanity checks' own lines go through the tour's progress, indented
    assert any(line.startswith(f"  trained model: 11 maps of {tour_after.SANITY_DIGITS} digits")
               for line in lines)
    assert lines[-1].startswith("wrote 16 figures")


def test_the_saliency_figure_shows_the_chosen_unit():
    convs = ["conv1", "conv2", "conv3"]
    best = [4, 7, 9]                        # most distinctive map of each convolution
    # the tour's own unit replaces the one of its layer, whichever layer that is
    assert tour.saliency_units(convs, best, 22, "conv3", 5) == [("conv2", 7), ("conv3", 5)]
    assert tour.saliency_units(convs, best, 22, "conv2", 3) == [("conv2", 3), ("conv3", 22)]
    # a unit of another layer leaves both: conv2's most distinctive, conv3's occluded map
    assert tour.saliency_units(convs, best, 22, "relu2", 3) == [("conv2", 7), ("conv3", 22)]
    assert tour.saliency_units(["conv1"], [4], 2, "conv1", 0) == [("conv1", 0)]


def test_quiet_tour_prints_nothing(capsys):
    say = tour.announcer(False)
    say("hello")
    loud = tour.announcer(True)
    loud("[1/10] filters …")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "[1/10] filters …\n"


def test_the_tours_occlusion_map_is_read_after_the_relu(model):
    deepest = model.names[tour.conv_layers(model)[-1]]
    name = tour.relu_after(model, deepest)
    assert isinstance(model.layers[model.index(name) - 1], tc.ReLU)
    with pytest.raises(ValueError, match="layer: no ReLU follows"):
        tour.relu_after(model, "logits")


def test_digit_chooses_the_file_names(written):
    _, paths = written
    names = [p.name for p in paths]
    assert "fig2_extreme_8s.png" in names and "fig6_occlusion_8.png" in names


@pytest.mark.parametrize("kwargs, argument", [
    ({"layer": "conv9"}, "layer"),
    ({"layer": "logits"}, "layer"),
    ({"layer": "flatten"}, "layer"),
    ({"layer": 0}, "layer"),
    ({"feature": 32}, "feature"),
    ({"feature": -1}, "feature"),
    ({"layer": "conv1", "feature": 16}, "feature"),
    ({"digit": 11}, "digit"),
    ({"digit": -1}, "digit"),
    ({"digit": 8.0}, "digit"),
    ({"examples": 0}, "examples"),
])
def test_bad_arguments_name_themselves(model, tmp_path, kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}:"):
        tour.tour(tmp_path / "out", model=model, **kwargs)
    assert not (tmp_path / "out").exists()                  # refused before any work


def test_out_dir_that_is_a_file_is_refused(model, tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match="^out_dir:.*is a file"):
        tour.tour(path, model=model)


def test_a_digit_missing_from_the_examples_is_refused(model, tmp_path):
    labels = tc.load_mnist("bundled-test")[1]
    n = int(np.argmax(labels == 8))                         # the first 8 is digit number n
    with pytest.raises(ValueError, match="^examples:.*no 8"):
        tour.tour(tmp_path / "out", digit=8, examples=n, model=model)


def test_a_model_that_is_not_an_mnist_classifier_is_refused(tmp_path):
    other = tc.Sequential([tc.Conv2D(1, 2, 3), tc.Flatten(), tc.Dense(2 * 8 * 8, 3)],
                          input_shape=(10, 10, 1), seed=0)
    with pytest.raises(ValueError, match="^model:"):
        tour.tour(tmp_path / "out", model=other)
