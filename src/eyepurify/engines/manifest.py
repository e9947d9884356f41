"""The ``--out`` folder of a batch run and its manifest (``<out>/manifest.json``), neither
of which eyepurify trusts (README, Guarantees).

The rules, in one place:

* ``--out`` must be empty or new, unless ``--resume`` (continue the run its
  ``manifest.json`` records, with the same model and settings) or ``--overwrite`` (write
  into it anyway). Even then eyepurify replaces only files it wrote there itself (listed in
  the manifest) and never an input file: any other name is disambiguated (``x_2.png``).
* Output names are traceable: explicit image files keep their path relative to their
  common folder (``in/r100.jpg`` → ``r100.png``), folder datasets their file names,
  other datasets their indexed names (``ds_000012.png``); collisions get ``_2``, ``_3``;
  a file name is shortened to the 255 bytes a file system allows (:func:`fit_outputs`).
* The folders of an output path are created one at a time and each must be a real folder,
  never a symlink (:func:`prepare_parent`: nothing is written through a link out of ``--out``).
* :class:`OutLock`: ``--out/.eyepurify.lock``, held with ``flock`` while a run writes there, so
  two runs never share one ``--out`` (a crashed run's lock goes with its process). It records
  the run's pid and temp token (:data:`eyepurify.io.TEMP_TOKEN`): the next run removes that
  run's temp files (:func:`clean_temp_files`) and nothing else.
* Any failure on one input becomes that input's line in ``report.txt``.
* ``manifest.json`` is read as untrusted input (:func:`load_manifest`): a regular file (no
  symlink, FIFO or device) of at most :data:`MANIFEST_LIMIT` bytes, valid JSON, and every
  field eyepurify reads back of the type and size it writes (:func:`check_manifest`). Output
  paths must stay inside ``--out`` (:func:`check_relpath`); they only tell which files a run
  wrote, never where the next one writes (names come from the inputs, :meth:`Manifest.claim`).

A process that rewrites ``--out`` while a run writes there can still race these checks; that
needs write access to ``--out``, and the lock keeps other eyepurify runs out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from eyepurify.errors import DataError, EyepurifyError, one_line
from eyepurify.io import (
    TEMP_TOKEN,
    file_mode,
    printable,
    read_state_file,
    regular_file_sha256,
    temp_name_re,
    write_json,
    write_text,
)

# ---------------------------------------------------------------- manifest.json read back (untrusted)

#: Bytes in one file name (Linux, macOS and Windows file systems).
NAME_MAX = 255
#: Characters in an output path relative to ``--out``.
REL_MAX = 4096
#: 512 MiB: a manifest of 1.5 million items (MPIIGaze has 213,659 patches: ~40 MB).
MANIFEST_LIMIT = 512 << 20
STATUSES = ("pending", "done", "failed")
#: Outputs one item may have (purify writes 2, purify --faces --output crop of a video 3).
MAX_OUTPUTS = 16
#: Characters in an input, an item key or an error line.
MAX_TEXT = 8192
FIX = "delete it to start over, or choose another --out"
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


def _text(v: object, limit: int = MAX_TEXT) -> bool:
    return isinstance(v, str) and len(v) <= limit


def _numbers(v: object, n: int) -> bool:
    return (isinstance(v, list) and len(v) <= n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:59] + "…"


def _item_problem(key: str, it: object) -> str:
    """Why item ``key`` is not one eyepurify writes ("" when it is)."""
    if not isinstance(it, dict):
        return f"is a {type(it).__name__}, not an object"
    if it.get("status") not in STATUSES:
        return f"status is {_short(it.get('status'))}, not one of {', '.join(STATUSES)}"
    if not _text(it.get("input")):
        return f"input is {_short(it.get('input'))}, not a path"
    outs = it.get("outputs")
    if outs is not None:
        if not isinstance(outs, list) or not 1 <= len(outs) <= MAX_OUTPUTS:
            return f"outputs is {_short(outs)}, not a list of 1 to {MAX_OUTPUTS} paths"
        for o in outs:
            try:
                check_relpath(o)
            except UnsafePath as e:
                return f"output {e} (outputs stay inside --out)"
    for key in ("error", "resolved", "mask", "note", "frames_without_face"):
        if key in it and not _text(it[key]):
            return f"{key} is {_short(it[key])}, not a string"
    if "input_sha256" in it and not (it["input_sha256"] is None or (isinstance(it["input_sha256"], str)
                                                                    and _HEX64.fullmatch(it["input_sha256"]))):
        return f"input_sha256 is {_short(it['input_sha256'])}, not a SHA-256"
    for key in ("frames", "frames_declared"):
        v = it.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return f"{key} is {_short(v)}, not a frame count"
    labels = it.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            return f"labels is {_short(labels)}, not an object"
        if "source" in labels and not _text(labels["source"]):
            return f"labels.source is {_short(labels['source'])}, not a path"
        for field, n in (("gaze", 3), ("head_pose", 3), ("pupil_center", 2)):
            if labels.get(field) is not None and not _numbers(labels[field], n):
                return f"labels.{field} is {_short(labels[field])}, not up to {n} finite numbers"
    return ""


def check_manifest(path: object, data: object) -> dict[str, Any]:
    """``{"meta": ..., "items": ...}`` of a parsed manifest if it has eyepurify's schema, else a
    one-line DataError naming the file, the first bad field and the fix."""
    def bad(problem: str) -> DataError:
        return DataError(path, f"not an eyepurify manifest ({problem})", FIX)

    if not isinstance(data, dict):
        raise bad(f"a {type(data).__name__} instead of an object")
    items, meta = data.get("items"), data.get("meta", {})
    if not isinstance(items, dict):
        raise bad("no 'items' object")
    if not isinstance(meta, dict):
        raise bad("'meta' is not an object")
    if "settings" in meta and not isinstance(meta["settings"], dict):
        raise bad("'meta.settings' is not an object")
    for key, it in items.items():
        if not _text(key) or not key:
            raise bad(f"item key {_short(key)} is not a path")
        problem = _item_problem(key, it)
        if problem:
            raise bad(f"item {_short(key)}: {problem}")
    return {"meta": meta, "items": items}


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and check ``path`` (see the module docstring); DataError naming it when unusable."""
    raw = read_state_file(path, MANIFEST_LIMIT, "an eyepurify manifest", FIX)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise DataError(path, f"not an eyepurify manifest ({type(e).__name__}: {e})", FIX) from None
    return check_manifest(path, data)


