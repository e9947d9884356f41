"""Content augmentation for purifier training on small (real) content sets.

``augment_content(x, lab, generator)`` applies the same random similarity transform to
images and label maps (scale, rotation, shift; borders replicated), then the segmenter's
photometric augmentation to the images. Pure functions of their inputs and the generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from eyepurify.tensors import photometric_augment

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


def _grid(theta: torch.Tensor, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    return F.affine_grid(theta.to(dtype), shape, align_corners=False)


def warp_images(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Float N×C×H×W images warped by ``theta`` (N×2×3, as :func:`torch.nn.functional.affine_grid`;
    bilinear, borders replicated). A new tensor."""
    return F.grid_sample(x, _grid(theta, list(x.shape), x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def warp_labels(lab: torch.Tensor, theta: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Int N×H×W label maps warped by ``theta`` (nearest, borders replicated; the sampling
    grid in ``dtype``). A new tensor."""
    lab_f = lab[:, None].to(dtype)
    grid = _grid(theta, list(lab_f.shape), dtype)
    lab_w = F.grid_sample(lab_f, grid, mode="nearest", padding_mode="border", align_corners=False)
    return lab_w[:, 0].round().to(lab.dtype)


def warp_pair(x: torch.Tensor, lab: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp float N×C×H×W images (bilinear) and int N×H×W label maps (nearest) by ``theta``
    (N×2×3, as :func:`torch.nn.functional.affine_grid`); borders replicated. New tensors."""
    return warp_images(x, theta), warp_labels(lab, theta, x.dtype)


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


def augment_paired(
    x: torch.Tensor, lab: torch.Tensor, target: torch.Tensor, net_lab: torch.Tensor | None, kind: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`augment_content` of a paired batch: the same random similarity moves the input
    x, its label maps (``lab``, and ``net_lab`` when given) and its paired target (float
    N×3×H×W); the photometric part ("strong") changes x only. Same draws as
    :func:`augment_content`, so x and lab come out the same as there."""
    if kind not in CONTENT_AUGMENTS:
        raise ValueError(f"content augmentation must be one of {CONTENT_AUGMENTS}, got {kind!r}")
    if kind == "none":
        return x, lab, target, net_lab
    theta = random_similarity(x.shape[0], generator)
    x, lab, target = warp_images(x, theta), warp_labels(lab, theta), warp_images(target, theta)
    if net_lab is not None:
        net_lab = warp_labels(net_lab, theta)
    if kind == "strong":
        x = photometric_augment(x, generator)
    return x, lab, target, net_lab
