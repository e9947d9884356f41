"""SynthesEyes renders (Wood et al., ICCV 2015): ``<model>/<stem>.png`` + ``<stem>.pkl``.

Published layout (project page, cl.cam.ac.uk/research/rainbow/projects/syntheseyes): ten
folders f01..m05, one per eye-region model, each with 120×80 PNG renders such as
``f01_36_0.1963_-0.7854.png`` and a pickle of the same stem holding a dict:

- ``look_vec``: 3-D gaze direction in camera space;
- ``head_pose``: 3×3 rotation, world space -> camera space;
- ``ldmks``: dict of ``ldmks_lids_2d``, ``ldmks_iris_2d``, ``ldmks_pupil_2d`` (screen
  space, image pixels) and ``ldmks_*_3d`` (camera space).

The pickles are untrusted input and are read with :func:`safe_pickle.safe_load` (no code
runs). A PNG without a pickle is still a sample (image only). Alpha is dropped (the
published renders are opaque).

Decisions, unverified against the .pkl files (none are in the shared data):
- 2-D landmarks are (x, y) pixels with y down (as public code draws them on the image);
  a third column, if any, is ignored. ``pupil_center`` is the mean of ``ldmks_pupil_2d``.
- ``look_vec`` is read in the Blender/OpenGL camera frame (x right, y up, z towards the
  viewer), so the camera-frame gaze (x right, y down, z forward) is (x, -y, -z).
- ``head_pose`` is not converted (the head model's axes are not published): None.
- The two numbers in the file name are not interpreted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.data.base import EyeDataset
from eyepurify.data.safe_pickle import safe_load
from eyepurify.errors import DataError
from eyepurify.io import read_image
from eyepurify.sample import EyeSample

FORMAT = "syntheseyes"

_NAME_RE = re.compile(r"^[fm]\d{2}_\d+_-?\d+\.\d+_-?\d+\.\d+\.png$", re.IGNORECASE)
_LANDMARKS = {"ldmks_lids_2d": "lids", "ldmks_iris_2d": "iris", "ldmks_pupil_2d": "pupil"}
_SNIFF_LIMIT = 64


def look_vec_to_gaze(look_vec: np.ndarray) -> np.ndarray:
    """SynthesEyes look_vec (3,) (OpenGL camera frame) -> unit camera-frame gaze (3,)."""
    v = np.asarray(look_vec, dtype=np.float64).reshape(-1)[:3]
    g = np.array([v[0], -v[1], -v[2]])
    n = np.linalg.norm(g)
    if not (np.all(np.isfinite(g)) and n > 0):
        raise ValueError("look_vec must be finite and non-zero")
    return g / n


def gaze_to_look_vec(gaze: np.ndarray) -> np.ndarray:
    """Inverse of :func:`look_vec_to_gaze`: camera-frame gaze (3,) -> unit look_vec (3,)."""
    g = np.asarray(gaze, dtype=np.float64)
    g = g / np.linalg.norm(g)
    return np.array([g[0], -g[1], -g[2]])


def _png_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".png" and p.is_file())


def sniff(path: Path) -> bool:
    """True for a folder whose first PNGs are named like SynthesEyes renders or have a .pkl."""
    path = Path(path)
    if not path.is_dir():
        return False
    seen = 0
    for dirpath, _, files in os.walk(path):
        for f in sorted(files):
            if not f.lower().endswith(".png"):
                continue
            if _NAME_RE.match(f) or (Path(dirpath) / f).with_suffix(".pkl").is_file():
                return True
            seen += 1
            if seen >= _SNIFF_LIMIT:
                return False
    return False


def _points(value: Any, key: str, path: Path) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(path, f"ldmks.{key} is not a numeric array", "re-export the labels") from None
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 1 or not np.all(np.isfinite(a[:, :2])):
        raise DataError(path, f"ldmks.{key} must be a (K, 2) or (K, 3) finite array, got shape {a.shape}",
                        "re-export the labels")
    return np.ascontiguousarray(a[:, :2])


def parse_labels(data: Any, path: Path) -> dict[str, Any]:
    """A SynthesEyes label dict -> {"gaze": (3,) or None, "landmarks": {...}, "pupil_center": (2,) or None}.

    Raises DataError naming ``path`` and the field for malformed fields.
    """
    if not isinstance(data, dict):
        raise DataError(path, f"labels must be a dict, got {type(data).__name__}", "re-export the labels")
    gaze = None
    if "look_vec" in data:
        lv = np.asarray(data["look_vec"], dtype=np.float64).reshape(-1) if _is_numeric(data["look_vec"]) else None
        if lv is None or lv.size not in (3, 4):
            raise DataError(path, "look_vec must have 3 (or 4) numbers", "re-export the labels")
        try:
            gaze = look_vec_to_gaze(lv)
        except ValueError as e:
            raise DataError(path, f"look_vec: {e}", "re-export the labels") from None
    landmarks: dict[str, np.ndarray] = {}
    ldmks = data.get("ldmks")
    if ldmks is not None:
        if not isinstance(ldmks, dict):
            raise DataError(path, f"ldmks must be a dict, got {type(ldmks).__name__}", "re-export the labels")
        for key, name in _LANDMARKS.items():
            if key in ldmks:
                landmarks[name] = _points(ldmks[key], key, path)
    pupil = landmarks["pupil"].mean(axis=0) if "pupil" in landmarks else None
    return {"gaze": gaze, "landmarks": landmarks, "pupil_center": pupil}


def _is_numeric(value: Any) -> bool:
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        return False
    return a.dtype.kind in "iuf"


class SynthesEyesDataset(EyeDataset):
    """Every PNG under ``root`` (sorted), with labels from its ``.pkl`` when present."""

    format_name = FORMAT

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder", "give the SynthesEyes folder (with f01.. or PNGs)")
        self.files = _png_files(self.root)
        if not self.files:
            raise DataError(self.root, "no PNG files found", "give the SynthesEyes folder (f01/, f02/ ...)")

    def __len__(self) -> int:
        return len(self.files)

    def source_of(self, index: int) -> str:
        return str(self.files[index])

    def __getitem__(self, index: int) -> EyeSample:
        png = self.files[index]
        image = read_image(png)
        source = png.relative_to(self.root).as_posix()
        pkl = png.with_suffix(".pkl")
        if not pkl.is_file():
            return EyeSample(image=image, source=source)
        labels = parse_labels(safe_load(pkl), pkl)
        return EyeSample(
            image=image, gaze=labels["gaze"], pupil_center=labels["pupil_center"],
            landmarks=labels["landmarks"], source=source,
        )


def open_dataset(path: Path, **kw: Any) -> SynthesEyesDataset:
    """Open a SynthesEyes folder (any depth of sub-folders)."""
    if kw:
        raise TypeError(f"syntheseyes takes no options, got {sorted(kw)}")
    return SynthesEyesDataset(Path(path))


__all__ = [
    "FORMAT", "SynthesEyesDataset", "gaze_to_look_vec", "look_vec_to_gaze",
    "open_dataset", "parse_labels", "sniff",
]
