"""For the tests that press Ctrl-C on a child process."""

import signal


def sigint_as_in_a_terminal():
    """``preexec_fn`` of a child process: SIGINT back to its default, so that Python raises
    KeyboardInterrupt. A shell without job control starts background jobs with SIGINT
    ignored, and a child keeps that; this gives it a terminal's default instead, so that the
    tests run from any shell."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
