"""The manifest of a batch run (``<out>/manifest.json``) and the guard on ``--out``.

The rules, in one place:

* ``--out`` must be empty or new, unless ``--resume`` (continue the run its
  ``manifest.json`` records, with the same model and settings) or ``--overwrite`` (write
  into it anyway). Even then eyepurify replaces only files it wrote there itself (listed in
  the manifest) and never an input file: any other name is disambiguated (``x_2.png``).
* Output names are traceable: explicit image files keep their path relative to their
  common folder (``in/r100.jpg`` → ``r100.png``), folder datasets their file names,
  other datasets their indexed names (``ds_000012.png``); collisions get ``_2``, ``_3``.
* Any failure on one input becomes that input's line in ``report.txt``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from eyepurify.engines.inputs import with_suffix
from eyepurify.engines.manifest_file import load_manifest
from eyepurify.engines.outdir import (
    LOCK_NAME,
    OutLock,
    UnsafePath,
    check_relpath,
    clean_temp_files,
    fit_outputs,
    parent_problem,
    prepare_parent,
    shorten,
)
from eyepurify.errors import DataError, EyepurifyError, one_line
from eyepurify.io import printable, regular_file_sha256, write_json, write_text

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
    (:mod:`eyepurify.engines.manifest_file`): output paths are always derived from the inputs.
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
        takes its lock (:class:`eyepurify.engines.outdir.OutLock`; :meth:`close` lets go) and removes
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
        folders inside ``out_dir`` (:func:`eyepurify.engines.outdir.prepare_parent`)."""
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
