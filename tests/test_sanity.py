"""The sanity-check runner on a tiny model and a few digits; the `tinyconv sanity` command."""

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import cli, sanity
from tinyconv.architectures import build
from tinyconv.folders import MANIFEST


@pytest.fixture(scope="module")
def small_run():
    images, labels = tc.load_mnist("bundled-test")
    x, y = tc.to_float(images[:4]), labels[:4]
    X_train, y_train = tc.load_mnist("bundled-train")
    lines = []
    result = sanity.sanity_checks(build("small", seed=0), x, y, tc.to_float(X_train), y_train,
                                  seed=1, train=dict(n_train=16, epochs=2),
                                  log=lines.append)
    return result, lines


def test_every_number_is_json_and_every_present_method_is_measured(small_run):
    result, lines = small_run
    text = json.dumps(result, allow_nan=False)          # plain floats, lists and dicts only
    assert json.loads(text) == result
    found, skipped = sanity.available()
    assert result["config"]["methods"] == list(found)
    assert set(result["config"]["skipped"]) == set(skipped)
    assert set(found) | set(skipped) == set(sanity.MAPS)
    assert result["cascade"]["layers"] == ["logits", "conv2", "conv1"]
    assert set(result["cascade"]["methods"]) == set(found)
    assert any("permuted labels" in line for line in lines)
    dr = result["data_randomization"]
    assert dr["n_train"] == 16 and 1 <= dr["epochs"] <= 2
    assert {"trained", "untrained"} == set(result["recovery"])
    assert set(result["faithfulness"]["deletion"]) == set(found) | {"random"}


def test_the_controls_ignore_the_model_and_the_methods_do_not(small_run):
    result, _ = small_run
    for schedule in ("cascade", "independent"):
        for control in sanity.CONTROLS:
            for metric in ("spearman", "ssim", "hog"):
                means = result[schedule]["methods"][control][metric]["digit"]["mean"]
                assert np.allclose(means, 1.0), (schedule, control, metric)
    # negative control: the gradient of a fully randomised network is another map
    last = result["cascade"]["methods"]["gradient"]["spearman"]["whole"]["mean"][-1]
    assert last < 0.9


def test_each_step_says_how_many_digits_its_mean_is_over(small_run):
    result, _ = small_run
    for schedule in ("cascade", "independent"):
        steps = len(result[schedule]["layers"])
        for metrics in result[schedule]["methods"].values():
            for metric in metrics.values():
                for stats in metric.values():
                    assert len(stats["n"]) == steps and all(0 <= n <= 4 for n in stats["n"])
        # the controls never change: every digit's similarity is defined
        assert result[schedule]["methods"]["input"]["spearman"]["digit"]["n"] == [4] * steps
    # a constant map has no ranks: those digits are left out of the mean, and counted out
    both = [{"m": {"spearman": {r: sanity.summary(v) for r in sanity.REGIONS}}}
            for v in ([0.5, 0.7], [np.nan, 0.2])]
    assert sanity._by_step(both)["m"]["spearman"]["digit"]["n"] == [2, 1]


def test_grid_holds_one_map_per_method_and_column(small_run):
    result, _ = small_run
    grid = result["grid"]
    assert grid["columns"] == ["trained", "logits", "conv2", "conv1"]
    for maps in grid["maps"].values():
        assert np.asarray(maps).shape == (4, 28, 28)


def test_figures_draw_from_the_numbers(small_run):
    from tinyconv.plots import sanity as figures
    result = json.loads(json.dumps(small_run[0]))
    for fig in (figures.cascade_grid(result), figures.similarity_vs_depth(result),
                figures.similarity_vs_depth(result, "independent", "hog"),
                figures.deletion_insertion(result)):
        assert fig.axes
    with pytest.raises(ValueError, match="schedule"):
        figures.similarity_vs_depth(result, "sideways")


def test_summary_ignores_undefined_values():
    assert sanity.summary([1.0, np.nan, 3.0]) == {"mean": 2.0, "se": 1.0, "n": 2}
    assert sanity.summary([np.nan]) == {"mean": None, "se": None, "n": 0}


def test_bad_input_names_the_argument():
    model = build("small", seed=0)
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="labels"):
        sanity.sanity_checks(model, x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="methods"):
        sanity.sanity_checks(model, x, np.array([1, 2]), methods=["astrology"])
    with pytest.raises(ValueError, match="y_train"):
        sanity.sanity_checks(model, x, np.array([1, 2]), X_train=x, methods=["input"])
    with pytest.raises(ValueError, match="grid_example"):
        sanity.sanity_checks(model, x, np.array([1, 2]), grid_example=5)


