"""Resizing with one policy, for images and label maps, and the one ``HxW`` size parser.

Images: area interpolation when neither side grows (no aliasing), bilinear otherwise.
Label maps: nearest neighbour (labels are categories, never blended).
Every resize in the package goes through here (the renderer draws at its own scale).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np

from eyepurify.errors import EyepurifyError


def parse_size(text: str, lo: int = 2, hi: int = 4096) -> tuple[int, int]:
    """"36x60" (H×W; ``x``, ``X`` or ``×``) -> (36, 60); EyepurifyError outside ``lo..hi`` per side."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m:
        raise EyepurifyError(f"bad size {text!r}: use HxW, e.g. 72x120")
    h, w = int(m.group(1)), int(m.group(2))
    if not (lo <= h <= hi and lo <= w <= hi):
        raise EyepurifyError(f"size {h}x{w} is out of range (use {lo}..{hi} pixels per side)")
    return h, w


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W(×C) uint8 (or float32) → size (H, W), same dtype and channels (C = 1 kept);
    returned unchanged when it already has that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if image.shape[0] >= h and image.shape[1] >= w else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interp)
    return out[..., None] if image.ndim == 3 and out.ndim == 2 else out


def resize_images(images: Sequence[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """:func:`resize_image` over a sequence of images (any sizes) → a list at ``size``."""
    return [resize_image(im, size) for im in images]


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W uint8 label map → size (H, W) by nearest neighbour; unchanged at that size."""
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


def resize_pair(image: np.ndarray, labels: np.ndarray | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """An image (:func:`resize_image`) and its label map (:func:`resize_labels`; None stays None) at ``size``."""
    return resize_image(image, size), None if labels is None else resize_labels(labels, size)


def to_gray(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → H×W×3 uint8 with three equal channels: BT.601 luminance, rounded."""
    y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def is_gray(image: np.ndarray) -> bool:
    """True when an H×W×3 image has three equal channels (a gray photo stored as RGB)."""
    return bool(image.ndim == 3 and image.shape[-1] == 3 and (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
