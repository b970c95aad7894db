"""save / load: exact round trips, atomic writes, and every kind of bad file refused cleanly."""

import json
import os
import pathlib
import stat

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.serialize import model_spec


def make_model(seed=0):
    return tc.Sequential([
        tc.Conv2D(1, 4, (3, 2), stride=(1, 2), padding="same", dilation=(2, 1), name="conv"),
        tc.ReLU(), tc.MaxPool2D((2, 3), stride=(2, 1), padding=(1, 0)),
        tc.Conv2D(4, 2, 2, padding=(1, 0), bias=False),
        tc.ReLU(), tc.Flatten(), tc.Dense(5 * 2 * 2, 3, name="logits"),
    ], input_shape=(7, 10, 1), seed=seed)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    tc.save(make_model(), path)
    return path


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def spec_array(spec):
    return np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_predictions_and_architecture(tmp_path, rng, dtype):
    model = make_model().astype(dtype)
    x = rng.standard_normal((5, 7, 10, 1))
    path = tmp_path / "m.npz"
    tc.save(model, path)
    again = tc.load(path)
    assert model_spec(again) == model_spec(model)
    assert repr(again) == repr(model) and again.output_shapes == model.output_shapes
    assert again.dtype == dtype
    np.testing.assert_array_equal(again(x), model(x))          # bit for bit
    for (a, key), (b, _) in zip(model.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(a.params[key], b.params[key])
        assert b.params[key].dtype == dtype


def test_a_trained_model_round_trips(tmp_path, rng):
    model = make_model()
    X, y = rng.standard_normal((32, 7, 10, 1)), rng.integers(0, 3, 32)
    tc.fit(model, X, y, epochs=1, batch_size=8)
    tc.save(model, tmp_path / "t.npz")
    np.testing.assert_array_equal(tc.load(tmp_path / "t.npz")(X), model(X))


def test_save_accepts_str_paths_and_overwrites(tmp_path, rng):
    path = str(tmp_path / "m.npz")
    tc.save(make_model(0), path)
    tc.save(make_model(1), path)
    x = rng.standard_normal((1, 7, 10, 1))
    np.testing.assert_array_equal(tc.load(path)(x), make_model(1)(x))
    assert os.listdir(tmp_path) == ["m.npz"]


def test_saved_files_get_the_usual_permissions(tmp_path, saved):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert stat.S_IMODE(saved.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_save_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="model"):
        tc.save([tc.ReLU()], tmp_path / "m.npz")


# --------------------------------------------------------------------------- atomic writes


def test_a_save_that_fails_midway_keeps_the_old_file(tmp_path, saved, monkeypatch, rng):
    old = saved.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        tc.save(make_model(1), saved)
    monkeypatch.undo()
    assert saved.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.npz"]            # no temporary left behind
    x = rng.standard_normal((2, 7, 10, 1))
    np.testing.assert_array_equal(tc.load(saved)(x), make_model()(x))


def test_an_interrupted_save_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(file, **arrays):
        file.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tc.save(make_model(), tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- bad files


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        tc.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError, match="path"):
        tc.load(tmp_path)                                   # a folder is not a model file


def test_a_truncated_file(saved):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        saved.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a readable tinyconv model file"):
            tc.load(saved)


def test_files_that_are_not_npz(tmp_path):
    text = tmp_path / "model.npz"
    text.write_text("conv1: 3x3\n")
    with pytest.raises(ValueError, match="not a readable tinyconv model file"):
        tc.load(text)
    bare = tmp_path / "bare.npy"
    np.save(bare, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        tc.load(bare)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable"):
        tc.load(empty)


def test_a_zip_whose_members_are_not_arrays(tmp_path):
    import zipfile
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("spec", json.dumps(model_spec(make_model())))
    with pytest.raises(ValueError, match="not arrays"):
        tc.load(path)


def test_an_npz_without_a_spec(tmp_path, saved):
    arrays = arrays_of(saved)
    del arrays["spec"]
    np.savez(tmp_path / "nospec.npz", **arrays)
    with pytest.raises(ValueError, match="no architecture spec"):
        tc.load(tmp_path / "nospec.npz")


@pytest.mark.parametrize("change, match", [
    (lambda spec: spec.update(version=2), "newer than this tinyconv reads"),
    (lambda spec: spec.update(version="1"), "version"),
    (lambda spec: spec.update(format="keras"), "not a tinyconv-model spec"),
    (lambda spec: spec["layers"][0].update(type="Conv3D"), "unknown type 'Conv3D'"),
    (lambda spec: spec["layers"][0]["config"].update(kernel=0), "kernel"),
    (lambda spec: spec["layers"][0]["config"].update(eval="os.system"), "eval"),
    (lambda spec: spec.update(layers="conv"), "layers"),
    (lambda spec: spec.update(layers=[1, 2]), "layers"),
    (lambda spec: spec.update(input_shape=[7, 10]), "input_shape"),
    (lambda spec: spec.update(dtype="int8"), "dtype"),
    (lambda spec: spec.pop("layers"), "layers"),
])
def test_a_bad_spec(tmp_path, saved, change, match):
    arrays = arrays_of(saved)
    spec = json.loads(arrays["spec"].tobytes())
    change(spec)
    arrays["spec"] = spec_array(spec)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=f"bad architecture spec .*{match}"):
        tc.load(tmp_path / "bad.npz")


def test_a_spec_that_is_not_json(tmp_path, saved):
    arrays = arrays_of(saved)
    for spec in (np.frombuffer(b"{not json", dtype=np.uint8), np.array([0xff, 0xfe], np.uint8)):
        arrays["spec"] = spec
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(ValueError, match="bad architecture spec"):
            tc.load(tmp_path / "bad.npz")


def test_a_missing_or_extra_array(tmp_path, saved):
    arrays = arrays_of(saved)
    del arrays["1/b"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing \['1/b'\]"):
        tc.load(tmp_path / "missing.npz")
    arrays = arrays_of(saved)
    arrays["4/b"] = np.zeros(2, np.float32)                 # conv 4 has no bias
    np.savez(tmp_path / "extra.npz", **arrays)
    with pytest.raises(ValueError, match=r"unexpected \['4/b'\]"):
        tc.load(tmp_path / "extra.npz")


@pytest.mark.parametrize("name, value, match", [
    ("1/W", np.zeros((3, 2, 1, 5), np.float32), r"1/W \(conv\) should be float \(3, 2, 1, 4\)"),
    ("7/W", np.zeros((30,), np.float32), r"7/W \(logits\) should be float \(20, 3\)"),
    ("7/b", np.zeros(3, np.int64), "7/b .* found int64"),
    ("7/b", np.array([0, np.nan, 0], np.float32), "NaN or inf"),
])
def test_a_wrong_array(tmp_path, saved, name, value, match):
    arrays = arrays_of(saved)
    arrays[name] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        tc.load(tmp_path / "bad.npz")


class Payload:
    """Unpickling this calls ``Path.touch(marker)``: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_a_pickle_bearing_npz_is_refused_without_running_it(tmp_path, saved):
    marker = tmp_path / "executed"
    for name in ("1/W", "spec"):
        arrays = arrays_of(saved)
        arrays[name] = np.array([Payload(marker)], dtype=object)
        np.savez(tmp_path / "evil.npz", **arrays)
        with pytest.raises(ValueError, match="not a readable tinyconv model file"):
            tc.load(tmp_path / "evil.npz")
        assert not marker.exists()
    # the payload is real: a careless reader would have run it
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as f:
        f["spec"]
    assert marker.exists()


# --------------------------------------------------------------------------- untrusted files


def crafted(path, spec, arrays=None):
    """A small .npz holding ``spec`` and ``arrays``: what a hostile file may look like."""
    np.savez(path, spec=spec_array(spec), **(arrays or {}))
    return path


def huge_dense_spec(in_features=100_000, out_features=3_000):
    return {"format": "tinyconv-model", "version": 1, "input_shape": [1, 1, in_features],
            "dtype": "float32",
            "layers": [{"type": "Flatten", "config": {"name": None}},
                       {"type": "Dense", "config": {"in_features": in_features,
                                                    "out_features": out_features,
                                                    "name": "big"}}]}


def peak_bytes_of(call):
    """Peak bytes NumPy (and Python) allocated during ``call()`` (tracemalloc sees both)."""
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_tiny_file_claiming_a_huge_layer_allocates_nothing_big(tmp_path):
    path = crafted(tmp_path / "bomb.npz", huge_dense_spec(),
                   {"2/W": np.zeros((2, 2), np.float32), "2/b": np.zeros(2, np.float32)})
    assert path.stat().st_size < 2000

    def load():
        with pytest.raises(ValueError, match="bomb.npz") as info:
            tc.load(path)
        assert "2/W" in str(info.value)
    assert peak_bytes_of(load) < 20 * 2**20


def test_a_file_whose_arrays_match_a_huge_spec_is_refused_by_the_limit(tmp_path):
    """Headers can lie as well as the spec: an array header announcing 300 million floats in a
    few bytes of data is refused from the header, without reading or allocating the data."""
    import zipfile
    path = tmp_path / "liar.npz"
    spec = huge_dense_spec()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("spec.npy", _npy(spec_array(spec)))
        z.writestr("2/W.npy", _npy_header((100_000, 3_000), "<f4") + b"\0" * 64)
        z.writestr("2/b.npy", _npy(np.zeros(3_000, np.float32)))

    def load():
        with pytest.raises(ValueError, match="liar.npz"):
            tc.load(path)
    assert peak_bytes_of(load) < 20 * 2**20


def _npy(array):
    import io
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_header(shape, descr):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("change, match", [
    (lambda spec: spec.update(layers=[{"type": "ReLU", "config": {"name": None}}] * 5000),
     "layers"),
    (lambda spec: spec.update(input_shape=[100_000, 100_000, 3]), "input_shape"),
    (lambda spec: spec.update(dtype="float16"), "dtype"),
    (lambda spec: spec.update(padding="x" * (2 << 20)), "spec"),
])
def test_specs_beyond_the_stated_limits_are_refused(tmp_path, saved, change, match):
    arrays = arrays_of(saved)
    spec = json.loads(arrays["spec"].tobytes())
    change(spec)
    arrays["spec"] = spec_array(spec)
    np.savez(tmp_path / "big.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        tc.load(tmp_path / "big.npz")


def test_the_limits_are_stated_in_the_load_docstring():
    from tinyconv import serialize
    for value in (serialize.MAX_LAYERS, serialize.MAX_PARAMETERS, serialize.MAX_SPEC_BYTES):
        assert f"{value:,}" in tc.load.__doc__


def test_a_model_at_the_limits_still_loads(tmp_path):
    """The negative control: a legal model of a realistic size round-trips."""
    model = tc.Sequential([tc.Flatten(), tc.Dense(28 * 28, 512), tc.ReLU(), tc.Dense(512, 10)],
                          (28, 28, 1), seed=0)
    tc.save(model, tmp_path / "m.npz")
    assert tc.load(tmp_path / "m.npz").n_parameters() == model.n_parameters()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_weight_is_refused_at_save_naming_the_layer(tmp_path, value):
    model = make_model()
    model.layers[-1].params["W"][0, 0] = value
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"model: .*logits.*W"):
        tc.save(model, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_save_errors_name_the_callers_path_not_a_temporary(tmp_path):
    target = tmp_path / "no-such-folder" / "m.npz"
    with pytest.raises(OSError) as info:
        tc.save(make_model(), target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)


def test_a_250_byte_file_name_saves_and_loads(tmp_path):
    path = tmp_path / ("m" * 246 + ".npz")
    tc.save(make_model(), path)
    assert tc.load(path).n_parameters() == make_model().n_parameters()


def test_resaving_a_private_model_keeps_it_private(tmp_path):
    path = tmp_path / "m.npz"
    tc.save(make_model(), path)
    os.chmod(path, 0o600)
    tc.save(make_model(seed=1), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_malformed_layer_after_a_huge_one_allocates_nothing_big(tmp_path):
    """Layers are built in order: a bad config in layer 3 must be found before layer 2 (a
    valid but huge Dense) is built."""
    spec = huge_dense_spec()
    spec["layers"].append({"type": "Dense", "config": {"in_features": 0, "out_features": 2}})
    path = crafted(tmp_path / "late.npz", spec)

    def load():
        with pytest.raises(ValueError, match="in_features"):
            tc.load(path)
    assert peak_bytes_of(load) < 20 * 2**20


def test_declared_shapes_are_the_shapes_the_layers_build():
    """load checks a file against shapes read from the spec alone; they must be what the
    layers allocate, for every layer type and config the model above uses."""
    from tinyconv.serialize import declared_shapes, layer_from
    for entry in model_spec(make_model())["layers"]:
        built = {key: value.shape for key, value in layer_from(entry).params.items()}
        assert declared_shapes(entry) == built, entry
