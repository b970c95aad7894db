"""Latency of the explorer's two live requests, against a real server on 127.0.0.1.

* an update: ``POST /api/forward`` — one forward pass and every layer's maps encoded;
* a unit click: ``POST /api/unit`` — the unit's projection (``tc.project``), its receptive-
  field box and its cached MaxAct top-9 patches.

The server runs in its own process (``python -m tinyconv explore --port 0 --no-browser``), so
the client's work never shares its interpreter. Each request is timed twice: by the server
(its ``X-Compute-Ms`` header: parse, compute, encode) and by the client (the round trip over
one keep-alive connection). Targets, server side: update <= 30 ms, click <= 60 ms.

    PYTHONPATH=. python benchmarks/bench_explore.py [--requests 200]
"""

import argparse
import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import time

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
import numpy as np

TARGETS_MS = {"forward": 30.0, "unit": 60.0}


def start_server(model):
    """Start the explorer; return ``(process, port)`` once it says where it listens."""
    process = subprocess.Popen([sys.executable, "-m", "tinyconv", "explore", "--model", model,
                                "--port", "0", "--no-browser"], stdout=subprocess.PIPE,
                               text=True, env=os.environ.copy())
    for line in process.stdout:
        if "serving" in line:
            return process, int(line.split("127.0.0.1:")[1].split("/")[0])
    raise RuntimeError("the explorer exited before serving")


def post(connection, route, body):
    """One request: ``(server ms, round-trip ms, answer)``."""
    data = json.dumps(body)
    start = time.perf_counter()
    connection.request("POST", f"/api/{route}", body=data,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    total = (time.perf_counter() - start) * 1e3
    if response.status != 200:
        raise RuntimeError(f"{route}: {response.status} {answer}")
    return float(response.getheader("X-Compute-Ms")), total, answer


def bodies(connection, n, rng):
    """``n`` update bodies (held-out digits) and ``n`` click bodies (random units of every
    spatial layer, at random locations)."""
    layers = post(connection, "info", {})[2]["layers"]
    digits = [post(connection, "digit", {"index": i})[2]["image"] for i in range(20)]
    updates = [{"image": digits[i % len(digits)]} for i in range(n)]
    clicks = []
    for i in range(n):
        layer = layers[i % len(layers)]
        H_l, W_l, C_l = layer["shape"]
        clicks.append({"image": digits[i % len(digits)], "layer": layer["name"],
                       "feature": int(rng.integers(C_l)), "row": int(rng.integers(H_l)),
                       "col": int(rng.integers(W_l)),
                       "rule": ("deconvnet", "guided", "gradient")[i % 3]})
    return updates, clicks


def summarise(name, server_ms, total_ms):
    s, t = np.asarray(server_ms), np.asarray(total_ms)
    target = TARGETS_MS[name]
    p50, p95 = np.percentile(s, 50), np.percentile(s, 95)
    verdict = "meets" if p95 <= target else ("median meets" if p50 <= target else "misses")
    print(f"{name:>8}  {p50:8.1f}  {p95:8.1f}  {np.percentile(t, 50):10.1f}  "
          f"{np.percentile(t, 95):10.1f}  {target:6.0f}  {verdict}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per route (default 200)")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--quick", action="store_true", help="20 requests per route")
    parser.add_argument("--markdown", metavar="PATH", help="also write the output to PATH")
    args = parser.parse_args()
    if args.quick:
        args.requests = 20
    with contextlib.redirect_stdout(Tee(sys.stdout)) as out:
        run(args)
    if args.markdown:
        _setup.write_text_markdown(args.markdown, __file__, __doc__, out.getvalue(), args.quick)


class Tee(io.StringIO):
    """A stdout that also keeps what was written (for ``--markdown``)."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def run(args):
    rng = np.random.default_rng(0)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min) on {os.cpu_count()} cores")
    process, port = start_server(args.model)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        updates, clicks = bodies(connection, args.requests, rng)
        for body in updates[:10] + clicks[:18]:         # warm-up: numba compiles, caches fill
            post(connection, "unit" if "layer" in body else "forward", body)
        results = {}
        for name, batch in (("forward", updates), ("unit", clicks)):
            times = [post(connection, name, body)[:2] for body in batch]
            results[name] = ([s for s, _ in times], [t for _, t in times])
        print(f"{args.requests} requests per route, milliseconds; server = X-Compute-Ms")
        print(f"{'route':>8}  {'server50':>8}  {'server95':>8}  {'roundtrip50':>10}  "
              f"{'roundtrip95':>10}  {'target':>6}")
        for name, (server_ms, total_ms) in results.items():
            summarise(name, server_ms, total_ms)
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
