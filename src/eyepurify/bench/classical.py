"""Cheap classical purifiers every learned one must beat: histogram matching and Reinhard.

Both map an image to the colour statistics of a reference (synthetic) set; both are pure
functions on uint8 H×W×3 images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ReferenceStats:
    """Per-channel RGB quantiles (for histogram matching) and Lab mean/std (for Reinhard)."""

    quantiles: np.ndarray  # 3×Q, the RGB values at ``levels``
    levels: np.ndarray  # Q in [0, 1]
    lab_mean: np.ndarray  # (3,)
    lab_std: np.ndarray  # (3,)


def reference_stats(images: Sequence[np.ndarray], n_levels: int = 256) -> ReferenceStats:
    """Statistics of a reference set of uint8 H×W×3 images (sizes may differ)."""
    if not images:
        raise ValueError("reference_stats needs at least one image")
    pix = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    levels = np.linspace(0.0, 1.0, n_levels)
    q = np.quantile(pix, levels, axis=0).T
    lab = np.concatenate([_lab(im).reshape(-1, 3) for im in images])
    return ReferenceStats(q, levels, lab.mean(0), lab.std(0) + 1e-6)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).astype(np.float64)


def histogram_match(image: np.ndarray, ref: ReferenceStats) -> np.ndarray:
    """Per-channel histogram matching of uint8 H×W×3 ``image`` to the reference quantiles."""
    out = np.empty_like(image)
    for c in range(3):
        ch = image[..., c].ravel()
        # the image's own CDF at each pixel value (mid-rank for ties), mapped through ref⁻¹
        values, counts = np.unique(ch, return_counts=True)
        cdf = (np.cumsum(counts) - counts / 2.0) / ch.size
        mapped = np.interp(cdf, ref.levels, ref.quantiles[c])
        lut = np.zeros(256)
        lut[values] = mapped
        out[..., c] = np.clip(np.round(lut[image[..., c]]), 0, 255).astype(np.uint8)
    return out


def reinhard(image: np.ndarray, ref: ReferenceStats) -> np.ndarray:
    """Reinhard et al. colour transfer: match Lab mean and std of ``image`` to the reference."""
    lab = _lab(image)
    mu, sd = lab.reshape(-1, 3).mean(0), lab.reshape(-1, 3).std(0) + 1e-6
    out = (lab - mu) / sd * ref.lab_std + ref.lab_mean
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
