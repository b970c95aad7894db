"""Writing files so that a reader never sees half of one: the one home of "temporary file,
then rename".

A crash, a full disk or Ctrl-C while writing leaves the old file (or none) in place, never a
truncated one: the bytes go to a fresh name beside the target (the same file system, so the
rename is atomic), are flushed to disk, and only then take the target's name.

A writer killed outright (SIGKILL, power loss) cannot remove its temporary file. So the writer
holds an advisory lock (``flock``) on it while it writes, which the kernel drops when the
process dies, and the next write to the same target removes the temporaries that nobody holds:
provably abandoned, never another writer's file in progress.
"""

import contextlib
import os
import re
import stat
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:         # no flock (Windows): nothing is ever judged abandoned
    fcntl = None

#: Longest file name most file systems accept, in bytes.
NAME_MAX = 255
#: the random part of a temporary name: ``.<target>.<12 hex digits>.tmp``
TAG_LENGTH = 12
_TAG_BYTES = len(".") + TAG_LENGTH + len(".tmp")


def shortened(name, tag_length):
    """``name`` cut so that ``.<name><tag>``, a hidden name with a tag of ``tag_length``
    bytes, fits :data:`NAME_MAX` bytes (a legal 250-byte target name must not fail because
    the name of its temporary file or staging folder is longer)."""
    return name.encode()[:NAME_MAX - tag_length - 1].decode(errors="ignore")


def _temporary_name(path):
    """A fresh hidden name beside ``path``: ``.<name>.<12 hex digits>.tmp``."""
    stem = shortened(path.name, _TAG_BYTES)
    return path.with_name(f".{stem}.{uuid.uuid4().hex[:TAG_LENGTH]}.tmp")


def temporary_pattern(path):
    """The names :func:`atomic_write` gives its temporary files for target ``path``."""
    stem = shortened(Path(path).name, _TAG_BYTES)
    return re.compile(rf"\.{re.escape(stem)}\.[0-9a-f]{{{TAG_LENGTH}}}\.tmp")


def temporary_target(name):
    """The (possibly shortened) target name of a temporary file called ``name``, or None if
    ``name`` is not one of :func:`atomic_write`'s."""
    match = re.fullmatch(rf"\.(.+)\.[0-9a-f]{{{TAG_LENGTH}}}\.tmp", name)
    return match and match.group(1)


# --------------------------------------------------------------------------- locks


def lock(fd, wait=True):
    """Take the exclusive advisory lock of open file (or folder) ``fd``: True once held,
    False if ``wait`` is False and another open file holds it, None where no lock can be
    taken (no ``flock``; a file system that refuses it). The kernel releases the lock when
    ``fd`` is closed or its process dies, however it dies."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def open_locked(path, flags, mode=0o777):
    """``os.open(path, flags, mode)`` and lock it, for a file or folder that this process has
    just made under a fresh name. Returns the descriptor, or None if ``path`` was removed
    between the two steps (by :func:`claim_abandoned` in another process, which may see the
    new file before it is locked); the caller then makes another."""
    fd = os.open(path, flags, mode)
    lock(fd)
    try:
        same = os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def claim_abandoned(path):
    """A locked descriptor of ``path`` if nobody holds its lock (its writer is dead) and it
    belongs to this user, else None (also where no lock can be taken: then nothing is
    provably abandoned). Close the descriptor after removing ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if lock(fd, wait=False) is True and os.fstat(fd).st_uid == os.geteuid():
        return fd
    os.close(fd)
    return None


def abandoned(folder, pattern, kind):
    """Yield the path of each entry of ``folder`` whose name matches ``pattern`` (a compiled
    regular expression, whole name), whose type ``kind`` accepts (``stat.S_ISREG``,
    ``stat.S_ISDIR``; judged before it is opened, so that a FIFO or a link is never opened,
    and again once it is) and whose writer is dead (:func:`claim_abandoned`); its lock is
    held while the caller deals with it."""
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        path = folder / name
        try:
            if not kind(path.lstat().st_mode):
                continue
        except FileNotFoundError:   # renamed or removed meanwhile
            continue
        fd = claim_abandoned(path)
        if fd is None:
            continue
        try:
            if kind(os.fstat(fd).st_mode):
                yield path
        finally:
            os.close(fd)


