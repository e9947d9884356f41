"""Conversions between file-side arrays (uint8 H×W×3, label maps) and model tensors."""

from __future__ import annotations

import numpy as np
import torch

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
