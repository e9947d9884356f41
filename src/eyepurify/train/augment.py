"""Content augmentation for purifier training on small (real) content sets.

``augment_content(x, lab, generator)`` applies the same random similarity transform to
images and label maps (scale, rotation, shift; borders replicated), then the segmenter's
photometric augmentation to the images. Pure functions of their inputs and the generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from eyepurify.train.segmenter import photometric_augment

CONTENT_AUGMENTS = ("none", "geometric", "strong")


def random_similarity(n: int, generator: torch.Generator, scale: float = 0.1, degrees: float = 8.0,
                      shift: float = 0.06) -> torch.Tensor:
    """N×2×3 affine matrices (normalised coordinates) of random similarity transforms:
    scale in [1 − scale, 1 + scale], rotation ±degrees, shift ±shift of the half-size."""
    s = 1 + scale * (2 * torch.rand(n, generator=generator) - 1)
    a = math.radians(degrees) * (2 * torch.rand(n, generator=generator) - 1)
    t = shift * (2 * torch.rand(n, 2, generator=generator) - 1)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    return torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)


def warp_pair(x: torch.Tensor, lab: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp float N×C×H×W images (bilinear) and int N×H×W label maps (nearest) by ``theta``
    (N×2×3, as :func:`torch.nn.functional.affine_grid`); borders replicated. New tensors."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    lab_f = lab[:, None].to(x.dtype)
    lab_w = F.grid_sample(lab_f, grid, mode="nearest", padding_mode="border", align_corners=False)
    return y, lab_w[:, 0].round().to(lab.dtype)


def augment_content(x: torch.Tensor, lab: torch.Tensor, kind: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented copies of a content batch: x float N×3×H×W in [0, 1], lab int N×H×W.

    kind: "none" (returned unchanged), "geometric" (random similarity), "strong" (that plus
    gamma/brightness/contrast/colour/noise/blur as in segmenter training).
    """
    if kind not in CONTENT_AUGMENTS:
        raise ValueError(f"content augmentation must be one of {CONTENT_AUGMENTS}, got {kind!r}")
    if kind == "none":
        return x, lab
    x, lab = warp_pair(x, lab, random_similarity(x.shape[0], generator))
    if kind == "strong":
        x = photometric_augment(x, generator)
    return x, lab
