"""tinyconv.explain and ``tinyconv explain``: a user's own picture made MNIST-like, then every
method writing its PNG and the JSON report. All pictures are made here with Pillow."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

import tinyconv as tc
from tinyconv import explain as ex
from tinyconv.cli import main
from tinyconv.folders import MANIFEST


@pytest.fixture(scope="module")
def model():
    return tc.pretrained("mnist")


@pytest.fixture(scope="module")
def data():
    images, labels = tc.load_mnist("bundled-test")
    return tc.to_float(images)[:200], labels[:200]


def seven(size=(300, 200), ink="black", paper="white", offset=(0, 0), mode="RGB"):
    """A hand-drawn-looking 7: a bar and a slanted stroke, placed at ``offset``."""
    im = Image.new(mode, size, paper)
    d = ImageDraw.Draw(im)
    dx, dy = offset
    d.line([(30 + dx, 30 + dy), (110 + dx, 30 + dy)], fill=ink, width=12)
    d.line([(110 + dx, 30 + dy), (60 + dx, 150 + dy)], fill=ink, width=12)
    return im


def centre_of_mass(x):
    rows, cols = np.indices(x.shape)
    return (rows * x).sum() / x.sum(), (cols * x).sum() / x.sum()


def test_dark_on_light_is_inverted_and_said(tmp_path):
    seven().save(tmp_path / "dark.png")
    x, notes = ex.load_input(tmp_path / "dark.png")
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.float32
    assert any("inverted" in n for n in notes)
    assert x[0, 0, 0, 0] == 0 and x.max() == pytest.approx(1, abs=0.05)   # white ink on black


def test_light_on_dark_is_kept_and_gives_the_same_digit(tmp_path):
    seven().save(tmp_path / "dark.png")
    seven(ink="white", paper="black").save(tmp_path / "light.png")
    x_dark, _ = ex.load_input(tmp_path / "dark.png")
    x_light, notes = ex.load_input(tmp_path / "light.png")
    assert not any("inverted" in n for n in notes)
    np.testing.assert_allclose(x_light, x_dark, atol=0.02)


def test_an_off_centre_digit_is_centred_by_its_centre_of_mass_in_a_20px_box(tmp_path):
    seven(size=(600, 500), offset=(400, 300)).save(tmp_path / "corner.png")
    x, notes = ex.load_input(tmp_path / "corner.png")
    cy, cx = centre_of_mass(x[0, :, :, 0])
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    rows, cols = np.nonzero(x[0, :, :, 0] > 0.05)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21                        # fits the 20x20 box
    # negative control: the raw picture's ink is far from its centre
    raw = 1 - np.asarray(Image.open(tmp_path / "corner.png").convert("L")) / 255
    assert abs(centre_of_mass(raw)[1] - 300) > 100


def test_rgb_grey_and_16_bit_pictures_give_the_same_input(tmp_path):
    seven().save(tmp_path / "rgb.png")
    seven().convert("L").save(tmp_path / "grey.png")
    a16 = (np.asarray(seven().convert("L"), dtype=np.uint16) * 257)      # 0..65535
    Image.fromarray(a16).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")       # truly 16-bit
    x_rgb, _ = ex.load_input(tmp_path / "rgb.png")
    x_grey, _ = ex.load_input(tmp_path / "grey.png")
    x_16, notes = ex.load_input(tmp_path / "deep.png")
    assert any("16-bit" in n for n in notes)
    np.testing.assert_allclose(x_grey, x_rgb, atol=0.02)
    np.testing.assert_allclose(x_16, x_rgb, atol=0.02)


def test_a_corrupt_file_is_refused_with_its_name(tmp_path):
    (tmp_path / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="noise.png"):
        ex.load_input(tmp_path / "noise.png")
    seven().save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])        # truncated
    with pytest.raises(ValueError, match="cut.png"):
        ex.load_input(tmp_path / "cut.png")


def test_a_directory_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        ex.load_input(tmp_path)
    with pytest.raises(FileNotFoundError, match="no file"):
        ex.load_input(tmp_path / "absent.png")


def png_header_only(path, width, height):
    """A PNG whose IHDR claims ``width x height`` (8-bit grey) but holds a few bytes of
    pixels: cheap to write, and a reader that decodes before checking would choke."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_a_10000_by_10000_picture_is_refused_before_decoding(tmp_path):
    png_header_only(tmp_path / "huge.png", 10_000, 10_000)
    with pytest.raises(ValueError, match=r"10000x10000.*100 megapixels.*limit is 50"):
        ex.load_input(tmp_path / "huge.png")
    # a real 1-bit picture of the same size is refused the same way
    Image.new("1", (10_000, 10_000)).save(tmp_path / "huge1.png")
    with pytest.raises(ValueError, match="megapixels"):
        ex.load_input(tmp_path / "huge1.png")


