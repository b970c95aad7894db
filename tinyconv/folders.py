"""Writing a whole folder of results so that a reader never sees half of one: the one home of
"fill a fresh folder, then swap it in" (the tour, ``tinyconv sanity``, ``tinyconv explain``).

:func:`~tinyconv.files.atomic_write` makes one file whole. A folder of figures and the page
that captions them must be whole *together*: a tour killed while it writes over an older one
must not leave the old captions under new figures. So a writer works like this:

1. :func:`staged_folder` refuses, before any work, an ``out`` that holds a file this writer
   did not write (:func:`check_folder`: a user's own ``index.html`` or notes are never
   replaced), and removes the staging folders of writers that died (nobody holds their lock).
2. The writer fills a fresh hidden folder beside ``out`` (the same file system):
   ``stage / name``.
3. On a clean exit the folder gets its record, :data:`MANIFEST` (the writer and the SHA-256
   of each file), and takes ``out``'s place in one step: Linux's
   ``renameat2(RENAME_EXCHANGE)`` swaps the two folders, so ``out`` is never missing; where
   that call is missing, the old folder is renamed aside and the new one in (for a moment
   there is no folder, never half of one). The old folder's own files are then removed.

At every moment a reader sees at ``out`` the old folder, the new one or (fallback only) none,
never a mix. Commits into one parent folder take turns (a lock on the parent), so two writers
into one ``out`` both finish and the last one's folder stands whole. A file that is not the
writer's and turns up in the old folder while it is replaced is kept, in a visible folder
beside ``out``, with a warning.
"""

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import uuid
import warnings
from pathlib import Path

from .files import (
    abandoned,
    atomic_write,
    check_path,
    is_file_not_folder,
    lock,
    open_locked,
    shortened,
    temporary_target,
    writable_dir_problem,
)

#: The record each written folder holds: ``{"writer": ..., "files": {name: sha256}}``.
MANIFEST = ".tinyconv.json"
#: What marks a staging folder beside its target: ``.<target>.tinyconv-<12 hex digits>``.
MARK = ".tinyconv-"
HEX = 12
DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


class Stage:
    """The folder being filled: ``stage / name`` is where ``name`` is written, ``stage.out``
    the folder (as the caller named it) that it becomes."""

    def __init__(self, folder, out):
        self.folder, self.out = folder, out

    def __truediv__(self, name):
        return self.folder / name


# --------------------------------------------------------------------------- whose files


def read_manifest(folder, dir_fd=None):
    """``(writer, {name: sha256})`` of ``folder``'s :data:`MANIFEST`, or None if it has none
    (or one that is not a record of ours). ``dir_fd``: an open descriptor of ``folder`` to
    read it through instead of the path."""
    try:
        if dir_fd is None:
            text = (Path(folder) / MANIFEST).read_text(encoding="utf-8")
        else:
            with open(os.open(MANIFEST, os.O_RDONLY, dir_fd=dir_fd), encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("writer"), str)
            and isinstance(data.get("files"), dict)):
        return None
    return data["writer"], data["files"]


#: Whether a folder can be read through one open descriptor (not on Windows).
_BY_DESCRIPTOR = os.listdir in os.supports_fd and os.stat in os.supports_dir_fd


def sort_entries(folder, writer, legacy=None):
    """Split the entries of existing ``folder`` into ``(own, foreign, other)``: the files
    ``writer`` wrote (by its record; without one, the files ``legacy(path)`` accepts, as an
    older tinyconv wrote no record), everything else, and the other writer whose record the
    folder holds (or None). Own files are regular files, never links or folders; leftover
    temporary files of own files count as own.

    The record and the listing are read through one open descriptor of the folder: another
    writer may swap a new folder in at this path meanwhile, and a record of the old folder
    must not judge the files of the new one. ``FileNotFoundError`` if there is no folder."""
    folder = Path(folder)
    fd = os.open(folder, DIRECTORY) if _BY_DESCRIPTOR else None
    try:
        record = read_manifest(folder, dir_fd=fd)
        names = sorted(os.listdir(folder if fd is None else fd))
        other = record[0] if record is not None and record[0] != writer else None
        if record is None:
            def accepted(name):
                return legacy is not None and legacy(folder / name)
        else:
            def accepted(name):
                return other is None and name in record[1]

        def is_own(name):
            if name == MANIFEST and other is None:
                return True
            target = temporary_target(name)
            return accepted(name) or (target is not None and (accepted(target)
                                                              or target == MANIFEST))

        own, foreign = [], []
        for name in names:
            try:
                mode = (os.lstat(folder / name) if fd is None
                        else os.stat(name, dir_fd=fd, follow_symlinks=False)).st_mode
            except FileNotFoundError:       # removed meanwhile
                continue
            (own if stat.S_ISREG(mode) and is_own(name) else foreign).append(name)
        return own, foreign, other
    finally:
        if fd is not None:
            os.close(fd)


