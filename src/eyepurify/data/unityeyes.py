"""UnityEyes renders: a folder of ``N.jpg`` (or ``.png``) images with ``N.json`` annotations.

The JSON conventions (y flip, look_vec axes, head-pose wrap, pupil size) live in
:mod:`eyepurify.data.unityeyes_spec`; this module only reads files and applies them.
JSON values are parsed with a literal parser, never evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from eyepurify.data import unityeyes_spec as spec
from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError, read_error
from eyepurify.io import read_image
from eyepurify.sample import EyeSample

FORMAT = "unityeyes"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
REQUIRED_KEYS = ("interior_margin_2d", "caruncle_2d", "iris_2d", "eye_details", "head_pose")
_SNIFF_BYTES = 65536
_FIX = "re-export the annotation from UnityEyes or remove the pair"


def _sort_key(p: Path) -> tuple[int, int, str]:
    return (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)


def sniff(path: Path) -> bool:
    """True when ``path`` is a folder whose first ``*.json`` looks like a UnityEyes annotation."""
    path = Path(path)
    if not path.is_dir():
        return False
    jsons = sorted((p for p in path.glob("*.json") if not p.name.startswith(".")), key=_sort_key)
    if not jsons:
        return False
    try:
        with open(jsons[0], "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    return b'"interior_margin_2d"' in head or b'"iris_2d"' in head


def _key_error(path: Path, key: str, problem: str) -> DataError:
    return DataError(path, f"key {key!r}: {problem}", _FIX)


def _get(data: dict[str, Any], path: Path, key: str) -> Any:
    """Look up a dotted key ("eye_details.look_vec") or raise DataError naming it."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _key_error(path, key, "missing")
        node = node[part]
    return node


def _numbers(data: dict[str, Any], path: Path, key: str, count: int | None = None) -> tuple[float, ...]:
    try:
        values = spec.parse_tuple(_get(data, path, key))
    except ValueError as e:
        raise _key_error(path, key, str(e)) from None
    if count is not None and len(values) < count:
        raise _key_error(path, key, f"needs {count} numbers, got {len(values)}")
    return values


def _points(data: dict[str, Any], path: Path, key: str, height: int, at_least: int) -> np.ndarray:
    items = _get(data, path, key)
    if not isinstance(items, list) or len(items) < at_least:
        n = len(items) if isinstance(items, list) else type(items).__name__
        raise _key_error(path, key, f"expected a list of at least {at_least} points, got {n}")
    try:
        if any(len(spec.parse_tuple(s)) < 2 for s in items):
            raise ValueError("a point has fewer than 2 numbers")
        return spec.points_from_json(items, height)
    except ValueError as e:
        raise _key_error(path, key, str(e)) from None


