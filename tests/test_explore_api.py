"""The explorer's API: every route and every class of bad input, first through the handler
functions (no socket), then through a real server on 127.0.0.1, and Ctrl-C on the command."""

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from signals import sigint_as_in_a_terminal

import tinyconv as tc
from tinyconv.explore import api
from tinyconv.explore.server import MAX_BODY, make_server


@pytest.fixture(scope="module")
def explorer():
    images, labels = tc.load_mnist("bundled-test")
    return api.Explorer(tc.pretrained("mnist"), tc.to_float(images)[:100], labels[:100])


@pytest.fixture(scope="module")
def digit(explorer):
    return explorer.X[3, :, :, 0].astype(np.float64).tolist()


def call(explorer, route, body):
    status, answer = api.handle(explorer, route, json.dumps(body).encode())
    assert status == 200, answer
    return json.loads(json.dumps(answer, allow_nan=False))      # as it goes over the wire


def decode(encoded):
    """The inverse of api.encode, to the uint8 levels' precision."""
    data = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint8)
    a = data.reshape(encoded["shape"]).astype(np.float64) / 255
    return encoded["lo"] + a * (encoded["hi"] - encoded["lo"])


# --------------------------------------------------------------------------- the routes


def test_info_lists_the_spatial_layers_with_their_fields(explorer):
    info = call(explorer, "info", {})
    names = [layer["name"] for layer in info["layers"]]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
                     "pool3"]
    conv2 = info["layers"][3]
    assert conv2["rf"]["size"] == list(tc.receptive_field(explorer.model, "conv2").size)
    assert info["classes"] == 10 and info["digits"] == 100
    assert info["rules"] == ["gradient", "deconvnet", "guided"]


def test_digit_gives_a_held_out_image_and_its_label(explorer):
    answer = call(explorer, "digit", {"index": 7})
    np.testing.assert_allclose(answer["image"], explorer.X[7, :, :, 0], atol=1e-4)
    assert answer["label"] == explorer.labels[7]


def test_forward_gives_probabilities_and_every_layers_maps(explorer, digit):
    answer = call(explorer, "forward", {"image": digit})
    x = np.asarray(digit, dtype=np.float32)[None, :, :, None]
    ys = explorer.model.activations(x)
    p = tc.softmax(ys[-1].astype(np.float64))[0]
    np.testing.assert_allclose(answer["probabilities"], p, atol=1e-6)
    assert answer["prediction"] == int(p.argmax()) == explorer.labels[3]
    assert [layer["l"] for layer in answer["layers"]] == explorer.layers
    for layer in answer["layers"]:
        maps = decode(layer)                                       # (C_l, H_l, W_l)
        y = ys[layer["l"]][0].transpose(2, 0, 1)
        step = (layer["hi"] - layer["lo"]) / 255
        np.testing.assert_allclose(maps, y, atol=step / 2 + 1e-6)


def test_forward_of_another_image_gives_other_maps(explorer, digit):
    # negative control for the test above: the maps follow the image
    a = call(explorer, "forward", {"image": digit})["layers"][0]["data"]
    b = call(explorer, "forward", {"image": np.zeros((28, 28)).tolist()})["layers"][0]["data"]
    assert a != b


def test_unit_gives_box_top9_and_projection_from_the_library(explorer, digit):
    answer = call(explorer, "unit", {"image": digit, "layer": "conv2", "feature": 7,
                                     "row": 4, "col": 9, "rule": "guided"})
    model = explorer.model
    field = tc.receptive_field(model, "conv2")
    assert answer["box"] == list(field.box(4, 9))
    ranking = tc.max_activating(model, explorer.X, "conv2", k=7, top=9, progress=False)
    assert answer["top9"]["indices"] == ranking.indices[0].tolist()
    patches = field.patches(explorer.X[ranking.indices[0]], ranking.locations[0])[..., 0]
    np.testing.assert_allclose(decode(answer["top9"]), patches, atol=1 / 510 + 1e-6)
    x = np.asarray(digit, dtype=np.float32)[None, :, :, None]
    expected = tc.project(model, x, "conv2", 7, idx=(4, 9), rule="guided")[0, :, :, 0]
    step = np.abs(expected).max() / 127
    np.testing.assert_allclose(decode(answer["projection"]), expected, atol=step / 2 + 1e-6)
    y = model.forward(x, upto=model.index("conv2"))
    assert answer["activation"] == pytest.approx(float(y[0, 4, 9, 7]))
    assert answer["calls"]["projection"] == \
        "tc.project(model, x, 'conv2', 7, idx=(4, 9), rule='guided')"


def test_unit_without_a_location_takes_the_strongest(explorer, digit):
    answer = call(explorer, "unit", {"image": digit, "layer": 6, "feature": 3})
    x = np.asarray(digit, dtype=np.float32)[None, :, :, None]
    y = explorer.model.forward(x, upto=6)[0, :, :, 3]
    assert (answer["row"], answer["col"]) == np.unravel_index(y.argmax(), y.shape)
    assert answer["rule"] == "deconvnet"


