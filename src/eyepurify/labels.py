"""Label-map utilities: the orphan-label fix, connected components, pupil centres, colours, IoU.

Label maps are H×W uint8 with 0 skin, 1 sclera, 2 iris, 3 pupil. Every function is pure:
it never edits its input. Coordinates are (x, y) pixels with pixel centres at integers
(the OpenCV convention).

Orphan-label fix (METHOD §4), as decided here:

* Components use 8-connectivity. The kept iris is the iris pixels of the connected
  component of iris ∪ pupil holding the most iris pixels, so an iris split in two by its
  pupil stays whole. The kept pupil is the largest pupil component of that same region.
* The pupil is "outside the iris" when no pupil component touches the kept iris. Then
  (and when there is no pupil at all) the pupil becomes a disk at the centroid of the
  hole-filled kept iris with radius ``pupil_factor × sqrt(area / π)`` of that filled iris,
  clipped to the filled iris (largest piece kept, at least the iris pixel nearest the
  centroid).
* Other pupil components touching the kept iris (a second dark blob in the iris) become
  iris, so the iris region keeps its shape and connectivity. Every other removed iris or
  pupil component (away from the kept iris) takes the most common label on its
  one-pixel outer ring among skin and sclera (ties to skin; sclera when the ring has
  neither): a stray blob on the eyelid becomes skin, one on the white of the eye sclera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from eyepurify.sample import IRIS, NUM_CLASSES, PUPIL, SCLERA, SKIN

_EIGHT = np.ones((3, 3), dtype=bool)

#: RGB colour of each class in :func:`colorize` (skin, sclera, iris, pupil).
PALETTE = np.array([[0, 0, 0], [230, 230, 230], [40, 170, 60], [220, 40, 40]], dtype=np.uint8)


def _check_labels(labels: np.ndarray) -> np.ndarray:
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"expected an H×W label map, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"label maps must be uint8, got {a.dtype}")
    if a.size and a.max() >= NUM_CLASSES:
        raise ValueError(f"label values must be in 0..{NUM_CLASSES - 1}, got {int(a.max())}")
    return a


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean H×W mask (all False when empty).

    Ties go to the component met first in row-major order.
    """
    comp, n = ndimage.label(np.asarray(mask, dtype=bool), structure=_EIGHT)
    if n == 0:
        return np.zeros(comp.shape, dtype=bool)
    sizes = np.bincount(comp.ravel())[1:]
    return comp == (int(np.argmax(sizes)) + 1)


def _fill_removed(out: np.ndarray, removed: np.ndarray) -> None:
    """Give each component of ``removed`` the skin/sclera majority of its outer ring."""
    comp, n = ndimage.label(removed, structure=_EIGHT)
    if n == 0:
        return
    candidate = ((out == SKIN) | (out == SCLERA)) & ~removed
    for i, sl in enumerate(ndimage.find_objects(comp), start=1):
        # Grow the bounding box by one pixel so the ring fits.
        rs = slice(max(sl[0].start - 1, 0), sl[0].stop + 1)
        cs = slice(max(sl[1].start - 1, 0), sl[1].stop + 1)
        c = comp[rs, cs] == i
        ring = ndimage.binary_dilation(c, structure=_EIGHT) & ~c & candidate[rs, cs]
        values = out[rs, cs][ring]
        fill = int(np.argmax(np.bincount(values, minlength=2)[:2])) if values.size else SCLERA
        out[rs, cs][c] = fill


def _pupil_disk(iris_filled: np.ndarray, pupil_factor: float) -> np.ndarray:
    """Disk at the centroid of ``iris_filled`` (radius from its area), clipped to it."""
    ys, xs = np.nonzero(iris_filled)
    cy, cx = ys.mean(), xs.mean()
    r = pupil_factor * np.sqrt(ys.size / np.pi)
    yy, xx = np.mgrid[: iris_filled.shape[0], : iris_filled.shape[1]]
    disk = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & iris_filled
    if not disk.any():
        k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
        disk[ys[k], xs[k]] = True
    return largest_component(disk)


def orphan_fix(labels: np.ndarray, pupil_factor: float = 0.4, keep_largest: bool = True) -> np.ndarray:
    """The orphan-label fix (METHOD §4, rules in this module's docstring).

    labels: H×W uint8 label map (0..3). pupil_factor: pupil radius as a fraction of the
    iris equivalent radius when a pupil has to be drawn (> 0). keep_largest: keep only the
    main iris and pupil components; with False nothing is removed and a pupil is drawn only
    when there is none at all (where a pupil lies is judged by components, so only with
    True). Returns a new H×W uint8 map; the input is unchanged. Maps without iris only get
    their largest pupil component kept.
    """
    a = _check_labels(labels)
    if not pupil_factor > 0:
        raise ValueError(f"pupil_factor must be > 0, got {pupil_factor}")
    out = a.copy()
    iris, pupil = a == IRIS, a == PUPIL
    if keep_largest:
        region, n = ndimage.label(iris | pupil, structure=_EIGHT)
        if iris.any():
            main = region == int(np.argmax(np.bincount(region[iris], minlength=n + 1)))
            pupil_kept = largest_component(pupil & main)
            iris_kept = main & ~pupil_kept
        else:
            iris_kept = iris
            pupil_kept = largest_component(pupil)
    else:
        iris_kept, pupil_kept = iris, pupil
    orphan = bool(iris.any()) and not pupil_kept.any()
    removed = (iris | pupil) & ~iris_kept & ~pupil_kept
    out[iris_kept] = IRIS
    out[removed] = 255  # not a candidate for any ring while filling
    _fill_removed(out, removed)
    if orphan:
        filled = ndimage.binary_fill_holes(iris_kept)
        out[_pupil_disk(filled, pupil_factor)] = PUPIL
    return out


