"""The canonical eye scale: find the eye, cut the box a model was trained on, paste back.

A fully convolutional model only works at the eye scale it learned (METHOD §14). Each model
file records that scale as an :class:`EyeScale`: the training size (H, W), the width in
pixels of the visible eye (the bounding box of the non-skin labels) at that size, and that
box's centre. Any input is brought there: :func:`eye_box` finds the eye in a label map,
:func:`canonical_box` turns it into the box with the trained margin and aspect,
:func:`crop` cuts and resizes it, :func:`paste` writes a result back into the untouched
original: blended by a feathered region grown from the eye's label map (the eye opening and
lids), with the original's low frequencies carried into the blended skin so that no box or
halo shows (:func:`eye_alpha`, :func:`carry_low_frequencies`), or, without a label map, by a
feathered rectangle. Inputs that already are normalised eye patches
(:func:`is_patch`: the trained aspect and at most twice the trained width, e.g. MPIIGaze
36×60, 72×120 renders) need no eye search: the whole patch is resized to the training size
(a no-op at that size), processed there and resized back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from eyepurify.imaging import resize_image, resize_labels

#: Measured on 300 renders at 72×120 (labels > 0): eye width 76.0 px (p10 66.9, p90 89.0),
#: box centre (59, 35). Used for model files that do not record their own scale.
RENDER_EYE_WIDTH_FRAC = 76.0 / 120.0
RENDER_CENTER_FRAC = (59.0 / 120.0, 35.0 / 72.0)


@dataclass(frozen=True)
class EyeScale:
    """size: (H, W) trained at; eye_width: px at that size; center: (x, y) px at that size."""

    size: tuple[int, int]
    eye_width: float
    center: tuple[float, float]

    @classmethod
    def for_renders(cls, size: Sequence[int]) -> EyeScale:
        """The scale of our renders at ``size`` (the default for models trained on them)."""
        h, w = int(size[0]), int(size[1])
        return cls((h, w), RENDER_EYE_WIDTH_FRAC * w, (RENDER_CENTER_FRAC[0] * w, RENDER_CENTER_FRAC[1] * h))

    @classmethod
    def from_meta(cls, meta: dict[str, object], size: Sequence[int] | None = None) -> EyeScale | None:
        """From a model file's ``eye_scale`` entry; else the render scale at ``size``; else None."""
        d = meta.get("eye_scale")
        if isinstance(d, dict):
            try:
                sz = d["size"]
                c = d["center"]
                return cls((int(sz[0]), int(sz[1])), float(d["eye_width"]), (float(c[0]), float(c[1])))
            except (KeyError, TypeError, ValueError, IndexError):
                return None
        return cls.for_renders(size) if size else None

    def to_meta(self) -> dict[str, object]:
        return {"size": list(self.size), "eye_width": round(self.eye_width, 3), "center": [round(v, 3) for v in self.center]}


def measure_eye_scale(labels: Sequence[np.ndarray]) -> EyeScale:
    """Median eye scale of same-size label maps (H×W uint8) — what a model trained on them learned."""
    boxes = [b for b in (eye_box(lab) for lab in labels) if b is not None]
    if not boxes:
        raise ValueError("no eye (non-skin label) in any label map")
    h, w = labels[0].shape[:2]
    arr = np.array(boxes, dtype=np.float64)
    width = float(np.median(arr[:, 2] - arr[:, 0]))
    cx = float(np.median((arr[:, 0] + arr[:, 2]) / 2))
    cy = float(np.median((arr[:, 1] + arr[:, 3]) / 2))
    return EyeScale((h, w), width, (cx, cy))


#: an eye-like label map (:func:`looks_like_eye`) shows at least these shares of sclera and of
#: iris + pupil: 5th percentiles of the shipped segmenter's crops of real eye photos are
#: 1.3 % and 2.3 %, while crops that landed on a cheek or hair show (nearly) none
MIN_SCLERA_SHARE = 0.003
MIN_IRIS_SHARE = 0.01


def looks_like_eye(labels: np.ndarray) -> bool:
    """True when an H×W label map of an eye crop shows an eye: some sclera and some iris/pupil."""
    lab = np.asarray(labels)
    n = max(1, lab.size)
    return bool((lab == 1).sum() / n >= MIN_SCLERA_SHARE and ((lab == 2) | (lab == 3)).sum() / n >= MIN_IRIS_SHARE)


