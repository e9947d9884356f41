"""The one batch engine of `purify` and `segment`: inputs, output names, the ``--out``
guard, the manifest (resume), chunked processing with skip-and-report, and the report.

The rules, in one place:

* ``--out`` must be empty or new, unless ``--resume`` (continue the run its
  ``manifest.json`` records, with the same model and settings) or ``--overwrite`` (write
  into it anyway). Even then eyepurify replaces only files it wrote there itself (listed in
  the manifest) and never an input file: any other name is disambiguated (``x_2.png``).
* Output names are traceable: explicit image files keep their path relative to their
  common folder (``in/r100.jpg`` → ``r100.png``), folder datasets their file names,
  other datasets their indexed names (``ds_000012.png``); collisions get ``_2``, ``_3``.
* A folder means the same to every command: a dataset opened by ``open_dataset`` (a plain
  image folder, ``images/`` + ``masks/``, or any known format).
* Any failure on one input becomes that input's line in ``report.txt``.

:func:`plan` claims the outputs of every input (and keeps one ``--shard``'s),
:func:`run_batch` processes them with a :class:`Job` (:class:`PurifyJob`,
:class:`SegmentJob`) in bounded chunks, as :class:`EngineOptions` say: locally with decode
ahead of and encode/write behind the forward passes (``--io threads``, the default), one
step after the other (``--io serial``), or on Ray Data (``--engine ray``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from eyepurify.errors import DataError, EyepurifyError, one_line
from eyepurify.io import (
    IMAGE_SUFFIXES,
    not_a_file_reason,
    printable,
    read_image,
    read_mask,
    regular_file_sha256,
    write_image,
    write_json,
    write_text,
)
from eyepurify.manifest_file import load_manifest
from eyepurify.outdir import (
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
from eyepurify.progress import progress_bar
from eyepurify.sample import EyeSample
from eyepurify.shard import in_shard

if TYPE_CHECKING:
    from eyepurify.eyescale import Box
    from eyepurify.purify import Purified, Purifier
    from eyepurify.segment import Segmenter

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v")
#: single-file dataset formats, by suffix (a damaged one is then reported by its loader)
DATASET_SUFFIXES = {".h5": "mpiigaze-h5", ".hdf5": "mpiigaze-h5", ".he5": "mpiigaze-h5"}
#: Files every batch run writes at the top of ``--out``.
RESERVED = ("manifest.json", "report.txt", "index.csv")
NO_EYE_NOTE = "no eye found where the segmenter looked: written unchanged (give --masks, or crop the photo around the eye)"
_RESERVED_FOLDED = {n.casefold() for n in (*RESERVED, LOCK_NAME)}


@dataclass(frozen=True)
class InputItem:
    """One thing to process: an image file, a video file or a dataset (folder or file);
    "missing" carries the reason it cannot be used."""

    kind: str  # "image" | "video" | "dataset" | "missing"
    path: Path
    reason: str = ""


def _classify(p: Path) -> InputItem:
    if p.is_dir():
        return InputItem("dataset", p)
    if not os.path.lexists(p):
        return InputItem("missing", p, "no such file or folder")
    why = not_a_file_reason(p)
    if why:
        return InputItem("missing", p, why)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return InputItem("video", p)
    if suffix in IMAGE_SUFFIXES:
        return InputItem("image", p)
    if suffix in DATASET_SUFFIXES:
        return InputItem("dataset", p)
    try:  # a dataset file (an MPIIGaze HDF5 export)
        from eyepurify.data.detect import detect_format

        detect_format(p)
        return InputItem("dataset", p)
    except Exception:
        return InputItem("missing", p, f"unsupported file type {suffix or '(no suffix)'} "
                         f"(images: {' '.join(IMAGE_SUFFIXES)}; videos: {' '.join(VIDEO_SUFFIXES)}; "
                         "datasets: folders or .h5 files)")


def expand_inputs(inputs: list[str]) -> list[InputItem]:
    """Files, folders and globs → items in a stable order (globs sorted, repeats dropped: the
    same file however spelled, by its resolved path)."""
    items: list[InputItem] = []
    seen: set[str] = set()
    for raw in inputs:
        if re.search(r"[*?\[]", raw) and not os.path.lexists(raw):
            paths = [Path(p) for p in sorted(glob.glob(raw))]
            if not paths:
                items.append(InputItem("missing", Path(raw), "the pattern matched no files"))
        else:
            paths = [Path(raw)]
        for p in paths:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                items.append(_classify(p))
    return items


def dataset_format(path: Path, fmt: str | None = None) -> str | None:
    """``fmt``, else the format a dataset file's suffix names (``.h5``), else None (detect)."""
    return fmt or (DATASET_SUFFIXES.get(path.suffix.lower()) if path.is_file() else None)