@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided"])
def test_project_with_each_rule(explorer, digit, rule):
    answer = call(explorer, "project", {"image": digit, "layer": "relu3", "feature": 2,
                                        "rule": rule})
    x = np.asarray(digit, dtype=np.float32)[None, :, :, None]
    idx = (answer["row"], answer["col"])
    expected = tc.project(explorer.model, x, "relu3", 2, idx=idx, rule=rule)[0, :, :, 0]
    assert np.abs(expected).max() > 0                      # a live unit, not a blank map
    step = np.abs(expected).max() / 127
    np.testing.assert_allclose(decode(answer["projection"]), expected, atol=step / 2 + 1e-6)
    assert f"rule={rule!r}" in answer["call"]


def test_occlusion_gives_the_drop_and_the_class_per_position(explorer, digit):
    answer = call(explorer, "occlusion", {"image": digit, "size": 8, "stride": 4})
    x = np.asarray(digit, dtype=np.float32)[:, :, None]
    c = answer["class"]
    expected = tc.occlusion(explorer.model, x, c, 8, stride=4)
    np.testing.assert_allclose(answer["drop"], expected.grid, atol=1e-4)
    assert np.asarray(answer["predicted"]).shape == expected.grid.shape
    # where hiding costs little, the class stays; the class per position is a digit
    assert set(np.ravel(answer["predicted"])) <= set(range(10))
    assert answer["predicted"][0][0] == c                          # the empty corner


def test_a_blank_projection_decodes_to_exact_zeros():
    np.testing.assert_array_equal(decode(api.encode_signed(np.zeros((28, 28)))), 0)


def test_preferred_is_the_units_activation_maximisation_and_is_cached(explorer, monkeypatch):
    calls = []

    def fake(model, layer, k):
        calls.append((layer, k))
        return tc.ActivationMaximization(image=np.full((28, 28, 1), k / 10),
                                         history=np.zeros(1), layer=1, k=k, idx=None)
    monkeypatch.setattr(tc, "activation_maximization", fake)
    for _ in range(2):
        answer = call(explorer, "preferred", {"layer": "conv1", "feature": 4})
        np.testing.assert_allclose(decode(answer["image"]), 0.4, atol=1 / 255)
    assert calls == [("conv1", 4)]                      # the second request hit the cache
    assert answer["call"] == "tc.activation_maximization(model, 'conv1', 4)"


# --------------------------------------------------------------------------- bad input

GOOD = {"layer": "conv2", "feature": 1}


def bad_bodies():
    row = [0.0] * 28
    image = [row] * 28
    return [
        ("forward", b"{not json", "not valid JSON"),
        ("forward", b"[1, 2]", "JSON object"),
        ("forward", b"\xff\xfe", "not valid JSON"),
        ("forward", b"{}", "image: missing"),
        ("forward", json.dumps({"image": [row] * 27}).encode(), "shape"),
        ("forward", json.dumps({"image": [row] * 27 + [row[:5]]}).encode(), "28 rows"),
        ("forward", json.dumps({"image": [["a"] * 28] * 28}).encode(), "28 rows"),
        ("forward", b'{"image": NaN}', "NaN"),
        ("forward", json.dumps({"image": [[float("inf")] * 28] * 28}).encode(), "Infinity"),
        ("forward", json.dumps({"image": [[2.0] * 28] * 28}).encode(), "in [0, 1]"),
        ("unit", json.dumps({"image": image, "layer": "nope", "feature": 0}).encode(), "layer"),
        ("unit", json.dumps({"image": image, "layer": "logits", "feature": 0}).encode(),
         "layer"),
        ("unit", json.dumps({"image": image, "layer": True, "feature": 0}).encode(), "layer"),
        ("unit", json.dumps({"image": image, "layer": "conv2", "feature": 32}).encode(),
         "feature"),
        ("unit", json.dumps({"image": image, "layer": "conv2", "feature": "1"}).encode(),
         "feature"),
        ("unit", json.dumps({"image": image, **GOOD, "row": 14, "col": 0}).encode(), "row"),
        ("unit", json.dumps({"image": image, **GOOD, "row": 1}).encode(), "col"),
        ("project", json.dumps({"image": image, **GOOD, "rule": "magic"}).encode(), "rule"),
        ("occlusion", json.dumps({"image": image, "size": 0}).encode(), "size"),
        ("occlusion", json.dumps({"image": image, "stride": 2.5}).encode(), "stride"),
        ("digit", b'{"index": 100}', "index"),
        ("digit", b'{"index": -1}', "index"),
        ("nowhere", b"{}", "no API route"),
    ]


