"""Tests for tinyconv.data: the bundled subset, the IDX parser and the verified download.

Downloads are served by a local HTTP server on 127.0.0.1 from small generated IDX files;
the checksum table is pointed at their hashes, so no test touches the internet.
"""

import gzip
import hashlib
import http.server
import io
import os
import socket
import sys
import threading
from importlib import resources

import numpy as np
import pytest
from local_server import serving

from tinyconv import data as tcdata
from tinyconv.data import (
    ChecksumError,
    DownloadError,
    default_cache_dir,
    load_mnist,
    read_idx,
    to_float,
)

# ---------------------------------------------------------------- bundled subset


def test_bundled_shapes_dtypes_and_classes():
    images, labels = load_mnist()
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    # real digits: dark background, a bright stroke of a few dozen pixels, all different
    flat = images.reshape(5000, -1)
    assert (flat.max(axis=1) > 200).all()
    assert ((flat > 0).sum(axis=1) > 20).all()
    assert (flat[:, 0] == 0).mean() > 0.99
    assert len({row.tobytes() for row in flat}) == 5000


def test_bundled_rows_are_not_sorted_by_class():
    # the source is sorted by label; a shuffled file lets images[:n] show every digit
    _, labels = load_mnist()
    assert len(set(labels[:50].tolist())) == 10


@pytest.mark.parametrize("split, per_class", [("bundled-train", 400), ("bundled-test", 100)])
def test_bundled_split_sizes_are_stratified(split, per_class):
    images, labels = load_mnist(split)
    assert images.shape == (10 * per_class, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_bundled_splits_are_disjoint_and_cover_the_subset():
    def keyed(split):
        images, labels = load_mnist(split)
        return {(int(y), x.tobytes()) for x, y in zip(images, labels, strict=True)}

    train, test, everything = keyed("bundled-train"), keyed("bundled-test"), keyed("bundled")
    assert len(train) == 4000 and len(test) == 1000
    assert not train & test
    assert train | test == everything


def test_bundled_file_is_plain_arrays_with_provenance():
    ref = resources.files("tinyconv").joinpath("data", "mnist_5k.npz")
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"images", "labels", "test_mask", "provenance"}
        assert npz["images"].shape == (5000, 28, 28) and npz["images"].dtype == np.uint8
        assert npz["test_mask"].dtype == bool and npz["test_mask"].sum() == 1000
        provenance = " ".join(npz["provenance"].tolist())
    assert "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d" in provenance
    assert "seed=" in provenance


def test_to_float_scales_to_unit_interval_and_keeps_shape():
    images = np.array([[0, 51], [255, 102]], dtype=np.uint8)[None, ..., None]
    x = to_float(images)
    assert x.dtype == np.float32 and x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x.ravel(), [0.0, 0.2, 1.0, 0.4], rtol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        to_float(x)  # already float: scaling again would be a silent error


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"split": "validation"}, ValueError, ["split", "bundled-train", "'validation'"]),
        ({"split": 3}, TypeError, ["split"]),
        ({"download": "yes"}, TypeError, ["download"]),
        ({"cache_dir": 3}, TypeError, ["cache_dir"]),
        ({"mirrors": "http://127.0.0.1/"}, TypeError, ["mirrors"]),
        ({"mirrors": [1]}, TypeError, ["mirrors"]),
        ({"mirrors": 5}, TypeError, ["mirrors"]),
        ({"mirrors": []}, ValueError, ["mirrors"]),
    ],
)
def test_load_mnist_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as info:
        load_mnist(**kwargs)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------- IDX parser


