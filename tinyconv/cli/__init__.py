"""The ``tinyconv`` command: train, evaluate and inspect MNIST models from a shell.

::

    tinyconv train --out model.npz    # the shipped model's recipe: 4,000 bundled digits, no network
    tinyconv evaluate model.npz       # accuracy on the 1,000 held-out digits + confusion matrix
    tinyconv rf mnist                 # receptive field of every layer of the shipped model
    tinyconv info mnist               # its layers, output shapes and parameter counts

The options of ``train`` are the fields of a :class:`~tinyconv.training.Recipe`; their
defaults, ``MNIST_RECIPE``, made the shipped ``tinyconv/data/mnist_cnn.npz``. ``train`` only
reads digits, calls :func:`~tinyconv.training.train_recipe` and saves, so
``train_recipe(MNIST_RECIPE, X, y)`` gives the same weights bit for bit from Python.

Every subcommand is a pair of small functions (one adds its arguments, one runs it), kept
with its group in a module of this package (:mod:`.train`, :mod:`.info`, :mod:`.tour`,
:mod:`.explain`) as a :class:`~._types.Command`, and listed with one line in
:data:`COMMANDS`; :func:`main` builds the parser from that table. The shared argument types
and checks live in :mod:`._types`. Argument parsing happens in this package only.

Errors are one line on stderr, ``tinyconv: error: …``, never a traceback. Exit codes:
0 success, 1 a failure while working (a file that is not a model, a failed download,
a diverging run), 2 a bad command line (checked before any work starts), 130 Ctrl-C, 141 the
reader of the output went away (``tinyconv evaluate mnist | head -1``; nothing is printed,
as for any Unix filter).

``MODEL`` (and ``--model``) ``mnist`` always means the shipped model, even when a file or
folder named ``mnist`` is in the current directory; ``./mnist`` or any name with a path
separator or ending in ``.npz`` is a file (see :func:`tinyconv.pretrained.load_model`).
``TINYCONV_DEBUG=1`` re-raises the exception instead, traceback and all.
"""

import _thread
import os
import signal
import sys
import threading
import time

from .. import __version__
from . import explain, info, sanity, tour, train
from ._types import Command, Parser, UsageError

DEBUG_ENV = "TINYCONV_DEBUG"
EXPECTED_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)

#: The subcommands, in the order ``--help`` lists them: one line each.
COMMANDS: dict[str, Command] = {
    "train": train.TRAIN,
    "evaluate": train.EVALUATE,
    "rf": info.RF,
    "info": info.INFO,
    "tour": tour.TOUR,
    "explain": explain.EXPLAIN,
    "explore": explain.EXPLORE,
    "sanity": sanity.SANITY,
}

__all__ = ["COMMANDS", "Command", "UsageError", "build_parser", "main"]


