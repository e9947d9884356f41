"""Batch-job plumbing shared by `purify` and `segment`: inputs, manifest, resume, report."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import IMAGE_SUFFIXES, write_json, write_text

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v")


@dataclass(frozen=True)
class InputItem:
    """One thing to process: an image file, a video file or a dataset folder."""

    kind: str  # "image" | "video" | "dataset" | "missing"
    path: Path


def expand_inputs(inputs: list[str]) -> list[InputItem]:
    """Files, folders and globs → items in a stable order (globs sorted)."""
    items: list[InputItem] = []
    for raw in inputs:
        paths = [Path(p) for p in sorted(glob.glob(raw))] if re.search(r"[*?\[]", raw) else [Path(raw)]
        if not paths:
            items.append(InputItem("missing", Path(raw)))
        for p in paths:
            if p.is_dir():
                items.append(InputItem("dataset", p))
            elif p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
                items.append(InputItem("video", p))
            elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                items.append(InputItem("image", p))
            elif p.is_file():
                items.append(InputItem("missing", p))  # unsupported suffix, reported
            else:
                items.append(InputItem("missing", p))
    return items


def safe_name(source: str) -> str:
    """A file-name-safe id from a sample source ("p01/day03/0001 left" → "p01_day03_0001_left")."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("._")
    return s or "sample"


@dataclass
class Manifest:
    """Per-output status, saved atomically as ``<out>/manifest.json`` after every change."""

    out_dir: Path
    items: dict[str, dict[str, object]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out_dir / "manifest.json"

    @classmethod
    def open(cls, out_dir: Path, resume: bool, meta: dict[str, object]) -> Manifest:
        """A new manifest, or the existing one with ``resume``; refuses to overwrite results."""
        m = cls(out_dir, meta=meta)
        if m.path.exists():
            if not resume:
                raise EyepurifyError(
                    f"{out_dir} already holds results (manifest.json): pass --resume to continue "
                    "or choose another --out"
                )
            try:
                data = json.loads(m.path.read_text())
                m.items = dict(data["items"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(m.path, f"unreadable manifest ({e})", "delete it to start over") from None
        return m

    def is_done(self, key: str) -> bool:
        it = self.items.get(key)
        return bool(it and it.get("status") == "done" and (self.out_dir / key).exists())

    def mark(self, key: str, source: str, status: str, **extra: object) -> None:
        self.items[key] = {"input": source, "status": status, **extra}

    def save(self) -> None:
        write_json(self.path, {"meta": self.meta, "items": self.items})

    def failures(self) -> list[tuple[str, str]]:
        return [
            (str(v.get("input")), str(v.get("error", "")))
            for v in self.items.values() if v.get("status") == "failed"
        ]

    def write_report(self) -> Path:
        lines = [f"{src}\t{err}" for src, err in self.failures()]
        path = self.out_dir / "report.txt"
        write_text(path, "".join(line + "\n" for line in lines))
        return path


def unique_names(names: Iterator[str] | list[str]) -> list[str]:
    """Deduplicate names in order by appending _2, _3, ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}_{k}")
    return out
