"""Exceptions with one-line messages that name the file and the fix."""

from __future__ import annotations

import errno
import signal


class EyepurifyError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits with ``exit_code`` (2)."""

    exit_code = 2


class DataError(EyepurifyError):
    """A bad input file (corrupt, wrong format, wrong size, unknown labels)."""

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(one_line(msg))


class WeightsError(EyepurifyError):
    """Model weights missing, of the wrong shape or failing a checksum."""


class Interrupted(EyepurifyError):
    """A run stopped by a signal after saving what it can resume from; exit 128 + signal
    number (130 for Ctrl-C / SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8 and to show: the bytes of an undecodable file name
    (``surrogateescape``) and any other lone surrogate become ``\\xff``-style escapes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: str, limit: int = 600) -> str:
    """``text`` with line breaks and tabs turned into spaces, at most ``limit`` characters."""
    s = " ".join(str(text).replace("\t", " ").splitlines())
    return s if len(s) <= limit else s[: limit - 1] + "…"


_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free some space, then rerun with --resume",
    errno.EDQUOT: "the disk quota is exhausted: free some space, then rerun with --resume",
    errno.EACCES: "permission denied: check the permissions or choose another path",
    errno.EPERM: "permission denied: check the permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EEXIST: "a file is in the way: remove it or choose another path",
    errno.ENOTDIR: "a file is in the way where a folder is needed: choose another path",
    errno.EISDIR: "a folder is in the way where a file is needed: choose another path",
    errno.ENOENT: "check the path",
    errno.ELOOP: "a symlink loop: fix the link",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EIO: "the disk reported an I/O error: check the device",
}


def os_error_message(e: OSError) -> str:
    """One line for an environment error: the file(s), what happened and the fix."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or str(e) or type(e).__name__
    fix = _OS_FIXES.get(e.errno or -1, "")
    msg = f"{where}: {what}" if where else what
    return one_line(msg + (f" ({fix})" if fix else ""))


def read_error(path: object, e: OSError, fix: str = "check the file") -> DataError:
    """A DataError for an OSError met while *reading* ``path`` (not a decode failure)."""
    if isinstance(e, FileNotFoundError):
        return DataError(path, "file not found", "check the path")
    if isinstance(e, PermissionError):
        return DataError(path, "permission denied", "check the file's permissions")
    if isinstance(e, IsADirectoryError):
        return DataError(path, "is a folder, not a file", "pass the file itself")
    return DataError(path, f"cannot read ({e.strerror or e})", fix)
