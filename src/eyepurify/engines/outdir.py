"""The ``--out`` folder of a batch run, which eyepurify does not trust (README, Guarantees):

* :func:`check_relpath`: an output path is relative, POSIX, with no ``..``, ``.``, empty or
  over-long component; :func:`fit_name` shortens a file name to the 255 bytes a file system
  allows.
* :func:`prepare_parent`: the folders of an output path are created one at a time and each
  must be a real folder, never a symlink (nothing is written through a link out of ``--out``).
* :class:`OutLock`: ``--out/.eyepurify.lock``, held with ``flock`` while a run writes there, so
  two runs never share one ``--out`` (a crashed run's lock goes with its process). It records
  the run's pid and temp token (:data:`eyepurify.io.TEMP_TOKEN`): the next run removes that
  run's temp files (:func:`clean_temp_files`) and nothing else.

A process that rewrites ``--out`` while a run writes there can still race these checks; that
needs write access to ``--out``, and the lock keeps other eyepurify runs out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from eyepurify.errors import EyepurifyError
from eyepurify.io import TEMP_TOKEN, file_mode, temp_name_re

#: The lock file's name (at the top of ``--out``; hidden, removed when a run ends).
LOCK_NAME = ".eyepurify.lock"
#: Bytes in one file name (Linux, macOS and Windows file systems).
NAME_MAX = 255
#: Characters in an output path relative to ``--out``.
REL_MAX = 4096
_LOCK_RE = re.compile(r"(\d{1,10}) ([0-9a-f]{16})\n?")
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


class UnsafePath(ValueError):
    """An output path that could leave ``--out`` or that no file system takes."""


def name_bytes(name: str) -> int:
    """Bytes of ``name`` on disk (file-system encoding, undecodable bytes kept)."""
    return len(os.fsencode(name))


def check_relpath(rel: object) -> str:
    """``rel`` if it is a usable output path relative to ``--out``, else UnsafePath."""
    if not isinstance(rel, str) or not rel:
        raise UnsafePath(f"{rel!r} is not a path")
    if len(rel) > REL_MAX or "\0" in rel:
        raise UnsafePath(f"{rel[:80]!r}… is over {REL_MAX} characters or holds a NUL")
    if rel.startswith("/"):
        raise UnsafePath(f"{rel!r} is absolute")
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"{rel!r} has a {part or 'empty'!r} component")
        try:
            if name_bytes(part) > NAME_MAX:
                raise UnsafePath(f"{part[:40]!r}… is over {NAME_MAX} bytes")
        except UnicodeEncodeError:
            raise UnsafePath(f"{rel!r} is not a file name of this system") from None
    return rel


def shorten(stem: str, excess: int) -> str:
    """``stem`` (a relative path) with whole characters removed from the end of its last
    component until it is ``excess`` bytes shorter (at least one character is kept)."""
    head, sep, name = stem.rpartition("/")
    target = name_bytes(name) - excess
    while len(name) > 1 and name_bytes(name) > target:
        name = name[:-1]
    return head + sep + name


def fit_outputs(make: Callable[[int], list[str]]) -> list[str]:
    """``make(0)`` (output paths made from a stem), or, when a file name in them is over
    :data:`NAME_MAX` bytes (a long input name plus ``_2`` or ``_right``), ``make(cut)`` with
    ``cut`` bytes taken off the stem."""
    cut, outs = 0, make(0)
    for _ in range(8):
        excess = max(name_bytes(o.rsplit("/", 1)[-1]) - NAME_MAX for o in outs)
        if excess <= 0:
            break
        cut += excess
        outs = make(cut)
    return outs


def prepare_parent(root: Path, rel: str, checked: set[str] | None = None) -> Path:
    """``root / rel`` once every folder between them exists as a real folder: created one at
    a time, never a symlink (EyepurifyError) or a file (NotADirectoryError). ``checked``:
    folders already checked in this run (skipped)."""
    check_relpath(rel)
    parts = rel.split("/")[:-1]
    cur = root
    for i, part in enumerate(parts):
        cur = cur / part
        key = "/".join(parts[: i + 1])
        if checked is not None and key in checked:
            continue
        try:
            os.mkdir(cur)
        except FileExistsError:
            pass
        st = os.lstat(cur)
        if stat.S_ISLNK(st.st_mode):
            raise EyepurifyError(f"{cur}: a symlink inside --out; eyepurify never writes through a link "
                                 "(remove the link, or choose another --out)")
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(cur))
        if checked is not None:
            checked.add(key)
    return root / rel


def parent_problem(root: Path, rel: str) -> str:
    """Why the existing folders of ``rel`` under ``root`` cannot be written into ("" if they
    can, or do not exist yet): a symlink, or a file where a folder is needed."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return ""
        if stat.S_ISLNK(st.st_mode):
            return f"{cur}: a symlink inside --out; eyepurify never writes through a link (remove the link, or choose another --out)"
        if not stat.S_ISDIR(st.st_mode):
            return ""  # a file in the way: the write names it (or the name is taken as x_2)
    return ""


