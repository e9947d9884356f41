"""Batch-job plumbing shared by `purify` and `segment`: inputs, output names, the ``--out``
guard, the manifest (resume) and the report.

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

import glob
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from eyepurify.errors import DataError, EyepurifyError, one_line
from eyepurify.io import IMAGE_SUFFIXES, not_a_file_reason, write_json, write_text

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v")
#: single-file dataset formats, by suffix (a damaged one is then reported by its loader)
DATASET_SUFFIXES = {".h5": "mpiigaze-h5", ".hdf5": "mpiigaze-h5", ".he5": "mpiigaze-h5"}
#: Files every batch run writes at the top of ``--out``.
RESERVED = ("manifest.json", "report.txt", "index.csv")
_TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")  # our atomic-write temp files


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
    """Files, folders and globs → items in a stable order (globs sorted, repeats dropped)."""
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
            key = os.path.abspath(p)
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
    return "/".join(parts) or "output"


@dataclass
class Manifest:
    """Per-output status, saved atomically as ``<out>/manifest.json`` after every change.

    Items: ``{key: {"input", "status" (pending | done | failed), "outputs", "error", ...}}``;
    ``key`` is an item's first output path (relative to ``out_dir``), or ``input:<path>``
    for an input that could not be listed. Meta holds ``settings`` (model hash and the
    options that change outputs), compared on ``--resume``.
    """

    out_dir: Path
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: relative paths eyepurify wrote or reserved here (the only files it may replace)
    ours: set[str] = field(default_factory=set)
    #: realpaths of the input files (never written over)
    inputs: set[str] = field(default_factory=set)
    _previous: dict[str, list[str]] = field(default_factory=dict)  # input -> outputs, earlier run
    _kept: set[str] = field(default_factory=set)  # casefolded outputs of the run being resumed
    _claimed: set[str] = field(default_factory=set)  # casefolded outputs claimed in this run

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
        ``--overwrite``, and a resume with another model or other settings. Creates the folder."""
        out_dir = Path(out_dir)
        settings = json.loads(json.dumps(settings or {}))
        m = cls(out_dir, meta={**(meta or {}), "settings": settings})
        inputs = list(inputs)
        for p in inputs:
            m._protect(Path(p))
        if os.path.lexists(out_dir) and not out_dir.is_dir():
            raise EyepurifyError(f"{out_dir}: --out is a file, not a folder (choose a folder path)")
        if not out_dir.is_dir():
            out_dir.mkdir(parents=True)
            return m
        entries = sorted(p.name for p in out_dir.iterdir())
        inside = sorted(str(p) for p in inputs if _is_within(p, out_dir))
        old = m._load() if m.path.exists() else None
        if not entries:
            return m
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
                f"e.g. {entries[0]!r}): choose an empty or new folder, or pass --overwrite "
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
            return m
        m._clean_temp_files()
        old_items: dict[str, dict[str, Any]] = old["items"]
        for key, it in old_items.items():
            outs = [str(o) for o in it.get("outputs") or ([key] if it.get("status") == "done" else [])]
            m.ours.update(outs)
            if outs and "input" in it:
                m._previous[str(it["input"])] = outs
        m.ours.update(RESERVED)
        if resume and not overwrite:
            m._check_settings(old.get("meta"), settings)
            m.meta = dict(old["meta"])
            m.items = {k: v for k, v in old_items.items() if not k.startswith("input:")}
            for outs in m._previous.values():
                m._kept.update(o.casefold() for o in outs)
        return m

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("items"), dict):
                raise ValueError("no 'items' object")
            if not all(isinstance(v, dict) for v in data["items"].values()):
                raise ValueError("an item is not an object")
            if not isinstance(data.get("meta", {}), dict):
                raise ValueError("'meta' is not an object")
        except OSError as e:
            raise DataError(self.path, f"cannot read the manifest ({e.strerror or e})", "check its permissions") from None
        except (ValueError, RecursionError) as e:
            raise DataError(self.path, f"not an eyepurify manifest ({type(e).__name__}: {e})",
                            "delete it to start over, or choose another --out") from None
        return data

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

    def _clean_temp_files(self) -> None:
        """Remove temp files of an earlier run's atomic writes that a kill left behind."""
        for root, _, files in os.walk(self.out_dir):
            for f in files:
                p = Path(root) / f
                if _TEMP_RE.match(f) and p.is_file() and not p.is_symlink():
                    p.unlink()

    def _free(self, rel: str) -> bool:
        folded = rel.casefold()
        if folded in self._claimed or folded in self._kept or rel.split("/", 1)[0] in RESERVED:
            return False
        target = self.out_dir / rel
        if os.path.lexists(target) and rel not in self.ours:
            return False
        return os.path.realpath(target) not in self.inputs

    def claim(self, source: str, wanted: str, layout: Sequence[str] = ("{name}",)) -> list[str]:
        """The output paths (relative to ``out_dir``; the first is the item's key) for one
        input: those it had in the manifest (resume, --overwrite), else ``layout`` filled in
        for ``wanted`` (templates: ``{name}`` the name, ``{png}`` it with suffix .png, e.g.
        ``("{name}", "masks/{png}")``), with ``_2``, ``_3``, ... before the suffix until each
        path is free: not claimed by another input (case-insensitively), not reserved, not an
        input file, and not an existing file eyepurify did not write. The item is recorded as
        pending."""
        outs = self._previous.get(source)
        if not outs or any(
            o.casefold() in self._claimed or os.path.realpath(self.out_dir / o) in self.inputs for o in outs
        ):
            path = PurePosixPath(_tidy(wanted))
            stem, suffix = str(path.with_suffix("")), path.suffix
            k = 1
            while True:
                name = f"{stem}{suffix}" if k == 1 else f"{stem}_{k}{suffix}"
                outs = [t.format(name=name, png=with_suffix(name, ".png")) for t in layout]
                if all(self._free(o) for o in outs):
                    break
                k += 1
        self._claimed.update(o.casefold() for o in outs)
        self.ours.update(outs)
        key = outs[0]
        old = self.items.get(key)
        if not (old and old.get("input") == source and old.get("status") == "done"):
            self.items[key] = {"input": source, "status": "pending", "outputs": outs}
        return outs

    def is_done(self, key: str, source: str | None = None) -> bool:
        """True when ``key`` was finished (for ``source``, when given) and its outputs exist."""
        it = self.items.get(key)
        if not (it and it.get("status") == "done"):
            return False
        if source is not None and it.get("input") != source:
            return False
        return all((self.out_dir / o).exists() for o in it.get("outputs") or [key])

    def mark(self, key: str, source: str, status: str, **extra: object) -> None:
        """Record ``key``'s status; a failed item gives up its output names."""
        outputs = self.items.get(key, {}).get("outputs")
        if status == "failed":
            outputs = None
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

    def write_report(self) -> Path:
        """``report.txt``: one ``input<TAB>reason`` line per failed input."""
        lines = [f"{one_line(src)}\t{one_line(err)}" for src, err in self.failures()]
        path = self.out_dir / "report.txt"
        write_text(path, "".join(line + "\n" for line in lines))
        return path

    def finish(self) -> Path:
        """Save the manifest and write the report; returns the report's path."""
        self.save()
        return self.write_report()


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
