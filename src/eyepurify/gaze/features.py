"""The appearance feature of the classical gaze estimators (SVR, ALR, random forest, kNN).

As in Sugano et al. (learning-by-synthesis, CVPR 2014) and the classical baselines of
MPIIGaze (Zhang et al.): the eye image in gray, histogram-equalised, shrunk to 9×15 px
and flattened (135 values). Each vector is then L2-normalised to unit length.

Why L2 and not z-scores: histogram equalisation already removes the image's global gain
and offset; unit length makes Euclidean distance a monotone function of the cosine
between images, which is what the neighbour-based estimators (kNN, ALR's candidate set)
compare, and keeps ALR's sparse reconstruction on one scale for every test image. SVR and
random forest do not mind either way (SVR's RBF width is set from the feature variance).
"""

from __future__ import annotations

import cv2
import numpy as np

from eyepurify.imaging import resize_image

#: (H, W) of the shrunk image (Sugano et al.: 15×9 W×H, a 135-D vector)
FEATURE_SIZE = (9, 15)


def to_gray(images: np.ndarray | list[np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
    """N×H×W×3 RGB, N×H×W×1 or N×H×W gray uint8 (or a list of them, any sizes when ``size`` is
    given) → N×h×w gray uint8, resized to ``size`` = (h, w) (the :mod:`eyepurify.imaging` policy)."""
    out = []
    for im in images:
        im = np.asarray(im)
        if im.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {im.dtype}")
        if im.ndim == 3 and im.shape[2] == 3:
            g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
        elif im.ndim == 3 and im.shape[2] == 1:
            g = im[..., 0]
        elif im.ndim == 2:
            g = im
        else:
            raise ValueError(f"an image must be H×W, H×W×1 or H×W×3, got {im.shape}")
        if size is not None:
            g = resize_image(g, size)
        out.append(np.ascontiguousarray(g))
    if not out:
        h, w = size if size is not None else (0, 0)
        return np.zeros((0, h, w), np.uint8)
    return np.stack(out)


def appearance_features(images: np.ndarray | list[np.ndarray], size: tuple[int, int] = FEATURE_SIZE) -> np.ndarray:
    """Images (any of :func:`to_gray`'s inputs) → N×(h·w) float64 unit-length feature vectors.

    gray → histogram equalisation (at the input size) → resize to ``size`` (area when shrinking) →
    flatten → divide by the L2 norm (an all-zero vector stays zero).
    """
    gray = to_gray(images)
    feats = np.empty((len(gray), size[0] * size[1]), np.float64)
    for i, g in enumerate(gray):
        eq = cv2.equalizeHist(g)
        small = resize_image(eq.astype(np.float32), size)
        feats[i] = small.ravel()
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)