def clean_temp_files(root: Path, token: str) -> int:
    """Remove the temp files the run with ``token`` left under ``root`` (a kill); returns how
    many. Only regular files named exactly as that run named them are removed."""
    pattern = temp_name_re(token)
    n = 0
    for folder, _, files in os.walk(root):
        for f in files:
            if pattern.fullmatch(f):
                p = os.path.join(folder, f)
                if stat.S_ISREG(os.lstat(p).st_mode):
                    os.unlink(p)
                    n += 1
    return n


class OutLock:
    """``--out/.eyepurify.lock``, held (``flock``) while this run writes into ``--out``."""

    def __init__(self, path: Path, fd: int, created: bool, previous: str | None) -> None:
        self.path, self.fd, self.created = path, fd, created
        #: the temp token of the run that held it before (a killed run), if it recorded one
        self.previous = previous

    @classmethod
    def acquire(cls, folder: Path) -> OutLock:
        """Take the lock of ``folder``; EyepurifyError naming the other process if a run holds it."""
        path = folder / LOCK_NAME
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(20):  # another run may remove the file between our open and our flock
            created = True
            try:
                try:
                    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, file_mode())
                except FileExistsError:
                    created = False
                    fd = os.open(path, flags)
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise EyepurifyError(f"{path}: is a symlink, not eyepurify's lock file (remove it, or choose another --out)") from None
                raise
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    raise EyepurifyError(f"{path}: is not eyepurify's lock file (a FIFO, device or hard link; "
                                         "remove it, or choose another --out)")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    m = _LOCK_RE.fullmatch(os.pread(fd, 64, 0).decode("ascii", "replace"))
                    who = f"pid {m.group(1)}" if m else "another process"
                    raise EyepurifyError(f"{folder}: another eyepurify run ({who}) is writing into this --out; "
                                         "wait for it to finish, or choose another --out") from None
                except OSError as e:  # a file system without locks (some network and FUSE mounts)
                    if e.errno not in _NO_LOCKS:
                        raise
                    print(f"eyepurify: warning: {path}: cannot lock ({e.strerror}); a second run into this --out "
                          "at the same time would not be noticed", file=sys.stderr)
                try:
                    now = os.lstat(path)
                except FileNotFoundError:
                    os.close(fd)
                    continue
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    os.close(fd)
                    continue
                m = _LOCK_RE.fullmatch(os.pread(fd, 64, 0).decode("ascii", "replace"))
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {TEMP_TOKEN}\n".encode(), 0)
                os.fsync(fd)
                return cls(path, fd, created, m.group(2) if m else None)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
        raise EyepurifyError(f"{path}: the lock file keeps changing; another program is using this --out (choose another --out)")

    def release(self, remove: bool = True) -> None:
        """Let go of the lock; ``remove``: delete the lock file first (if it is still ours)."""
        if self.fd < 0:
            return
        try:
            if remove:
                with contextlib.suppress(OSError):
                    now, mine = os.lstat(self.path), os.fstat(self.fd)
                    if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                        os.unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = -1