def eye_box(labels: np.ndarray, min_area: int = 4) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) px of the largest connected non-skin region of an H×W label map, or None."""
    fg = (np.asarray(labels) > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = stats[k]
    if area < min_area:
        return None
    return float(x), float(y), float(x + bw), float(y + bh)


@dataclass(frozen=True)
class Box:
    """An integer pixel box (x0, y0) inclusive to (x1, y1) exclusive; may extend past the image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def to_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def canonical_box(eye: tuple[float, float, float, float], scale: EyeScale) -> Box:
    """The box around ``eye`` (x0, y0, x1, y1 px) that maps it to ``scale``: same eye width
    and centre position as at training, the training aspect."""
    h, w = scale.size
    k = (eye[2] - eye[0]) / max(scale.eye_width, 1e-6)  # input px per trained px
    bw, bh = max(2, round(w * k)), max(2, round(h * k))
    cx, cy = (eye[0] + eye[2]) / 2, (eye[1] + eye[3]) / 2
    x0 = round(cx - scale.center[0] * k)
    y0 = round(cy - scale.center[1] * k)
    return Box(x0, y0, x0 + bw, y0 + bh)


def whole_image_box(shape: tuple[int, ...], scale: EyeScale) -> Box:
    """The centred box of the training aspect that covers the whole image (no eye found)."""
    h, w = shape[:2]
    th, tw = scale.size
    bw = max(w, round(h * tw / th))
    bh = max(h, round(bw * th / tw))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return Box(x0, y0, x0 + bw, y0 + bh)


def is_patch(shape: tuple[int, ...], scale: EyeScale, aspect_tol: float = 0.1, max_factor: float = 2.0) -> bool:
    """True for normalised eye patches: the trained aspect (±``aspect_tol``), at most
    ``max_factor`` × the trained width; such a patch is taken whole as the eye box."""
    h, w = shape[:2]
    th, tw = scale.size
    return abs((h / w) / (th / tw) - 1) <= aspect_tol and w <= max_factor * tw


def nearest_patch_scale(shape: tuple[int, ...], scales: Sequence[EyeScale | None]) -> int | None:
    """Index in ``scales`` of the one whose trained width is nearest ``shape``'s among those
    ``shape`` is a normalised patch of (:func:`is_patch`); None when it is a patch of none."""
    fits = [i for i, sc in enumerate(scales) if sc is not None and is_patch(shape, sc)]
    if not fits:
        return None
    return min(fits, key=lambda i: abs(np.log(shape[1] / scales[i].size[1])))  # type: ignore[union-attr]


def _cut(image: np.ndarray, box: Box, border: int) -> np.ndarray:
    """``box`` of ``image``, padded with ``border`` (replicate or constant 0) past its edges."""
    h, w = image.shape[:2]
    pad = (max(0, -box.y0), max(0, box.y1 - h), max(0, -box.x0), max(0, box.x1 - w))
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, border)
    return image[box.y0 + pad[0] : box.y1 + pad[0], box.x0 + pad[2] : box.x1 + pad[2]]