def idx_bytes(array):
    """Encode a uint8 array as IDX: 0, 0, 0x08, ndim, big-endian uint32 sizes, payload."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("shape", [(50, 28, 28), (7,), (3, 4, 5, 2)])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(shape, compress, tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    raw = idx_bytes(array)
    blob = gzip.compress(raw, mtime=0) if compress else raw
    path = tmp_path / "a.idx"
    path.write_bytes(blob)
    for source in (blob, path, str(path)):
        out = read_idx(source)
        assert out.dtype == np.uint8 and out.shape == shape
        np.testing.assert_array_equal(out, array)
    out[...] = 0  # the result is an ordinary writable array


def test_read_idx_knows_the_mnist_magic_numbers():
    images = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    labels = idx_bytes(np.zeros(2, np.uint8))
    assert int.from_bytes(images[:4], "big") == 2051
    assert int.from_bytes(labels[:4], "big") == 2049


@pytest.mark.parametrize("head", [b"\x00\x00\x0d\x01", b"\x12\x34\x08\x01", b"\x00\x00\x08\x00"])
def test_read_idx_rejects_wrong_magic(head):
    blob = head + (3).to_bytes(4, "big") + b"abc"
    with pytest.raises(ValueError, match="magic") as info:
        read_idx(blob, name="thing.idx")
    assert "thing.idx" in str(info.value)


@pytest.mark.parametrize("cut", [1, 100])
def test_read_idx_rejects_truncated_payload(cut, tmp_path):
    blob = idx_bytes(np.ones((5, 28, 28), np.uint8))[:-cut]
    path = tmp_path / "short.idx"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=r"announces shape \(5, 28, 28\)") as info:
        read_idx(path)
    assert "short.idx" in str(info.value)


def test_read_idx_rejects_trailing_bytes_and_short_header():
    with pytest.raises(ValueError, match="announces"):
        read_idx(idx_bytes(np.ones(4, np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(b"\x00\x00\x08\x03\x00\x00")


def test_read_idx_rejects_corrupt_gzip():
    blob = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), mtime=0)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    for bad in (bytes(flipped), blob[: len(blob) // 2]):
        with pytest.raises(ValueError, match="corrupt gzip"):
            read_idx(bad, name="labels.gz")


def test_read_idx_rejects_other_types():
    with pytest.raises(TypeError, match="path_or_bytes"):
        read_idx(42)


# ---------------------------------------------------------------- download and cache

N_SMALL = 50


def small_mnist():
    """Four tiny gzip IDX files under the real MNIST names -> {name: gz bytes}, arrays."""
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_SMALL, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, N_SMALL, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 20, dtype=np.uint8),
    }
    files = {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}
    return files, arrays


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` under /mnist/; paths in ``server.truncated`` lose half
    their body while still announcing the full Content-Length."""

    def do_GET(self):
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path.removeprefix("/mnist/"))
        if not self.path.startswith("/mnist/") or body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.server.truncated:
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """A local mirror of the small files, shut down after the test."""
    with serving(_Handler, files=small_mnist()[0], truncated=set(), requests=[]) as httpd:
        httpd.url = httpd.root + "mnist/"
        yield httpd