def test_a_blank_picture_has_no_digit(tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="no digit"):
        ex.load_input(tmp_path / "blank.png")


def test_the_shipped_model_reads_a_drawn_seven(tmp_path, model):
    seven().save(tmp_path / "seven.png")
    x, _ = ex.load_input(tmp_path / "seven.png")
    assert int(model(x).argmax()) == 7


def test_every_method_writes_its_png_and_the_json(tmp_path, model, data):
    seven().save(tmp_path / "seven.png")
    x, notes = ex.load_input(tmp_path / "seven.png")
    result = ex.explain(model, x, data=data)
    assert set(result["results"]) == set(ex.available_methods())
    written = ex.write_report(result, x, notes, "seven.png", tmp_path / "out", "seven")
    for method in ex.available_methods():
        png = tmp_path / "out" / f"seven_{method}.png"
        assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "out" / "seven.json").read_text())
    assert report["prediction"] == 7 and len(report["probabilities"]) == 10
    assert report["preprocessing"] == notes
    for entry in report["methods"].values():
        assert entry["call"].startswith("tc.")
        assert entry["min"] <= entry["mean"] <= entry["max"]
    assert report["methods"]["maxact"]["shape"][0] == 9
    assert report["methods"]["saliency"]["shape"] == [28, 28]
    assert not list((tmp_path / "out").glob(".*.tmp"))                    # atomic: no leftovers


def test_unit_methods_follow_layer_and_feature(model, data):
    x = data[0][:1]
    result = ex.explain(model, x, ["deconvnet", "maxact"], layer="conv2", feature=5, data=data)
    assert result["unit"] == ["conv2", 5]
    assert "'conv2', 5" in result["results"]["deconvnet"]["call"]
    expected = tc.project(model, x, "conv2", 5, rule="deconvnet")[0, :, :, 0]
    np.testing.assert_allclose(result["results"]["deconvnet"]["array"], expected)
    # the strongest feature when --feature is not given
    auto = ex.explain(model, x, ["guided"], layer="conv3", data=data)
    y = model.forward(x, upto=model.index("conv3"))
    assert auto["unit"][1] == int(y.reshape(-1, y.shape[-1]).sum(axis=0).argmax())


def test_bad_method_layer_feature_and_target_name_the_argument(model, data):
    x = data[0][:1]
    with pytest.raises(ValueError, match="method"):
        ex.explain(model, x, ["nope"])
    with pytest.raises(ValueError, match="feature"):
        ex.explain(model, x, ["guided"], layer="conv1", feature=16)
    with pytest.raises(ValueError, match="target"):
        ex.explain(model, x, ["saliency"], target=10)
    with pytest.raises(ValueError, match="layer"):
        ex.explain(model, x, ["guided"], layer=0)


def test_the_command_on_a_picture_and_an_index(tmp_path, capsys):
    seven().save(tmp_path / "seven.png")
    code = main(["explain", str(tmp_path / "seven.png"), "--index", "3", "--method", "saliency",
                 "--method", "guided", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "predicted 7" in out and "inverted" in out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [MANIFEST, "digit3.json", "digit3_guided.png", "digit3_saliency.png",
                     "seven.json", "seven_guided.png", "seven_saliency.png"]


@pytest.mark.parametrize("argv, message", [
    (["explain"], "at least one IMAGE"),
    (["explain", "--index", "0", "--method", "nope"], "--method"),
    (["explain", "--index", "5000"], "--index"),
    (["explain", "--index", "0", "--feature", "3"], "--feature K needs --layer"),
])
def test_the_command_refuses_a_bad_command_line(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_command_reports_a_corrupt_file_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    assert main(["explain", str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.png" in err and "Traceback" not in err