def test_the_command_writes_its_figures_and_json(tmp_path, monkeypatch, capsys):
    quick = functools.partial(sanity.train_on_permuted_labels, n_train=8, epochs=1)
    monkeypatch.setattr(sanity, "train_on_permuted_labels", quick)
    monkeypatch.setattr(sanity, "OCCLUSION", dict(size=14, stride=14))
    out = tmp_path / "run"
    assert cli.main(["sanity", "--out", str(out), "--examples", "2", "--seed", "3"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"cascade_grid.png", "similarity_cascade.png",
                     "similarity_independent.png", "deletion_insertion.png", "sanity.json",
                     MANIFEST}
    result = json.loads((out / "sanity.json").read_text())
    assert result["config"]["examples"] == 2 and result["config"]["seed"] == 3
    assert "sanity.json" in capsys.readouterr().out


def test_the_command_refuses_an_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["sanity", "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err
    assert cli.main(["sanity", "--examples", "0"]) == 2


LATER = ("input_x_gradient", "smoothgrad", "integrated_gradients", "grad_cam",
         "guided_grad_cam")


def test_each_method_is_one_entry_used_when_present_and_skipped_with_a_note(monkeypatch):
    """Stand-ins with the documented signatures: the registry calls each as documented and
    gets one (N, H, W) map per method; without them, each is skipped, named in the note."""
    from types import SimpleNamespace
    calls = {}

    def fake(name, wrap=None):
        def f(model, x, target, **kw):
            calls[name] = (np.asarray(target).tolist(), kw)
            out = x * 2.0
            return wrap(out) if wrap else out
        return f
    stand_ins = {
        "input_x_gradient": fake("input_x_gradient"),
        "smoothgrad": fake("smoothgrad"),
        "integrated_gradients": fake("integrated_gradients",
                                     lambda a: SimpleNamespace(attributions=a)),
        "grad_cam": fake("grad_cam", lambda a: SimpleNamespace(upsampled=a[..., 0])),
        "guided_grad_cam": fake("guided_grad_cam"),
    }
    for name in LATER:
        monkeypatch.delattr(tc, name, raising=False)
    found, skipped = sanity.available()
    assert set(skipped) == set(LATER) and "tinyconv.grad_cam" in skipped["grad_cam"]
    for name, f in stand_ins.items():
        monkeypatch.setattr(tc, name, f, raising=False)
    found, skipped = sanity.available()
    assert not skipped and list(found) == list(sanity.MAPS)
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    maps = sanity.compute_maps(build("small", seed=0), x, np.array([1, 2, 1]),
                               {n: found[n] for n in LATER}, seed=4)
    for name in LATER:
        np.testing.assert_allclose(maps[name], 2.0 * x[..., 0], err_msg=name)
        assert calls[name][0] == [1, 2, 1]
    assert calls["smoothgrad"][1] == {"n": sanity.SMOOTHGRAD_N, "seed": 4}
    assert calls["integrated_gradients"][1] == {"steps": sanity.IG_STEPS}


def test_the_doc_tables_print_from_the_saved_json(small_run, tmp_path, capsys):
    path = Path(__file__).resolve().parent.parent / "scripts" / "sanity_tables.py"
    spec = importlib.util.spec_from_file_location("sanity_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    (tmp_path / "sanity.json").write_text(json.dumps(small_run[0]), encoding="utf-8")
    assert tables.main([str(tmp_path / "sanity.json")]) == 0
    out = capsys.readouterr().out
    for heading in ("Model randomisation", "Data randomisation", "Image recovery",
                    "Deletion and insertion"):
        assert heading in out
    assert "| guided backprop |" in out and "| random order |" in out
    assert tables.number(-0.004) == "0.00" and tables.number(-0.12, 0.05) == "−0.12 ± 0.05"
    assert tables.number(0.5, 0.01) == "0.50" and tables.number(None) == "—"


def test_metrics_chooses_the_measures_and_leaves_the_rest_alone(small_run):
    images, labels = tc.load_mnist("bundled-test")
    x, y = tc.to_float(images[:4]), labels[:4]
    quick = sanity.sanity_checks(build("small", seed=0), x, y, seed=1, log=lambda line: None,
                                 metrics=["spearman_abs"])
    full, _ = small_run                                   # the same model, digits and seed
    assert quick["config"]["metrics"] == ["spearman_abs"]
    for schedule in ("cascade", "independent"):
        for name, measured in quick[schedule]["methods"].items():
            assert list(measured) == ["spearman_abs"]
            assert measured == {"spearman_abs": full[schedule]["methods"][name]["spearman_abs"]}
    assert quick["grid"] == full["grid"] and quick["faithfulness"] == full["faithfulness"]
    for bad in (["astrology"], []):
        with pytest.raises(ValueError, match="^metrics:"):
            sanity.sanity_checks(build("small", seed=0), x, y, metrics=bad)