def safe_name(source: str) -> str:
    """A file-name-safe id from a sample source ("p01/day03/0001 left" → "p01_day03_0001_left")."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("._")
    return s or "sample"


def relative_names(paths: list[Path]) -> list[str]:
    """POSIX paths of files relative to their deepest common folder (just the file names
    when they share one): ``a/d/x.png b/d/x.png`` → ``a/d/x.png b/d/x.png``."""
    absolute = [os.path.abspath(p) for p in paths]
    if not absolute:
        return []
    base = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [PurePosixPath(*Path(os.path.relpath(a, base)).parts).as_posix() for a in absolute]


def with_suffix(name: str, suffix: str) -> str:
    """``name`` (a relative POSIX path) with its suffix replaced."""
    return str(PurePosixPath(name).with_suffix(suffix))


def describe_failure(e: BaseException, where: str) -> str:
    """The one-line report reason for an input that failed with ``e``, naming ``where``."""
    msg = str(e) if isinstance(e, EyepurifyError) else f"{type(e).__name__}: {e}"
    if where not in msg:
        msg = f"{where}: {msg}"
    return one_line(msg)


def is_run_error(e: BaseException) -> bool:
    """True for errors about the run rather than one input (a wrong setting, a model that
    cannot be used): they stop the batch with exit 2 instead of failing one input."""
    return isinstance(e, EyepurifyError) and not isinstance(e, DataError)


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
    (:mod:`eyepurify.manifest_file`): output paths are always derived from the inputs.
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
        takes its lock (:class:`eyepurify.outdir.OutLock`; :meth:`close` lets go) and removes
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
        folders inside ``out_dir`` (:func:`eyepurify.outdir.prepare_parent`)."""
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


# ---------------------------------------------------------------- the batch engine

#: Decoded pixels held at once before a forward pass: a chunk closes early when it reaches
#: this, so memory stays bounded however large the photos (each is processed at the eye scale).
CHUNK_PIXELS = 16_000_000
#: Output layouts (templates for :meth:`Manifest.claim`): purify writes the purified image and
#: the label map it used, segment the label map and its overlay on the image.
IMAGE_LAYOUT = ("{name}", "masks/{png}")
LABEL_LAYOUT = ("labels/{png}", "overlays/{png}")


@dataclass
class Unit:
    """One image of a batch run: its manifest key and output paths, its source, how to load
    it, the names its label map may have inside ``--masks``, where it is (for reports)."""

    key: str
    source: str
    load: Callable[[], EyeSample]
    outputs: list[str]
    mask_names: tuple[str, ...] = ()
    where: str = ""
    from_dataset: bool = False
    #: its loader may run on several threads at once (files; not a dataset holding an open file)
    thread_safe: bool = True


@dataclass
class Loaded:
    """A loaded unit: its sample and the label map to use with it (None: predict one), and
    where that map came from ("file", "dataset" or "")."""

    unit: Unit
    sample: EyeSample
    mask: np.ndarray | None = None
    mask_source: str = ""


class ItemFailed(Exception):
    """Raised by a job's ``write`` for an item it cannot finish; the message is its report line."""


