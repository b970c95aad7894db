"""``python -m tinyconv …`` runs the ``tinyconv`` command (see :mod:`tinyconv.cli`).

A Ctrl-C while the command layer is still being imported prints one line, as one during the
command does (:func:`tinyconv.cli.main` handles those).
"""

import sys


def run():
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return main()


sys.exit(run())
