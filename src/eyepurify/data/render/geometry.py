"""3-D eyeball and eyelids -> 2-D outlines, landmarks and the label map (orthographic).

Frames: camera x right, y down, z forward (MPIIGaze). The eyeball centre projects to the
image point ``center``; one millimetre is ``scale`` pixels. The eye rotates by
E = rotation(gaze) and the head by Rh = rotation(head pose), both about the eyeball
centre. The iris and pupil are concentric discs on the eyeball, at depth
d = sqrt(R² − r_iris²) along the gaze, so the 2-D iris is the ellipse
``iris_center + iris_A · (cos φ, sin φ)`` and the pupil is that ellipse scaled by
``pupil_ratio`` about the same centre (exactly ``unityeyes_spec.pupil_outline``).
The eyelids are curves in the head frame (u right, v down) on the plane z = −R in front of
the eyeball, mapped to the image by an affine map; their opening follows the eye-in-head
pitch. Pixel centres are integer coordinates (as OpenCV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from eyepurify.data.render.params import EyeParams, rotation
from eyepurify.errors import EyepurifyError
from eyepurify.sample import IRIS, PUPIL, SCLERA, SKIN

CORNEA_RADIUS = 7.8  # mm
CORNEA_OFFSET = 5.3 / 12.0  # corneal sphere centre along the gaze, × eyeball radius
MIN_OPENING = 0.6  # mm, the lids never close completely


@dataclass(frozen=True)
class EyeLayout:
    """Projected geometry of one draw at one image size (all 2-D quantities in pixels)."""

    size: tuple[int, int]  # (H, W)
    scale: float  # px per mm
    center: np.ndarray  # (2,) eyeball centre (x, y)
    eye_rot: np.ndarray  # (3, 3) E, E @ (0, 0, -1) = gaze
    head_rot: np.ndarray  # (3, 3) Rh
    head_A: np.ndarray  # (2, 2) head-frame (u, v) mm -> image px (linear part)
    head_b: np.ndarray  # (2,) offset: xy = head_A @ uv + head_b
    head_A_inv: np.ndarray
    eyeball_radius: float  # mm
    iris_center: np.ndarray  # (2,) = the exact 2-D pupil centre
    iris_A: np.ndarray  # (2, 2) unit disc -> image px
    iris_A_inv: np.ndarray
    pupil_ratio: float
    u_in: float  # mm, inner corner u (< 0)
    u_out: float  # mm, outer corner u (> 0)
    v_in: float  # mm, corner heights
    v_out: float
    up_height: float  # mm, upper lid apex above the corner line (after gaze follow)
    lo_height: float
    up_pow: float  # t -> t**pow moves the bump's apex to the peak position
    lo_pow: float
    up_gamma: float
    lo_gamma: float

    @property
    def v_px_per_mm(self) -> float:
        """Image pixels per head-frame mm along v (for pixel distances to the lids)."""
        return float(np.hypot(self.head_A[0, 1], self.head_A[1, 1]))

    def head_to_image(self, uv: np.ndarray) -> np.ndarray:
        """(K, 2) head-frame mm -> (K, 2) image px."""
        return np.asarray(uv, dtype=np.float64) @ self.head_A.T + self.head_b


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` marked read-only (for cached constants shared between calls)."""
    a.flags.writeable = False
    return a


def _bump(t: np.ndarray, pw: float, gamma: float) -> np.ndarray:
    """Lid profile on t in [0, 1]: 0 at the corners, 1 at the apex t = 0.5**(1/pw)."""
    return _bump_clipped(np.clip(t, 0.0, 1.0), pw, gamma)


def _bump_clipped(tc: np.ndarray, pw: float, gamma: float) -> np.ndarray:
    """``_bump`` for t already in [0, 1]."""
    x = np.power(tc, pw)
    return np.power(np.maximum(4.0 * x * (1.0 - x), 0.0), gamma)


def _inv2(a: np.ndarray) -> np.ndarray:
    """Inverse of a 2×2 matrix (closed form; the callers' matrices are well conditioned)."""
    (p, q), (r, t) = a.tolist()
    det = p * t - q * r
    return np.array([[t / det, -q / det], [-r / det, p / det]])


def _pitch(v: np.ndarray) -> float:
    """Pitch (radians) of a 3-vector, exactly as ``params._pitchyaw`` computes it."""
    x, y, z = v.tolist()
    n = math.sqrt(x * x + y * y + z * z)
    return math.asin(max(-1.0, min(1.0, -y / n)))