@pytest.fixture
def dead_url():
    """A base URL on a local port that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """Checksums of the small files; no mirrors or cache from the environment; no proxy."""
    files, _ = small_mnist()
    monkeypatch.setattr(
        tcdata, "SHA256", {name: hashlib.sha256(b).hexdigest() for name, b in files.items()}
    )
    for var in ("TINYCONV_MNIST_MIRRORS", "TINYCONV_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def cache_listing(folder):
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_download_verifies_caches_and_then_works_offline(server, tmp_path):
    _, arrays = small_mnist()
    cache = tmp_path / "cache"
    images, labels = load_mnist("train", download=True, cache_dir=cache, mirrors=[server.url])
    assert images.shape == (N_SMALL, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (N_SMALL,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte.gz"])
    assert cache_listing(cache) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]

    server.stop()  # from now on only the cache can answer
    again, _ = load_mnist("train", cache_dir=str(cache), mirrors=[server.url])
    np.testing.assert_array_equal(again, images)
    again, _ = load_mnist("train", download=True, cache_dir=cache, mirrors=[server.url])
    np.testing.assert_array_equal(again, images)


def test_test_split_reads_the_t10k_files(server, tmp_path):
    _, arrays = small_mnist()
    images, labels = load_mnist("test", download=True, cache_dir=tmp_path, mirrors=[server.url])
    np.testing.assert_array_equal(images[..., 0], arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, arrays["t10k-labels-idx1-ubyte.gz"])
    assert {p.rsplit("/", 1)[-1] for p in server.requests} == {
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }


@pytest.mark.parametrize("failing", ["404", "refused"])
def test_first_mirror_failing_falls_back_to_the_second(failing, server, dead_url, tmp_path):
    first = server.url.replace("/mnist/", "/nothing-here/") if failing == "404" else dead_url
    images, _ = load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[first, server.url])
    assert images.shape == (N_SMALL, 28, 28, 1)


def test_all_mirrors_failing_lists_each_failure(server, dead_url, tmp_path):
    missing = server.url.replace("/mnist/", "/nothing-here/")
    with pytest.raises(DownloadError) as info:
        load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[missing, dead_url])
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert missing in message and "404" in message
    assert dead_url in message
    assert cache_listing(tmp_path) == []


def test_wrong_checksum_is_an_error_and_leaves_nothing(server, monkeypatch, tmp_path):
    monkeypatch.setitem(tcdata.SHA256, "train-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(OSError) as info:
        load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "expected " + "0" * 64 in message
    assert cache_listing(tmp_path) == []


def test_truncated_body_is_an_error_and_leaves_nothing(server, tmp_path):
    server.truncated.add("/mnist/train-images-idx3-ubyte.gz")
    with pytest.raises(OSError, match="incomplete download") as info:
        load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert cache_listing(tmp_path) == []


def test_corrupt_cache_is_detected_and_repaired_only_on_request(server, tmp_path):
    good, _ = load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])
    cached = tmp_path / "train-images-idx3-ubyte.gz"
    blob = bytearray(cached.read_bytes())
    blob[-20] ^= 0xFF  # one flipped byte: still looks like a gzip file
    cached.write_bytes(bytes(blob))

    with pytest.raises(ChecksumError) as info:
        load_mnist("train", cache_dir=tmp_path, mirrors=[server.url])
    message = str(info.value)
    assert "corrupt" in message and str(cached) in message and "download=True" in message

    again, _ = load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])
    np.testing.assert_array_equal(again, good)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tcdata.SHA256[cached.name]


def test_missing_file_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test", cache_dir=tmp_path)
    message = str(info.value)
    assert "download=True" in message and "tinyconv train --data full" in message
    assert str(tmp_path) in message


def test_unwritable_cache_dir_is_a_clear_error(server, tmp_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions")
        for folder in (readonly, readonly / "sub"):
            with pytest.raises(PermissionError) as info:
                load_mnist("train", download=True, cache_dir=folder, mirrors=[server.url])
            assert str(folder) in str(info.value)
        assert server.requests == []  # refused before any network traffic
    finally:
        readonly.chmod(0o700)


def test_mirrors_come_from_the_environment_unless_given(server, dead_url, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYCONV_MNIST_MIRRORS", f" {dead_url} , {server.url} ")
    images, _ = load_mnist("train", download=True, cache_dir=tmp_path / "a")
    assert images.shape == (N_SMALL, 28, 28, 1)

    monkeypatch.setenv("TINYCONV_MNIST_MIRRORS", server.url)
    with pytest.raises(DownloadError) as info:  # the argument wins over the environment
        load_mnist("train", download=True, cache_dir=tmp_path / "b", mirrors=[dead_url])
    assert dead_url in str(info.value) and server.url not in str(info.value)


def test_default_mirrors_when_the_environment_is_silent(monkeypatch):
    assert tcdata._mirror_list(None) == tcdata.DEFAULT_MIRRORS
    monkeypatch.setenv("TINYCONV_MNIST_MIRRORS", " , ")
    assert tcdata._mirror_list(None) == tcdata.DEFAULT_MIRRORS


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "tinyconv" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tinyconv" / "mnist"
    monkeypatch.setenv("TINYCONV_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_default_cache_dir_is_used(server, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYCONV_CACHE", str(tmp_path / "env-cache"))
    load_mnist("test", download=True, mirrors=[server.url])
    assert cache_listing(tmp_path / "env-cache") == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_images_and_labels_that_disagree_are_rejected(server, monkeypatch, tmp_path):
    short = gzip.compress(idx_bytes(np.zeros(N_SMALL - 1, np.uint8)), mtime=0)
    server.files["train-labels-idx1-ubyte.gz"] = short
    monkeypatch.setitem(
        tcdata.SHA256, "train-labels-idx1-ubyte.gz", hashlib.sha256(short).hexdigest()
    )
    with pytest.raises(ValueError, match=r"\(N, 28, 28\) and labels \(N,\)"):
        load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])


def test_progress_is_shown_only_on_a_terminal(server, monkeypatch, tmp_path, capsys):
    load_mnist("test", download=True, cache_dir=tmp_path / "quiet", mirrors=[server.url])
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    load_mnist("test", download=True, cache_dir=tmp_path / "loud", mirrors=[server.url])
    shown = terminal.getvalue()
    assert "t10k-images-idx3-ubyte.gz" in shown and "100%" in shown and shown.endswith("\n")


def test_cache_dir_that_cannot_be_created_is_a_clear_error(server, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    folder = blocker / "mnist"
    with pytest.raises(OSError, match="cannot create the cache directory") as info:
        load_mnist("train", download=True, cache_dir=folder, mirrors=[server.url])
    assert str(folder) in str(info.value)
    assert server.requests == []


def test_unwritable_cache_dir_message_even_with_privileges(server, monkeypatch, tmp_path):
    # root ignores directory permissions, so the test above may skip; this one pretends
    monkeypatch.setattr(tcdata.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable") as info:
        load_mnist("train", download=True, cache_dir=tmp_path, mirrors=[server.url])
    assert str(tmp_path) in str(info.value)
    assert server.requests == []


# ---------------------------------------------------------------- a mirror that misbehaves


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A mirror that misbehaves on purpose, by the first part of the path:

    ``/endless/``: no Content-Length, then bytes until the client hangs up (at most 64 MB);
    ``/huge/``: announces a Content-Length far above the file's known size;
    ``/trickle/``: one byte every 20 ms (at most 30 s); ``/loop/``: redirects to itself.
    """

    def do_GET(self):
        mode = self.path.strip("/").split("/")[0]
        try:
            if mode == "loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.end_headers()
                return
            self.send_response(200)
            if mode == "huge":
                self.send_header("Content-Length", str(1 << 40))
            self.end_headers()
            if mode == "endless":
                for _ in range(1024):
                    self.wfile.write(b"\0" * (1 << 16))
            elif mode == "trickle":
                for _ in range(1500):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    self.server.stop_event.wait(0.02)
                    if self.server.stop_event.is_set():
                        return
            elif mode == "huge":
                self.wfile.write(b"\0" * 1000)
        except (BrokenPipeError, ConnectionResetError):
            pass                               # the client gave up, as it should

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    with serving(_Hostile, stop_event=threading.Event()) as httpd:
        httpd.url = httpd.root
        try:
            yield httpd
        finally:
            httpd.stop_event.set()     # let a handler that is still trickling bytes end


