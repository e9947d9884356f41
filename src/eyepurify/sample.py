"""The one data type for a labelled eye sample, and the label scheme."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eyepurify.gaze.geometry import pitchyaw_to_vector, vector_to_pitchyaw

SKIN, SCLERA, IRIS, PUPIL = 0, 1, 2, 3
LABEL_NAMES = ("skin", "sclera", "iris", "pupil")
NUM_CLASSES = 4


@dataclass
class EyeSample:
    """One eye image and whatever labels its source provides.

    image: H×W×3 uint8 RGB (grayscale sources are replicated to 3 channels).
    labels: H×W uint8 label map (0 skin, 1 sclera, 2 iris, 3 pupil) or None.
    gaze: (3,) float unit gaze vector in the normalized camera frame (x right, y down,
        z forward from the camera; looking at the camera is about (0, 0, -1)) or None.
    head_pose: (2,) float (pitch, yaw) in radians, same frame and convention, or None.
    pupil_center: (2,) float (x, y) in pixels of ``image`` (sub-pixel) or None.
    landmarks: named (K, 2) float arrays of (x, y) pixel points, e.g. "interior_margin",
        "iris", "caruncle".
    source: an id saying where the sample came from (a file path, "p01/day03/12/left").
    """

    image: np.ndarray
    labels: np.ndarray | None = None
    gaze: np.ndarray | None = None
    head_pose: np.ndarray | None = None
    pupil_center: np.ndarray | None = None
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"{self.source or 'EyeSample'}: image must be H×W×3 uint8, got "
                f"{img.shape} {img.dtype}"
            )
        if self.labels is not None:
            if self.labels.shape != img.shape[:2]:
                raise ValueError(
                    f"{self.source or 'EyeSample'}: label map {self.labels.shape} does not "
                    f"match image {img.shape[:2]}"
                )
            if self.labels.dtype != np.uint8:
                raise ValueError(f"{self.source or 'EyeSample'}: labels must be uint8")

    def __repr__(self) -> str:
        """Shapes and small labels, never whole arrays."""
        def arr(a: np.ndarray | None) -> str:
            return "None" if a is None else f"<{'×'.join(map(str, a.shape))} {a.dtype}>"

        def vec(a: np.ndarray | None) -> str:
            return "None" if a is None else "(" + ", ".join(f"{float(v):.3g}" for v in np.ravel(a)) + ")"

        marks = ", ".join(f"{k}: {len(v)} points" for k, v in self.landmarks.items())
        return (f"EyeSample(image={arr(self.image)}, labels={arr(self.labels)}, gaze={vec(self.gaze)}, "
                f"head_pose={vec(self.head_pose)}, pupil_center={vec(self.pupil_center)}, "
                f"landmarks={{{marks}}}, source={self.source!r})")

    @property
    def pitchyaw(self) -> np.ndarray | None:
        """Gaze as (pitch, yaw) radians, or None."""
        return None if self.gaze is None else vector_to_pitchyaw(self.gaze)

    @classmethod
    def from_pitchyaw(cls, image: np.ndarray, pitchyaw: np.ndarray, **kw: object) -> EyeSample:
        return cls(image=image, gaze=pitchyaw_to_vector(np.asarray(pitchyaw)), **kw)  # type: ignore[arg-type]
