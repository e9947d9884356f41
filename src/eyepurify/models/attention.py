"""The attention subnet (METHOD §6): att⁺ = σ(conv([f_full, f_mask]) + b), att⁻ = 1 − att⁺."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionNet(nn.Module):
    """Image N×3×H×W in [0, 1] and mask N×K×H×W → att⁺ N×1×H×W in (0, 1).

    f_full and f_mask are small conv encodings (two 3×3 convs each); a 1×1 conv with bias
    over their concatenation, then a sigmoid. Fully convolutional, same size out as in.
    """

    def __init__(self, mask_channels: int = 4, width: int = 8) -> None:
        super().__init__()
        self.mask_channels = mask_channels

        def enc(cin: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            )

        self.f_full = enc(3)
        self.f_mask = enc(mask_channels)
        self.head = nn.Conv2d(2 * width, 1, 1, bias=True)

    def logits(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.f_full(image), self.f_mask(mask.to(image.dtype))], dim=1))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(image, mask))


def attention_pair(att_plus: torch.Tensor) -> torch.Tensor:
    """N×1×H×W att⁺ → N×2×H×W [att⁺, att⁻] with att⁺ + att⁻ = 1 everywhere."""
    return torch.cat([att_plus, 1.0 - att_plus], dim=1)


def attention_bce(logits: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Auxiliary BCE of att⁺ logits N×1×H×W to the hard attention region N×1×H×W in {0, 1}."""
    return F.binary_cross_entropy_with_logits(logits, region.to(logits.dtype))