class Job(Protocol):
    """What the engine runs: load a unit (may run on a decoding thread), process a chunk in
    one call, and turn one result into its output images (``[(path relative to --out,
    uint8 image)]``, written in that order; the engine encodes and writes them) and the
    manifest fields of the done item."""

    desc: str

    def load(self, unit: Unit) -> Loaded: ...
    def run(self, items: list[Loaded]) -> list[Any]: ...
    def outputs(self, item: Loaded, result: Any) -> tuple[list[tuple[str, np.ndarray]], dict[str, object]]: ...


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _image_units(items: list[InputItem], manifest: Manifest, layout: Sequence[str]) -> list[Unit]:
    """Explicit image files: named by their path relative to their common folder."""
    units = []
    for it, rel in zip(items, relative_names([it.path for it in items]), strict=True):
        path = it.path
        outs = manifest.claim(str(path), with_suffix(rel, ".png"), layout)
        units.append(Unit(
            outs[0], str(path), lambda path=path: EyeSample(image=read_image(path), source=str(path)),
            outs, _unique((with_suffix(rel, ".png"), path.stem + ".png")), str(path),
        ))
    return units


#: Loader options that give a dataset's samples as they are filed (Columbia patches at their own
#: 64×64 instead of a 36×60 crop): the purifier finds the eye itself, and ``--output full``
#: keeps the input's size.
AS_FILED: dict[str, dict[str, object]] = {"columbia": {"crop": None}}


def _filed_name(source: Path, root: Path) -> str:
    """A dataset sample's output name: its file's path relative to the dataset root, as .png."""
    try:
        rel = source.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = source.name
    return with_suffix(rel, ".png")


def _dataset_units(path: Path, fmt: str | None, manifest: Manifest, layout: Sequence[str], labels: bool) -> list[Unit]:
    """Every sample of a dataset: a plain image folder keeps its file names, any other
    format its indexed names (``<dataset>_000012.png``). ``labels`` False: a folder's
    ``masks/`` are not read (an image without one is then no bad sample)."""
    from eyepurify.data import open_dataset
    from eyepurify.data.detect import detect_format
    from eyepurify.data.folder import FORMAT as FOLDER
    from eyepurify.data.folder import ImageFolder

    fmt = dataset_format(path, fmt) or detect_format(path)
    ds = open_dataset(path, format=fmt, **({"masks": False} if not labels and fmt == FOLDER else {}),
                      **AS_FILED.get(fmt, {}))
    root = Path(getattr(ds, "image_dir", path))
    for b in ds.bad:
        manifest.fail_input(b.path, b.reason)
    base = path.name if path.is_dir() else path.stem
    units = []
    for i in range(len(ds)):
        source = ds.source_of(i)  # the file (or file#entry): traceable, and stable when files are added
        if isinstance(ds, ImageFolder):
            rel = ds.files[i].relative_to(ds.image_dir).as_posix()
            wanted, stem = with_suffix(rel, ".png"), ds.files[i].stem + ".png"
        elif "#" not in source and os.path.isfile(source):  # a sample with its own file keeps its name
            wanted, stem = _filed_name(Path(source), root), Path(source).stem + ".png"
        else:  # indexed names for samples without a file of their own (.mat/.h5 entries, frames)
            wanted = f"{base}_{i:06d}.png"
            stem = wanted if "#" in source else Path(source).stem + ".png"
        outs = manifest.claim(source, wanted, layout)
        units.append(Unit(outs[0], source, lambda i=i: ds.get_checked(i), outs, _unique((wanted, stem)),
                          source, from_dataset=True, thread_safe=isinstance(ds, ImageFolder)))
    return units


def keep_shard(manifest: Manifest, shard: tuple[int, int] | None) -> set[str] | None:
    """``--shard K/N`` (:mod:`eyepurify.shard`): once every input's names are claimed, drop
    the manifest items outside the shard and return the keys kept (None: no shard, all)."""
    if shard is None:
        return None
    keep = in_shard(list(manifest.items), shard)
    manifest.items = {k: v for k, v in manifest.items.items() if k in keep}
    return keep


