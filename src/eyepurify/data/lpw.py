"""Labelled Pupils in the Wild (LPW, Tonsen et al., ETRA 2016): eye videos + pupil centres.

Layout: ``<root>/<subject>/<n>.avi`` with ``<n>.txt`` beside it (22 subjects, 66 videos at
about 95 fps). The published ``.txt`` has one line per video frame, "x y" in pixels of that
frame (e.g. "334.00 305.00"; seen in devshank3/LPW_pupil_tracking
``results/exp_1/1_orig.txt``). Also read: three columns "frame x y" (the first column must
count frames 0.. or 1..), and commas instead of spaces. A row with a non-finite or negative
coordinate means "no pupil" (``pupil_center`` None). ``root`` may also be one subject folder.

Every frame is a sample: image (H×W×3 RGB), ``pupil_center`` (x, y), no gaze or labels,
source "subject/n#frame". Frames are counted with CAP_PROP_FRAME_COUNT, checked by reading
the last claimed frame, and recounted by reading every frame when that fails; a count that
differs from the txt rows is reported in ``bad`` and the smaller one is used. Videos are read
with OpenCV's MJPEG-AVI reader when it opens them (exact, fast seeks) and FFmpeg otherwise.
Random access keeps the last video open, grabs forward for short skips and seeks
(CAP_PROP_POS_FRAMES, verified) otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError
from eyepurify.sample import EyeSample

FORMAT = "lpw"

_VIDEO_SUFFIXES = (".avi",)


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def read_pupil_txt(path: Path) -> np.ndarray:
    """An LPW pupil file -> (N, 2) float (x, y) per frame; NaN rows where there is no pupil.

    Raises DataError naming the file for unreadable text, ragged rows or an unknown layout.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise DataError(path, "file not found", "each <n>.avi needs its <n>.txt of pupil centres") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read pupil file ({type(e).__name__})", "it must be plain text 'x y' per frame") from None
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rows.append([float(t) for t in re.split(r"[,\s;]+", line.strip(",; "))])
        except ValueError:
            raise DataError(path, f"line {k} is not numbers: {line[:60]!r}", "each line must be 'x y' (pixels)") from None
    if not rows:
        raise DataError(path, "no pupil rows", "each line must be 'x y' (pixels)")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataError(path, f"rows have different numbers of columns {sorted(widths)}", "each line must be 'x y'")
    a = np.array(rows, dtype=np.float64)
    if a.shape[1] == 3:
        first = a[:, 0]
        start = first[0] if np.isfinite(first[0]) else -1
        if start not in (0, 1) or not np.array_equal(first, np.arange(start, start + len(a))):
            raise DataError(path, "3 columns but the first is not a frame index 0.. or 1..",
                            "use 'x y' per line, or 'frame x y'")
        a = a[:, 1:]
    elif a.shape[1] != 2:
        raise DataError(path, f"{a.shape[1]} columns per line", "use 'x y' per line, or 'frame x y'")
    a[~np.all(np.isfinite(a) & (a >= 0), axis=1)] = np.nan
    return a


# OpenCV's own MJPEG-AVI reader seeks exactly and fast (about 4 ms per random frame at
# 640×480, against about 50 ms for FFmpeg's seek); other codecs fall back to FFmpeg.
_BACKENDS = (cv2.CAP_OPENCV_MJPEG, cv2.CAP_ANY)
_MAX_GRAB_AHEAD = 16


def _open_capture(path: Path, api: int | None = None) -> tuple[cv2.VideoCapture, int]:
    """(an opened capture, the backend used); ``api`` None tries the MJPEG reader first."""
    for a in (_BACKENDS if api is None else (api,)):
        cap = cv2.VideoCapture(str(path), a)
        if cap.isOpened() and (a == cv2.CAP_ANY or cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0):
            return cap, a
        cap.release()
    raise DataError(path, "cannot open video", "the file is corrupt, truncated or not a video; re-download it")


def _count(path: Path, api: int | None = None) -> tuple[int, int, int]:
    cap, api = _open_capture(path, api)
    try:
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if claimed > 0 and cap.set(cv2.CAP_PROP_POS_FRAMES, claimed - 1):
            if cap.read()[0] and not cap.grab():
                return claimed, claimed, api
    finally:
        cap.release()
    cap, api = _open_capture(path, api)
    try:
        actual = 0
        while cap.read()[0]:
            actual += 1
    finally:
        cap.release()
    if actual == 0:
        raise DataError(path, "no decodable frames", "the file is corrupt or truncated; re-download it")
    return claimed, actual, api


def count_frames(path: Path) -> tuple[int, int]:
    """(frames the header claims, frames that can be read) of one video.

    The claim is trusted when its last frame reads and the one after does not; otherwise
    every frame is read. DataError when the video cannot be opened or has no frames.
    """
    claimed, actual, _ = _count(Path(path))
    return claimed, actual


