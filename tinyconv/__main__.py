"""``python -m tinyconv …`` runs the ``tinyconv`` command (see :mod:`tinyconv.cli`).

Python has imported the package by the time this runs; a Ctrl-C while the command layer is
still being imported prints one line, as one during the command does (the ``tinyconv``
command itself starts in :mod:`tinyconv_launcher`, which covers the package's import too).
"""

import sys

from tinyconv_launcher import main

sys.exit(main())
