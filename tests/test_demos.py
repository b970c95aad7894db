"""Each script in demos/ runs on its own and writes its figure.

The demos show the shipped model, so they are skipped while ``tinyconv/data/mnist_cnn.npz``
is missing (a source checkout before ``tinyconv train`` has produced it).
"""

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

import tinyconv as tc

DEMOS = sorted((Path(__file__).parent.parent / "demos").glob("fig*.py"),
               key=lambda p: int(p.name.split("_")[0][3:]))


def shipped_model_present():
    try:
        tc.pretrained("mnist")
    except FileNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(not shipped_model_present(),
                                reason="the shipped model tinyconv/data/mnist_cnn.npz is missing")


#: Figures 1-10 follow the lecture; 11-13 show the methods after Zeiler & Fergus, 14 the sanity
#: checks. The tour draws all of them, and fig14's three plots as its figures 14, 15 and 16.
TOUR_FIGURES = 16


def test_there_is_one_demo_per_figure():
    assert [p.name.split("_")[0] for p in DEMOS] == [f"fig{n}" for n in range(1, 15)]


def test_the_tour_writes_one_figure_per_demo():
    # the PNG names of the tour (digit 8) and the first demos' default names agree
    import re

    from tinyconv import tour, tour_after
    source = "".join(Path(m.__file__).read_text(encoding="utf-8") for m in (tour, tour_after))
    names = re.findall(r'\(f?"(fig\d+_[a-z_{}]+)\.png"', source)
    assert [n.split("_")[0] for n in names] == [f"fig{n}" for n in range(1, TOUR_FIGURES + 1)]
    assert [n.split("_")[0] for n in names[:len(DEMOS)]] == \
        [p.name.split("_")[0] for p in DEMOS]


@pytest.mark.parametrize("script", DEMOS, ids=[p.stem for p in DEMOS])
def test_demo_writes_its_png(script, tmp_path):
    out = tmp_path / "figure.png"
    done = subprocess.run([sys.executable, str(script), str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"saved {out}" in done.stdout
    image = matplotlib.image.imread(out)
    assert image.shape[0] >= 200 and image.shape[1] >= 300


def test_demo_default_output_is_in_the_current_directory(tmp_path):
    script = next(p for p in DEMOS if p.stem.startswith("fig8"))      # the quickest one
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True,
                   capture_output=True, timeout=180)
    assert (tmp_path / f"{script.stem}.png").is_file()