def layout(params: EyeParams, size: tuple[int, int]) -> EyeLayout:
    """Project one parameter draw for an image of ``size`` = (H, W) pixels."""
    h, w = size
    scale = params.eye_width_frac * w / (params.inner_corner + params.outer_corner)
    center = np.array([(w - 1) / 2 + params.center_dx * w, (h - 1) / 2 + params.center_dy * h])
    e = rotation(params.gaze_pitch, params.gaze_yaw)
    rh = rotation(params.head_pitch, params.head_yaw)
    r = params.eyeball_radius
    z0 = -r
    head_A = scale * rh[:2, :2]
    head_b = center + scale * rh[:2, 2] * z0
    depth = math.sqrt(r**2 - params.iris_radius**2)
    gaze = -e[:, 2]
    if gaze[2] > -0.1 or rh[2, 2] < 0.1:
        raise EyepurifyError(
            f"gaze (pitch {params.gaze_pitch:.2f}, yaw {params.gaze_yaw:.2f}) or head pose "
            f"(pitch {params.head_pitch:.2f}, yaw {params.head_yaw:.2f}) turns the eye away from "
            "the camera (keep both within about ±80°)"
        )
    iris_center = center + scale * depth * gaze[:2]
    iris_A = scale * params.iris_radius * e[:2, :2]

    eye_pitch = _pitch(rh.T @ params.gaze)  # = params.eye_in_head[0], reusing rh
    follow = r * math.sin(eye_pitch)
    up = params.upper_open + params.lid_follow * follow
    lo = params.lower_open - 0.3 * follow
    lo = max(lo, 0.8)
    up = max(up, MIN_OPENING - lo)
    return EyeLayout(
        size=(int(h), int(w)),
        scale=float(scale),
        center=center,
        eye_rot=e,
        head_rot=rh,
        head_A=head_A,
        head_b=head_b,
        head_A_inv=_inv2(head_A),
        eyeball_radius=r,
        iris_center=iris_center,
        iris_A=iris_A,
        iris_A_inv=_inv2(iris_A),
        pupil_ratio=params.pupil_ratio,
        u_in=-params.inner_corner,
        u_out=params.outer_corner,
        v_in=params.corner_v,
        v_out=params.corner_v - params.canthal_tilt,
        up_height=float(up),
        lo_height=float(lo),
        up_pow=math.log(0.5) / math.log(params.upper_peak),
        lo_pow=math.log(0.5) / math.log(params.lower_peak),
        up_gamma=params.upper_flat,
        lo_gamma=0.8,
    )


def lid_t(lay: EyeLayout, u: np.ndarray) -> np.ndarray:
    """Position along the fissure: 0 at the inner corner, 1 at the outer (unclipped)."""
    return (u - float(lay.u_in)) * (1.0 / float(lay.u_out - lay.u_in))


def lid_curves(lay: EyeLayout, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v_up, v_lo, bump_up) in head-frame mm for fissure positions t (clipped to [0, 1])."""
    return _lid_curves_clipped(lay, np.clip(t, 0.0, 1.0))


def _lid_curves_clipped(lay: EyeLayout, tc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lid_curves`` for t already in [0, 1]."""
    line = lay.v_in + (lay.v_out - lay.v_in) * tc
    b_up = _bump_clipped(tc, lay.up_pow, lay.up_gamma)
    b_lo = _bump_clipped(tc, lay.lo_pow, lay.lo_gamma)
    v_up = line - lay.up_height * b_up
    v_lo = line + lay.lo_height * b_lo
    # Where the upper lid dips below the lower one (a nearly closed eye) the gap is zero.
    v_up = np.minimum(v_up, v_lo)
    return v_up, v_lo, b_up


def margin_points(lay: EyeLayout) -> np.ndarray:
    """(16, 2) image px: inner corner, 7 upper-lid points, outer corner, 7 lower-lid points.

    Spacing is cosine in t (denser near the corners, where the outline turns fastest).
    """
    t = _MARGIN_T
    v_up, v_lo, _ = _lid_curves_clipped(lay, t)
    u = lay.u_in + (lay.u_out - lay.u_in) * t
    uv = np.empty((16, 2))
    uv[:9, 0] = u
    uv[:9, 1] = v_up
    uv[9:, 0] = u[7:0:-1]
    uv[9:, 1] = v_lo[7:0:-1]
    return lay.head_to_image(uv)


_MARGIN_T = _frozen((1.0 - np.cos(np.pi * np.arange(9) / 8.0)) / 2.0)  # in [0, 1]


def caruncle_shape(lay: EyeLayout) -> tuple[float, float, float]:
    """(length, half-height, droop) in mm of the caruncle teardrop nasal of the inner corner."""
    width = lay.u_out - lay.u_in
    return 0.1 * width, 0.045 * width, 0.015 * width


def caruncle_profile(a: np.ndarray, half: float) -> np.ndarray:
    """Half-height (mm) of the caruncle at fraction a in [0, 1] from the corner to its tip."""
    return half * np.power(np.maximum(np.sin(np.pi * np.clip(a, 0.0, 1.0)), 0.0), 0.6)


