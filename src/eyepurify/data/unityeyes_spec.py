"""The UnityEyes JSON conventions, in one place (the loader reads them, the renderer writes them).

Decisions (UnityEyes documents none of them; evidence in docs/formats.md):
- 2-D points are "(x, y, z)" strings from Unity's WorldToScreenPoint: x in pixels, y
  measured from the image's bottom edge, z the depth in world units. Image y = H − y_json
  (pixel centres at integer coordinates, as OpenCV).
- ``look_vec`` is the gaze in Unity's camera space (x right, y up, z forward, left-handed):
  the camera-frame gaze (x right, y down, z forward) is (x, −y, z); looking at the camera is
  z < 0. (GazeML negates x and then mirrors the yaw back, which is the same thing.)
- ``head_pose`` is "(pitch, yaw, roll)" in degrees: the Euler angles of the camera that
  orbits the eye (frontal: yaw = 180), wrapping at 360. The head's facing direction in
  the camera frame then has (pitch, yaw) = (−wrap(pitch), −wrap(yaw − 180)) radians,
  each wrapped to (−180°, 180°]; roll is dropped.
- ``pupil_size``: pupil radius = (PUPIL_SIZE_OFFSET + pupil_size) × iris radius, clipped to
  [0.05, 0.9]; the pupil outline is the iris outline scaled about its vertex mean.
"""

from __future__ import annotations

import ast

import cv2
import numpy as np

from eyepurify.sample import IRIS, PUPIL, SCLERA, SKIN

# Our choice, not a published rule (no public source maps pupil_size to a size; see
# docs/formats.md for what was checked).
PUPIL_SIZE_OFFSET = 0.25


def parse_tuple(text: str) -> tuple[float, ...]:
    """Parse "(1.0, 2.0, 3.0)" or "0.5" with a literal parser (never eval). Raises ValueError.

    Only int and float literals are accepted (no bools, strings, names or calls), and
    every number must be finite.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string like '(x, y, z)', got {type(text).__name__}")
    try:
        value = ast.literal_eval(text.strip())
    except (SyntaxError, TypeError, ValueError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a number tuple: {text[:40]!r} ({type(e).__name__})") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"expected a tuple of numbers, got {text[:40]!r}")
    try:
        out = tuple(float(v) for v in value)
    except OverflowError:
        raise ValueError(f"number too large in {text[:40]!r}") from None
    if not all(np.isfinite(out)):
        raise ValueError(f"non-finite number in {text[:40]!r}")
    return out


def format_tuple(values: np.ndarray | tuple[float, ...]) -> str:
    """Numbers -> "(1.0000, 2.0000)" (4 decimals, as UnityEyes writes them)."""
    return "(" + ", ".join(f"{float(v):.4f}" for v in values) + ")"


def points_from_json(items: list[str], height: int) -> np.ndarray:
    """List of "(x, y, z)" strings -> (K, 2) image (x, y) points (y flipped)."""
    pts = np.array([parse_tuple(s)[:2] for s in items], dtype=np.float64).reshape(-1, 2)
    pts[:, 1] = height - pts[:, 1]
    return pts


def points_to_json(points: np.ndarray, height: int, depth: float = 10.0) -> list[str]:
    """(K, 2) image points -> "(x, y, z)" strings with y from the bottom."""
    return [format_tuple((x, height - y, depth)) for x, y in np.asarray(points, dtype=np.float64)]


def look_vec_to_gaze(look_vec: tuple[float, ...]) -> np.ndarray:
    """UnityEyes look_vec (x, y, z[, 0]) -> (3,) unit camera-frame gaze vector (x, −y, z)."""
    if len(look_vec) < 3:
        raise ValueError(f"look_vec needs 3 components, got {len(look_vec)}")
    v = np.array([look_vec[0], -look_vec[1], look_vec[2]], dtype=np.float64)
    n = np.linalg.norm(v)
    if not n > 0:
        raise ValueError("look_vec is zero")
    return v / n


def gaze_to_look_vec(gaze: np.ndarray) -> tuple[float, float, float, float]:
    """(3,) camera-frame gaze -> UnityEyes look_vec (x, y, z, 0) (inverse of look_vec_to_gaze)."""
    g = np.asarray(gaze, dtype=np.float64)
    g = g / np.linalg.norm(g)
    return (float(g[0]), float(-g[1]), float(g[2]), 0.0)


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def head_pose_from_unity(pose: tuple[float, ...]) -> np.ndarray:
    """UnityEyes "(pitch, yaw, roll)" degrees -> head (pitch, yaw) radians, frontal = (0, 0).

    The result is the MPIIGaze-convention angle of the head's facing direction in the
    camera frame, each in (−π, π].
    """
    if len(pose) < 2:
        raise ValueError(f"head_pose needs (pitch, yaw[, roll]), got {len(pose)} numbers")
    return np.radians([-_wrap_deg(pose[0]), -_wrap_deg(pose[1] - 180.0)])


def head_pose_to_unity(pitchyaw: np.ndarray) -> tuple[float, float, float]:
    """Head (pitch, yaw) radians -> UnityEyes (pitch, yaw, roll) degrees in [0, 360)."""
    p, y = np.degrees(np.asarray(pitchyaw, dtype=np.float64))
    return (float(-p % 360.0), float((180.0 - y) % 360.0), 0.0)


def pupil_radius_ratio(pupil_size: float) -> float:
    return float(np.clip(PUPIL_SIZE_OFFSET + pupil_size, 0.05, 0.9))


def pupil_size_from_ratio(ratio: float) -> float:
    return float(ratio) - PUPIL_SIZE_OFFSET


def pupil_outline(iris: np.ndarray, ratio: float) -> np.ndarray:
    """Iris outline (K, 2) scaled about its centroid by ``ratio``."""
    c = iris.mean(axis=0)
    return c + (iris - c) * ratio


def labels_from_landmarks(
    shape: tuple[int, int], margin: np.ndarray, iris: np.ndarray, pupil: np.ndarray
) -> np.ndarray:
    """Label map (H, W) uint8 from the eyelid margin, iris and pupil outlines (image px).

    sclera = inside the margin; iris and pupil are clipped to the eye opening.
    """
    h, w = shape

    def fill(poly: np.ndarray) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        pts = np.round(np.asarray(poly) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=4)
        return m.astype(bool)

    opening = fill(margin)
    labels = np.full((h, w), SKIN, np.uint8)
    labels[opening] = SCLERA
    labels[opening & fill(iris)] = IRIS
    labels[opening & fill(pupil)] = PUPIL
    return labels