# ---------------------------------------------------------------- --out and the manifest of a run

#: The lock file's name (at the top of ``--out``; hidden, removed when a run ends).
LOCK_NAME = ".eyepurify.lock"
_LOCK_RE = re.compile(r"(\d{1,10}) ([0-9a-f]{16})\n?")
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


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


def with_suffix(name: str, suffix: str) -> str:
    """``name`` (a relative POSIX path) with its suffix replaced."""
    return str(PurePosixPath(name).with_suffix(suffix))


#: Files every batch run writes at the top of ``--out``.
RESERVED = ("manifest.json", "report.txt", "index.csv")
_RESERVED_FOLDED = {n.casefold() for n in (*RESERVED, LOCK_NAME)}


def _tidy(name: str) -> str:
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", ".", "..", "")]
    if len(parts) > 1 and parts[0].casefold() in _RESERVED_FOLDED:
        parts[0] += "_"  # a dataset subfolder named like one of our files
    return "/".join(parts) or "output"


def _split_source(source: str) -> tuple[str, str]:
    """(file, "#entry") of a sample source (``data.h5#p00/3``; entry "" for a plain file)."""
    if os.path.lexists(source):
        return source, ""
    i = source.find("#")
    while i > 0:
        if os.path.lexists(source[:i]):
            return source[:i], source[i:]
        i = source.find("#", i + 1)
    return source, ""