def caruncle_points(lay: EyeLayout) -> np.ndarray:
    """(7, 2) image px outline of the caruncle (closed polygon, starting at the inner corner)."""
    length, half, droop = caruncle_shape(lay)
    a = _CARUNCLE_A
    prof = half * _CARUNCLE_SHAPE  # = caruncle_profile(a, half)
    uv = np.empty((7, 2))
    uv[:, 0] = lay.u_in - length * a
    uv[:, 1] = lay.v_in + droop * a + _CARUNCLE_SIDE * prof
    return lay.head_to_image(uv)


_CARUNCLE_A = _frozen(np.array([0.0, 0.25, 0.6, 1.0, 0.75, 0.45, 0.15]))
_CARUNCLE_SIDE = _frozen(np.array([0.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0]))
_CARUNCLE_SHAPE = _frozen(caruncle_profile(_CARUNCLE_A, 1.0))  # half * this = the profile


def iris_points(lay: EyeLayout, n: int = 32) -> np.ndarray:
    """(n, 2) image px on the projected iris edge; φ starts at the frontal leftmost point
    and goes up. The mean of the points is exactly the iris (= pupil) centre."""
    return lay.iris_center + _unit_circle(n) @ lay.iris_A.T


@lru_cache(maxsize=8)
def _unit_circle(n: int) -> np.ndarray:
    """(n, 2) read-only (cos φ, sin φ), φ = π + 2π k / n."""
    phi = np.pi + 2.0 * np.pi * np.arange(n) / n
    return _frozen(np.stack([np.cos(phi), np.sin(phi)], axis=1))


def glint_position(lay: EyeLayout, light: np.ndarray) -> np.ndarray:
    """(2,) image px of the corneal reflection of a distant light in direction ``light``
    (unit 3-vector from the eye towards the light, camera frame; orthographic camera)."""
    view = np.array([0.0, 0.0, -1.0])
    half = np.asarray(light, dtype=np.float64) + view
    half = half / np.linalg.norm(half)
    gaze = -lay.eye_rot[:, 2]
    cc = CORNEA_OFFSET * lay.eyeball_radius * gaze
    p = cc + CORNEA_RADIUS * half
    return lay.center + lay.scale * p[:2]


def pixel_grid(lay: EyeLayout) -> tuple[np.ndarray, np.ndarray]:
    """(x (1, W), y (H, 1)) float32 pixel-centre coordinates, broadcastable (read-only)."""
    return _pixel_grid(*lay.size)


@lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return _frozen(np.arange(w, dtype=np.float32)[None, :]), _frozen(np.arange(h, dtype=np.float32)[:, None])


@lru_cache(maxsize=16)
def _zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Read-only float32 zeros (the constant row map of a 1-D ``cv2.remap``)."""
    return _frozen(np.zeros(shape, np.float32))


def head_coords(lay: EyeLayout, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image px (broadcastable float32) -> head-frame (u, v) mm, float32."""
    (a, b), (c, d) = lay.head_A_inv.tolist()
    dx, dy = x - float(lay.head_b[0]), y - float(lay.head_b[1])
    return a * dx + b * dy, c * dx + d * dy


def per_draw(values: list[float]) -> np.ndarray:
    """(B, 1, 1) float32 column of per-draw scalars; ``per_draw(vals) * a`` equals
    ``vals[i] * a[i]`` of float32 ``a`` (numpy casts a Python float to float32 the same way)."""
    return np.array(values, np.float32).reshape(-1, 1, 1)


