"""A web server on 127.0.0.1 for the tests that download: no test ever reaches the internet."""

import contextlib
import http.server
import threading


@contextlib.contextmanager
def serving(handler, **attributes):
    """Serve ``handler`` (a ``BaseHTTPRequestHandler`` class) on a free local port in a thread.

    Yields the server, with ``attributes`` set on it (the handler reads them as
    ``self.server.<name>``), ``root`` its address (``http://127.0.0.1:<port>/``) and
    ``stop()``, which shuts it down (called again on the way out; twice is harmless), so
    that a test can take the server away midway.
    """
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True            # a handler still sending never holds up the end
    for name, value in attributes.items():
        setattr(httpd, name, value)
    httpd.root = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        if thread.is_alive():
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)

    httpd.stop = stop
    try:
        yield httpd
    finally:
        stop()
