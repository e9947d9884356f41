"""What a person sees in a purified photo, as numbers (the purifier issue's "look" targets).

* ``skin_ring_change``: mean |RGB change| (0–255) of the skin around the eye — inside the
  crop box, outside the true eye opening dilated by 0.35 × the eye's width. A visible box
  or a dark halo from pasting the purified crop back shows here.
* ``iris_chroma_change``: mean |change of chromaticity| × 100 over the true iris (a brown
  iris painted blue shows here).
* ``checkerboard``: the share of period-2 spectral energy of an image's high-pass
  (a transposed-convolution checkerboard); compared as purified crop / raw crop.
* ``luminance_spread``: p95 − p5 of the gray level in the central region of a patch (gray
  MPIIGaze patches must keep their contrast).
* ``iris_colour_class``: the iris colour family nearest to an iris's mean colour.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from eyepurify.eyescale import Box

#: dilation of the true eye opening, as a share of its width, that the skin ring excludes
RING_DILATION = 0.35


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def skin_ring(labels: np.ndarray, box: Box) -> np.ndarray:
    """Bool H×W: inside ``box`` and outside the eye opening (labels > 0) dilated by
    ``RING_DILATION`` × its width. Empty when the map has no eye."""
    eye = np.asarray(labels) > 0
    if eye.sum() == 0:
        return np.zeros(eye.shape, bool)
    xs = np.nonzero(eye)[1]
    grown = ndimage.binary_dilation(eye, iterations=max(1, int(RING_DILATION * (xs.max() - xs.min() + 1))))
    inbox = np.zeros(eye.shape, bool)
    inbox[max(0, box.y0) : max(0, box.y1), max(0, box.x0) : max(0, box.x1)] = True
    return inbox & ~grown


def skin_ring_change(raw: np.ndarray, purified: np.ndarray, labels: np.ndarray, box: Box) -> float:
    """Mean |RGB change| (0–255) over :func:`skin_ring`; NaN when the ring has ≤ 100 pixels."""
    ring = skin_ring(labels, box)
    if ring.sum() <= 100:
        return float("nan")
    return float(np.abs(_rgb(purified) - _rgb(raw))[ring].mean())


def chromaticity(image: np.ndarray) -> np.ndarray:
    """H×W×3 → H×W×3 r, g, b / (r + g + b) (0 where the pixel is black)."""
    x = _rgb(image)
    return x / np.maximum(x.sum(-1, keepdims=True), 1.0)


def iris_chroma_change(raw: np.ndarray, purified: np.ndarray, labels: np.ndarray) -> float:
    """Mean L1 change of chromaticity × 100 over the iris (label 2); NaN below 50 iris pixels."""
    iris = np.asarray(labels) == 2
    if iris.sum() <= 50:
        return float("nan")
    return float(100 * np.abs(chromaticity(purified)[iris] - chromaticity(raw)[iris]).sum(-1).mean())


def period2_share(image: np.ndarray) -> float:
    """Share of the spectral energy of the high-pass gray image (minus a 5×5 mean) at the
    period-2 frequencies (the Nyquist row and column; even sizes), or at the Nyquist corner."""
    g = _rgb(image).mean(-1)
    g = g - ndimage.uniform_filter(g, 5)
    f = np.abs(np.fft.fft2(g)) ** 2
    h, w = g.shape
    total = f.sum() + 1e-9
    peaks = f[h // 2, :].sum() + f[:, w // 2].sum() if h % 2 == 0 and w % 2 == 0 else f[h // 2, w // 2]
    return float(peaks / total)


def checkerboard_ratio(purified: np.ndarray, raw: np.ndarray) -> float:
    """:func:`period2_share` of the purified image over that of the raw one (same size)."""
    return period2_share(purified) / max(period2_share(raw), 1e-9)


def luminance_spread(image: np.ndarray, centre: float = 0.6) -> float:
    """p95 − p5 of the gray level (0–255) over the central ``centre`` × the height and width."""
    g = _rgb(image).mean(-1)
    h, w = g.shape
    dh, dw = int(h * (1 - centre) / 2), int(w * (1 - centre) / 2)
    c = g[dh : h - dh, dw : w - dw]
    return float(np.percentile(c, 95) - np.percentile(c, 5))


#: Iris colour families (the renderer's six iris colours, dark brown and brown merged) as the
#: centroids of (r, g, b) / (r + g + b) and 0.3 × the mean level / 255 of the iris of 1200
#: indoor renders at 72×120 (draws of seed 9); nearest-centroid classifies 600 other indoor
#: renders (seed 10) 100 % correctly.
IRIS_FAMILIES: dict[str, tuple[float, float, float, float]] = {
    "brown": (0.5289, 0.3019, 0.1692, 0.0389),
    "hazel": (0.4615, 0.3642, 0.1743, 0.0721),
    "green": (0.3257, 0.4206, 0.2537, 0.0746),
    "blue": (0.2362, 0.3304, 0.4334, 0.1148),
    "grey": (0.3119, 0.3398, 0.3483, 0.1104),
}


def iris_colour_class(image: np.ndarray, labels: np.ndarray) -> str | None:
    """The iris colour family (:data:`IRIS_FAMILIES`) nearest to the mean colour of the iris
    (label 2) of an H×W×3 uint8 image, or None below 20 iris pixels."""
    iris = np.asarray(labels) == 2
    if iris.sum() < 20:
        return None
    c = _rgb(image)[iris].mean(0)
    total = c.sum()
    f = np.r_[c / max(total, 1e-6), 0.3 * total / 3 / 255]
    return min(IRIS_FAMILIES, key=lambda k: float(np.linalg.norm(f - np.asarray(IRIS_FAMILIES[k]))))
