"""The tour's PNGs drawn in a second process: the same bytes, no failure lost, nothing written
after the caller has given up."""

import importlib
import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from signals import sigint_as_in_a_terminal

from tinyconv.plots import writer as figure_writer
from tinyconv.plots.writer import FigureWriter


def small_figure(seed=0):
    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(np.random.default_rng(seed).random((8, 8)), cmap="magma")
    ax.set_title(f"seed {seed}")
    return fig


def png_bytes(fig, dpi=80):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


@pytest.mark.parametrize("background", [True, False])
def test_the_png_is_the_one_savefig_writes(tmp_path, background):
    with FigureWriter(background=background) as writer:
        assert (writer._worker is not None) == background      # a worker, not a fallback
        for seed in range(3):
            writer.write(small_figure(seed), tmp_path / f"f{seed}.png", 80)
    assert len(writer.drawn_here) == (0 if background else 3)
    for seed in range(3):
        assert (tmp_path / f"f{seed}.png").read_bytes() == png_bytes(small_figure(seed))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.png", "f1.png", "f2.png"]


def test_the_worker_draws_under_the_callers_rcparams(tmp_path):
    rc = {"savefig.transparent": True, "text.hinting": "none", "savefig.bbox": "tight"}
    with matplotlib.rc_context(rc):
        with FigureWriter() as writer:
            writer.write(small_figure(), tmp_path / "f.png", 80)
        want = png_bytes(small_figure())
    assert writer.drawn_here == []
    assert (tmp_path / "f.png").read_bytes() == want != png_bytes(small_figure())


def test_the_worker_imports_what_the_caller_imports(tmp_path, monkeypatch):
    """The caller's module path, in its order: a user's ``matplotlib.py`` in the current
    folder and a ``queue.py`` at the end of the caller's path are never imported."""
    for name in ("matplotlib", "queue"):
        (tmp_path / f"{name}.py").write_text(f"raise SystemExit('the wrong {name}')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    with FigureWriter() as writer:
        writer.write(small_figure(), tmp_path / "f.png", 80)
    assert writer.drawn_here == []
    assert (tmp_path / "f.png").read_bytes() == png_bytes(small_figure())


def test_what_the_worker_prints_as_it_starts_breaks_nothing(tmp_path, monkeypatch, capfd):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('sitecustomize: hello')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    with FigureWriter() as writer:
        writer.write(small_figure(), tmp_path / "f.png", 80)
    assert writer.drawn_here == []
    assert "sitecustomize: hello" in capfd.readouterr().err         # passed on, not lost
    assert (tmp_path / "f.png").read_bytes() == png_bytes(small_figure())


def test_a_figure_that_does_not_pickle_is_drawn_at_once(tmp_path):
    fig = small_figure()
    fig.axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"<{v:g}>"))
    with FigureWriter() as writer:
        writer.write(fig, tmp_path / "f.png", 80)
        assert writer.drawn_here == [tmp_path / "f.png"]          # already there
    assert (tmp_path / "f.png").read_bytes() == png_bytes(fig)


def test_a_figure_the_worker_cannot_rebuild_is_drawn_here(tmp_path, monkeypatch):
    # a formatter from a module the caller imported and that is gone since: the figure
    # pickles (by reference), and the worker cannot import the module to rebuild it
    (tmp_path / "angles.py").write_text(textwrap.dedent("""
        from matplotlib.ticker import Formatter

        class Angle(Formatter):
            def __call__(self, x, pos=None):
                return f"{x:g} deg"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    angles = importlib.import_module("angles")
    monkeypatch.delitem(sys.modules, "angles")
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
    (tmp_path / "angles.py").unlink()
    fig = small_figure()
    fig.axes[0].xaxis.set_major_formatter(angles.Angle())
    with FigureWriter() as writer:
        writer.write(fig, tmp_path / "f.png", 80)
        writer.write(small_figure(1), tmp_path / "g.png", 80)
    assert writer.drawn_here == [tmp_path / "f.png"]
    assert (tmp_path / "f.png").read_bytes() == png_bytes(fig)
    assert (tmp_path / "g.png").read_bytes() == png_bytes(small_figure(1))


def test_a_figure_nobody_can_write_fails_close_with_the_callers_own_error(tmp_path):
    writer = FigureWriter()
    writer.write(small_figure(), tmp_path / "fine.png", 80)
    writer.write(small_figure(), tmp_path / "missing" / "lost.png", 80)
    with pytest.raises(FileNotFoundError, match="lost.png"):
        writer.close()
    assert (tmp_path / "fine.png").exists()


def test_a_worker_that_dies_leaves_its_figures_to_the_caller(tmp_path):
    writer = FigureWriter()
    writer.write(small_figure(0), tmp_path / "a.png", 80)
    writer._worker.kill()
    writer._worker.wait()
    with pytest.warns(RuntimeWarning, match="figure process stopped"):
        writer.write(small_figure(1), tmp_path / "b.png", 80)
        writer.write(small_figure(2), tmp_path / "c.png", 80)
        writer.close()
    assert tmp_path / "b.png" in writer.drawn_here
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        assert (tmp_path / f"{name}.png").read_bytes() == png_bytes(small_figure(seed))


def test_when_the_callers_work_fails_the_worker_stops_before_the_block_ends(tmp_path):
    with pytest.raises(ValueError, match="the caller's own error"):
        with FigureWriter() as writer:
            worker = writer._worker
            for seed in range(6):
                writer.write(small_figure(seed), tmp_path / f"f{seed}.png", 80)
            raise ValueError("the caller's own error")
    assert worker.poll() is not None                   # gone, not drawing on
    before = sorted(tmp_path.iterdir())
    time.sleep(0.3)
    assert sorted(tmp_path.iterdir()) == before


class Interrupted:
    """A pipe whose read is interrupted, as by Ctrl-C while ``close`` waits for the worker."""

    def __init__(self, pipe):
        self.pipe = pipe

    def read(self):
        raise KeyboardInterrupt

    def close(self):
        self.pipe.close()


def test_ctrl_c_while_close_waits_stops_the_worker(tmp_path):
    writer = FigureWriter()
    worker = writer._worker
    for seed in range(6):
        writer.write(small_figure(seed), tmp_path / f"f{seed}.png", 80)
    worker.stdout = Interrupted(worker.stdout)
    with pytest.raises(KeyboardInterrupt):
        with writer:
            pass                                       # the with block ends: close() waits
    assert worker.poll() is not None
    before = sorted(tmp_path.iterdir())
    time.sleep(0.3)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a process group")
def test_ctrl_c_during_the_tour_leaves_nothing_and_no_process(tmp_path):
    out = tmp_path / "tour"
    command = [sys.executable, "-m", "tinyconv", "tour", "--out", str(out), "--examples", "300"]
    # its own session, so that SIGINT goes to the tour and its worker as from a terminal
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, preexec_fn=sigint_as_in_a_terminal) as proc:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".*/fig*.png")):   # a figure is in the staging folder
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []              # no tour, no staging folder
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):             # the worker went with it
        os.killpg(proc.pid, 0)


def test_a_reader_that_fails_still_ends_the_workers_queue():
    """A worker that cannot read a figure (out of memory, say) stops, rather than waiting
    for a figure that never comes: the caller then draws what is left."""
    class Failing:
        def read(self, n):
            raise MemoryError

    messages = queue.Queue(maxsize=figure_writer.QUEUED)
    with pytest.raises(MemoryError):
        figure_writer._read(Failing(), messages)
    assert messages.get_nowait() is None
