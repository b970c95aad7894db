"""The explorer's HTTP server: the standard library's ``ThreadingHTTPServer`` on 127.0.0.1.

It serves the three files of ``static/`` (read once at start-up; nothing else on disk is
reachable, whatever the path says) and passes ``POST /api/<route>`` bodies to
:func:`tinyconv.explore.api.handle`. Every error is a JSON object ``{"error": …}`` with a 4xx
status (5xx only for a fault of the server itself, and never with a traceback).
"""

import contextlib
import json
import sys
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from .api import Explorer, handle

HOST = "127.0.0.1"          # loopback only: the explorer is never reachable from elsewhere
MAX_BODY = 1_000_000        # bytes; a 28x28 image as JSON is about 5 kB
DRAIN = 16_000_000          # an oversized body up to this size is read and dropped
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def static_files():
    """``{url path: (bytes, content type)}`` for the page's files, read from the package."""
    folder = resources.files("tinyconv.explore") / "static"
    files = {}
    for name in ("index.html", "app.js", "style.css"):
        files["/" + name] = ((folder / name).read_bytes(), TYPES["." + name.rsplit(".", 1)[1]])
    files["/"] = files["/index.html"]
    return files


class Handler(BaseHTTPRequestHandler):
    """One request: a static file, an API route, or a JSON error."""

    protocol_version = "HTTP/1.1"       # keep-alive: the page sends a request per stroke
    default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line
    # headers and body go out as two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK of the first (40 ms on Linux), longer than the work itself
    disable_nagle_algorithm = True
    server_version = "tinyconv-explore"

    def send_json(self, status, obj, start=None):
        data = json.dumps(obj, allow_nan=False).encode()
        elapsed = None if start is None else time.perf_counter() - start
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if elapsed is not None:          # the server's own time, for the benchmark
            self.send_header("X-Compute-Ms", f"{elapsed * 1e3:.3f}")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """The standard library's errors (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        try:
            self.send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})
        except OSError:
            pass

    def do_GET(self):
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            # reading is allowed for the routes that need no body (info)
            return self.api(path[len("/api/"):], b"")
        page = self.server.static.get(path)
        if page is None:
            return self.send_json(404, {"error": f"not found: {path[:200]!r}"})
        body, kind = page
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        path = urlsplit(self.path).path
        if not path.startswith("/api/"):
            return self.send_json(405, {"error": "POST is only for /api/ routes"})
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self.send_error(411, "a POST needs a Content-Length")
        if int(length) > MAX_BODY:
            # read and drop a moderately large body (so the client sees the answer, not a
            # reset connection); past DRAIN bytes just answer and close
            left = int(length) if int(length) <= DRAIN else 0
            while left > 0:
                left -= len(self.rfile.read(min(left, 65536)) or b"x" * left)
            return self.send_error(413, f"the body is {int(length):,} bytes; the limit is "
                                        f"{MAX_BODY:,}")
        self.api(path[len("/api/"):], self.rfile.read(int(length)))

    def method_not_allowed(self):
        self.send_error(405, f"{self.command} is not supported; use GET or POST")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = method_not_allowed

    def api(self, route, raw):
        start = time.perf_counter()
        try:
            status, answer = handle(self.server.explorer, route, raw)
        except Exception as err:            # a fault of ours: say so, in one line
            print(f"tinyconv explore: {route}: {type(err).__name__}: {err}", file=sys.stderr)
            status, answer = 500, {"error": f"internal error ({type(err).__name__})"}
        self.send_json(status, answer, start)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


def one_blas_thread():
    """A context in which BLAS uses one thread, when threadpoolctl is installed.

    The matrices of one 28x28 image are far too small to share out: a second BLAS thread
    only adds waiting for it, which on a loaded machine costs milliseconds per product
    (see ``benchmarks/bench_explore.py``). Without threadpoolctl, nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class Server(ThreadingHTTPServer):
    """The standard server, for whom a client that leaves is not an error: a browser that
    closes a tab, or drops a keep-alive connection with its reply unread, resets the socket,
    and the handler's next read or write fails. The standard ``handle_error`` prints that
    with a traceback; any other fault is still printed so."""

    daemon_threads = True                   # an open keep-alive connection never blocks exit

    def handle_error(self, request, client_address):
        if isinstance(sys.exception(), ConnectionError):    # reset, broken pipe, aborted
            return
        super().handle_error(request, client_address)


def make_server(explorer, port=0, verbose=False):
    """A ready :class:`Server` on ``127.0.0.1:port`` (0: a free port) serving ``explorer``;
    its address is ``server.server_address``. Call ``serve_forever()``."""
    server = Server((HOST, port), Handler)
    server.explorer, server.static, server.verbose = explorer, static_files(), verbose
    return server


def serve(model, port=8000, browser=True):
    """Compute the MaxAct cache, serve until Ctrl-C, close the socket; exit status 0."""
    print("computing the MaxAct top-9 of every layer on the held-out digits ...", flush=True)
    explorer = Explorer(model)
    server = make_server(explorer, port)
    url = f"http://{HOST}:{server.server_address[1]}/"
    print(f"tinyconv explore: serving {url} (Ctrl-C stops)", flush=True)
    if browser:
        webbrowser.open(url)
    try:
        with one_blas_thread():
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("explorer stopped", flush=True)
    return 0
