"""A toy gaze task for estimator tests: a dark disc whose position encodes (pitch, yaw)."""

from __future__ import annotations

import cv2
import numpy as np


def blob_gaze_set(n: int, seed: int, size: tuple[int, int] = (36, 60)) -> tuple[np.ndarray, np.ndarray]:
    """(N×H×W uint8 gray images, N×2 pitch/yaw radians): disc centre linear in yaw (x) and pitch (y)."""
    rng = np.random.default_rng(seed)
    h, w = size
    py = rng.uniform(-0.5, 0.5, (n, 2))
    ims = np.empty((n, h, w), np.uint8)
    for i, (p, y) in enumerate(py):
        im = np.full((h, w), 190, np.uint8)
        cx = int(round(w / 2 - y * 0.7 * w))  # positive yaw looks to the image's left
        cy = int(round(h / 2 - p * 0.7 * h))  # positive pitch looks up
        cv2.circle(im, (cx, cy), h // 5, 40, -1)
        ims[i] = np.clip(im.astype(np.int16) + rng.normal(0, 4, (h, w)).round().astype(np.int16), 0, 255)
    return ims, py