def test_every_mnist_file_has_a_known_size_cap():
    assert set(tcdata.SIZES) == set(tcdata.SHA256)
    assert tcdata.SIZES["train-images-idx3-ubyte.gz"] == 9912422


def test_a_mirror_without_a_length_cannot_fill_the_disk(hostile, tmp_path):
    with pytest.raises(DownloadError, match=r"more than [\d,]+ bytes") as info:
        load_mnist("test", download=True, cache_dir=tmp_path, mirrors=[hostile.url + "endless/"])
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert cache_listing(tmp_path) == []


def test_a_mirror_announcing_too_many_bytes_is_refused_before_reading(hostile, tmp_path):
    with pytest.raises(DownloadError, match="announces") as info:
        load_mnist("test", download=True, cache_dir=tmp_path, mirrors=[hostile.url + "huge/"])
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert cache_listing(tmp_path) == []


def test_a_trickling_mirror_meets_the_deadline(hostile, tmp_path, monkeypatch):
    monkeypatch.setattr(tcdata, "DEADLINE", 0.3)
    with pytest.raises(DownloadError, match="deadline"):
        load_mnist("test", download=True, cache_dir=tmp_path, mirrors=[hostile.url + "trickle/"])
    assert cache_listing(tmp_path) == []


def test_a_redirect_loop_is_a_download_error(hostile, tmp_path):
    with pytest.raises(DownloadError, match="redirect"):
        load_mnist("test", download=True, cache_dir=tmp_path, mirrors=[hostile.url + "loop/"])


def test_a_hostile_mirror_falls_back_to_a_good_one(hostile, server, tmp_path):
    """The negative control: the same misbehaving mirrors, then a good one, and it works."""
    mirrors = [hostile.url + "endless/", hostile.url + "huge/", server.url]
    images, labels = load_mnist("test", download=True, cache_dir=tmp_path, mirrors=mirrors)
    assert len(images) == len(labels) > 0


def test_a_cache_that_cannot_be_written_is_named_not_its_temporary(server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as info:
        load_mnist("test", download=True, cache_dir=blocker / "cache", mirrors=[server.url])
    message = str(info.value)
    assert str(blocker / "cache") in message and ".tmp" not in message
