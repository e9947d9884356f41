"""From a face photo or video frame to purified eyes and back.

Per face (five landmarks from :mod:`eyepurify.models.mtcnn`), per eye, MPIIGaze-style data
normalisation (Zhang, Sugano & Bulling, ETRA 2018):

* head pose from the landmarks and a generic 3-D face model (``cv2.solvePnP``; a camera
  matrix from the image size when none is given: focal length = image width, principal
  point = centre);
* the eye centre in 3-D: the ray through the eye landmark at the model's depth;
* a virtual camera that looks straight at it (rotation ``R``), its x-axis along the line
  between the two eyes (roll removed), moved to ``distance`` mm (scale ``S``), with a focal
  length that gives the eye the width the purifier was trained at (``EyeScale.eye_width``,
  for an eye of :data:`EYE_WIDTH_MM`) and a principal point at the trained eye centre;
* the image-to-patch homography ``W = C_n S R K⁻¹``; the patch is ``warpPerspective(W)``.

The eye on the image's left (the subject's right eye) is mirrored into the renders'
orientation (nasal corner on the left) before purifying, as MPIIGaze mirrors right eyes.
The purified patch is warped back with ``W⁻¹`` and blended in with a feathered mask warped
the same way; pixels outside the warped patch are never touched.

For video, :class:`FaceTracker` smooths the landmarks over time (one-euro filter) and runs
only O-Net around the last face (the fast path); :class:`Stabiliser` blends the pasted
eyes with the previous output frame warped by optical flow of the raw frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from eyepurify.eyescale import EyeScale, smooth_ramp

#: Generic face (mm; camera frame axes: x right, y down, z away from the camera; nose tip at
#: the origin): image-left eye, image-right eye, nose tip, mouth left, mouth right.
#: Interpupillary distance 63 mm (adult mean); the frontal proportions of the common 5-point
#: face-alignment template (eyes–nose and nose–mouth about 0.57 and 0.59 × the eye distance,
#: mouth width 0.83 ×); depths of a generic head.
FACE_MODEL_MM = np.array([
    [-31.5, -36.0, 25.0],
    [31.5, -36.0, 25.0],
    [0.0, 0.0, 0.0],
    [-26.0, 37.0, 25.0],
    [26.0, 37.0, 25.0],
], np.float64)
#: Corner-to-corner width of the visible eye (mm): what the renderer draws (inner 13–15 mm +
#: outer 12.5–14.5 mm from the eye centre).
EYE_WIDTH_MM = 27.5
#: Normalised distance (mm), as in MPIIGaze.
NORM_DISTANCE_MM = 600.0
EYES = ("right", "left")  # the subject's: image-left eye is their right eye


def camera_matrix(shape: Sequence[int], focal: float | None = None) -> np.ndarray:
    """3×3 intrinsics for an image of ``shape`` (H, W, ...): focal ``focal`` px (default: the
    image width, about a 53° horizontal field of view), principal point at the centre."""
    h, w = int(shape[0]), int(shape[1])
    f = float(focal) if focal else float(w)
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class HeadPose:
    """Rotation ``R`` (head model → camera) and translation ``t`` (mm) of the generic face."""

    R: np.ndarray
    t: np.ndarray

    @property
    def rvec(self) -> np.ndarray:
        return cv2.Rodrigues(self.R)[0].ravel()


def head_pose(landmarks: np.ndarray, K: np.ndarray) -> HeadPose:
    """Head pose from five 2-D landmarks (5×2 px) with :data:`FACE_MODEL_MM` (EPnP, then
    Levenberg–Marquardt refinement)."""
    pts = np.ascontiguousarray(landmarks, np.float64).reshape(-1, 1, 2)
    obj = FACE_MODEL_MM.reshape(-1, 1, 3)
    ok, rvec, tvec = cv2.solvePnP(obj, pts, K, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
        # fall back to a frontal face at the depth the eye distance implies
        ipd = float(np.linalg.norm(landmarks[1] - landmarks[0])) or 1.0
        z = K[0, 0] * 63.0 / ipd
        c = (landmarks[2] - K[:2, 2]) * z / K[0, 0]
        rvec, tvec = np.zeros((3, 1)), np.array([[c[0]], [c[1]], [z]])
    else:
        ok, rvec, tvec = cv2.solvePnP(obj, pts, K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    R = cv2.Rodrigues(rvec)[0]
    return HeadPose(R, tvec.ravel().astype(np.float64))


def pitchyaw(v: np.ndarray) -> tuple[float, float]:
    """(pitch, yaw) radians of a direction in the camera frame (MPIIGaze convention: a
    vector towards the camera, −z, is (0, 0))."""
    v = np.asarray(v, np.float64) / np.linalg.norm(v)
    return float(math.asin(-v[1])), float(math.atan2(-v[0], -v[2]))


@dataclass(frozen=True)
class EyeNorm:
    """One normalised eye: ``W`` maps image px to patch px (3×3), ``size`` (H, W) of the
    patch, ``center`` the eye landmark (image px), ``center3d`` (mm, camera frame), ``R``
    the normalising rotation, ``head`` the head pose (pitch, yaw) in the normalised camera,
    ``mirrored`` True when the patch is flipped left–right after the warp."""

    eye: str
    W: np.ndarray
    size: tuple[int, int]
    center: tuple[float, float]
    center3d: tuple[float, float, float]
    R: np.ndarray
    head: tuple[float, float]
    distance: float
    mirrored: bool

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """Patch px (N×2, before mirroring) → image px."""
        return _apply(np.linalg.inv(self.W), pts)

    def to_patch(self, pts: np.ndarray) -> np.ndarray:
        """Image px (N×2) → patch px (before mirroring)."""
        return _apply(self.W, pts)

    def to_meta(self) -> dict[str, object]:
        return {
            "eye": self.eye, "center": [round(v, 3) for v in self.center],
            "center3d_mm": [round(v, 2) for v in self.center3d],
            "head_pitch_yaw": [round(v, 5) for v in self.head], "distance_mm": round(self.distance, 2),
            "homography": [[float(f"{v:.8g}") for v in row] for row in self.W], "mirrored": self.mirrored,
            "rotation": [[round(float(v), 6) for v in row] for row in self.R],
        }


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ H.T
    return q[:, :2] / q[:, 2:3]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def normalise_eyes(landmarks: np.ndarray, K: np.ndarray, scale: EyeScale,
                   distance: float = NORM_DISTANCE_MM, pose: HeadPose | None = None) -> list[EyeNorm]:
    """The two eyes of one face (5×2 landmarks), subject's right (image-left) then left."""
    pose = pose or head_pose(landmarks, K)
    Kinv = np.linalg.inv(K)
    centers = []
    for i in (0, 1):  # eye ray at the model eye's depth
        depth = float((pose.R @ FACE_MODEL_MM[i] + pose.t)[2])
        ray = Kinv @ np.array([landmarks[i, 0], landmarks[i, 1], 1.0])
        centers.append(ray * (depth / ray[2]))
    across = _unit(centers[1] - centers[0])  # image-left eye → image-right eye: the roll axis
    h, w = scale.size
    fn = scale.eye_width * distance / EYE_WIDTH_MM
    Cn = np.array([[fn, 0.0, scale.center[0]], [0.0, fn, scale.center[1]], [0.0, 0.0, 1.0]])
    out = []
    for i, e in enumerate(centers):
        z = _unit(e)
        y = _unit(np.cross(z, across))
        x = _unit(np.cross(y, z))
        R = np.stack([x, y, z])
        S = np.diag([1.0, 1.0, distance / float(np.linalg.norm(e))])
        W = Cn @ S @ R @ Kinv
        head = pitchyaw(-(R @ pose.R)[:, 2])  # the face's forward axis (−z of the model)
        out.append(EyeNorm(EYES[i], W, (h, w), (float(landmarks[i, 0]), float(landmarks[i, 1])),
                           tuple(float(v) for v in e), R, head, distance, mirrored=(i == 0)))  # type: ignore[arg-type]
    return out