def _overlap(box: Box, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """(image slices, box slices) of the part of ``box`` inside an image of ``shape``, or None."""
    h, w = shape[:2]
    ix0, iy0, ix1, iy1 = max(box.x0, 0), max(box.y0, 0), min(box.x1, w), min(box.y1, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return ((slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - box.y0, iy1 - box.y0), slice(ix0 - box.x0, ix1 - box.x0)))


def crop(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The ``box`` of an H×W×3 uint8 image (edge pixels repeated past the edges) resized to ``size``."""
    return resize_image(np.ascontiguousarray(_cut(image, box, cv2.BORDER_REPLICATE)), size)


def crop_labels(labels: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The ``box`` of an H×W label map (skin past the edges) resized (nearest) to ``size``."""
    return resize_labels(np.ascontiguousarray(_cut(labels, box, cv2.BORDER_CONSTANT)), size)


def smooth_ramp(n: int, feather: float) -> np.ndarray:
    """0 → 1 smoothstep over ``feather`` × n pixels at both ends of a length-n line."""
    f = feather * n
    if f <= 0:
        return np.ones(n, np.float32)
    i = np.arange(n, dtype=np.float32)
    t = np.clip(np.minimum(i + 0.5, n - i - 0.5) / f, 0.0, 1.0)
    return t * t * (3 - 2 * t)


#: the blend region grows the eye opening by this share of the eye's width and softens its
#: edge with a Gaussian of ``EYE_SOFTEN`` × the width: the skin ring the look measure reads
#: (outside the opening grown by 0.35 × the width) stays almost untouched
EYE_GROW = 0.12
EYE_SOFTEN = 0.07
#: low frequencies (Gaussian σ = this × the eye width) the blended skin takes from the original
LOW_FREQUENCY = 0.12


def _eye_width(labels: np.ndarray) -> float:
    xs = np.nonzero(np.asarray(labels) > 0)[1]
    return float(xs.max() - xs.min() + 1) if xs.size else 0.0


def eye_alpha(labels: np.ndarray, grow: float = EYE_GROW, soften: float = EYE_SOFTEN) -> np.ndarray:
    """float32 H×W blend weights in [0, 1] of an H×W label map: 1 over the eye opening
    (labels > 0) grown by ``grow`` × its width, falling off with a Gaussian of ``soften`` ×
    the width; all 0 when the map shows no eye."""
    eye = (np.asarray(labels) > 0).astype(np.uint8)
    width = _eye_width(labels)
    if width == 0:
        return np.zeros(eye.shape, np.float32)
    r = max(1, round(grow * width))
    grown = cv2.dilate(eye, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    sigma = max(0.5, soften * width)
    return np.clip(cv2.GaussianBlur(grown.astype(np.float32), (0, 0), sigma), 0.0, 1.0)


def carry_low_frequencies(patch: np.ndarray, original: np.ndarray, labels: np.ndarray,
                          sigma_frac: float = LOW_FREQUENCY) -> np.ndarray:
    """H×W×3 uint8 ``patch`` with its low frequencies (Gaussian σ = ``sigma_frac`` × the eye
    width) replaced by those of ``original`` (same size) outside the eye opening: the skin
    keeps the original's light and colour, the eye keeps the purified look. A new array."""
    width = _eye_width(labels)
    if width == 0:
        return patch.copy()
    sigma = max(0.5, sigma_frac * width)
    p, o = patch.astype(np.float32), original.astype(np.float32)
    low = cv2.GaussianBlur(o, (0, 0), sigma) - cv2.GaussianBlur(p, (0, 0), sigma)
    inside = cv2.GaussianBlur((np.asarray(labels) > 0).astype(np.float32), (0, 0), max(0.5, 0.03 * width))
    return np.clip(p + low * (1.0 - inside)[..., None] + 0.5, 0, 255).astype(np.uint8)


def paste(original: np.ndarray, patch: np.ndarray, box: Box, feather: float = 0.2,
          labels: np.ndarray | None = None, original_crop: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``original`` (H×W×3 uint8) with ``patch`` resized into ``box``.

    With the patch's label map (``labels``, the patch's size) only the eye changes: the
    blend weights are :func:`eye_alpha` (times a ramp over ``feather`` × the box at its
    edges) and the patch first takes the original's low frequencies outside the eye
    (:func:`carry_low_frequencies`). Without one, a rectangle blended over ``feather`` × the
    box's width (height) at its left and right (top and bottom) edges. Pixels outside the
    box are unchanged. ``original_crop``: :func:`crop` of the original at the patch's size,
    when the caller has it already."""
    out = original.copy()
    ov = _overlap(box, original.shape)
    if ov is None:
        return out
    dst, src = ov
    ramp = smooth_ramp(box.height, feather)[:, None] * smooth_ramp(box.width, feather)[None, :]
    if labels is None:
        up = resize_image(patch, (box.height, box.width))
        alpha = ramp
    else:
        raw = crop(original, box, patch.shape[:2]) if original_crop is None else original_crop
        mixed = carry_low_frequencies(patch, raw, labels)
        up = resize_image(mixed, (box.height, box.width))
        alpha = resize_image(eye_alpha(labels), (box.height, box.width)) * ramp
    a = alpha[src][..., None]
    region = out[dst].astype(np.float32)
    out[dst] = np.clip(a * up[src].astype(np.float32) + (1 - a) * region + 0.5, 0, 255).astype(np.uint8)
    return out


def paste_labels(shape: tuple[int, int], labels: np.ndarray, box: Box) -> np.ndarray:
    """An H×W label map, skin everywhere but ``box``, where ``labels`` is resized (nearest)."""
    out = np.zeros(shape[:2], np.uint8)
    ov = _overlap(box, shape)
    if ov is not None:
        out[ov[0]] = resize_labels(labels, (box.height, box.width))[ov[1]]
    return out


def coarse_size(shape: tuple[int, ...], scale: EyeScale, multiple: int = 8) -> tuple[int, int]:
    """Working size for a first look at a whole image: the trained width, the image's aspect."""
    h, w = shape[:2]
    tw = scale.size[1]
    th = max(multiple, round(tw * h / w / multiple) * multiple)
    return th, tw
