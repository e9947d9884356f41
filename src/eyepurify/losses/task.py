"""Task-consistency terms (METHOD §15; CyCADA's semantic consistency, FP-GAN's gaze
consistency): frozen models trained on indoor renders only must read the purified wild
render as that draw's label map and gaze. Gradients flow to the images, not the models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: ITU-R BT.601 luma, as :func:`eyepurify.imaging.to_gray`
LUMA = (0.299, 0.587, 0.114)


def segmentation_consistency(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of N×C×H×W class logits to N×H×W integer labels (a scalar ≥ 0)."""
    if logits.ndim != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits N×C×H×W and labels N×H×W must match, got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels.long())


def gaze_consistency(predicted: Tensor, true: Tensor) -> Tensor:
    """Mean 1 − cos between N×3 predicted and true gaze vectors (0 = the same direction;
    for small angles about half the squared error in radians)."""
    if predicted.shape != true.shape or predicted.ndim != 2 or predicted.shape[1] != 3:
        raise ValueError(f"gaze vectors must both be N×3, got {tuple(predicted.shape)} and {tuple(true.shape)}")
    return (1.0 - F.cosine_similarity(predicted, true, dim=1, eps=1e-8)).mean()


def gaze_input(images: Tensor, size: tuple[int, int]) -> Tensor:
    """N×3×H×W RGB in [0, 1] → N×1×h×w gray at ``size`` (area-like antialiased bilinear),
    differentiable: what a gaze CNN trained on gray patches reads."""
    w = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    gray = (images * w).sum(1, keepdim=True)
    if tuple(gray.shape[-2:]) == tuple(size):
        return gray
    return F.interpolate(gray, size=size, mode="bilinear", align_corners=False, antialias=True)
