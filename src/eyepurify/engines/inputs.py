"""What a batch run is given: files, folders and globs expanded into input items, and the
names outputs take from them.

A folder means the same to every command: a dataset opened by ``open_dataset`` (a plain
image folder, ``images/`` + ``masks/``, or any known format); ``purify --faces`` reads the
photos and videos inside it instead.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from eyepurify.io import IMAGE_SUFFIXES, not_a_file_reason

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v")
#: single-file dataset formats, by suffix (a damaged one is then reported by its loader)
DATASET_SUFFIXES = {".h5": "mpiigaze-h5", ".hdf5": "mpiigaze-h5", ".he5": "mpiigaze-h5"}


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

