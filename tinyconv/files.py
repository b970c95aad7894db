"""Writing files so that a reader never sees half of one: the one home of "temporary file,
then rename".

A crash, a full disk or Ctrl-C while writing leaves the old file (or none) in place, never a
truncated one: the bytes go to a fresh name beside the target (the same file system, so the
rename is atomic), are flushed to disk, and only then take the target's name.
"""

import contextlib
import os
import stat
import uuid
from pathlib import Path

#: Longest file name most file systems accept, in bytes.
NAME_MAX = 255


def _temporary_name(path):
    """A fresh hidden name beside ``path``, never longer than :data:`NAME_MAX` bytes (a legal
    250-byte target name must not fail because its temporary name is longer)."""
    tag = f".{uuid.uuid4().hex[:12]}.tmp"
    stem = path.name.encode()[:NAME_MAX - len(tag) - 1].decode(errors="ignore")
    return path.with_name(f".{stem}{tag}")


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
    gets the usual ``0o666 & ~umask``. Errors name ``path``, never the temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        keep = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        keep = None
    # O_EXCL never reuses an existing file; 0o666 lets the umask set the usual permissions
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as err:
        # the caller's path, not the temporary name the caller never gave
        raise type(err)(err.errno, f"cannot write {str(path)!r}: {err.strerror}") from None
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


def nearest_existing(folder):
    """``folder`` or its nearest ancestor that exists (what decides whether it can be made)."""
    folder = Path(folder)
    return next(p for p in (folder, *folder.absolute().parents) if p.exists())


def writable_dir_problem(folder):
    """Why files could not be written into ``folder`` (created if missing), or None if they
    could: a message fragment such as ``"is a file, not a directory"``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return "is a file, not a directory"
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return f"cannot be created: {str(existing)!r} is a file"
    if not is_writable(existing):
        return f"is not writable ({str(existing)!r} does not let this user create files)"
    return None