@dataclass
class Manifest:
    """Per-output status, saved atomically as ``<out>/manifest.json`` after every change.

    Items: ``{key: {"input", "status" (pending | done | failed), "outputs", "error", ...}}``;
    ``key`` is an item's first output path (relative to ``out_dir``), or ``input:<path>``
    for an input that could not be listed. A done item also records its input's resolved
    path (``resolved``) and content hash (``input_sha256``): ``--resume`` takes it as done only
    while both match. Meta holds ``settings`` (model hash and the options that change
    outputs), compared on ``--resume``. The manifest on disk is untrusted
    (:func:`load_manifest`): output paths are always derived from the inputs.
    """

    out_dir: Path
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: relative paths eyepurify wrote or reserved here (the only files it may replace)
    ours: set[str] = field(default_factory=set)
    #: realpaths of the input files (never written over)
    inputs: set[str] = field(default_factory=set)
    #: held while this run writes into ``out_dir`` (:meth:`open`; released by :meth:`close`)
    lock: OutLock | None = None
    _owner: dict[str, str] = field(default_factory=dict)  # casefolded output -> its input, run being resumed
    _claimed: set[str] = field(default_factory=set)  # casefolded outputs claimed in this run
    _resolved: dict[str, tuple[str, str]] = field(default_factory=dict)  # source -> (resolved, its file)
    _hashes: dict[str, str | None] = field(default_factory=dict)  # realpath -> content SHA-256
    _folders: set[str] = field(default_factory=set)  # output folders checked in this run

    @property
    def path(self) -> Path:
        return self.out_dir / "manifest.json"

    @classmethod
    def open(
        cls,
        out_dir: Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        settings: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        inputs: Iterable[Path] = (),
    ) -> Manifest:
        """The guard on ``--out`` and the manifest to record the run in (see the module
        docstring). Refuses, with one line naming the folder and the fix, a file as
        ``--out``, a non-empty folder or one holding an input without ``--resume`` or
        ``--overwrite``, a resume with another model or other settings, a manifest that is
        not eyepurify's, and a folder another run is writing (its lock). Creates the folder,
        takes its lock (:class:`OutLock`; :meth:`close` lets go) and removes
        the temp files a killed run left there."""
        out_dir = Path(out_dir)
        settings = json.loads(json.dumps(settings or {}))
        m = cls(out_dir, meta={**(meta or {}), "settings": settings})
        inputs = list(inputs)
        for p in inputs:
            m._protect(Path(p))
        if os.path.lexists(out_dir) and not out_dir.is_dir():
            raise EyepurifyError(f"{out_dir}: --out is a file, not a folder (choose a folder path)")
        if not out_dir.is_dir():
            out_dir.mkdir(parents=True, exist_ok=True)  # (a run starting beside this one meets its lock)
        lock = OutLock.acquire(out_dir)
        try:
            m._take_over(resume, overwrite, settings, inputs)
        except BaseException:
            lock.release(remove=lock.created)
            raise
        m.lock = lock
        if lock.previous:
            clean_temp_files(out_dir, lock.previous)
        return m

    def _take_over(self, resume: bool, overwrite: bool, settings: dict[str, Any], inputs: list[Path]) -> None:
        """The checks of :meth:`open` on an existing ``--out`` (held locked), and what an
        earlier run's manifest says is eyepurify's there."""
        out_dir = self.out_dir
        entries = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_NAME)
        if not entries:
            return
        inside = sorted(str(p) for p in inputs if _is_within(p, out_dir))
        old = load_manifest(self.path) if os.path.lexists(self.path) else None
        if not (resume or overwrite):
            if inside:
                raise EyepurifyError(
                    f"{out_dir}: --out holds the input {inside[0]} (choose another --out; "
                    "--overwrite writes there without ever replacing an input)")
            if old is not None:
                raise EyepurifyError(
                    f"{out_dir} already holds results (manifest.json): pass --resume to continue, "
                    "--overwrite to start over, or choose another --out")
            raise EyepurifyError(
                f"{out_dir}: --out is not empty and eyepurify did not write it ({len(entries)} "
                f"entr{'y' if len(entries) == 1 else 'ies'}, "
                f"e.g. {printable(entries[0])!r}): choose an empty or new folder, or pass --overwrite "
                "(files eyepurify did not write are never replaced)")
        if old is None:
            if resume and not overwrite:
                raise EyepurifyError(
                    f"{out_dir}: nothing to resume (no manifest.json in this non-empty folder): "
                    "choose an empty or new --out, or pass --overwrite")
            foreign = [n for n in RESERVED if n in entries]
            if foreign:
                raise EyepurifyError(
                    f"{out_dir / foreign[0]}: exists and was not written by eyepurify (move it away "
                    "or choose another --out)")
            return
        old_items: dict[str, dict[str, Any]] = old["items"]
        for key, it in old_items.items():
            if key.startswith("input:"):
                continue
            outs = it.get("outputs") or []
            self.ours.update(outs)
            if resume and not overwrite:
                owner = self._item_input(it)
                for o in outs:
                    self._owner.setdefault(o.casefold(), owner)
        self.ours.update(RESERVED)
        if resume and not overwrite:
            self._check_settings(old.get("meta"), settings)
            self.meta = dict(old["meta"])
            self.items = {k: v for k, v in old_items.items() if not k.startswith("input:")}

    def _check_settings(self, old_meta: Any, settings: dict[str, Any]) -> None:
        old = old_meta.get("settings") if isinstance(old_meta, dict) else None
        if not isinstance(old, dict):
            raise EyepurifyError(
                f"{self.path}: records no model hash or settings (written by an older eyepurify), so "
                "--resume cannot check it would not mix two models: choose another --out or pass --overwrite")
        differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if differ:
            shown = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in differ[:3])
            raise EyepurifyError(one_line(
                f"{self.out_dir}: --resume with a different model or settings than the run that wrote it "
                f"({shown}): resume with the same ones, or choose another --out"))

    def _protect(self, p: Path) -> None:
        """Never write over input ``p``; for a dataset folder that overlaps ``--out``, over none
        of its files (outside ``--out`` no output path can reach them)."""
        self.inputs.add(os.path.realpath(p))
        if not (p.is_dir() and (_is_within(p, self.out_dir) or _is_within(self.out_dir, p))):
            return
        out_inside = _is_within(self.out_dir, p) and not _is_within(p, self.out_dir)
        for root, dirs, files in os.walk(p):
            if out_inside:
                dirs[:] = [d for d in dirs if not _is_within(Path(root) / d, self.out_dir)]
            for f in files:
                if not (Path(root) == self.out_dir and f in RESERVED):
                    self.inputs.add(os.path.realpath(Path(root) / f))

    def _file_of(self, source: str) -> tuple[str, str]:
        """(resolved source, resolved file) of a source, cached."""
        r = self._resolved.get(source)
        if r is None:
            file, entry = _split_source(source)
            real = os.path.realpath(file)
            r = self._resolved[source] = (real + entry, real)
        return r

    def resolve(self, source: str) -> str:
        """The identity of an input or sample source: its file's resolved path (+ ``#entry``),
        the same however the input was spelled (relative, absolute, through a link)."""
        return self._file_of(source)[0]

    def content_hash(self, source: str) -> str | None:
        """SHA-256 of the file a source is read from (None: not a regular file)."""
        real = self._file_of(source)[1]
        if real not in self._hashes:
            self._hashes[real] = regular_file_sha256(real)
        return self._hashes[real]

    def _item_input(self, it: dict[str, Any]) -> str:
        resolved = it.get("resolved")
        return resolved if isinstance(resolved, str) else self.resolve(str(it.get("input")))

    def _free(self, rel: str, owner: str) -> bool:
        folded = rel.casefold()
        if folded in self._claimed or rel.split("/", 1)[0].casefold() in _RESERVED_FOLDED:
            return False
        if self._owner.get(folded, owner) != owner:  # an output of another input of the run being resumed
            return False
        target = self.out_dir / rel
        if os.path.lexists(target) and rel not in self.ours:
            return False
        return os.path.realpath(target) not in self.inputs

    def claim(self, source: str, wanted: str, layout: Sequence[str] = ("{name}",)) -> list[str]:
        """The output paths (relative to ``out_dir``; the first is the item's key) for one
        input: ``layout`` filled in for ``wanted`` (templates: ``{name}`` the name, ``{png}`` it
        with suffix .png, ``{stem}`` it without suffix, e.g. ``("{name}", "masks/{png}")``),
        with ``_2``, ``_3``, ... before the suffix until each path is free: not claimed by
        another input (case-insensitively), not reserved, not an input file, not an existing
        file eyepurify did not write, and on ``--resume`` not an output of another input of the
        run being resumed. Names come from the inputs only, never from the manifest; a file
        name too long for the file system is shortened. The item is recorded as pending
        unless it is done already (:meth:`is_done`)."""
        owner = self.resolve(source)
        path = PurePosixPath(_tidy(wanted))
        stem, suffix = str(path.with_suffix("")), path.suffix
        k = 1
        while True:
            def make(cut: int, k: int = k) -> list[str]:
                s = shorten(stem, cut) if cut else stem
                name = f"{s}{suffix}" if k == 1 else f"{s}_{k}{suffix}"
                return [t.format(name=name, png=with_suffix(name, ".png"), stem=with_suffix(name, "")) for t in layout]

            outs = fit_outputs(make)
            if k == 1:
                for o in outs:
                    try:
                        problem = parent_problem(self.out_dir, check_relpath(o))
                    except UnsafePath as e:
                        raise DataError(source, f"no usable output name ({e})", "rename the input") from None
                    if problem:
                        raise EyepurifyError(problem)
            if all(self._free(o, owner) for o in outs):
                break
            k += 1
        self._claimed.update(o.casefold() for o in outs)
        self.ours.update(outs)
        key = outs[0]
        old = self.items.get(key)
        if not (old and old.get("status") == "done" and old.get("outputs") == outs and self._item_input(old) == owner):
            self.items[key] = {"input": source, "status": "pending", "outputs": outs}
        return outs

    def target(self, rel: str) -> Path:
        """Where output ``rel`` is written: ``out_dir / rel``, its folders created as real
        folders inside ``out_dir`` (:func:`prepare_parent`)."""
        return prepare_parent(self.out_dir, rel, self._folders)

    def is_done(self, key: str, source: str | None = None) -> bool:
        """True when ``key`` was finished (for ``source``, when given: the same file, by
        resolved path and content) and its outputs exist."""
        it = self.items.get(key)
        if not (it and it.get("status") == "done"):
            return False
        if source is not None and (self._item_input(it) != self.resolve(source)
                                   or it.get("input_sha256") != self.content_hash(source)):
            return False
        return all((self.out_dir / o).exists() for o in it.get("outputs") or [key])

    def mark(self, key: str, source: str, status: str, **extra: object) -> None:
        """Record ``key``'s status; a failed item gives up its output names, a done one
        records its input's identity (:meth:`resolve`, :meth:`content_hash`)."""
        outputs = self.items.get(key, {}).get("outputs")
        if status == "failed":
            outputs = None
        if status == "done":
            extra = {"resolved": self.resolve(source), "input_sha256": self.content_hash(source), **extra}
        self.items[key] = {"input": source, "status": status, **({"outputs": outputs} if outputs else {}), **extra}

    def fail_input(self, source: str, error: str) -> None:
        """Record an input that could not even be listed (missing, unsupported, unreadable folder)."""
        self.items[f"input:{source}"] = {"input": source, "status": "failed", "error": one_line(error)}

    def save(self) -> None:
        write_json(self.path, {"meta": self.meta, "items": self.items})

    def failures(self) -> list[tuple[str, str]]:
        return [
            (str(v.get("input")), str(v.get("error", "")))
            for v in self.items.values() if v.get("status") == "failed"
        ]

    def notes(self) -> list[tuple[str, str]]:
        """(input, note) of every done item that carries a note (e.g. no eye found)."""
        return [
            (str(v.get("input")), str(v["note"]))
            for v in self.items.values() if v.get("status") == "done" and v.get("note")
        ]

    def write_report(self) -> Path:
        """``report.txt``: one ``input<TAB>reason`` line per failed input, then one
        ``input<TAB>note: ...`` line per done input with a note (undecodable bytes of file
        names escaped, :func:`eyepurify.errors.printable`)."""
        lines = [f"{printable(one_line(src))}\t{printable(one_line(err))}" for src, err in self.failures()]
        lines += [f"{printable(one_line(src))}\tnote: {printable(one_line(note))}" for src, note in self.notes()]
        path = self.out_dir / "report.txt"
        write_text(path, "".join(line + "\n" for line in lines))
        return path

    def finish(self) -> Path:
        """Save the manifest and write the report; returns the report's path."""
        self.save()
        return self.write_report()

    def close(self) -> None:
        """Let go of ``--out`` (its lock file is removed): another run may write there now."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _is_within(p: Path, folder: Path) -> bool:
    a, b = os.path.realpath(p), os.path.realpath(folder)
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)


def unique_names(names: Iterable[str]) -> list[str]:
    """Deduplicate names in order by appending _2, _3, ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}_{k}")
    return out