def remove_abandoned_temporaries(path):
    """Remove the temporary files of dead writers of ``path``: names :func:`atomic_write`
    gives (:func:`temporary_pattern`), regular files of this user that nobody locks."""
    for tmp in abandoned(path.parent, temporary_pattern(path), stat.S_ISREG):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Open a temporary file beside ``path`` for writing; on a clean exit, move it into place.

    Parameters
    ----------
    path : the target file name (str or Path).
    mode : ``"wb"`` or ``"w"`` (text; then ``encoding``, default UTF-8).

    Yields
    ------
    The open file object. On any exception (including KeyboardInterrupt) the temporary file is
    removed, the target is left as it was, and the exception propagates. An existing target
    keeps its permission bits (re-saving a ``chmod 600`` file keeps it private); a new file
    gets the usual ``0o666 & ~umask``. Errors name ``path``, never the temporary file. The
    temporary files that killed writers of ``path`` left are removed first
    (:func:`remove_abandoned_temporaries`).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    path = Path(path)
    remove_abandoned_temporaries(path)
    try:
        keep = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        keep = None
    # O_EXCL never reuses an existing file; 0o666 lets the umask set the usual permissions
    fd = None
    try:
        while fd is None:
            tmp = _temporary_name(path)
            fd = open_locked(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as err:
        # the caller's path, not the temporary name the caller never gave
        raise type(err)(err.errno, f"cannot write {str(path)!r}: {err.strerror}") from None
    # a second descriptor of the same open file keeps the lock until the rename is done, so
    # that no other writer takes the closed temporary file for an abandoned one
    held = os.dup(fd) if fcntl is not None else None
    try:
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            if keep is not None:
                os.chmod(tmp, keep)
            os.replace(tmp, path)
        except OSError as err:
            raise type(err)(err.errno, f"cannot write {str(path)!r}: {err.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if held is not None:
            os.close(held)


def check_path(path, name="path"):
    """``path`` as a :class:`~pathlib.Path` if it is a non-empty str or ``os.PathLike``;
    ``TypeError`` / ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name}: expected a file name (str or path), got "
                        f"{type(path).__name__}")
    if not os.fspath(path):
        raise ValueError(f"{name}: expected a file name, got an empty string")
    return Path(path)


def is_writable(folder):
    """Whether files can be created in ``folder`` (a directory that exists)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _stat(path):
    """``os.stat`` of ``path``, or None if nothing is there (also below a file)."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_file_not_folder(path):
    """Whether something other than a folder is at ``path``, from one ``stat``: two calls
    (``exists()``, then ``is_dir()``) would call a folder that another process renames away
    between them a file."""
    st = _stat(Path(path))
    return st is not None and not stat.S_ISDIR(st.st_mode)


def nearest_existing(folder):
    """``folder`` or its nearest ancestor that exists (what decides whether it can be made),
    and whether it is a folder, from one ``stat`` each: ``(path, is_dir)``."""
    folder = Path(folder)
    for p in (folder, *folder.absolute().parents):
        st = _stat(p)
        if st is not None:
            return p, stat.S_ISDIR(st.st_mode)
    raise FileNotFoundError(folder)        # not even the root: cannot happen on a live system


def writable_dir_problem(folder):
    """Why files could not be written into ``folder`` (created if missing), or None if they
    could: a message fragment such as ``"is a file, not a directory"``."""
    existing, is_dir = nearest_existing(folder)
    if not is_dir:
        return ("is a file, not a directory" if existing == Path(folder)
                else f"cannot be created: {str(existing)!r} is a file")
    if not is_writable(existing):
        return f"is not writable ({str(existing)!r} does not let this user create files)"
    return None
