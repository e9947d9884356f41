"""One parameter draw of the procedural eye: geometry, colours and a texture seed.

Units: angles in radians (MPIIGaze convention, see ``eyepurify.gaze.geometry``), lengths
in millimetres in the head frame (u right, v down, both in the image plane of a frontal
head), colours as display RGB in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from eyepurify.errors import EyepurifyError
from eyepurify.gaze.geometry import pitchyaw_to_vector, vector_to_pitchyaw
from eyepurify.records import AsDict

# Display-RGB anchors; a draw interpolates between neighbours and jitters a little.
SKIN_TONES = np.array(
    [
        [0.94, 0.78, 0.68],
        [0.88, 0.68, 0.55],
        [0.79, 0.58, 0.44],
        [0.66, 0.46, 0.33],
        [0.50, 0.33, 0.23],
        [0.34, 0.22, 0.15],
    ]
)
IRIS_COLOURS = {
    "dark_brown": (0.17, 0.09, 0.05),
    "brown": (0.33, 0.18, 0.08),
    "hazel": (0.42, 0.33, 0.15),
    "green": (0.30, 0.40, 0.24),
    "blue": (0.33, 0.48, 0.66),
    "grey": (0.44, 0.49, 0.52),
}
IRIS_WEIGHTS = {"dark_brown": 0.3, "brown": 0.3, "hazel": 0.12, "green": 0.08, "blue": 0.12, "grey": 0.08}


def _rgb(v: Iterable[float]) -> tuple[float, float, float]:
    """Three floats from an RGB sequence or array."""
    r, g, b = (float(x) for x in v)
    return r, g, b


def rotation(pitch: float, yaw: float) -> np.ndarray:
    """3×3 rotation taking the camera-facing direction (0, 0, -1) to ``pitchyaw_to_vector``.

    R = Ry(yaw) · Rx(-pitch): positive pitch turns up (towards -y), positive yaw towards -x.
    """
    cp, sp = math.cos(pitch), -math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([[cy, sy * sp, sy * cp], [0.0, cp, -sp], [-sy, cy * sp, cy * cp]])


def _pitchyaw(v: np.ndarray) -> tuple[float, float]:
    x, y, z = (float(c) for c in v)
    n = math.sqrt(x * x + y * y + z * z)
    return math.asin(max(-1.0, min(1.0, -y / n))), math.atan2(-x, -z)


@dataclass(frozen=True)
class EyeParams(AsDict):
    """Everything that defines one rendered eye except the image size and the domain.

    Gaze and head pose are in the normalized camera frame; the eye-in-head rotation
    (which moves the eyelids) is derived from them. ``texture_seed`` fixes all random
    texture (skin grain, iris fibres, vessels), so a draw renders identically every time.
    """

    gaze_pitch: float
    gaze_yaw: float
    head_pitch: float
    head_yaw: float
    eyeball_radius: float  # mm, 11.0..12.6
    iris_radius: float  # mm, 5.4..6.4
    pupil_ratio: float  # pupil radius / iris radius, 0.25..0.6
    eye_width_frac: float  # corner-to-corner width / image width for a frontal head
    center_dx: float  # eye centre offset, fraction of image width
    center_dy: float  # fraction of image height
    inner_corner: float  # mm, distance of the inner (nasal, image-left) corner from the eye centre
    outer_corner: float  # mm, outer (temporal, image-right) corner
    corner_v: float  # mm, height of the inner corner below the eye centre
    canthal_tilt: float  # mm, how much higher the outer corner sits than the inner one
    upper_open: float  # mm, upper lid apex above the corner line at zero eye pitch
    lower_open: float  # mm, lower lid apex below the corner line
    upper_peak: float  # 0..1, where along the fissure the upper lid peaks
    lower_peak: float
    upper_flat: float  # exponent < 1 flattens the upper lid top
    lid_follow: float  # how far the upper lid follows vertical eye rotation (0..1)
    crease_height: float  # mm above the upper margin
    crease_depth: float  # 0..1 darkness of the lid crease
    lash_density: float  # 0..1
    lash_length: float  # mm
    brow_height: float  # mm above the eye centre (brow centre line)
    brow_darkness: float  # 0..1
    skin_rgb: tuple[float, float, float]
    skin_roughness: float  # 0..1 amplitude of skin blotches and grain
    redness: float  # 0..1 pink tint around the eye
    sclera_rgb: tuple[float, float, float]
    vessel_amount: float  # 0..1
    iris_rgb: tuple[float, float, float]
    iris_name: str
    iris_contrast: float  # 0..1 radial fibre contrast
    limbus_darkness: float  # 0..1
    ambient: float  # indoor ambient share of the light, 0.5..0.8
    texture_seed: int

    @property
    def gaze(self) -> np.ndarray:
        """(3,) unit gaze vector, camera frame."""
        return pitchyaw_to_vector(np.array([self.gaze_pitch, self.gaze_yaw]))

    @property
    def head_pose(self) -> np.ndarray:
        """(2,) head (pitch, yaw) radians."""
        return np.array([self.head_pitch, self.head_yaw])

    @property
    def eye_in_head(self) -> np.ndarray:
        """(2,) (pitch, yaw) of the gaze relative to the head (what moves the lids)."""
        rh = rotation(self.head_pitch, self.head_yaw)
        return np.array(_pitchyaw(rh.T @ self.gaze))

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> EyeParams:
        """Inverse of ``to_dict``; raises EyepurifyError naming missing or unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing, extra = names - d.keys(), d.keys() - names
        if missing or extra:
            raise EyepurifyError(
                f"EyeParams dict: missing {sorted(missing)} unknown {sorted(extra)} "
                "(use a dict written by EyeParams.to_dict)"
            )
        kw = {k: (tuple(float(x) for x in v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)  # type: ignore[arg-type]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_params(
    rng: np.random.Generator,
    eye_range_deg: tuple[float, float] = (25.0, 35.0),
    head_range_deg: tuple[float, float] = (15.0, 25.0),
) -> EyeParams:
    """Draw one eye.

    eye_range_deg: max |pitch|, |yaw| of the eye relative to the head (uniform).
    head_range_deg: max |pitch|, |yaw| of the head (uniform). The stored gaze is the
    composition (camera frame); the lids follow the eye-in-head pitch.
    """
    ep = np.radians(_u(rng, -eye_range_deg[0], eye_range_deg[0]))
    ey = np.radians(_u(rng, -eye_range_deg[1], eye_range_deg[1]))
    hp = np.radians(_u(rng, -head_range_deg[0], head_range_deg[0]))
    hy = np.radians(_u(rng, -head_range_deg[1], head_range_deg[1]))
    eye_dir = pitchyaw_to_vector(np.array([ep, ey]))
    gp, gy = vector_to_pitchyaw(rotation(hp, hy) @ eye_dir)

    t = _u(rng, 0.0, len(SKIN_TONES) - 1.0)
    i = min(int(t), len(SKIN_TONES) - 2)
    skin = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[i + 1] * (t - i)
    skin = np.clip(skin * rng.uniform(0.93, 1.07, 3), 0.05, 1.0)
    names = list(IRIS_COLOURS)
    w = np.array([IRIS_WEIGHTS[n] for n in names])
    name = names[int(rng.choice(len(names), p=w / w.sum()))]
    iris = np.clip(np.array(IRIS_COLOURS[name]) * _u(rng, 0.7, 1.1) * rng.uniform(0.94, 1.06, 3), 0.02, 1.0)
    sclera_base = np.array([0.93, 0.9, 0.87]) * _u(rng, 0.74, 0.97)
    sclera = np.clip(sclera_base * np.array([1.0, _u(rng, 0.93, 1.0), _u(rng, 0.85, 1.0)]), 0, 1)
    return EyeParams(
        gaze_pitch=float(gp),
        gaze_yaw=float(gy),
        head_pitch=float(hp),
        head_yaw=float(hy),
        eyeball_radius=_u(rng, 11.0, 12.6),
        iris_radius=_u(rng, 5.4, 6.4),
        pupil_ratio=_u(rng, 0.25, 0.6),
        eye_width_frac=_u(rng, 0.55, 0.78),
        center_dx=_u(rng, -0.04, 0.04),
        center_dy=_u(rng, -0.05, 0.08),
        inner_corner=_u(rng, 13.0, 15.0),
        outer_corner=_u(rng, 12.5, 14.5),
        corner_v=_u(rng, 0.0, 1.8),
        canthal_tilt=_u(rng, -0.8, 2.2),
        upper_open=_u(rng, 3.8, 6.8),
        lower_open=_u(rng, 2.5, 4.5),
        upper_peak=_u(rng, 0.4, 0.58),
        lower_peak=_u(rng, 0.45, 0.65),
        upper_flat=_u(rng, 0.55, 0.95),
        lid_follow=_u(rng, 0.6, 0.9),
        crease_height=_u(rng, 2.5, 6.0),
        crease_depth=_u(rng, 0.1, 0.6),
        lash_density=_u(rng, 0.3, 1.0),
        lash_length=_u(rng, 1.5, 3.5),
        brow_height=_u(rng, 14.0, 20.0),
        brow_darkness=_u(rng, 0.15, 0.7),
        skin_rgb=_rgb(skin),
        skin_roughness=_u(rng, 0.2, 1.0),
        redness=_u(rng, 0.0, 0.6),
        sclera_rgb=_rgb(sclera),
        vessel_amount=_u(rng, 0.0, 1.0),
        iris_rgb=_rgb(iris),
        iris_name=name,
        iris_contrast=_u(rng, 0.3, 1.0),
        limbus_darkness=_u(rng, 0.3, 0.9),
        ambient=_u(rng, 0.5, 0.75),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def draw_params(seed: int, index: int) -> EyeParams:
    """The parameter draw of sample ``index`` of a run with ``seed`` (independent per index)."""
    return sample_params(np.random.default_rng([seed, index]))