def build_parser():
    parser = Parser(prog="tinyconv", description="A readable CNN engine for interpreting "
                    "convolutional networks: train, evaluate and inspect MNIST models.",
                    epilog=f"Set {DEBUG_ENV}=1 to see the traceback of an error.")
    parser.add_argument("--version", action="version", version=f"tinyconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def one_line(message):
    """Fold a multi-line message (e.g. one failure per download mirror) onto one line."""
    first, *rest = [line.strip() for line in str(message).splitlines() if line.strip()] or [""]
    return " ".join([first, "; ".join(rest)]) if rest else first


def report(message):
    print(f"tinyconv: error: {one_line(message)}", file=sys.stderr)


#: exit status when the reader of stdout has gone: 128 + SIGPIPE, what a shell reports
CLOSED_PIPE = 141


def closed_pipe():
    """The reader of stdout went away (``| head -1``). Stop quietly, as a Unix filter does,
    and point stdout at /dev/null so that flushing it at exit cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):   # a stdout without a file descriptor (a StringIO)
        pass
    return CLOSED_PIPE


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    kept = _KeptCtrlC()
    try:
        with kept:
            status = run(argv)
    except KeyboardInterrupt:       # while the parser is built or reads argv, or at the end
        print("interrupted", file=sys.stderr)
        return 130
    if kept.dropped and status != 130:   # the command ended before the Ctrl-C sent again arrived
        print("interrupted", file=sys.stderr)
        return 130
    return status


class _KeptCtrlC:
    """While a command runs, a Ctrl-C that Python would drop stops it all the same.

    Python runs finalisers (``__del__``, weakref callbacks, matplotlib has many) wherever the
    garbage collector happens to start, and an exception raised in one is printed ("Exception
    ignored in …") and dropped. A Ctrl-C that lands there would be lost: the command would
    carry on and finish as if never interrupted. So, as ``sys.unraisablehook`` (installed by
    the main thread only, in front of the hook it replaces), this sends a dropped
    ``KeyboardInterrupt`` again as SIGINT to the main thread, from a thread that starts with
    the command and looks every 5 ms, once the hook has returned (raised inside the hook, it
    would be dropped again); a real signal also wakes a main thread that waits. Every other
    dropped exception goes to the replaced hook. ``dropped`` tells :func:`main` that a Ctrl-C
    came, in case the command ended before it arrived again.
    """

    def __init__(self):
        self._closed = False
        self._in_hook = self._dropped = 0   # written by the main thread only
        self._sent = 0                      # written by the sender thread only
        self._hook = self._sender = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            sender = threading.Thread(target=self._send_while_dropped, daemon=True)
            try:
                sender.start()              # here, not in the hook (see _unraisable)
                self._sender = sender
            except RuntimeError:            # no thread to be had: main() still says 130
                pass
            self._hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def _unraisable(self, event):
        if not isinstance(event.exc_value, KeyboardInterrupt):
            self._hook(event)
            return
        # No lock, no new object, no call: a collection (which can start at any allocation)
        # running a finaliser that lands here again, or a Ctrl-C sent again arriving now,
        # finds nothing held and nothing half done.
        self._in_hook += 1
        self._dropped += 1
        self._in_hook -= 1

    @property
    def dropped(self):
        """Whether a Ctrl-C was dropped while the command ran."""
        return self._dropped > 0

    def _send_while_dropped(self):
        # Each time Ctrl-Cs were dropped since the last one sent, send one: the one sent may
        # land in another finaliser (the garbage collector can start anywhere) and be
        # dropped in its turn, and is then sent once more.
        while not self._closed:
            time.sleep(0.005)
            if self._sent < self._dropped and not self._in_hook and not self._closed:
                self._sent = self._dropped
                _send_ctrl_c()
                time.sleep(0.01)    # time for the main thread to raise it, or drop it again

    def __exit__(self, *exc):
        try:
            self._closed = True
            if self._sender is not None:    # a Ctrl-C it sends now is raised in main's try
                self._sender.join()
        finally:
            if self._hook is not None:
                sys.unraisablehook = self._hook
        return False


def _send_ctrl_c():
    """SIGINT to the main thread whenever a Python function handles it (Python's own, which
    raises ``KeyboardInterrupt``, or a handler of the program that runs the command): a real
    signal runs that handler and wakes a main thread that waits, as the Ctrl-C did. Where the
    handler is not Python's (the default action would end the process) or there are no thread
    signals, Python's simulated signal, which waits for the main thread to run Python code."""
    if hasattr(signal, "pthread_kill") and callable(signal.getsignal(signal.SIGINT)):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:
        _thread.interrupt_main()


def run(argv):
    """:func:`main` without the outermost Ctrl-C guard."""
    debug = bool(os.environ.get(DEBUG_ENV))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        report(err)
        return 2
    except SystemExit as exit_:  # --help and --version print, then "exit"
        return exit_.code if isinstance(exit_.code, int) else 0
    if args.command is None:
        report(f"choose a command: {', '.join(COMMANDS)} (see 'tinyconv --help')")
        return 2
    command = COMMANDS[args.command]
    try:
        status = command.run(args)
        sys.stdout.flush()          # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:         # before OSError: a reader that left is no error
        return closed_pipe()
    except UsageError as err:
        report(err)
        return 2
    except KeyboardInterrupt:
        print(command.interrupted, file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as err:
        if debug:
            raise
        report(err)
        return 1
    except Exception as err:
        if debug:
            raise
        report(f"{type(err).__name__}: {err} "
               f"(unexpected; run with {DEBUG_ENV}=1 for the traceback)")
        return 1