def read_annotation(path: Path) -> dict[str, Any]:
    """Read a UnityEyes JSON file as a dict; DataError (naming the file) on bad syntax."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(path, "file not found", "check the path") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON (line {e.lineno} column {e.colno}: {e.msg})", _FIX) from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)", _FIX) from None
    except (ValueError, UnicodeDecodeError) as e:
        why = "a number with thousands of digits" if "digits" in str(e) else f"{type(e).__name__}: {e}"
        raise DataError(path, f"invalid JSON ({why})", _FIX) from None
    except OSError as e:
        raise read_error(path, e) from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}", _FIX)
    return data


def parse_annotation(data: dict[str, Any], path: Path, height: int) -> dict[str, Any]:
    """Labels of one UnityEyes annotation for an image of ``height`` rows (image pixels).

    Returns a dict with "interior_margin" (16, 2), "caruncle" (7, 2), "iris" (32, 2),
    "pupil" (32, 2) outlines as (x, y) floats, "gaze" (3,) unit vector, "head_pose" (2,)
    radians and "pupil_center" (2,) (x, y): the renderer's exact "eyepurify.pupil_center"
    when present, else the mean of the pupil outline. Raises DataError naming ``path`` and
    the key for missing or malformed values.
    """
    margin = _points(data, path, "interior_margin_2d", height, 3)
    caruncle = _points(data, path, "caruncle_2d", height, 1)
    iris = _points(data, path, "iris_2d", height, 3)
    try:
        gaze = spec.look_vec_to_gaze(_numbers(data, path, "eye_details.look_vec", 3))
    except ValueError as e:
        raise _key_error(path, "eye_details.look_vec", str(e)) from None
    head_pose = spec.head_pose_from_unity(_numbers(data, path, "head_pose", 2))
    pupil_size = _numbers(data, path, "eye_details.pupil_size", 1)[0]
    pupil = spec.pupil_outline(iris, spec.pupil_radius_ratio(pupil_size))
    center = pupil.mean(axis=0)
    extra = data.get("eyepurify")
    if isinstance(extra, dict) and "pupil_center" in extra:
        pc = extra["pupil_center"]
        ok = isinstance(pc, list) and len(pc) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300 and np.isfinite(float(v))
            for v in pc
        )
        if not ok:
            raise _key_error(path, "eyepurify.pupil_center", f"expected [x, y] numbers, got {str(pc)[:40]}")
        center = np.array(pc, dtype=np.float64)
    return {
        "interior_margin": margin, "caruncle": caruncle, "iris": iris, "pupil": pupil,
        "gaze": gaze, "head_pose": head_pose, "pupil_center": center,
    }


def crop_matrix(margin: np.ndarray, out_size: tuple[int, int], scale: float) -> np.ndarray:
    """2×3 affine matrix mapping source pixels to an (H, W) crop around an eye.

    The crop is centred on the mean of the interior-margin points, its width is ``scale``
    × the largest distance between two margin points (the eye-corner distance) and its
    height keeps the output's aspect ratio H/W. Pixel centres sit at integer coordinates.
    """
    h, w = out_size
    m = np.asarray(margin, dtype=np.float64)
    diff = m[:, None, :] - m[None, :, :]
    width = scale * float(np.sqrt((diff**2).sum(-1)).max())
    if not width > 0:
        raise ValueError("interior margin has zero extent")
    s = w / width
    cx, cy = m.mean(axis=0)
    return np.array([[s, 0.0, (w - 1) / 2 - s * cx], [0.0, s, (h - 1) / 2 - s * cy]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(K, 2) points -> (K, 2) points under a 2×3 affine matrix."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ matrix[:, :2].T + matrix[:, 2]


class UnityEyesDataset(EyeDataset):
    """UnityEyes image/JSON pairs of one folder, as full images or eye crops.

    path: the folder holding ``N.jpg`` (or .jpeg/.png) and ``N.json``.
    crop: (H, W) output size of an eye crop (see :func:`crop_matrix`), or None for the
        full image. Image, label map, landmarks and pupil centre share one affine matrix.
    crop_scale: crop width as a multiple of the eye-corner distance.
    Unpaired files are listed in ``bad`` when indexing and are not samples.
    """

    format_name = FORMAT

    def __init__(
        self, path: str | Path, crop: tuple[int, int] | None = None, crop_scale: float = 1.75
    ) -> None:
        super().__init__()
        self.root = Path(path)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder", "pass the folder of UnityEyes .jpg/.json pairs")
        if crop is not None and (len(crop) != 2 or min(crop) < 2):
            raise ValueError(f"crop must be (H, W) with both >= 2, got {crop}")
        if not crop_scale > 0:
            raise ValueError(f"crop_scale must be > 0, got {crop_scale}")
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.crop_scale = float(crop_scale)
        files = [p for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")]
        jsons = {p.stem: p for p in files if p.suffix.lower() == ".json"}
        images: dict[str, Path] = {}
        for p in sorted(files):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                images.setdefault(p.stem, p)
        if not jsons and not images:
            raise DataError(
                self.root, "no UnityEyes files found (N.jpg + N.json)",
                "check the path; UnityEyes writes imgs/N.jpg with N.json",
            )
        self.pairs: list[tuple[Path, Path]] = []
        for stem in sorted(set(jsons) | set(images), key=lambda s: _sort_key(Path(s))):
            j, im = jsons.get(stem), images.get(stem)
            if j is not None and im is not None:
                self.pairs.append((im, j))
            elif j is not None:
                self._bad_at_index(j, f"image missing (no {stem}.jpg/.png)", "add the render or remove the JSON")
            elif im is not None:
                self._bad_at_index(im, f"JSON missing (no {stem}.json)", "add the annotation or remove the image")

    def _bad_at_index(self, path: Path, problem: str, fix: str) -> None:
        self.bad.append(BadFile(str(path), str(DataError(path, problem, fix))))

    def __len__(self) -> int:
        return len(self.pairs)

    def source_of(self, index: int) -> str:
        return str(self.pairs[index][1])

    def __getitem__(self, index: int) -> EyeSample:
        image_path, json_path = self.pairs[index]
        data = read_annotation(json_path)
        image = read_image(image_path)
        ann = parse_annotation(data, json_path, image.shape[0])
        cx, cy = ann["interior_margin"].mean(axis=0)
        if not (-0.5 <= cx <= image.shape[1] - 0.5 and -0.5 <= cy <= image.shape[0] - 0.5):
            raise DataError(
                json_path,
                f"eye centre ({cx:.0f}, {cy:.0f}) lies outside its {image.shape[1]}×{image.shape[0]} "
                f"image {image_path.name}",
                "pair the JSON with its original, unresized render",
            )
        outlines = {k: ann[k] for k in ("interior_margin", "caruncle", "iris", "pupil")}
        center = ann["pupil_center"]
        shape = image.shape[:2]
        if self.crop is not None:
            matrix = crop_matrix(outlines["interior_margin"], self.crop, self.crop_scale)
            image = _warp(image, matrix, self.crop)
            outlines = {k: apply_affine(matrix, v) for k, v in outlines.items()}
            center = apply_affine(matrix, center)[0]
            shape = self.crop
        labels = spec.labels_from_landmarks(
            shape, outlines["interior_margin"], outlines["iris"], outlines["pupil"]
        )
        return EyeSample(
            image=image,
            labels=labels,
            gaze=ann["gaze"],
            head_pose=ann["head_pose"],
            pupil_center=center,
            landmarks={k: outlines[k] for k in ("interior_margin", "caruncle", "iris")},
            source=str(image_path),
        )


def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp an H×W×3 uint8 image by a 2×3 scale+shift matrix to ``size`` (H, W).

    When shrinking, the image is first low-passed (Gaussian, sigma = (1/s − 1) / 2) so the
    bilinear warp does not alias.
    """
    s = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if s < 1.0:
        sigma = (1.0 / s - 1.0) / 2.0
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    h, w = size
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def open_dataset(path: Path, **kw: object) -> UnityEyesDataset:
    """Open a UnityEyes folder (options as :class:`UnityEyesDataset`)."""
    return UnityEyesDataset(path, **kw)  # type: ignore[arg-type]
