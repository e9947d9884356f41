"""A folder written by ``eyepurify render``: ``index.csv`` plus one UnityEyes-style
sub-folder per domain (``indoor/``, ``wild/``).

Opened whole it is every domain in ``index.csv`` order; ``domains=("wild",)`` (or the
sub-folder path itself, e.g. ``rd/wild``) selects one.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify.data.base import EyeDataset
from eyepurify.errors import DataError
from eyepurify.sample import EyeSample

FORMAT = "render"
DOMAINS = ("indoor", "wild")


def render_domains(path: Path) -> list[str]:
    """Domain sub-folders of a render folder, in ``index.csv`` order ([] when it is not one)."""
    index = Path(path) / "index.csv"
    if not index.is_file():
        return []
    try:
        with open(index, newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if "domain" not in header:
        return []
    return [d for d in DOMAINS if (Path(path) / d).is_dir()]


def wild_profiles(path: Path) -> list[str]:
    """The wild profiles (``eyepurify render --wild-profile``) recorded in a render folder's
    ``index.csv``, sorted; ["v1"] for folders written before the column existed (all v1),
    [] when it is not a render folder."""
    if not render_domains(path):
        return []
    try:
        with open(Path(path) / "index.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not rows or "wild_profile" not in rows[0]:
        return ["v1"]
    return sorted({r["wild_profile"] or "v1" for r in rows})


def sniff(path: Path) -> bool:
    return Path(path).is_dir() and bool(render_domains(path))


class RenderFolder(EyeDataset):
    """The concatenation of a render folder's domain datasets."""

    format_name = FORMAT

    def __init__(self, path: Path, domains: Sequence[str] | None = None) -> None:
        super().__init__()
        from eyepurify.data.unityeyes import open_dataset as open_unityeyes

        path = Path(path)
        have = render_domains(path)
        if not have:
            raise DataError(path, "not a render folder (no index.csv with a domain column)", "pass a folder written by `eyepurify render`")
        chosen = list(have if domains is None else domains)
        for d in chosen:
            if d not in have:
                raise DataError(path, f"has no {d!r} domain (it has {', '.join(have)})", f"pass {path}/<domain> or choose from {have}")
        self.domains = chosen
        self.wild_profiles = wild_profiles(path)
        self.parts = [open_unityeyes(path / d) for d in chosen]
        for p in self.parts:
            self.bad.extend(p.bad)
        self._starts = [0]
        for p in self.parts:
            self._starts.append(self._starts[-1] + len(p))

    def __len__(self) -> int:
        return self._starts[-1]

    def _part(self, index: int) -> tuple[EyeDataset, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect.bisect_right(self._starts, index) - 1
        return self.parts[k], index - self._starts[k]

    def source_of(self, index: int) -> str:
        part, i = self._part(index)
        return part.source_of(i)

    def __getitem__(self, index: int) -> EyeSample:
        part, i = self._part(index)
        return part[i]


def open_dataset(path: Path, domains: Sequence[str] | None = None) -> RenderFolder:
    return RenderFolder(Path(path), domains)


@dataclass
class PairedRenders:
    """The paired domains of a render folder, sample i the same draw in both: ``wild`` and
    ``indoor`` uint8 N×H×W×3, ``labels`` uint8 N×H×W, ``gaze`` float64 N×3 unit vectors
    (None when a sample has none), ``sources`` the wild files."""

    wild: np.ndarray
    indoor: np.ndarray
    labels: np.ndarray
    gaze: np.ndarray | None
    sources: list[str]

    def __len__(self) -> int:
        return len(self.wild)


def load_pairs(root: str | Path, size: tuple[int, int] | None = None, limit: int | None = None) -> PairedRenders:
    """The first ``limit`` (all when None) draws of a render folder written with ``--domain both``,
    resized to ``size`` = (H, W) when given (images by the :mod:`eyepurify.imaging` policy,
    labels nearest). DataError when the folder lacks either domain or the two disagree."""
    from eyepurify.imaging import resize_image, resize_labels

    root = Path(root)
    have = render_domains(root)
    if set(have) != set(DOMAINS):
        raise DataError(root, f"is not a paired render folder (domains: {', '.join(have) or 'none'})",
                        "render one with `eyepurify render --domain both`")
    wild, indoor = open_dataset(root, ("wild",)), open_dataset(root, ("indoor",))
    n = min(len(wild), len(indoor)) if limit is None else min(len(wild), len(indoor), limit)
    if n == 0:
        raise DataError(root, "has no paired samples", "render some with `eyepurify render --domain both`")
    ws, ins, labs, gazes, srcs = [], [], [], [], []
    for i in range(n):
        a, b = indoor[i], wild[i]
        if a.labels is None or a.image.shape != b.image.shape:
            raise DataError(root, f"sample {i}: indoor and wild renders do not pair up", "re-render the folder")
        im_w, im_i, lab = b.image, a.image, a.labels
        if size is not None and tuple(im_w.shape[:2]) != tuple(size):
            im_w, im_i, lab = resize_image(im_w, size), resize_image(im_i, size), resize_labels(lab, size)
        ws.append(im_w)
        ins.append(im_i)
        labs.append(lab)
        gazes.append(a.gaze)
        srcs.append(b.source)
    gaze = None if any(g is None for g in gazes) else np.asarray(gazes, np.float64)
    return PairedRenders(np.stack(ws), np.stack(ins), np.stack(labs), gaze, srcs)
