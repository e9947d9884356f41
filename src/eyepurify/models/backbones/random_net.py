"""A tiny seeded random conv net with the paper's layer names, for fast tests of other modules."""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_LAYERS,
    Backbone,
    build_uninitialised,
    seeded_init_,
)

# (out channels, stride) per stage; cumulative strides 2, 2, 4, 8, 16 as Lite0's mapping.
TINY_STAGES: tuple[tuple[int, int], ...] = ((4, 2), (6, 1), (8, 2), (12, 2), (16, 2))


def _tiny_convs() -> nn.ModuleList:
    channels = [3] + [out for out, _ in TINY_STAGES]
    return nn.ModuleList(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1)
        for cin, cout, (_, stride) in zip(channels[:-1], channels[1:], TINY_STAGES, strict=True)
    )


class TinyBackbone(Backbone):
    """Five 3×3 conv + ReLU stages (4–16 channels); paper stage B (``convB_*``) is stage B's
    output. Random weights from ``seed``; ``name`` "test_tiny", ``is_random`` True."""

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__(
            "test_tiny",
            True,
            {name: f"stage{name[4]}" for name in PAPER_LAYERS},
            IMAGENET_MEAN,
            IMAGENET_STD,
        )
        self.convs = build_uninitialised(_tiny_convs)
        seeded_init_(self.convs, seed)
        self.freeze()

    def _run(self, x: torch.Tensor, taps: Collection[str]) -> dict[str, torch.Tensor]:
        last = max(int(t.removeprefix("stage")) for t in taps)
        out: dict[str, torch.Tensor] = {}
        for index, conv in enumerate(self.convs[:last], start=1):
            x = F.relu(conv(x))
            if f"stage{index}" in taps:
                out[f"stage{index}"] = x
        return out
