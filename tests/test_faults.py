"""Fault tests for the writers: a process killed (SIGKILL, no cleanup possible) at a random
moment while it writes must leave the previous state intact and readable.

Writers covered: :func:`tinyconv.save` (a model file overwritten again and again), the
full-MNIST cache download and the tour (a folder of figures and their page, written over an
older tour). The kill times are drawn from a seeded generator; the tests assert only on the
files left behind, never on how long anything took. What a killed writer cannot remove (its
temporary file, its staging folder) the next write removes.
"""

import gzip
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from local_server import serving

import tinyconv as tc
from tinyconv import tour
from tinyconv.folders import MANIFEST, staged_folder

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGKILL")

KILLS = 6


def spawn(code, *args):
    """A Python child running ``code``; returns once it printed its first line ("ready")."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-u", "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def kill_after(proc, delay):
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


# --------------------------------------------------------------------------- save


SAVER = """
    import sys
    import tinyconv as tc
    from tinyconv.architectures import build
    models = [build("small", seed=s) for s in (1, 2)]
    print("ready", flush=True)
    i = 0
    while True:                      # overwrite the same file until killed
        tc.save(models[i % 2], sys.argv[1])
        i += 1
"""


def weights(model):
    return [layer.params[key] for layer, key in model.parameters()]


def test_save_killed_at_random_moments_leaves_a_whole_model(tmp_path):
    from tinyconv.architectures import build
    path = tmp_path / "model.npz"
    versions = [weights(build("small", seed=s)) for s in (1, 2)]
    tc.save(build("small", seed=1), path)                   # the state before the first kill
    rng = np.random.default_rng(12)
    for delay in rng.uniform(0.0, 0.4, KILLS):
        kill_after(spawn(SAVER, path), delay)
        found = weights(tc.load(path))                       # readable: whole, never torn
        assert any(all(np.array_equal(a, b) for a, b in zip(found, v, strict=True))
                   for v in versions)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["model.npz"]
    # the next save removes the temporary files that the killed savers left
    tc.save(build("small", seed=2), path)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_the_fault_test_sees_a_torn_file(tmp_path):
    """The negative control: a file cut short, as a plain (non-atomic) write killed midway
    leaves it, is refused by load, so the test above would notice one."""
    path = tmp_path / "model.npz"
    tc.save(tc.pretrained("mnist"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        tc.load(path)


# --------------------------------------------------------------------------- MNIST cache


def small_files():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 200, dtype=np.uint8)

    def idx(array):
        head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                       for d in array.shape)
        return gzip.compress(head + array.tobytes(), mtime=0)
    return {"t10k-images-idx3-ubyte.gz": idx(images), "t10k-labels-idx1-ubyte.gz": idx(labels)}


class _Slow(http.server.BaseHTTPRequestHandler):
    """Serves the small files in 40 pieces with a pause between them, so a kill lands
    mid-download."""

    def do_GET(self):
        body = self.server.files.get(self.path.strip("/").split("/")[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = max(1, len(body) // 40)
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_mirror():
    with serving(_Slow, files=small_files()) as httpd:
        yield httpd, httpd.root + "mnist/"


DOWNLOADER = """
    import json, sys
    from tinyconv import data
    data.SHA256.update(json.loads(sys.argv[3]))
    print("ready", flush=True)
    while True:                      # fetch, forget, fetch again, until killed
        data.load_mnist("test", download=True, cache_dir=sys.argv[1], mirrors=[sys.argv[2]])
        for name in json.loads(sys.argv[3]):
            (data.Path(sys.argv[1]) / name).unlink()
"""


def test_a_download_killed_at_random_moments_never_leaves_a_partial_file(slow_mirror,
                                                                         tmp_path):
    from tinyconv import data
    httpd, url = slow_mirror
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in httpd.files.items()}
    cache = tmp_path / "cache"
    rng = np.random.default_rng(5)
    for delay in rng.uniform(0.0, 1.0, KILLS):
        kill_after(spawn(DOWNLOADER, cache, url, json.dumps(sums)), delay)
        # every file under its own name is whole and verified; the rest is absent
        for name, body in httpd.files.items():
            path = cache / name
            assert not path.exists() or path.read_bytes() == body, name
    # and the cache works from there: what is missing is fetched, what is there is kept
    saved = dict(data.SHA256)
    try:
        data.SHA256.update(sums)
        images, labels = data.load_mnist("test", download=True, cache_dir=cache, mirrors=[url])
    finally:
        data.SHA256.clear()
        data.SHA256.update(saved)
    assert images.shape == (200, 28, 28, 1) and labels.shape == (200,)
    # and what the killed downloads left half-written is gone with the files fetched again
    assert sorted(os.listdir(cache)) == sorted(httpd.files)


# --------------------------------------------------------------------------- the tour


#: two tours that differ in every figure whose name they share, and in their captions
TOURS = [dict(digit=8, feature=3), dict(digit=3, feature=5)]
TOUR_KILLS = 4

TOURER = """
    import json, sys
    import tinyconv as tc
    from tinyconv import tour
    model = tc.pretrained("mnist")
    versions = json.loads(sys.argv[2])
    print("ready", flush=True)
    i = 1
    while True:                      # tour after tour over the same folder until killed
        tour.tour(sys.argv[1], examples=20, model=model, progress=False, **versions[i % 2])
        i += 1
"""


def folder_files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MANIFEST}


@pytest.fixture(scope="module")
def two_tours(tmp_path_factory):
    """The files of each tour of :data:`TOURS`, written whole."""
    model = tc.pretrained("mnist")
    files = []
    for kwargs in TOURS:
        out = tmp_path_factory.mktemp("tour") / "tour"
        tour.tour(out, examples=20, model=model, progress=False, **kwargs)
        files.append(folder_files(out))
    return files


def test_a_tour_killed_at_random_moments_leaves_the_previous_tour_whole(two_tours, tmp_path):
    first, second = two_tours
    # a mix would show: the same names hold different figures and captions
    assert all(first[n] != second[n] for n in ("index.html", "fig4_projections.png",
                                               "fig5_rules.png", "fig10_saliency.png"))
    out = tmp_path / "tour"
    out.mkdir()
    for name, data in first.items():           # as an older tour (no record) left it
        (out / name).write_bytes(data)
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.5, 15.0, TOUR_KILLS):
        kill_after(spawn(TOURER, out, json.dumps(TOURS)), delay)
        found = folder_files(out)                # every page with the figures it captions
        assert found in (first, second), sorted(found)
        assert {p.name for p in out.iterdir()} <= {*found, MANIFEST}
    # the next tour removes what the killed ones left beside the folder
    with staged_folder(out, **tour.OUTPUT) as stage:
        for name, data in second.items():
            (stage / name).write_bytes(data)
    assert folder_files(out) == second
    assert os.listdir(tmp_path) == ["tour"]
