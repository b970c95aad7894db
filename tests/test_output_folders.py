"""Output folders (tinyconv.folders): the tour, ``tinyconv sanity`` and ``tinyconv explain``
replace their folder whole, refuse files they did not write, and stay whole when two of them
write at once; atomic_write removes the temporary files of killed writers.

The kill-at-random-moments test of the tour is in test_faults.py.
"""

import copy
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

import tinyconv as tc
from tinyconv import cli, folders, tour
from tinyconv.architectures import build
from tinyconv.files import atomic_write, lock
from tinyconv.folders import MANIFEST, check_folder, staged_folder

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX locks and permission bits")


@pytest.fixture(scope="module")
def model():
    try:
        return tc.pretrained("mnist")
    except FileNotFoundError:
        return build("mnist", seed=0)


@pytest.fixture(params=["exchange", "rename"])
def swap(request, monkeypatch, tmp_path):
    """Each swap test twice: with renameat2(RENAME_EXCHANGE), and with the fallback that
    renames the old folder aside (as where the call is missing)."""
    if request.param == "rename":
        monkeypatch.setattr(folders, "_renameat2", lambda: None)
    else:
        a, b = tmp_path / "probe_a", tmp_path / "probe_b"
        a.mkdir()
        b.mkdir()
        supported = folders.exchange(a, b)
        a.rmdir()
        b.rmdir()
        if not supported:
            pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    return request.param


def write_version(out, version, names=("a.png", "b.png"), **kwargs):
    """One commit of a small folder whose every file says which version it belongs to."""
    with staged_folder(out, "tour", **kwargs) as stage:
        for name in names:
            (stage / name).write_text(version)
    return stage


def visible(folder):
    return {p.name: p.read_text() for p in Path(folder).iterdir() if p.name != MANIFEST}


def siblings(folder):
    """What lies beside ``folder`` (staging folders would show here)."""
    return sorted(p.name for p in Path(folder).parent.iterdir())


# --------------------------------------------------------------------------- refusals


