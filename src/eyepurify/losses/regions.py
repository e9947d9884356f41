"""Region maps: from label maps, and resized to a loss-network layer's size.

A region map is a float tensor N×K×H×W with values in [0, 1] (soft maps allowed, e.g. the
attention subnet's att⁺). The attention region is iris ∪ pupil (labels 2 and 3), the
background region is everything else (skin and sclera).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SKIN, SCLERA, IRIS, PUPIL = 0, 1, 2, 3
ATTENTION_CLASSES = (IRIS, PUPIL)


@dataclass(frozen=True)
class Regions:
    """Attention and background maps of one image batch.

    attention: N×K×H×W in [0, 1]; K = 1 (iris ∪ pupil, or a soft att⁺) or one channel per
    attention class (iris, pupil). background: N×1×H×W in [0, 1], the rest of the image.
    """

    attention: Tensor
    background: Tensor

    def __post_init__(self) -> None:
        a, b = self.attention, self.background
        if a.ndim != 4 or b.ndim != 4 or b.shape[1] != 1:
            raise ValueError(
                f"Regions: attention must be N×K×H×W and background N×1×H×W, "
                f"got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
            raise ValueError(
                f"Regions: attention {tuple(a.shape)} and background {tuple(b.shape)} "
                "differ in batch or size"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the maps."""
        return int(self.attention.shape[2]), int(self.attention.shape[3])

    @classmethod
    def from_attention(cls, attention: Tensor) -> Regions:
        """Regions from attention maps N×K×H×W: background = 1 − Σ_k attention_k, clamped to [0, 1]."""
        background = (1.0 - attention.sum(dim=1, keepdim=True)).clamp(0.0, 1.0)
        return cls(attention=attention, background=background)

    @classmethod
    def from_labels(cls, labels: Tensor, per_class: bool = False) -> Regions:
        """Hard regions from integer label maps N×H×W (0 skin, 1 sclera, 2 iris, 3 pupil).

        per_class=False: one attention channel (iris ∪ pupil); True: two (iris, pupil).
        """
        if labels.ndim != 3:
            raise ValueError(f"labels must be N×H×W, got {tuple(labels.shape)}")
        if labels.is_floating_point():
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
        maps = class_maps(labels, ATTENTION_CLASSES)
        attention = maps.amax(dim=1, keepdim=True) if not per_class else maps
        return cls.from_attention(attention)


def class_maps(labels: Tensor, classes: tuple[int, ...]) -> Tensor:
    """One float32 channel per class: labels N×H×W int -> N×len(classes)×H×W in {0, 1}."""
    return torch.stack([(labels == c) for c in classes], dim=1).to(torch.float32)


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize region maps N×K×H×W to N×K×h×w.

    Shrinking in both dimensions uses area averaging (``F.interpolate(mode="area")``,
    i.e. adaptive average pooling: each output cell holds the fraction of its window that
    the region covers); anything else uses bilinear interpolation (align_corners=False).
    Both keep values in [0, 1] and are differentiable. Same size: returned as is.
    """
    h, w = int(size[0]), int(size[1])
    if maps.ndim != 4:
        raise ValueError(f"region maps must be N×K×H×W, got {tuple(maps.shape)}")
    H, W = int(maps.shape[2]), int(maps.shape[3])
    if (H, W) == (h, w):
        return maps
    if h <= H and w <= W:
        return F.interpolate(maps, size=(h, w), mode="area")
    return F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)


def region_area(maps: Tensor) -> Tensor:
    """Effective area of each region: Σ_positions map², N×K×h×w -> N×K.

    For hard {0, 1} maps this is the pixel count; for soft maps it is the normaliser that
    makes a region Gram (F·R)(F·R)ᵀ / area a weighted mean of f fᵀ.
    """
    return maps.square().sum(dim=(2, 3))
