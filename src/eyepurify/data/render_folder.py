"""A folder written by ``eyepurify render``: ``index.csv`` plus one UnityEyes-style
sub-folder per domain (``indoor/``, ``wild/``).

Opened whole it is every domain in ``index.csv`` order; ``domains=("wild",)`` (or the
sub-folder path itself, e.g. ``rd/wild``) selects one.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify.data.base import EyeDataset
from eyepurify.errors import DataError
from eyepurify.io import write_image
from eyepurify.sample import EyeSample

FORMAT = "render"
DOMAINS = ("indoor", "wild")


def folder_domains(path: Path) -> list[str]:
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
    if not folder_domains(path):
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
    return Path(path).is_dir() and bool(folder_domains(path))


class RenderFolder(EyeDataset):
    """The concatenation of a render folder's domain datasets."""

    format_name = FORMAT

    def __init__(self, path: Path, domains: Sequence[str] | None = None) -> None:
        super().__init__()
        from eyepurify.data.unityeyes import open_dataset as open_unityeyes

        path = Path(path)
        have = folder_domains(path)
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
    have = folder_domains(root)
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


# ---------------------------------------------------------------- labelled render folders

#: eye width of :func:`write_renders` relative to the renderer's (0.55–0.78 of the width →
#: 0.39–0.55, like real eye photos: median 0.47)
RENDER_EYE_SCALE = 0.7


def write_renders(folder: Path, n: int, size: tuple[int, int], seed: int) -> Path:
    """Write ``n`` indoor renders (eye width × RENDER_EYE_SCALE) as folder/images + masks PNGs."""
    from eyepurify.data.render import render_batch, sample_params

    rng = np.random.default_rng([seed, 71])
    params = []
    for _ in range(n):
        p = sample_params(rng)
        params.append(dataclasses.replace(p, eye_width_frac=p.eye_width_frac * RENDER_EYE_SCALE))
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, s in enumerate(render_batch(params, size, "indoor")):
        write_image(tmp / "images" / f"r{i:05d}.png", s.image)
        assert s.labels is not None
        write_image(tmp / "masks" / f"r{i:05d}.png", s.labels)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def write_wild_fixture(folder: Path, n: int, size: tuple[int, int], seed: int) -> Path:
    """Tiny stand-in for real photos (--quick without data): wild renders + masks."""
    from eyepurify.data.render import render_batch, sample_params

    rng = np.random.default_rng([seed, 73])
    params = [sample_params(rng) for _ in range(n)]
    for i, s in enumerate(render_batch(params, size, "wild")):
        write_image(folder / "images" / f"w{i:03d}.png", s.image)
        assert s.labels is not None
        write_image(folder / "masks" / f"w{i:03d}.png", s.labels)
    return folder