def check_folder(out, writer, legacy=None, name="out_dir"):
    """Refuse an ``out`` that ``writer`` cannot replace whole, before any work: ``ValueError``
    naming ``name`` if ``out`` is a file, cannot be written beside, is the current folder, or
    holds any file ``writer`` did not write (listed). A missing or empty folder, or one this
    writer wrote (its :data:`MANIFEST`; for a folder of an older tinyconv without one, only
    files ``legacy(path)`` accepts), is fine."""
    out = check_path(out, name)
    who = f"tinyconv {writer}"
    if is_file_not_folder(out):
        raise ValueError(f"{name}: {str(out)!r} is a file; {who} needs a folder (it is "
                         "created if missing)")
    target = Path(os.path.realpath(out))
    problem = writable_dir_problem(target)
    if problem:
        raise ValueError(f"{name}: {str(out)!r} {problem}")
    if not out.exists():
        return
    problem = writable_dir_problem(target.parent)
    if problem:
        raise ValueError(f"{name}: the folder that holds {str(out)!r} {problem}; {who} writes "
                         "the new folder beside the old one, then swaps them")
    try:
        here = os.getcwd()
    except OSError:                            # the current folder was removed
        here = None
    try:
        current = here is not None and os.path.samefile(target, here)
        _, foreign, other = sort_entries(target, writer, legacy)
    except FileNotFoundError:      # renamed aside this moment by another writer's swap
        return
    if current:
        raise ValueError(f"{name}: {str(out)!r} is the current folder; {who} replaces its "
                         "folder whole, so name a folder inside it")
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                          if len(foreign) > 5 else "")
        whose = f" (it is the output of tinyconv {other})" if other else ""
        raise ValueError(f"{name}: {str(out)!r} holds files that {who} did not write{whose}: "
                         f"{shown}. It replaces the whole folder, so give an empty or new "
                         "folder, or move those files away")


# --------------------------------------------------------------------------- the swap


@functools.cache
def _renameat2():
    """glibc's ``renameat2`` through ctypes, or None where there is none (not Linux; old C
    library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


AT_FDCWD, RENAME_EXCHANGE = -100, 2


def exchange(a, b):
    """Swap the folders ``a`` and ``b`` in one atomic step: True, or False where the system or
    the file system cannot (then nothing happened). Other failures raise ``OSError``."""
    call = _renameat2()
    if call is None:
        return False
    if call(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err))


def _stage_name(target):
    """A fresh hidden name beside ``target`` that marks a staging folder (at most NAME_MAX
    bytes)."""
    tag = f"{MARK}{uuid.uuid4().hex[:HEX]}"
    return target.with_name(f".{shortened(target.name, len(tag))}{tag}")


def _new_stage(target):
    """Make and lock a fresh staging folder beside ``target`` -> ``(path, descriptor)``; the
    lock, held until the descriptor closes, tells other writers that its writer lives."""
    while True:
        stage = _stage_name(target)
        os.mkdir(stage)
        with contextlib.suppress(FileNotFoundError):
            fd = open_locked(stage, DIRECTORY)
            if fd is not None:
                return stage, fd


def _write_manifest(folder, writer, names=None):
    """Record in ``folder`` that ``writer`` wrote ``names`` (default: every regular file)."""
    if names is None:
        names = sorted(n for n in os.listdir(folder) if n != MANIFEST
                       and stat.S_ISREG(os.lstat(folder / n).st_mode))
    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    with atomic_write(folder / MANIFEST, "w") as f:
        json.dump({"writer": writer, "files": files}, f, indent=1, sort_keys=True)


def _discard(folder, target):
    """Remove the old or abandoned ``folder`` (beside ``target``): the files its record lists
    (all of them for a staging folder that never got one: only its writer wrote there), then
    the folder. Anything else in it is kept, renamed to a visible folder beside ``target``."""
    record = read_manifest(folder)
    listed = None if record is None else {*record[1], MANIFEST}
    for name in os.listdir(folder):
        path = folder / name
        mine = listed is None or name in listed or temporary_target(name) in listed
        if mine and stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink(missing_ok=True)
    try:
        os.rmdir(folder)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        kept = target.with_name(f"{target.name}.kept-{uuid.uuid4().hex[:6]}")
        os.rename(folder, kept)
        warnings.warn(f"files that tinyconv did not write turned up in {str(target)!r} while "
                      f"it was replaced; they are kept in {str(kept)!r}", stacklevel=3)


def remove_abandoned_stages(target):
    """Discard the staging folders beside ``target`` whose writers died (nobody holds their
    lock), as :func:`_discard` does: never a file that is not theirs. Two writers starting at
    once may both find one; the second finds it gone, part or whole, which is no error."""
    pattern = re.compile(rf"\.{re.escape(shortened(target.name, len(MARK) + HEX))}"
                         rf"{re.escape(MARK)}[0-9a-f]{{{HEX}}}")
    for stage in abandoned(target.parent, pattern, stat.S_ISDIR):
        with contextlib.suppress(FileNotFoundError):
            _discard(stage, target)


def _carry_over(old, stage, writer, legacy):
    """Link (or copy) into ``stage`` the files of ``old`` that ``writer`` wrote and this run
    did not: a folder that gathers results (one report per image) keeps the earlier ones."""
    own, _, _ = sort_entries(old, writer, legacy)
    for name in own:
        if name == MANIFEST or temporary_target(name) or (stage / name).exists():
            continue
        try:
            os.link(old / name, stage / name)
        except OSError:
            shutil.copy2(old / name, stage / name)


def _swap_in(stage, target, out, writer, legacy, keep, name):
    """Put the filled ``stage`` at ``target`` -> ``(where the old folder went, its locked
    descriptor)``, both None if there was none. Raises before anything moved if ``target``
    took a file that is not ``writer``'s since the check."""
    try:
        parent = os.open(target.parent, DIRECTORY)
    except OSError:              # an unreadable parent: no turns, each swap is still atomic
        parent = None
    old = None
    try:
        if parent is not None:
            lock(parent)         # commits beside each other take turns
        if target.is_dir():
            old = os.open(target, DIRECTORY)
            lock(old)            # stays held until the old folder is gone (see remove_...)
            check_folder(out, writer, legacy, name)
            if keep:
                _carry_over(target, stage, writer, legacy)
            if read_manifest(target) is None and os.listdir(target):
                # an older tinyconv's folder: record its files, so that if this process dies
                # while removing them, the next writer removes those and only those
                _write_manifest(target, writer, sort_entries(target, writer, legacy)[0])
            os.chmod(stage, stat.S_IMODE(os.fstat(old).st_mode))
        _write_manifest(stage, writer)
        if old is None:
            os.rename(stage, target)
            return None, None
        if exchange(stage, target):
            return stage, old    # the old folder now has the staging name
        aside = _stage_name(target)
        os.rename(target, aside)
        try:
            os.rename(stage, target)
        except BaseException:
            os.rename(aside, target)
            raise
        return aside, old
    except BaseException:
        if old is not None:
            os.close(old)
        raise
    finally:
        if parent is not None:
            os.close(parent)


