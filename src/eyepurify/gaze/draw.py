"""Gaze per eye for images and faces, and the arrows drawn for it (``eyepurify gaze`` / ``live``).

Eye images: the estimator sees the eye patch (for a whole photo, the eye box the purifier
found), the arrow starts at the box centre (the image centre for a patch). Faces: each eye
is normalised MPIIGaze-style (:mod:`eyepurify.faces`), the estimator's (pitch, yaw) is in
that eye's normalised camera (the right eye's patch is mirrored, so its yaw is negated), and
the gaze is rotated back into the camera frame (``R.T @ g``); the arrow is the projection of
a 3-D segment from the eye centre along the gaze.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from eyepurify.gaze.geometry import pitchyaw_to_vector, vector_to_pitchyaw

if TYPE_CHECKING:
    from eyepurify.eyescale import Box
    from eyepurify.faces import EyeNorm, FacePurifier
    from eyepurify.purify import Purified, Purifier

ARROW_MM = 60.0  # length of a face's gaze arrow in the scene


class GazePredictor(Protocol):
    """What draws gaze: ``predict(rgb images) -> N×2 (pitch, yaw)`` radians
    (:class:`eyepurify.gaze.models.GazeModel`)."""

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray: ...


def _vec3(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


@dataclass
class EyeGaze:
    """One eye's gaze: (pitch, yaw) radians and the unit vector, in the camera frame (MPIIGaze
    convention); ``origin`` and ``tip`` of its arrow in image pixels; ``face``/``eye`` where known."""

    pitchyaw: tuple[float, float]
    vector: tuple[float, float, float]
    origin: tuple[float, float]
    tip: tuple[float, float]
    face: int | None = None
    eye: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"face": self.face, "eye": self.eye, "pitch": round(self.pitchyaw[0], 6), "yaw": round(self.pitchyaw[1], 6),
                "vector": [round(v, 6) for v in self.vector], "origin": [round(v, 2) for v in self.origin],
                "tip": [round(v, 2) for v in self.tip]}


def patch_gaze(py: np.ndarray, origin: tuple[float, float], length: float) -> EyeGaze:
    """An eye image's gaze (``py`` = (pitch, yaw)); the arrow is the gaze projected on the image
    plane (x right, y down), ``length`` px for a gaze perpendicular to the camera axis."""
    v = pitchyaw_to_vector(np.asarray(py, np.float64))
    tip = (origin[0] + length * float(v[0]), origin[1] + length * float(v[1]))
    return EyeGaze((float(py[0]), float(py[1])), _vec3(v), origin, tip)


def face_gaze(py_norm: np.ndarray, norm: EyeNorm, K: np.ndarray, face: int) -> EyeGaze:
    """A normalised eye's gaze (``py_norm`` as the estimator read its patch) in the camera frame."""
    py = np.array([py_norm[0], -py_norm[1] if norm.mirrored else py_norm[1]], np.float64)
    g = norm.R.T @ pitchyaw_to_vector(py)
    g = g / np.linalg.norm(g)
    c = np.asarray(norm.center3d, np.float64)
    end = K @ (c + ARROW_MM * g)
    tip = (float(end[0] / end[2]), float(end[1] / end[2])) if end[2] > 1e-6 else (float(norm.center[0]), float(norm.center[1]))
    pyc = vector_to_pitchyaw(g)
    center = (float(norm.center[0]), float(norm.center[1]))
    return EyeGaze((float(pyc[0]), float(pyc[1])), _vec3(g), center, tip, face, norm.eye)


def draw_arrows(image: np.ndarray, gazes: Sequence[EyeGaze], colour: tuple[int, int, int] = (255, 220, 0)) -> np.ndarray:
    """A copy of RGB ``image`` with one arrow per gaze (thickness scaled to the image)."""
    out = np.ascontiguousarray(image.copy())
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, 2)
    t = max(1, round(min(out.shape[:2]) / 120))
    for g in gazes:
        o = (int(round(g.origin[0])), int(round(g.origin[1])))
        e = (int(round(g.tip[0])), int(round(g.tip[1])))
        cv2.arrowedLine(out, o, e, (0, 0, 0), t + 2, cv2.LINE_AA, tipLength=0.25)
        cv2.arrowedLine(out, o, e, colour, t, cv2.LINE_AA, tipLength=0.25)
    return out


def eye_images_gaze(estimator: GazePredictor, purifier: Purifier | None, images: list[np.ndarray],
                    purified: Sequence[Purified] | None = None) -> list[EyeGaze]:
    """The gaze of each eye image; ``purifier`` None: the raw image, else its purified eye patch
    (``purified``: the purifier's :class:`~eyepurify.purify.Purified` results, when already made)."""
    if purifier is None:
        patches = images
        boxes: list[Box | None] = [None] * len(images)
    else:
        res = purified if purified is not None else purifier.process(images)
        patches = [r.crop for r in res]
        boxes = [r.box for r in res]
    py = estimator.predict(patches)
    out = []
    for im, p, box in zip(images, py, boxes, strict=True):
        h, w = im.shape[:2]
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in box.to_list())
            origin, length = ((x0 + x1) / 2, (y0 + y1) / 2), 0.6 * (x1 - x0)
        else:
            origin, length = (w / 2, h / 2), 0.45 * w
        out.append(patch_gaze(p, origin, length))
    return out


def faces_gaze(estimator: GazePredictor, fp: FacePurifier, image: np.ndarray,
               eyes: Sequence[tuple[int, EyeNorm, np.ndarray]]) -> list[EyeGaze]:
    """The gaze of each (face index, :class:`~eyepurify.faces.EyeNorm`, patch) of ``image``
    (``fp.normalise`` gives the raw patches; a :class:`~eyepurify.faces.FrameResult`'s eyes the purified ones)."""
    from eyepurify.faces import camera_matrix

    idx = [k for k, _, _ in eyes]
    norms = [n for _, n, _ in eyes]
    patches = [p for _, _, p in eyes]
    if not patches:
        return []
    K = camera_matrix(image.shape, fp.focal)
    py = estimator.predict(patches)
    return [face_gaze(p, n, K, k) for p, n, k in zip(py, norms, idx, strict=True)]
