"""The tour's PNGs drawn in a second process: the same bytes, no failure lost, nothing written
after the caller has given up."""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from signals import sigint_as_in_a_terminal

from tinyconv.figure_writer import FigureWriter


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
    for seed in range(3):
        assert (tmp_path / f"f{seed}.png").read_bytes() == png_bytes(small_figure(seed))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.png", "f1.png", "f2.png"]


def test_a_users_file_named_like_a_module_is_not_imported_by_the_worker(tmp_path, monkeypatch):
    (tmp_path / "matplotlib.py").write_text("raise SystemExit('the wrong matplotlib')\n")
    monkeypatch.chdir(tmp_path)
    with FigureWriter() as writer:
        writer.write(small_figure(), tmp_path / "f.png", 80)
    assert (tmp_path / "f.png").read_bytes() == png_bytes(small_figure())


def test_a_figure_that_does_not_pickle_is_drawn_at_once(tmp_path):
    fig = small_figure()
    fig.axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"<{v:g}>"))
    with FigureWriter() as writer:
        writer.write(fig, tmp_path / "f.png", 80)
        assert (tmp_path / "f.png").exists()          # already there: it was drawn here
    assert (tmp_path / "f.png").read_bytes() == png_bytes(fig)


def test_a_figure_the_worker_cannot_write_fails_close_naming_it(tmp_path):
    writer = FigureWriter()
    writer.write(small_figure(), tmp_path / "fine.png", 80)
    writer.write(small_figure(), tmp_path / "missing" / "lost.png", 80)
    with pytest.raises(RuntimeError, match="drawing a figure failed") as info:
        writer.close()
    assert "lost.png" in str(info.value) and "Traceback" in str(info.value)
    assert (tmp_path / "fine.png").exists()


def test_a_worker_that_dies_fails_close(tmp_path):
    writer = FigureWriter()
    writer.write(small_figure(), tmp_path / "a.png", 80)
    writer._worker.kill()
    writer._worker.wait()
    with pytest.raises(RuntimeError, match="figure process ended"):
        writer.write(small_figure(), tmp_path / "b.png", 80)
        writer.close()


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
