"""PNGs drawn by a second process while the caller computes the next figure. Speed only.

Drawing a figure to PNG (matplotlib's layout, rendering and compression) is about half of
the tour's time, and none of it needs the model. :class:`FigureWriter` hands each finished
:class:`matplotlib.figure.Figure` (pickled: a figure pickles with all its artists and draws
the same bytes after the trip), with the caller's ``matplotlib.rcParams``, to a worker
process that draws it and writes it with :func:`tinyconv.files.atomic_write`, so that the
caller's next figure is computed on the other core meanwhile. The PNG is the one
``fig.savefig(path)`` would write in the caller, byte for byte.

The worker is only a shortcut: whatever it does not finish is drawn in the caller, at
:meth:`FigureWriter.close` — a figure it could not rebuild or write (the error, if any, is
then the caller's own), and every figure after it stopped (a one-line warning says so). A
figure that does not pickle is drawn in the caller at once. The writer keeps each figure
until ``close`` for that reason.

The worker is a fresh interpreter (:func:`main`) that takes the caller's module path
(``sys.path``) as its own, so it imports what the caller imports; it talks over a pipe, not as
a ``multiprocessing`` child, so a user's script is never imported a second time. It holds at
most :data:`QUEUED` figures besides the one it draws; further down, the caller waits. When the
caller's own work fails or is interrupted (also while ``close`` waits), the worker is killed
before the ``with`` block ends, so nothing writes into the caller's folder afterwards, and a
worker whose caller has died draws nothing more.
"""

import json
import os
import pickle
import queue
import re
import struct
import subprocess
import sys
import threading
import traceback
import warnings
from pathlib import Path

import matplotlib

from ..files import atomic_write

#: Figures the worker holds besides the one it draws.
QUEUED = 2

_HEADER = struct.Struct("<Q")                   # each figure: its length, then the pickle
_REPLY = re.compile(rb"\x01([^\x00\x01]*)\x00")  # each reply: \x01 text \x00, "ok" or a traceback

#: The worker's program; argv[1] is the caller's ``sys.path`` (``-P``: nothing else comes
#: first while it starts).
_WORKER = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
           "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
           "from tinyconv.plots.writer import main; main()")


def save_png(fig, path, dpi):
    """Draw ``fig`` into ``path`` (PNG, ``dpi``) through :func:`~tinyconv.files.atomic_write`."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


class FigureWriter:
    """Write figures to PNG in a worker process; a context manager.

    ``with FigureWriter() as writer: writer.write(fig, path, dpi)``: every PNG is whole on
    disk when the ``with`` block ends normally; see the module docstring for the rest.
    ``background=False`` draws each figure at once, in the caller.

    Attributes
    ----------
    drawn_here : list of the paths the caller drew itself (none while the worker does all).
    """

    def __init__(self, background=True):
        self._worker = None
        self._sent = []                          # (fig, path, dpi) handed to the worker
        self.drawn_here = []
        if background:
            path = [p for p in sys.path if isinstance(p, str)]
            try:
                self._worker = subprocess.Popen(
                    [sys.executable, "-P", "-c", _WORKER, json.dumps(path)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    env={**os.environ, "MPLBACKEND": "agg"})
            except (OSError, ValueError):        # no worker here: draw in the caller
                self._worker = None

    def write(self, fig, path, dpi):
        """Draw ``fig`` into ``path`` as a PNG at ``dpi`` (in the worker, or at once)."""
        path = Path(path)
        message = None if self._worker is None else _message(fig, path, dpi)
        if message is None:                      # no worker, or an artist that does not pickle
            save_png(fig, path, dpi)
            self.drawn_here.append(path)
            return path
        self._sent.append((fig, path, dpi))
        try:
            self._worker.stdin.write(_HEADER.pack(len(message)) + message)
            self._worker.stdin.flush()
        except BrokenPipeError:                  # the worker has stopped: finish here
            self._finish()
        return path

    def close(self):
        """Wait for the worker, then draw here whatever it did not finish."""
        if self._worker is not None:
            self._finish()

    def _finish(self):
        worker = self._worker
        try:
            try:
                worker.stdin.close()
            except BrokenPipeError:
                pass
            out = worker.stdout.read()
            code = worker.wait()
        except BaseException:                    # Ctrl-C while waiting: stop it now
            self.abandon()
            raise
        worker.stdout.close()
        self._worker = None
        replies = [r.decode(errors="replace") for r in _REPLY.findall(out)]
        noise = _REPLY.sub(b"", out).strip()
        if noise:                                # what its start-up printed: pass it on
            sys.stderr.write(noise.decode(errors="replace") + "\n")
        sent, self._sent = self._sent, []
        if len(replies) < len(sent):
            warnings.warn(f"the figure process stopped (exit code {code}) after "
                          f"{len(replies)} of {len(sent)} figures; the rest are drawn here",
                          RuntimeWarning, stacklevel=3)
        for n, (fig, path, dpi) in enumerate(sent):
            if n >= len(replies) or replies[n] != "ok":
                save_png(fig, path, dpi)         # any error now is the caller's own
                self.drawn_here.append(path)

    def abandon(self):
        """Kill the worker now, whatever it was drawing (the caller's work failed)."""
        worker, self._worker, self._sent = self._worker, None, []
        if worker is not None:
            worker.kill()
            worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is None:
            self.close()
        else:
            self.abandon()


def _message(fig, path, dpi):
    """The pickle the worker reads: the figure, where and how to write it, and the caller's
    rcParams (its backend aside); None if the figure does not pickle."""
    rc = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    try:
        return pickle.dumps((fig, str(path), dpi, rc), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _read(inp, messages):
    """Move each figure from the pipe ``inp`` to the queue ``messages`` (at most
    :data:`QUEUED` waiting there); None at the end, also when reading fails."""
    try:
        while header := inp.read(_HEADER.size):
            messages.put(inp.read(_HEADER.unpack(header)[0]))
    finally:
        messages.put(None)


def _draw(message):
    """Rebuild and write one figure under the caller's rcParams: ``"ok"``, or the traceback."""
    try:
        fig, path, dpi, rc = pickle.loads(message)
        with matplotlib.rc_context(rc):
            save_png(fig, path, dpi)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)                    # a pyplot figure would stay registered
        return "ok"
    except Exception:
        return traceback.format_exc()


def _serve(inp, out, caller):
    """The worker: draw each figure read from ``inp``, one reply each on ``out``, while the
    process ``caller`` lives."""
    messages = queue.Queue(maxsize=QUEUED)
    threading.Thread(target=_read, args=(inp, messages), daemon=True).start()
    while (message := messages.get()) is not None:
        if os.getppid() != caller:               # the caller is gone: draw nothing more
            return
        reply = _draw(message).encode(errors="replace").translate(None, b"\x00\x01")
        try:
            out.write(b"\x01" + reply + b"\x00")
            out.flush()
        except OSError:                          # the caller is gone
            return


def main():
    """The worker process: figures on stdin, replies on stdout (see :func:`_serve`)."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr                      # nothing else of ours reaches the pipe
    _serve(sys.stdin.buffer, replies, os.getppid())
