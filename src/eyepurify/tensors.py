"""Conversions between file-side arrays (uint8 H×W×3, label maps) and model tensors."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from eyepurify.sample import IRIS, NUM_CLASSES, PUPIL


def images_to_tensor(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 N×H×W×3 (or a list of same-size H×W×3) → float32 N×3×H×W in [0, 1]."""
    arr = np.stack(list(images)) if isinstance(images, list) else np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 N×H×W×3 images, got {arr.shape} {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div(255.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float N×3×H×W in [0, 1] → uint8 N×H×W×3 (rounded, clipped)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected N×3×H×W, got {tuple(x.shape)}")
    y = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()


def labels_to_tensor(labels: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 N×H×W (or list of H×W) label maps → int64 N×H×W."""
    arr = np.stack(list(labels)) if isinstance(labels, list) else np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected N×H×W label maps, got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise ValueError(f"label values must be in 0..{NUM_CLASSES - 1}")
    return torch.from_numpy(np.ascontiguousarray(arr)).long()


def one_hot(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """int N×H×W (values in 0..C-1) → float32 N×C×H×W one-hot."""
    labels = labels.long()
    if labels.numel() and labels.device.type != "meta" and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"label values must be in 0..{num_classes - 1}")
    # channels-last like the images from images_to_tensor (torch's convolutions run faster so),
    # the layout and values of F.one_hot + permute + float at about half its time
    return (labels.unsqueeze(-1) == torch.arange(num_classes, device=labels.device)).to(torch.float32).movedim(-1, 1)


def attention_region(labels: torch.Tensor) -> torch.Tensor:
    """int N×H×W → float32 N×1×H×W: 1 on iris ∪ pupil (the attention region), else 0."""
    return ((labels == IRIS) | (labels == PUPIL)).unsqueeze(1).float()


def photometric_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random outdoor-like light changes of float N×3×H×W images in [0, 1] → same shape/range.

    Per sample: gamma in [0.6, 1.6], brightness ×[0.6, 1.4], contrast ×[0.6, 1.4] about the
    image mean, colour temperature (red/blue gains ±20 %, green ±5 %), Gaussian noise with
    σ up to 0.04, and with probability 0.3 a Gaussian blur with σ in [0.3, 1.2] px.
    """
    n = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand((n, *shape), generator=generator)

    gamma = torch.exp(u(math.log(0.6), math.log(1.6), 1, 1, 1))
    y = x.clamp(0, 1) ** gamma
    y = y * u(0.6, 1.4, 1, 1, 1)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * u(0.6, 1.4, 1, 1, 1) + mean
    t = u(-0.2, 0.2, 1, 1)
    gains = torch.cat([1 + t, 1 + u(-0.05, 0.05, 1, 1), 1 - t], dim=1)[..., None]
    y = y * gains
    y = y + torch.randn(y.shape, generator=generator) * u(0.0, 0.04, 1, 1, 1)
    blur = torch.rand(n, generator=generator) < 0.3
    sigma = u(0.3, 1.2)
    if blur.any():
        y = torch.where(blur[:, None, None, None], _blur(y, sigma), y)
    return y.clamp(0, 1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur of N×C×H×W with standard deviations ``sigma`` (N,)."""
    n, c, h, w = x.shape
    r = 3
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N·C, 2r+1)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)