def plan(
    items: list[InputItem],
    manifest: Manifest,
    layout: Sequence[str],
    *,
    fmt: str | None = None,
    labels: bool = True,
    videos: str | None = None,
    missing: str = "no such image, video or folder",
    shard: tuple[int, int] | None = None,
) -> tuple[list[Unit], list[tuple[InputItem, str]]]:
    """Claim output names for every input (image files first, then datasets, videos, in
    input order): (image units, [(video, its output key)]). Inputs that cannot be used
    become failed lines: ``missing`` is the reason for a missing one; ``videos`` not None
    is the reason videos are refused (else they are claimed under their own names).
    ``shard`` (K, N): names are claimed over all inputs (as in one unsharded run), then
    only the K-th of N parts of the items is kept (:func:`keep_shard`)."""
    units = _image_units([it for it in items if it.kind == "image"], manifest, layout)
    found_videos = []
    for it in items:
        if it.kind == "missing":
            manifest.fail_input(str(it.path), f"{it.path}: {it.reason or missing}")
        elif it.kind == "dataset":
            try:
                units += _dataset_units(it.path, fmt, manifest, layout, labels)
            except Exception as e:
                manifest.fail_input(str(it.path), describe_failure(e, str(it.path)))
        elif it.kind == "video":
            if videos is not None:
                manifest.fail_input(str(it.path), f"{it.path}: {videos}")
            else:
                outs = manifest.claim(str(it.path), with_suffix(it.path.name, it.path.suffix.lower()))
                found_videos.append((it, outs[0]))
    keep = keep_shard(manifest, shard)
    if keep is not None:
        units = [u for u in units if u.key in keep]
        found_videos = [(it, key) for it, key in found_videos if key in keep]
    return units, found_videos


def _fail(manifest: Manifest, u: Unit, e: Exception) -> None:
    if is_run_error(e):
        raise e
    manifest.mark(u.key, u.source, "failed", error=describe_failure(e, u.where))


