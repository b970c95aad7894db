"""Tests for tinyconv.files: atomic writes and the writable-directory checks."""

import os
import stat
from pathlib import Path

import pytest

from tinyconv import files
from tinyconv.files import atomic_write, nearest_existing, writable_dir_problem


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, "w") as f:
        f.write("new é")
        assert target.read_text() == "old"           # nobody sees the new bytes before the end
    assert target.read_text(encoding="utf-8") == "new é"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(tmp_path / "b.bin") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_write(target) as f:
            f.write(b"half")
            raise error
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_an_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "private"
    target.write_bytes(b"x")
    target.chmod(0o600)
    with atomic_write(target) as f:
        f.write(b"y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_long_legal_name_still_gets_a_temporary(tmp_path):
    target = tmp_path / ("m" * 250)
    with atomic_write(target) as f:
        f.write(b"ok")
    assert target.read_bytes() == b"ok"


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_writable_dir_problem_names_each_case(tmp_path, monkeypatch):
    assert writable_dir_problem(tmp_path / "new" / "deeper") is None
    assert nearest_existing(tmp_path / "new" / "deeper") == (tmp_path, True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert writable_dir_problem(blocker) == "is a file, not a directory"
    assert "cannot be created" in writable_dir_problem(blocker / "sub")
    monkeypatch.setattr(files, "is_writable", lambda folder: False)
    assert "is not writable" in writable_dir_problem(tmp_path)


def test_a_file_is_told_from_a_folder_by_one_look(tmp_path, monkeypatch):
    """A folder that another writer renames away between two looks is missing, not a file:
    one ``stat`` decides (``exists()`` then ``is_dir()`` said "is a file" when the folder went
    between them)."""
    (tmp_path / "f").write_text("x")
    assert files.is_file_not_folder(tmp_path / "f")
    assert not files.is_file_not_folder(tmp_path)
    assert not files.is_file_not_folder(tmp_path / "gone")
    assert not files.is_file_not_folder(tmp_path / "f" / "below")
    # the race, replayed: the folder is there for exists() and gone for anything after it
    out = tmp_path / "out"
    monkeypatch.setattr(Path, "exists", lambda self: self == out or os.path.exists(self))
    assert writable_dir_problem(out) is None and not files.is_file_not_folder(out)