@pytest.mark.parametrize("route, raw, message", bad_bodies())
def test_bad_input_is_a_4xx_with_a_json_error(explorer, route, raw, message):
    status, answer = api.handle(explorer, route, raw)
    assert 400 <= status < 500
    assert message in answer["error"]
    json.dumps(answer, allow_nan=False)


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(explorer):
    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(*server.server_address, timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type"), data


def test_a_client_that_resets_its_connection_is_not_an_error(server, capfd):
    # a browser tab closed with a reply unread: the socket is reset (SO_LINGER 0), and the
    # keep-alive handler's next read fails; the server says nothing and serves on
    client = socket.create_connection(server.server_address, timeout=60)
    client.sendall(b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n")
    client.recv(1)                                       # the reply has begun
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.2)                                      # the handler thread meets the reset
    assert request(server, "GET", "/")[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


def test_the_server_still_reports_its_own_faults(server, capfd):
    # the negative control: any other error of a handler keeps the standard traceback
    try:
        raise ValueError("a fault of the server itself")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 0))
    assert "ValueError: a fault of the server itself" in capfd.readouterr().err


def test_the_server_listens_on_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.socket.family == socket.AF_INET


def test_the_page_and_its_files_are_served(server):
    status, kind, page = request(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b"app.js" in page
    for path, kind_start in [("/app.js", "text/javascript"), ("/style.css", "text/css")]:
        status, kind, data = request(server, "GET", path)
        assert status == 200 and kind.startswith(kind_start) and data
    assert b"http://" not in page and b"https://" not in page     # no CDN: works offline


@pytest.mark.parametrize("route, body", [
    ("info", {}), ("digit", {"index": 0}),
    ("forward", {"image": np.zeros((28, 28)).tolist()}),
    ("unit", {"image": np.zeros((28, 28)).tolist(), "layer": "pool1", "feature": 2}),
    ("project", {"image": np.zeros((28, 28)).tolist(), "layer": "pool1", "feature": 2,
                 "rule": "gradient"}),
    ("occlusion", {"image": np.zeros((28, 28)).tolist(), "size": 14, "stride": 14}),
])
def test_every_route_over_http(server, route, body):
    status, kind, data = request(server, "POST", f"/api/{route}", json.dumps(body))
    assert status == 200 and kind == "application/json"
    assert json.loads(data)


@pytest.mark.parametrize("path", [
    "/../../etc/passwd", "/static/../api.py", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd",
    "/app.js/../../server.py", "/..%2fserver.py", "/server.py", "/api.py", "/static/app.js",
    "/nothing", "/index.html?x=../../etc/passwd#frag",
])
def test_unknown_paths_and_path_traversal_are_404_json(server, path):
    status, kind, data = request(server, "GET", path)
    if path.startswith("/index.html"):          # the query is not part of the path
        assert status == 200
        return
    assert status == 404 and kind == "application/json"
    assert "error" in json.loads(data)
    assert b"root:" not in data and b"import" not in data


def test_oversized_bodies_and_missing_lengths_are_refused(server):
    status, _, data = request(server, "POST", "/api/forward", b"x" * (MAX_BODY + 1))
    assert status == 413 and "limit" in json.loads(data)["error"]
    connection = http.client.HTTPConnection(*server.server_address, timeout=60)
    connection.putrequest("POST", "/api/forward")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "error" in json.loads(response.read())


def test_bad_json_and_wrong_methods_over_http(server):
    status, _, data = request(server, "POST", "/api/forward", b'{"image": [[NaN]]}')
    assert status == 400 and "finite" in json.loads(data)["error"]
    status, _, data = request(server, "PUT", "/api/forward", b"{}")
    assert status == 405 and "error" in json.loads(data)
    status, _, data = request(server, "POST", "/index.html", b"{}")
    assert status == 405
    status, _, data = request(server, "POST", "/api/unknown", b"{}")
    assert status == 404 and "routes" in json.loads(data)["error"]


def test_a_malformed_request_line_is_a_json_400(server):
    with socket.create_connection(server.server_address, timeout=60) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):       # the server closes after an error
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0]
    assert "error" in json.loads(body)


def test_an_internal_fault_is_a_500_without_a_traceback(server, monkeypatch, capsys):
    def broken(explorer, body):
        raise RuntimeError("boom")
    monkeypatch.setitem(api.ROUTES, "info", broken)
    status, _, data = request(server, "GET", "/api/info")
    assert status == 500 and json.loads(data) == {"error": "internal error (RuntimeError)"}
    assert b"Traceback" not in data and b"boom" not in data


# --------------------------------------------------------------------------- the command


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "tinyconv", "explore", "--port", "0",
                                "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=tmp_path,
                               preexec_fn=sigint_as_in_a_terminal)
    try:
        for line in process.stdout:
            if "serving" in line:
                break
        url = line.split("serving ")[1].split()[0]
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        assert host == "127.0.0.1"
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", "/api/info")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "explorer stopped" in out
    assert "Traceback" not in err
