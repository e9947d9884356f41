"""Resizing with one policy, for images and label maps.

Images: area interpolation when both sides shrink (no aliasing), bilinear otherwise.
Label maps: nearest neighbour (labels are categories, never blended).
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W(×C) uint8 → size (H, W); returned unchanged when it already has that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if image.shape[0] >= h and image.shape[1] >= w else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W uint8 label map → size (H, W) by nearest neighbour."""
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


def to_gray(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → H×W×3 uint8 with three equal channels: BT.601 luminance, rounded."""
    y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def is_gray(image: np.ndarray) -> bool:
    """True when an H×W×3 image has three equal channels (a gray photo stored as RGB)."""
    return bool(image.ndim == 3 and image.shape[-1] == 3 and (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