def head_coords_many(lays: list[EyeLayout], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``head_coords`` of several layouts at once: (B, H, W) float32 (u, v) for the
    broadcastable float32 grid x (1, W), y (H, 1); row i equals ``head_coords(lays[i], x, y)``."""
    inv = [lay.head_A_inv.tolist() for lay in lays]
    dx = x[None] - per_draw([float(lay.head_b[0]) for lay in lays])
    dy = y[None] - per_draw([float(lay.head_b[1]) for lay in lays])
    u = per_draw([m[0][0] for m in inv]) * dx + per_draw([m[0][1] for m in inv]) * dy
    v = per_draw([m[1][0] for m in inv]) * dx + per_draw([m[1][1] for m in inv]) * dy
    return u, v


LID_NODES = 257  # nodes of the piecewise-linear lid curves used per pixel


def lid_table(lay: EyeLayout) -> np.ndarray:
    """(1, LID_NODES, 3) float32 (v_up, v_lo, bump_up) at t = 0..1; per-pixel lids
    interpolate it (node spacing 1/256 of the fissure: far below a pixel at practical sizes)."""
    v_up, v_lo, b_up = _lid_curves_clipped(lay, _LID_T)
    table = np.empty((1, LID_NODES, 3), np.float32)
    table[0, :, 0] = v_up
    table[0, :, 1] = v_lo
    table[0, :, 2] = b_up
    return table


_LID_T = _frozen(np.linspace(0.0, 1.0, LID_NODES))


def opening_distance(lay: EyeLayout, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """(d_up, d_lo, bump_up, t) per pixel for head-frame (u, v) float32 arrays of one shape.

    d_up / d_lo: mm below the upper lid / above the lower lid (both > 0 inside the
    opening; beyond the corners both cannot be); bump_up: the upper lid profile in [0, 1];
    t: position along the fissure (0 inner corner, 1 outer corner, unclipped).
    """
    t = lid_t(lay, u)
    mx = np.ascontiguousarray(t * np.float32(LID_NODES - 1), dtype=np.float32)
    lids = cv2.remap(lid_table(lay), mx, _zeros(mx.shape), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return v - lids[..., 0], lids[..., 1] - v, lids[..., 2], t


def opening_distance_many(lays: list[EyeLayout], u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """``opening_distance`` of several layouts at once on (B, H, W) float32 (u, v);
    row i of each output equals ``opening_distance(lays[i], u[i], v[i])``."""
    t = (u - per_draw([float(lay.u_in) for lay in lays])) * per_draw(
        [1.0 / float(lay.u_out - lay.u_in) for lay in lays])
    mx = np.ascontiguousarray(t * np.float32(LID_NODES - 1), dtype=np.float32)
    lids = np.empty((*mx.shape, 3), np.float32)
    zeros = _zeros(mx.shape[1:])
    for i, lay in enumerate(lays):
        lids[i] = cv2.remap(lid_table(lay), mx[i], zeros, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return v - lids[..., 0], lids[..., 1] - v, lids[..., 2], t


def eye_box(lay: EyeLayout) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) image box that contains the eye opening (a conservative bound)."""
    v_lo_min = min(lay.v_in, lay.v_out) - max(lay.up_height, 0.0)
    v_hi = max(lay.v_in, lay.v_out) + lay.lo_height
    corners = np.array([[lay.u_in, v_lo_min], [lay.u_in, v_hi], [lay.u_out, v_lo_min], [lay.u_out, v_hi]])
    pts = lay.head_to_image(corners)
    h, w = lay.size
    (xa, ya), (xb, yb) = pts.min(axis=0).tolist(), pts.max(axis=0).tolist()
    x0 = min(max(math.floor(xa) - 1, 0), w)
    x1 = min(max(math.ceil(xb) + 2, 0), w)
    y0 = min(max(math.floor(ya) - 1, 0), h)
    y1 = min(max(math.ceil(yb) + 2, 0), h)
    return y0, max(y1, y0), x0, max(x1, x0)


def labels_in_box(
    lay: EyeLayout, box: tuple[int, int, int, int], d_up: np.ndarray, d_lo: np.ndarray, rho2: np.ndarray
) -> np.ndarray:
    """Label map from per-pixel fields over ``box`` (everything outside is skin)."""
    y0, y1, x0, x1 = box
    opening = (d_up > 0) & (d_lo > 0)
    sub = np.where(opening, SCLERA, SKIN).astype(np.uint8)
    sub[opening & (rho2 < 1.0)] = IRIS
    sub[opening & (rho2 < lay.pupil_ratio**2)] = PUPIL
    labels = np.full(lay.size, SKIN, np.uint8)
    labels[y0:y1, x0:x1] = sub
    return labels


def iris_coords(lay: EyeLayout, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image px -> coordinates on the iris disc (unit = iris radius), eye frame."""
    (a, b), (c, d) = lay.iris_A_inv.tolist()
    dx, dy = x - float(lay.iris_center[0]), y - float(lay.iris_center[1])
    return a * dx + b * dy, c * dx + d * dy


def label_map(lay: EyeLayout) -> np.ndarray:
    """(H, W) uint8 labels at pixel centres: 0 skin, 1 sclera (opening), 2 iris, 3 pupil;
    iris and pupil only where the lids leave them visible."""
    y0, y1, x0, x1 = box = eye_box(lay)
    x, y = pixel_grid(lay)
    x, y = x[:, x0:x1], y[y0:y1, :]
    u, v = head_coords(lay, x, y)
    u, v = np.broadcast_arrays(u, v)
    d_up, d_lo, _, _ = opening_distance(lay, u, v)
    q0, q1 = iris_coords(lay, x, y)
    return labels_in_box(lay, box, d_up, d_lo, q0 * q0 + q1 * q1)


def landmarks(lay: EyeLayout) -> dict[str, np.ndarray]:
    """UnityEyes-style landmarks in image px: interior_margin (16), caruncle (7), iris (32)."""
    return {
        "interior_margin": margin_points(lay),
        "caruncle": caruncle_points(lay),
        "iris": iris_points(lay),
    }