@dataclass(frozen=True)
class _Video:
    path: Path
    subject: str
    pupils: np.ndarray  # (n, 2), NaN where no pupil
    api: int  # the OpenCV backend that counted the frames (reads use the same one)

    @property
    def n(self) -> int:
        return len(self.pupils)


def _video_files(folder: Path) -> list[Path]:
    try:
        return sorted((p for p in folder.iterdir() if p.suffix.lower() in _VIDEO_SUFFIXES and p.is_file()),
                      key=_natural_key)
    except OSError:
        return []


def _subject_dirs(root: Path) -> list[Path]:
    if _video_files(root):
        return [root]
    try:
        subs = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted((p for p in subs if _video_files(p)), key=_natural_key)


def sniff(path: Path) -> bool:
    """True for a folder of <subject>/<n>.avi + <n>.txt (or one such subject folder)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for d in _subject_dirs(path)[:3]:
        if any(v.with_suffix(".txt").is_file() for v in _video_files(d)):
            return True
    return False


class LPWDataset(EyeDataset):
    """Every frame of every LPW video, with its pupil centre.

    root: the LPW folder (subject sub-folders) or one subject folder.
    subjects: keep only these subject folder names (e.g. ["1", "4"]); None for all.
    """

    format_name = FORMAT

    def __init__(self, root: Path, subjects: list[str] | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder", "give the LPW folder (<subject>/<n>.avi + <n>.txt)")
        dirs = _subject_dirs(self.root)
        if subjects is not None:
            unknown = sorted(set(subjects) - {d.name for d in dirs})
            if unknown:
                raise DataError(self.root, f"no subject folders {unknown}", f"choose from {[d.name for d in dirs]}")
            dirs = [d for d in dirs if d.name in set(subjects)]
        self.videos: list[_Video] = []
        for d in dirs:
            for avi in _video_files(d):
                self._index(avi, d.name)
        if not self.videos:
            why = f" ({len(self.bad)} skipped, first: {self.bad[0].reason})" if self.bad else ""
            raise DataError(self.root, f"no readable <n>.avi + <n>.txt pairs{why}",
                            "give the LPW folder (<subject>/<n>.avi + <n>.txt)")
        self._starts = np.cumsum([0] + [v.n for v in self.videos])
        self._cap: cv2.VideoCapture | None = None
        self._cap_path: Path | None = None
        self._next = 0

    def _index(self, avi: Path, subject: str) -> None:
        try:
            pupils = read_pupil_txt(avi.with_suffix(".txt"))
            _, frames, api = _count(avi)
        except DataError as e:
            self.bad.append(BadFile(e.path, str(e)))
            return
        n = min(frames, len(pupils))
        if frames != len(pupils):
            self.bad.append(BadFile(str(avi), (
                f"{avi}: {frames} readable frames but {avi.with_suffix('.txt').name} has "
                f"{len(pupils)} rows; using the first {n}")))
        self.videos.append(_Video(avi, subject, pupils[:n], api))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _frame(self, v: _Video, k: int) -> np.ndarray:
        if self._cap_path != v.path or self._cap is None:
            self.close()
            self._cap, self._cap_path = _open_capture(v.path, v.api)[0], v.path
        cap = self._cap
        if 0 <= self._next < k <= self._next + _MAX_GRAB_AHEAD:
            while self._next < k and cap.grab():
                self._next += 1
        if k != self._next:
            if not (cap.set(cv2.CAP_PROP_POS_FRAMES, k) and int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == k):
                # Seeking is inexact for this file: read forward from the start instead.
                self.close()
                self._cap, self._cap_path = _open_capture(v.path, v.api)[0], v.path
                cap = self._cap
                for _ in range(k):
                    if not cap.grab():
                        break
        ok, bgr = cap.read()
        self._next = k + 1
        if not ok or bgr is None:
            self._next = -1
            raise DataError(f"{v.path}#{k}", "cannot decode frame", "the video is corrupt or truncated; re-download it")
        if bgr.ndim == 2:
            return np.repeat(bgr[:, :, None], 3, axis=2)
        return np.ascontiguousarray(bgr[:, :, 2::-1])

    def __getitem__(self, index: int) -> EyeSample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        vi = int(np.searchsorted(self._starts, index, side="right")) - 1
        v, k = self.videos[vi], index - int(self._starts[vi])
        image = self._frame(v, k)
        p = v.pupils[k]
        pupil = None if np.isnan(p).any() else p.copy()
        return EyeSample(image=image, pupil_center=pupil, source=f"{v.subject}/{v.path.stem}#{k}")

    def close(self) -> None:
        """Release the open video (reopened on the next access)."""
        if self._cap is not None:
            self._cap.release()
        self._cap, self._cap_path, self._next = None, None, 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_cap=None, _cap_path=None, _next=0)
        return state


def open_dataset(path: Path, **kw: Any) -> LPWDataset:
    """Open an LPW folder (option: subjects)."""
    return LPWDataset(Path(path), **kw)
