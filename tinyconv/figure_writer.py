"""PNGs drawn by a second process while the caller computes the next figure. Speed only.

Drawing a figure to PNG (matplotlib's layout, rendering and compression) is about half of
the tour's time, and none of it needs the model. :class:`FigureWriter` hands each finished
:class:`matplotlib.figure.Figure` (pickled: a figure pickles with all its artists and draws
the same bytes after the trip) to a worker process that draws it and writes it with
:func:`tinyconv.files.atomic_write`, so that the caller's next figure is computed on the
other core meanwhile. The PNG is the one ``fig.savefig(path)`` would write, byte for byte.

The worker is a fresh interpreter (:func:`main`) talking over a pipe, not a
``multiprocessing`` child, so that a user's script is never imported a second time.
The worker reads each figure off the pipe as soon as it is sent, so the caller never waits
for the drawing; the figures queue up in the worker instead.

Failures are never lost: a figure the worker could not write makes :meth:`FigureWriter.close`
raise, naming the file and carrying the worker's traceback. When the caller's own work fails
(or is interrupted), the worker is stopped before the ``with`` block ends, so nothing writes
into the caller's folder afterwards. Where no worker can be started (or ``background=False``),
each figure is drawn at once, in the caller's process.
"""

import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from .files import atomic_write

_HEADER = struct.Struct("<Q")          # each message: its length, then the pickle


def save_png(fig, path, dpi):
    """Draw ``fig`` into ``path`` (PNG, ``dpi``) through :func:`~tinyconv.files.atomic_write`."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


class FigureWriter:
    """Write figures to PNG in a worker process; a context manager.

    ``with FigureWriter() as writer: writer.write(fig, path, dpi)``: every PNG is whole on
    disk when the ``with`` block ends normally; see the module docstring for failures.
    """

    def __init__(self, background=True):
        self._worker = None
        self._sent = []                                   # paths handed to the worker
        if background:
            try:
                self._worker = subprocess.Popen(
                    [sys.executable, "-P", "-c", _WORKER, _ROOT], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE)
            except OSError:                               # no worker here: draw inline
                self._worker = None

    def write(self, fig, path, dpi):
        """Draw ``fig`` into ``path`` as a PNG at ``dpi`` (in the worker, or at once)."""
        path = Path(path)
        try:
            message = None if self._worker is None else pickle.dumps(
                (fig, str(path), dpi), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            message = None                                # an artist that does not pickle
        if message is None:
            save_png(fig, path, dpi)
            return path
        try:
            self._worker.stdin.write(_HEADER.pack(len(message)) + message)
            self._worker.stdin.flush()
        except BrokenPipeError:
            self._fail(f"the figure process ended (code {self._worker.wait()}) before "
                       f"{path.name}")
        self._sent.append(path)
        return path

    def close(self):
        """Wait for every figure; raise ``RuntimeError`` naming the first that failed."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            worker.stdin.close()
        except BrokenPipeError:
            pass
        replies = worker.stdout.read().decode(errors="replace")
        code = worker.wait()
        failed = [r for r in replies.split("\0") if r and r != "ok"]
        if failed:
            raise RuntimeError(f"drawing a figure failed:\n{failed[0]}")
        if code or replies.count("ok") != len(self._sent):
            raise RuntimeError(f"the figure process ended with code {code} after "
                               f"{replies.count('ok')} of {len(self._sent)} figures")

    def abandon(self):
        """Stop the worker now, whatever it was drawing (the caller's work failed)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.wait()
            worker.stdin.close()
            worker.stdout.close()

    def _fail(self, message):
        self.abandon()
        raise RuntimeError(message)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is None:
            self.close()
        else:
            self.abandon()


#: The folder tinyconv was imported from (the caller may have found it through its own
#: ``sys.path``); the worker looks there first unless its own path already has it.
_ROOT = str(Path(__file__).resolve().parents[1])

#: The worker's program (``python -P -c``: the current folder is not on its path, so a file
#: of the user's that shares a module's name is never imported in its place).
_WORKER = ("import sys; root = sys.argv[1]; sys.path[:0] = [] if root in sys.path else [root]; "
           "from tinyconv.figure_writer import main; main()")


def _read(inp, messages):
    """Move each message from the pipe ``inp`` to the queue ``messages`` as soon as it comes
    (so the caller never waits on a full pipe); None at the end."""
    while header := inp.read(_HEADER.size):
        messages.put(inp.read(_HEADER.unpack(header)[0]))
    messages.put(None)


def _serve(inp, out):
    """The worker: draw each figure read from ``inp``; one reply per figure on ``out``
    (``ok``, or the failure's traceback), each ended by a NUL byte."""
    messages = queue.Queue()
    threading.Thread(target=_read, args=(inp, messages), daemon=True).start()
    while (message := messages.get()) is not None:
        try:
            fig, path, dpi = pickle.loads(message)
            save_png(fig, path, dpi)
            reply = "ok"
        except Exception:
            reply = traceback.format_exc()
        out.write(reply.encode() + b"\0")
        out.flush()


def main():
    """The worker process: figures on stdin, replies on stdout (see :func:`_serve`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the caller's to handle
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr                           # nothing else may reach the pipe
    _serve(sys.stdin.buffer, replies)
