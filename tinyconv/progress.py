"""The one progress bar, for long loops (training, occlusion sweeps, MaxAct, downloads).

It draws on stderr only when stderr is a terminal (or when forced), so logs and tests stay
clean. ``with Progress(total, "epoch 1") as bar: bar.update(n, loss=0.3)``.
"""

import sys
import time


class Progress:
    """``[#####.....] 50% 128/256 2.1s loss=0.31`` redrawn in place on stderr.

    Parameters
    ----------
    total : number of steps (items, bytes) expected; None if unknown (then only the count
        and the time are shown, e.g. a download without a Content-Length).
    label : text before the bar.
    enabled : True / False to force, None to draw only when stderr is a TTY.
    stream : where to draw (stderr by default).
    """

    def __init__(self, total, label="", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.total = None if total is None else max(int(total), 1)
        self.label, self.done = label, 0
        self.start = time.perf_counter()
        self.info = ""
        self._last_draw = 0.0

    def update(self, n=1, **info):
        """Advance by ``n`` and show ``key=value`` pairs (floats with 4 significant digits)."""
        self.done += n
        if info:
            self.info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in info.items())
        now = time.perf_counter()
        # redraw at most 10 times a second: a bar must not slow the loop it reports on
        finished = self.total is not None and self.done >= self.total
        if self.enabled and (now - self._last_draw > 0.1 or finished):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now):
        if self.total is None:
            done = f"{self.done}"
        else:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
            done = f"[{bar}] {frac:4.0%} {self.done}/{self.total}"
        self.stream.write(f"\r{self.label} {done} {now - self.start:.1f}s {self.info}\x1b[K")
        self.stream.flush()

    def close(self):
        """Finish the line (only if something was drawn)."""
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