def test_a_users_own_index_html_is_refused_before_any_work(model, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    with pytest.raises(ValueError, match=r"^out_dir: .*did not write: index\.html"):
        tour.tour(out, examples=20, model=model, progress=False)
    assert (out / "index.html").read_text() == "my own page"
    assert siblings(out) == ["site"]                       # no staging folder was made


@pytest.mark.parametrize("argv", [["tour", "--examples", "20"],
                                  ["sanity", "--examples", "2"],
                                  ["explain", "--index", "0", "--method", "saliency"]])
def test_each_command_names_out_and_the_files_it_would_replace(tmp_path, capsys, argv):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "notes.txt" in err, err
    assert sorted(os.listdir(out)) == ["notes.txt"]


def older_tour(folder, figures=("fig1_kernels.png", "fig2_extreme_8s.png")):
    """A tour as tinyconv wrote it before folders had a record: figures and their page."""
    folder.mkdir()
    for name in figures:
        (folder / name).write_text("an older figure")
    (folder / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n<head>\n<title>tinyconv tour: interpreting a CNN on MNIST"
        "</title>\n</head>\n<body>\n" + "".join(f'<img src="{n}">' for n in figures))


def test_what_a_folder_may_hold(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    check_folder(empty, **tour.OUTPUT)
    check_folder(tmp_path / "missing" / "deeper", **tour.OUTPUT)
    # a tour from before folders had a record: its page, the figures it shows, temporaries
    old = tmp_path / "old"
    older_tour(old, ("fig1_kernels.png", "fig5_rules.png"))
    (old / ".fig5_rules.png.0123456789ab.tmp").write_text("x")
    check_folder(old, **tour.OUTPUT)
    (old / "notes.txt").write_text("mine")
    (old / "figures").mkdir()
    (old / "fig3_mine.png").write_text("a figure the page does not show")
    with pytest.raises(ValueError, match=r"did not write: fig3_mine\.png, figures, notes\.txt\. "):
        check_folder(old, **tour.OUTPUT)
    # a folder another command wrote, and a record that lists fewer files than are there
    other = tmp_path / "other"
    write_version(other, "v1")
    (other / MANIFEST).write_text(json.dumps({"writer": "sanity", "files": {}}))
    with pytest.raises(ValueError, match="output of tinyconv sanity"):
        check_folder(other, **tour.OUTPUT)
    mine = tmp_path / "mine"
    write_version(mine, "v1")
    check_folder(mine, **tour.OUTPUT)
    (mine / "c.png").write_text("not listed")
    with pytest.raises(ValueError, match=r"did not write: c\.png"):
        check_folder(mine, **tour.OUTPUT)
    with pytest.raises(ValueError, match=r"^out_dir: .* is a file"):
        check_folder(mine / "a.png", **tour.OUTPUT)


def test_the_current_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="current folder"):
        check_folder(".", **tour.OUTPUT)


# --------------------------------------------------------------------------- the swap


def test_a_folder_is_replaced_whole_and_records_what_it_holds(tmp_path, swap):
    out = tmp_path / "new" / "out"                          # parents are created
    write_version(out, "v1", names=("a.png", "b.png", "c.png"))
    write_version(out, "v2")
    assert visible(out) == {"a.png": "v2", "b.png": "v2"}  # c.png went with v1
    record = json.loads((out / MANIFEST).read_text())
    assert record == {"writer": "tour", "files": {
        n: hashlib.sha256(b"v2").hexdigest() for n in ("a.png", "b.png")}}
    assert siblings(out) == ["out"]


def test_an_older_tour_without_a_record_is_replaced(tmp_path, swap):
    out = tmp_path / "out"
    older_tour(out)
    (out / ".index.html.0123456789ab.tmp").write_text("old")
    with staged_folder(out, **tour.OUTPUT) as stage:
        (stage / "index.html").write_text("new")
    assert visible(out) == {"index.html": "new"}
    assert siblings(out) == ["out"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_a_failure_midway_leaves_the_old_folder_and_nothing_else(tmp_path, swap, error):
    out = tmp_path / "out"
    write_version(out, "v1")
    with pytest.raises(error):
        with staged_folder(out, "tour") as stage:
            (stage / "a.png").write_text("v2")
            raise error
    assert visible(out) == {"a.png": "v1", "b.png": "v1"}
    assert siblings(out) == ["out"]


def test_errors_name_the_folder_the_caller_gave_never_the_staging_folder(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError) as info:
        with staged_folder(out, "tour") as stage:
            with atomic_write(stage / "missing" / "a.png") as f:
                f.write(b"x")
    assert str(out / "missing" / "a.png") in str(info.value)
    assert folders.MARK not in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        with staged_folder(out, "tour") as stage:
            open(stage / "missing" / "b.png", "w")
    assert str(out / "missing" / "b.png") in str(info.value)
    assert folders.MARK not in str(info.value)


@posix
def test_a_replaced_folder_keeps_its_permissions_a_new_one_gets_the_usual(tmp_path, swap):
    out = tmp_path / "out"
    write_version(out, "v1")
    os.mkdir(tmp_path / "plain")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    out.chmod(0o750)
    write_version(out, "v2")
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


@posix
def test_through_a_symbolic_link_the_link_stays(tmp_path, swap):
    real = tmp_path / "real"
    write_version(real, "v1")
    link = tmp_path / "link"
    link.symlink_to(real)
    stage = write_version(link, "v2")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert visible(real) == {"a.png": "v2", "b.png": "v2"}
    assert stage.out == link
    assert siblings(real) == ["link", "real"]


def test_a_file_that_turns_up_before_the_swap_stops_it(tmp_path, swap):
    """The folder is checked again at the swap: a file made meanwhile is never replaced."""
    out = tmp_path / "out"
    write_version(out, "v1")
    with pytest.raises(ValueError, match=r"did not write: notes\.txt"):
        with staged_folder(out, "tour") as stage:
            (stage / "a.png").write_text("v2")
            (out / "notes.txt").write_text("mine")
    assert visible(out) == {"a.png": "v1", "b.png": "v1", "notes.txt": "mine"}
    assert siblings(out) == ["out"]


def test_keep_gathers_results_across_runs(tmp_path, swap):
    out = tmp_path / "reports"
    write_version(out, "v1", names=("one.json", "one.png"), keep=True)
    write_version(out, "v2", names=("two.json", "one.png"), keep=True)
    assert visible(out) == {"one.json": "v1", "one.png": "v2", "two.json": "v2"}
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == {
        "one.json", "one.png", "two.json"}


# --------------------------------------------------------------------------- what dead writers left


def abandoned_stage(out, files, record=None):
    """A staging folder as a killed writer leaves it (its lock died with it)."""
    stage = out.with_name(f".{out.name}{folders.MARK}0123456789ab")
    stage.mkdir()
    for name, text in files.items():
        (stage / name).write_text(text)
    if record is not None:
        (stage / MANIFEST).write_text(json.dumps({"writer": "tour", "files": record}))
    return stage


@posix
def test_the_next_run_removes_staging_folders_of_dead_writers_only(tmp_path):
    out = tmp_path / "out"
    dead = abandoned_stage(out, {"a.png": "half", ".a.png.0123456789ab.tmp": "x"})
    alive = out.with_name(f".{out.name}{folders.MARK}ffffffffffff")
    alive.mkdir()
    (alive / "a.png").write_text("in progress")
    fd = os.open(alive, os.O_RDONLY)
    try:
        assert lock(fd) is True                  # as a living writer holds its folder
        write_version(out, "v1")
    finally:
        os.close(fd)
    assert not dead.exists()
    assert (alive / "a.png").read_text() == "in progress"
    write_version(out, "v2")                     # now nobody holds it either
    assert siblings(out) == ["out"]


@posix
def test_an_abandoned_folder_that_another_writer_removes_first_is_no_error(tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "out"
    dead = abandoned_stage(out, {"a.png": "half", "b.png": "half"})
    discard = folders._discard

    def the_other_writer_was_quicker(folder, target):
        shutil.rmtree(folder)                        # between finding it and removing it
        discard(folder, target)
    monkeypatch.setattr(folders, "_discard", the_other_writer_was_quicker)
    write_version(out, "v1")
    assert not dead.exists() and siblings(out) == ["out"]


@posix
def test_a_file_that_is_not_ours_in_an_abandoned_folder_is_kept_in_sight(tmp_path):
    out = tmp_path / "out"
    abandoned_stage(out, {"a.png": "old", "notes.txt": "mine"}, record={"a.png": "…"})
    with pytest.warns(UserWarning, match="kept in"):
        write_version(out, "v1")
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.kept-")]
    assert len(kept) == 1 and os.listdir(kept[0]) == ["notes.txt"]


@posix
def test_atomic_write_removes_the_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "model.npz"
    dead = tmp_path / ".model.npz.0123456789ab.tmp"
    alive = tmp_path / ".model.npz.ffffffffffff.tmp"
    others = [".model.npz.notes", ".model.npz.0123456789ab.tmp.bak", ".other.npz.0123456789ab.tmp",
              "model.npz.0123456789ab.tmp"]
    for path in [dead, alive, *(tmp_path / n for n in others)]:
        path.write_bytes(b"x")
    fd = os.open(alive, os.O_RDONLY)
    try:
        assert lock(fd) is True
        with atomic_write(target) as f:
            f.write(b"model")
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "model.npz", *others])


# --------------------------------------------------------------------------- at the same time


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def assert_whole_tour(out):
    """Exactly the files of one tour, each as its record says, the page linking every PNG."""
    record = json.loads((out / MANIFEST).read_text())
    assert record["writer"] == "tour"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*record["files"], MANIFEST])
    for name, digest in record["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    page = Links()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert sorted(page.src) == sorted(n for n in names if n.endswith(".png"))
    assert len(page.src) == 16


TOUR_PROCESS = """
    import sys
    import tinyconv as tc
    from tinyconv import tour
    tour.tour(sys.argv[1], examples=20, model=tc.pretrained("mnist"), progress=False)
"""


def test_tours_in_threads_and_a_process_into_one_folder_leave_one_whole_tour(model, tmp_path):
    out = tmp_path / "tour"
    older_tour(out, ("fig1_kernels.png", "fig2_extreme_3s.png"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(TOUR_PROCESS), str(out)],
                            stderr=subprocess.PIPE, text=True, env=env)
    results, errors = [], []

    def run(mine):
        try:
            results.append(tour.tour(out, examples=20, model=mine, progress=False))
        except BaseException as err:                         # reported below
            errors.append(err)
    # a model serves one thread at a time
    threads = [threading.Thread(target=run, args=(copy.deepcopy(model),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    _, err = proc.communicate(timeout=600)
    assert not errors and proc.returncode == 0, (errors, err)
    assert results[0] == results[1] and all(p.parent == out for p in results[0])
    assert_whole_tour(out)
    assert siblings(out) == ["tour"]


WRITER = """
    import sys
    from pathlib import Path
    from tinyconv import folders
    out, who, commits, keep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    if sys.argv[5] == "rename":
        folders._renameat2 = lambda: None
    for i in range(commits):
        version = f"{who}-{i}"
        names = [f"{who}_{i}.txt"] if keep else ["a.txt", "b.txt", "c.txt"]
        with folders.staged_folder(out, "tour", keep=keep) as stage:
            for name in names:
                (stage / name).write_text(version)
"""


def writers(out, n, commits, keep, swap):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(out), f"w{w}",
                              str(commits), str(int(keep)), swap],
                             stderr=subprocess.PIPE, text=True, env=env) for w in range(n)]


def snapshot(out):
    """The folder's files as one reader sees them: read through one open folder, so that a
    swap between two reads cannot mix two folders (None if there is no folder this moment)."""
    try:
        fd = os.open(out, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        seen = {}
        for name in os.listdir(fd):
            try:
                with open(os.open(name, os.O_RDONLY, dir_fd=fd)) as f:
                    seen[name] = f.read()
            except FileNotFoundError:   # the old folder's files go after the swap
                pass
        return seen
    finally:
        os.close(fd)


@posix
def test_writer_processes_at_once_always_show_one_whole_folder(tmp_path, swap):
    out = tmp_path / "out"
    procs = writers(out, 3, 15, False, swap)
    looks = []
    while any(p.poll() is None for p in procs):
        looks.append(snapshot(out))
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    looks.append(snapshot(out))
    for seen in filter(None, looks):
        texts = {text for name, text in seen.items() if name != MANIFEST}
        assert len(texts) <= 1, seen                          # never two versions at once
    if swap == "exchange":                                   # never missing once made
        made = next(i for i, seen in enumerate(looks) if seen is not None)
        assert None not in looks[made:]
    final = looks[-1]
    assert sorted(final) == [MANIFEST, "a.txt", "b.txt", "c.txt"]
    assert siblings(out) == ["out"]


@posix
def test_writer_processes_that_gather_lose_nothing(tmp_path, swap):
    out = tmp_path / "out"
    procs = writers(out, 3, 8, True, swap)
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert sorted(visible(out)) == sorted(f"w{w}_{i}.txt" for w in range(3) for i in range(8))
    assert siblings(out) == ["out"]
