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
* ``iris_colour_class``: the nearest of the renderer's iris colours to an iris's mean colour.
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


def iris_colour_class(image: np.ndarray, labels: np.ndarray) -> str | None:
    """The renderer's iris colour (``IRIS_COLOURS``) nearest in chromaticity and lightness to
    the mean colour of the iris (label 2), or None below 20 iris pixels."""
    from eyepurify.data.render.params import IRIS_COLOURS

    iris = np.asarray(labels) == 2
    if iris.sum() < 20:
        return None
    mean = _rgb(image)[iris].mean(0) / 255.0
    names = list(IRIS_COLOURS)
    anchors = np.array([IRIS_COLOURS[n] for n in names])

    def feature(c: np.ndarray) -> np.ndarray:  # chromaticity (hue) with a little lightness
        c = np.asarray(c, np.float64)
        s = c.sum(-1, keepdims=True)
        return np.concatenate([c / np.maximum(s, 1e-6), 0.2 * s / 3], axis=-1)

    d = np.linalg.norm(feature(anchors) - feature(mean), axis=1)
    return names[int(np.argmin(d))]
