"""The ``tinyconv`` command's entry point, a module beside the package on purpose.

``import tinyconv`` loads NumPy, numba and the engine before any code of the package runs,
so a handler inside the package cannot cover a Ctrl-C in that moment: Python would print a
traceback. This module imports nothing at first; it catches the interrupt around the import
of :mod:`tinyconv.cli`, package included, and then hands over to :func:`tinyconv.cli.main`,
which handles Ctrl-C from there on. Exit status 130 and one line, ``interrupted``, either way.
"""

import sys


def main():
    """Import the command layer and run it -> exit status (130 after a Ctrl-C)."""
    try:
        from tinyconv.cli import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