@dataclass(frozen=True)
class PupilFit:
    """Where the pupil centre came from.

    center: (2,) float (x, y) pixels: the ellipse centre when an ellipse was fitted,
        else the centroid. centroid: (2,) float (x, y) of the component's pixels.
    method: "pupil_ellipse", "pupil_centroid", "iris_ellipse" or "iris_centroid".
    ellipse: ((cx, cy), (width, height), angle_degrees) from cv2.fitEllipse, or None.
    """

    center: np.ndarray
    method: str
    ellipse: tuple[tuple[float, float], tuple[float, float], float] | None
    centroid: np.ndarray


def _fit_component(mask: np.ndarray, name: str, rim: np.ndarray) -> PupilFit:
    """Fit ``mask``; contour points touching ``rim`` (the class outside the true boundary)
    are used alone when there are at least 5, so eyelid cuts do not bias the ellipse."""
    ys, xs = np.nonzero(mask)
    centroid = np.array([xs.mean(), ys.mean()], dtype=np.float64)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = max(contours, key=len) if contours else np.zeros((0, 1, 2), np.int32)
    near_rim = ndimage.binary_dilation(rim, structure=_EIGHT)
    on_rim = pts[near_rim[pts[:, 0, 1], pts[:, 0, 0]]]
    if len(on_rim) >= 5:
        pts = on_rim
    if len(pts) >= 5:
        (ex, ey), (w, h), ang = cv2.fitEllipse(pts)
        # Thin blobs (lines of pixels) and wild extrapolations give meaningless ellipses.
        plausible = min(w, h) >= 2.0 and np.pi * w * h / 4 <= 6 * xs.size
        if np.isfinite([ex, ey, w, h, ang]).all() and plausible:
            ellipse = ((float(ex), float(ey)), (float(w), float(h)), float(ang))
            return PupilFit(np.array([ex, ey], np.float64), f"{name}_ellipse", ellipse, centroid)
    return PupilFit(centroid.copy(), f"{name}_centroid", None, centroid)


def fit_pupil(labels: np.ndarray) -> PupilFit | None:
    """Fit the pupil centre of an H×W uint8 label map.

    Uses the largest pupil component: an ellipse fitted (cv2.fitEllipse) to its outer
    contour (only the part bordering the iris when that has ≥ 5 points, so an eyelid cut
    does not bias it) when that has at least 5 points and the ellipse is plausible (both axes ≥ 2 px,
    area ≤ 6× the component's), else its centroid. Without a pupil, the
    largest iris component (holes filled; the part of its contour bordering the sclera) is
    used the same way. None when neither exists.
    """
    a = _check_labels(labels)
    for cls, rim, name in ((PUPIL, IRIS, "pupil"), (IRIS, SCLERA, "iris")):
        comp = largest_component(a == cls)
        if comp.any():
            if cls == IRIS:
                comp = ndimage.binary_fill_holes(comp)
            return _fit_component(comp, name, a == rim)
    return None


def pupil_center(labels: np.ndarray) -> np.ndarray | None:
    """(2,) float (x, y) pupil centre of a label map (see :func:`fit_pupil`), or None."""
    fit = fit_pupil(labels)
    return None if fit is None else fit.center


def colorize(labels: np.ndarray) -> np.ndarray:
    """H×W label map → H×W×3 uint8 RGB using :data:`PALETTE`."""
    return PALETTE[_check_labels(labels)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend the class colours over an H×W×3 uint8 image (skin left as is) → H×W×3 uint8."""
    lab = _check_labels(labels)
    if image.shape[:2] != lab.shape or image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"image {image.shape} {image.dtype} does not fit labels {lab.shape}")
    out = image.astype(np.float32)
    m = lab != SKIN
    out[m] = (1 - alpha) * out[m] + alpha * PALETTE[lab[m]].astype(np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) int64 counts, rows = target class, columns = predicted class."""
    p, t = np.asarray(pred).ravel().astype(np.int64), np.asarray(target).ravel().astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in size: {p.size} vs {t.size}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_from_confusion(conf: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean IoU, per-class IoU) from a confusion matrix.

    Classes absent from both prediction and target get NaN and are left out of the mean
    (mean is NaN when every class is absent).
    """
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    valid = ~np.isnan(iou)
    return (float(iou[valid].mean()) if valid.any() else float("nan")), iou