_FAILED = object()
#: The manifest (all items, rewritten whole) is saved at most this often while ``--io
#: threads`` runs, and at the end: items done since the last save are redone by --resume.
MANIFEST_EVERY_S = 2.0


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`run_batch` runs a job.

    io: ``threads`` decodes ahead of the forward passes (:func:`eyepurify.pipeline.prefetch`;
    one decoding thread for datasets that hold an open file) and encodes and writes behind
    them (:class:`eyepurify.pipeline.GroupWriter`: PNG level 1, one disk flush per chunk),
    the manifest saved at most every ``manifest_every_s``; ``serial``: one step after the
    other, PNG at the default level, an fsync per file, the manifest saved after every
    chunk (the old path, kept for benchmarks). engine: ``local`` or ``ray``
    (:mod:`eyepurify.engines.ray_engine`: ``address`` the cluster, ``workers`` the actors,
    ``remote_job`` a picklable callable that builds the job inside each worker).
    """

    io: str = "threads"
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    remote_job: Callable[[], Job] | None = None
    manifest_every_s: float = MANIFEST_EVERY_S


def run_chunk(job: Job, items: list[Loaded]) -> tuple[list[Any], list[tuple[Loaded, Exception]]]:
    """``job.run`` on a chunk, one item at a time when the chunk fails (so one bad image
    fails alone): (results, with ``_FAILED`` for failed items; [(item, its error)]). A run
    error (:func:`is_run_error`) is raised."""
    try:
        return job.run(items), []
    except Exception as e:
        if is_run_error(e):
            raise
    results: list[Any] = []
    failed: list[tuple[Loaded, Exception]] = []
    for it in items:
        try:
            results.append(job.run([it])[0])
        except Exception as e1:
            if is_run_error(e1):
                raise
            failed.append((it, e1))
            results.append(_FAILED)
    return results, failed


def _finish_chunk(job: Job, pending: list[Loaded], out: Path, manifest: Manifest, writer: Any = None) -> None:
    """Process one chunk and write the results: here (``writer`` None), or queued on
    ``writer`` (a GroupWriter; marked done by :func:`_collect` once on disk). Write errors
    (disk full, permissions) stop the run."""
    results, failed = run_chunk(job, pending)
    for it, e in failed:
        _fail(manifest, it.unit, e)
    files: list[tuple[Path, np.ndarray]] = []
    marks: list[tuple[str, str, dict[str, object]]] = []
    for it, r in zip(pending, results, strict=True):
        if r is _FAILED:
            continue
        try:
            outputs, extra = job.outputs(it, r)
        except ItemFailed as e:
            manifest.mark(it.unit.key, it.unit.source, "failed", error=str(e))
            continue
        if writer is None:
            for rel, image in outputs:
                write_image(manifest.target(rel), image)
            manifest.mark(it.unit.key, it.unit.source, "done", **extra)
        else:
            files += [(manifest.target(rel), image) for rel, image in outputs]
            marks.append((it.unit.key, it.unit.source, extra))
    if writer is not None and marks:
        writer.submit(files, marks)


def _collect(writer: Any, manifest: Manifest, wait: bool = False, keep: int = 1) -> None:
    """Mark the items of every chunk ``writer`` has committed as done (with ``wait``: all
    but the newest ``keep`` chunks are waited for)."""
    for marks in writer.done(wait=wait, keep=keep):
        for key, source, extra in marks:
            manifest.mark(key, source, "done", **extra)


def _run_local(todo: list[Unit], job: Job, out: Path, manifest: Manifest, batch: int, chunk_pixels: int,
               opts: EngineOptions) -> None:
    from eyepurify.pipeline import GroupWriter, prefetch

    serial = opts.io == "serial"
    writer = None if serial else GroupWriter()
    saved, save_cost = time.monotonic(), 0.0
    # several decoding threads for files; one (still ahead of inference) for datasets that
    # keep a file open and seek in it (HDF5, videos), which must not be read concurrently
    workers = 0 if serial else 2 if all(u.thread_safe for u in todo) else 1
    loaded = prefetch(todo, job.load, workers=workers, ahead=2 * batch)
    pending: list[Loaded] = []
    pixels = 0
    try:
        for u, res in progress_bar(loaded, total=len(todo), desc=job.desc, unit="image"):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                _fail(manifest, u, res)
                continue
            pending.append(res)
            pixels += res.sample.image.shape[0] * res.sample.image.shape[1]
            if len(pending) >= batch or pixels >= chunk_pixels:
                _finish_chunk(job, pending, out, manifest, writer)
                if writer is not None:
                    _collect(writer, manifest, wait=True, keep=1)  # one chunk in flight behind this one
                # a manifest of N items costs O(N) to write: wait 20× its last cost between saves,
                # so saving stays under ~5 % of the run at any size (213,659 patches: ~40 MB)
                if serial or time.monotonic() - saved >= max(opts.manifest_every_s, 20 * save_cost):
                    t = time.monotonic()
                    manifest.save()
                    saved = time.monotonic()
                    save_cost = saved - t
                pending, pixels = [], 0
        if pending:
            _finish_chunk(job, pending, out, manifest, writer)
        if writer is not None:
            _collect(writer, manifest, wait=True, keep=0)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):  # chunks already on disk count (resume); the error is what counts
                _collect(writer, manifest, wait=True, keep=0)
            writer.close()


def run_batch(units: list[Unit], job: Job, out: Path, manifest: Manifest, batch: int,
              chunk_pixels: int = CHUNK_PIXELS, options: EngineOptions | None = None) -> int:
    """The batch engine: load, process and write every unit not done yet, in chunks of
    ``batch`` images (or fewer, up to ``chunk_pixels`` decoded pixels), as ``options`` say
    (:class:`EngineOptions`; default: local, ``io="threads"``), saving the manifest as it
    goes; any failure on one input becomes its failed item. Returns how many units were
    done already (a resumed run)."""
    opts = options or EngineOptions()
    if opts.io not in ("threads", "serial"):
        raise EyepurifyError(f"unknown --io {opts.io!r}: choose threads or serial")
    todo = [u for u in units if not manifest.is_done(u.key, u.source)]
    manifest.save()
    if opts.engine == "ray":
        from eyepurify.engines.ray_engine import run_with_ray

        run_with_ray(todo, job, out, manifest, batch, opts)
    elif opts.engine == "local":
        _run_local(todo, job, out, manifest, batch, chunk_pixels, opts)
    else:
        raise EyepurifyError(f"unknown --engine {opts.engine!r}: choose local or ray")
    manifest.save()
    return len(units) - len(todo)


def label_fields(s: EyeSample) -> dict[str, object]:
    """The labels of a dataset sample that go into the manifest (and index.csv)."""
    d: dict[str, object] = {"source": s.source}
    if s.gaze is not None:
        d["gaze"] = [float(v) for v in s.gaze]
    if s.head_pose is not None:
        d["head_pose"] = [float(v) for v in s.head_pose]
    if s.pupil_center is not None:
        d["pupil_center"] = [float(v) for v in s.pupil_center]
    return d


class PurifyJob:
    """``purify``: a chunk is one :meth:`eyepurify.purify.Purifier.process` call; writes the
    purified image (or, ``crop``, the normalised eye patch) and the label map it used.

    masks: folder of label maps named like the inputs (``--masks``); predict_masks: ignore
    a dataset's own labels and segment instead.
    """

    desc = "purify"

    def __init__(self, purifier: Purifier, crop: bool = False, masks: str | os.PathLike[str] | None = None,
                 predict_masks: bool = False) -> None:
        self.purifier, self.crop, self.predict_masks = purifier, crop, predict_masks
        self.masks = Path(masks) if masks else None

    def _find_mask(self, names: tuple[str, ...]) -> Path:
        assert self.masks is not None
        for n in names:
            if (self.masks / n).is_file():
                return self.masks / n
        raise DataError(self.masks / names[0], "no label map for this input",
                        f"add {' or '.join(names)} to --masks, or drop --masks")

    def load(self, unit: Unit) -> Loaded:
        smp = unit.load()
        if self.masks is not None:
            return Loaded(unit, smp, read_mask(self._find_mask(unit.mask_names), smp.image.shape[:2]), "file")
        if smp.labels is not None and not self.predict_masks:
            return Loaded(unit, smp, smp.labels, "dataset")
        return Loaded(unit, smp)

    def run(self, items: list[Loaded]) -> list[Purified]:
        return self.purifier.process([it.sample.image for it in items], [it.mask for it in items])

    def outputs(self, item: Loaded, result: Purified) -> tuple[list[tuple[str, np.ndarray]], dict[str, object]]:
        u = item.unit
        files = [(u.outputs[0], result.crop if self.crop else result.image)]
        extra: dict[str, object] = {}
        m = result.crop_labels if self.crop else result.labels
        if m is not None:
            files.append((u.outputs[1], np.asarray(m, dtype=np.uint8)))
            extra["mask"] = item.mask_source or "predicted"
        if result.box is not None:
            extra["box"] = result.box.to_list()
            extra["eye_found"] = result.eye_found
            if not result.eye_found:
                extra["note"] = NO_EYE_NOTE
        if u.from_dataset:
            extra["labels"] = label_fields(item.sample)
        return files, extra


class SegmentJob:
    """``segment``: a chunk is one :meth:`eyepurify.segment.Segmenter.predict_normalised`
    call; writes the label map and its overlay, and records the fitted pupil centre."""

    desc = "segment"

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    def load(self, unit: Unit) -> Loaded:
        return Loaded(unit, unit.load())

    def run(self, items: list[Loaded]) -> list[tuple[np.ndarray, np.ndarray, Box | None, bool]]:
        return self.segmenter.predict_normalised([it.sample.image for it in items])

    def outputs(self, item: Loaded, result: tuple[np.ndarray, np.ndarray, Box | None, bool]
                ) -> tuple[list[tuple[str, np.ndarray]], dict[str, object]]:
        from eyepurify.labels import fit_pupil, overlay

        lab, _, box, found = result
        key, ov_key = item.unit.outputs
        try:
            fit = fit_pupil(lab)
            ov = overlay(item.sample.image, lab)
        except Exception as e:
            raise ItemFailed(describe_failure(e, item.unit.source)) from None
        files = [(ov_key, ov), (key, lab)]  # the label map last: its existence marks the item done
        extra: dict[str, object] = {"overlay": ov_key}
        if box is not None:
            extra.update(box=box.to_list(), eye_found=found)
        if fit is not None:
            extra.update(pupil_center=[float(v) for v in fit.center], pupil_method=fit.method)
        return files, extra
