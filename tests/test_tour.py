import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinyconv as tc
from tinyconv import tour
from tinyconv.architectures import build

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
def written(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("tour") / "new" / "folder"    # created by the tour
    return out, tour.tour(out, examples=60, progress=False, model=model)


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


def test_writes_nine_pngs_then_the_index(written):
    out, paths = written
    assert len(paths) == 10
    assert [p.suffix for p in paths] == [".png"] * 9 + [".html"]
    assert paths[-1] == out / "index.html"
    assert all(p.parent == out and p.is_file() for p in paths)
    # no temporary files left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


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
    assert len(re.findall(r"<figcaption>\S", text)) == 9      # a caption each


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