def warp_to_patch(image: np.ndarray, norm: EyeNorm) -> np.ndarray:
    """The normalised eye patch (``norm.size``, mirrored when ``norm.mirrored``)."""
    h, w = norm.size
    patch = cv2.warpPerspective(image, norm.W, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return patch[:, ::-1].copy() if norm.mirrored else patch


def feather_mask(size: tuple[int, int], feather: float = 0.2) -> np.ndarray:
    """H×W float32 weights in [0, 1]: 1 inside, smoothstep to 0 over ``feather`` × the side
    at the edges (the same ramp as the eye-scale paste)."""
    h, w = size
    return (smooth_ramp(h, feather)[:, None] * smooth_ramp(w, feather)[None, :]).astype(np.float32)


def footprint(norm: EyeNorm, shape: Sequence[int], margin: int = 2) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) px of the image region the patch covers (clipped), or None."""
    h, w = norm.size
    corners = norm.to_image(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))
    if not np.all(np.isfinite(corners)):
        return None
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, int(shape[1])), min(y1, int(shape[0]))
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def paste_patch(frame: np.ndarray, patch: np.ndarray, norm: EyeNorm, feather: float = 0.2,
                changed: np.ndarray | None = None, labels: np.ndarray | None = None,
                raw: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (H×W×3 uint8, modified in place and returned) with ``patch`` (as
    :func:`warp_to_patch` gives it) warped back by ``W⁻¹`` and blended with a feathered
    mask; pixels outside the patch's footprint are not touched. ``changed`` (H×W bool), if
    given, is set where the patch was blended in. With the patch's label map (``labels``)
    and the raw patch (``raw``) only the eye changes: the blend follows the eye opening
    (:func:`eyepurify.eyescale.eye_alpha`) and the skin keeps the frame's low frequencies
    (:func:`eyepurify.eyescale.carry_low_frequencies`), so no box or halo shows."""
    from eyepurify.eyescale import carry_low_frequencies, eye_alpha

    box = footprint(norm, frame.shape)
    if box is None:
        return frame
    x0, y0, x1, y1 = box
    alpha = feather_mask(norm.size, feather)
    if labels is not None and raw is not None:
        patch = carry_low_frequencies(patch, raw, labels)
        alpha = alpha * eye_alpha(labels)
    src = patch[:, ::-1] if norm.mirrored else patch
    if norm.mirrored:
        alpha = np.ascontiguousarray(alpha[:, ::-1])
    T = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    M = norm.W @ T  # region px → patch px
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    up = cv2.warpPerspective(np.ascontiguousarray(src), M, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpPerspective(alpha, M, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    blended = a * up.astype(np.float32) + (1 - a) * region
    inside = a[..., 0] > 0
    frame[y0:y1, x0:x1][inside] = np.clip(blended[inside] + 0.5, 0, 255).astype(np.uint8)
    if changed is not None:
        changed[y0:y1, x0:x1] |= inside
    return frame


# --------------------------------------------------------------------------- video helpers


class OneEuro:
    """One-euro filter (Casiez, Roussel & Vogel, CHI 2012) on a vector: little lag when the
    signal moves fast, strong smoothing when it is still. ``min_cutoff`` Hz, ``beta``."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self) -> None:
        self.x = self.dx = None

    def __call__(self, x: np.ndarray, dt: float, unit: float = 1.0) -> np.ndarray:
        """The filtered ``x``; ``unit``: the speed that ``beta`` refers to is |dx/dt| / unit."""
        x = np.asarray(x, np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        assert self.dx is not None
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx) / unit, dt)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()


@dataclass
class FaceTracker:
    """One face through a video: detect on the first frame (and whenever lost), then O-Net
    alone around the last box; landmarks smoothed by a one-euro filter in face-size units."""

    detector: object
    fps: float = 25.0
    redetect_every: int = 0  # full detection every N frames too (0: only when lost)
    min_cutoff: float = 2.0
    beta: float = 30.0
    _box: tuple[float, float, float, float] | None = None
    _filter: OneEuro = field(default_factory=OneEuro)
    _n: int = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Smoothed 5×2 landmarks of the face in ``frame``, or None when no face."""
        det = None
        if self._box is not None and not (self.redetect_every and self._n % self.redetect_every == 0):
            det = self.detector.track(frame, self._box)  # type: ignore[attr-defined]
        if det is None:
            dets = self.detector(frame)  # type: ignore[operator]
            det = dets[0] if dets else None
            self._filter.reset()
        self._n += 1
        if det is None:
            self._box = None
            return None
        self._box = det.box
        size = max(det.size, 1.0)
        self._filter.min_cutoff, self._filter.beta = self.min_cutoff, self.beta
        # speeds in face sizes per second, so the cut-offs do not depend on the face's size
        smooth = self._filter(det.landmarks.ravel(), 1.0 / max(self.fps, 1e-3), unit=size)
        return smooth.reshape(5, 2)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> np.ndarray:
    """Optical flow (H×W×2 float32) from gray/RGB uint8 ``a`` to ``b`` (DIS): a(p) ≈ b(p + f(p))."""
    ga = a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = b if b.ndim == 2 else cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]
    return dis.calc(np.ascontiguousarray(ga), np.ascontiguousarray(gb), None)


def warp_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p) (bilinear, edges repeated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """H×W bool: forward–backward consistent (not occluded) pixels of flow ``fwd`` a→b with
    ``bwd`` b→a (Sundaram, Brox & Keutzer, ECCV 2010)."""
    back = warp_by_flow(bwd, fwd)
    diff = ((fwd + back) ** 2).sum(-1)
    return diff < 0.01 * ((fwd**2).sum(-1) + (back**2).sum(-1)) + 0.5


@dataclass
class Stabiliser:
    """Flow-guided temporal blend (``--temporal flow``): inside ``region`` (the pixels
    purification changed), the output is ``(1 − a·M)·out + a·M·warp(previous output)``, with
    the optical flow computed on the raw frames (current → previous; DIS on the region's
    bounding box) and M the forward–backward consistent pixels; outside it nothing changes."""

    weight: float = 0.7
    margin: int = 8
    _prev_raw: np.ndarray | None = None
    _prev_out: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_raw = self._prev_out = None

    def __call__(self, raw: np.ndarray, out: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
        prev_raw, prev_out = self._prev_raw, self._prev_out
        res = out
        if prev_raw is not None and prev_out is not None and prev_raw.shape == raw.shape and self.weight > 0:
            reg = np.ones(raw.shape[:2], bool) if region is None else region
            ys, xs = np.nonzero(reg)
            if len(ys):
                h, w = raw.shape[:2]
                y0, y1 = max(int(ys.min()) - self.margin, 0), min(int(ys.max()) + 1 + self.margin, h)
                x0, x1 = max(int(xs.min()) - self.margin, 0), min(int(xs.max()) + 1 + self.margin, w)
                sl = (slice(y0, y1), slice(x0, x1))
                fwd = dis_flow(raw[sl], prev_raw[sl])
                bwd = dis_flow(prev_raw[sl], raw[sl])
                m = (consistent(fwd, bwd) & reg[sl]).astype(np.float32)[..., None] * self.weight
                warped = warp_by_flow(np.ascontiguousarray(prev_out[sl]), fwd).astype(np.float32)
                res = out.copy()
                res[sl] = np.clip((1 - m) * out[sl].astype(np.float32) + m * warped + 0.5, 0, 255).astype(np.uint8)
        self._prev_raw, self._prev_out = raw, res
        return res


# --------------------------------------------------------------------------- the pipeline


@dataclass
class EyeResult:
    """One purified eye: its geometry, the raw normalised patch and the purified one."""

    face: int
    norm: EyeNorm
    raw: np.ndarray
    purified: np.ndarray


@dataclass
class FrameResult:
    """A purified frame (the input's size) and its eyes; ``landmarks`` per face (5×2 px)."""

    image: np.ndarray
    eyes: list[EyeResult]
    landmarks: list[np.ndarray]
    changed: np.ndarray | None = None  # H×W bool: where eyes were pasted


class FacePurifier:
    """Faces in, purified eyes pasted back out: ``FacePurifier(purifier)(rgb) -> FrameResult``.

    ``purifier``: a :class:`eyepurify.purify.Purifier` with an eye scale (the patch size and
    eye width come from its model file); ``detector``: an MTCNN (default: the ``mtcnn``
    package's weights); ``focal``: the camera's focal length in px (default: image width).
    """

    def __init__(self, purifier, detector=None, focal: float | None = None,
                 max_faces: int | None = None, feather: float = 0.2) -> None:
        if purifier.scale is None:
            from eyepurify.errors import EyepurifyError

            raise EyepurifyError("--faces needs the model's eye scale (drop --eye-scale off)")
        if detector is None:
            from eyepurify.models.mtcnn import MTCNN

            detector = MTCNN.from_package()
        self.purifier, self.detector = purifier, detector
        self.focal, self.max_faces, self.feather = focal, max_faces, feather

    @property
    def scale(self) -> EyeScale:
        return self.purifier.scale

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """5×2 landmarks of each face, largest first (at most ``max_faces``)."""
        dets = self.detector(image)
        return [d.landmarks for d in dets[: self.max_faces]]

    def normalise(self, image: np.ndarray, faces: Sequence[np.ndarray]) -> list[tuple[int, EyeNorm, np.ndarray]]:
        """(face index, geometry, raw patch) of every eye of ``faces``."""
        K = camera_matrix(image.shape, self.focal)
        out = []
        for k, lm in enumerate(faces):
            for norm in normalise_eyes(np.asarray(lm, np.float64), K, self.scale):
                out.append((k, norm, warp_to_patch(image, norm)))
        return out

    def purify(self, image: np.ndarray, faces: Sequence[np.ndarray], stabiliser: Stabiliser | None = None) -> FrameResult:
        """Purify the eyes of ``faces`` (landmarks) in ``image``; ``stabiliser``: the video's
        temporal blend (applied to the pasted frame, only where the eyes were pasted)."""
        eyes = self.normalise(image, faces)
        outs = self.purifier.process([p for _, _, p in eyes]) if eyes else []
        labels = [r.crop_labels for r in outs]
        need = [i for i, lab in enumerate(labels) if lab is None]
        if need and self.purifier.segmenter is not None:  # the blend region of mask-free networks
            for i, lab in zip(need, self.purifier.predict_masks([eyes[i][2] for i in need]), strict=True):
                labels[i] = lab
        frame = image.copy()
        changed = np.zeros(image.shape[:2], bool)
        results = []
        for (k, norm, raw), r, lab in zip(eyes, outs, labels, strict=True):
            same = lab is not None and lab.shape == r.image.shape[:2] and raw.shape == r.image.shape
            paste_patch(frame, r.image, norm, self.feather, changed, lab if same else None, raw if same else None)
            results.append(EyeResult(k, norm, raw, r.image))
        if stabiliser is not None:
            frame = stabiliser(image, frame, changed)
        return FrameResult(frame, results, [np.asarray(f) for f in faces], changed)

    def __call__(self, image: np.ndarray) -> FrameResult:
        return self.purify(image, self.detect(image))