def _named_for(err, stage, out):
    """``err`` with the staging folder's name replaced by ``out``'s: a message names what the
    caller gave, never a folder the caller never saw."""
    def fix(value):
        return value.replace(str(stage), str(out)) if isinstance(value, str) else value
    try:
        new = type(err)(*map(fix, err.args))
    except TypeError:
        return err
    for attr in ("filename", "filename2"):
        value = getattr(err, attr, None)
        if value is not None:
            setattr(new, attr, fix(os.fsdecode(value)))
    return new


@contextlib.contextmanager
def staged_folder(out, writer, legacy=None, keep=False, name="out_dir"):
    """Fill a fresh folder and swap it in for ``out`` on a clean exit (see the module).

    Parameters
    ----------
    out : the folder (str or Path; created if missing). Through a symbolic link, the folder it
        points to is replaced and the link kept.
    writer : who writes (``"tour"``, ``"sanity"``, ``"explain"``), recorded in
        :data:`MANIFEST` and named in messages.
    legacy : ``legacy(path) -> bool``, whether a file is one an older tinyconv wrote (it left
        no record); judged by name and, where names are common, content.
    keep : keep the writer's earlier files that this run does not write again (a folder that
        gathers results); otherwise the folder holds exactly what this run wrote.
    name : the caller's name for ``out`` in messages (``"out_dir"``, ``"--out"``).

    Yields
    ------
    :class:`Stage`: write each file to ``stage / file_name``. On an exception (Ctrl-C
    included) the staged folder is removed and ``out`` is left as it was. A new folder gets
    the usual permissions, a replaced one keeps its own. Errors name ``out``.
    """
    out = check_path(out, name)
    check_folder(out, writer, legacy, name)
    target = Path(os.path.realpath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_stages(target)
    try:
        stage, held = _new_stage(target)
    except OSError as err:
        raise type(err)(err.errno, f"cannot write {str(out)!r}: {err.strerror}") from None
    try:
        try:
            yield Stage(stage, out)
            old, old_fd = _swap_in(stage, target, out, writer, legacy, keep, name)
        except OSError as err:
            raise _named_for(err, stage, out) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        os.close(held)
    if old is not None:
        try:
            _discard(old, target)
        finally:
            os.close(old_fd)
