"""The coarse segmentation network (METHOD §4): a small U-Net predicting 4 classes.

Layout: ``depth`` levels of (3×3 conv, BN, ReLU) × 2 with 2×2 max-pooling between them,
channels ``width · 2^level``; the decoder upsamples bilinearly, concatenates the skip and
applies the same double conv; a 1×1 conv gives the class logits. Any input size works:
the input is edge-padded (right and bottom) to a multiple of ``2^depth`` and the logits are
cropped back to H×W.

The default preset has 274,888 parameters and ran at about 117 images/s at 72×120 (batch
32, inference, 2 CPU threads of this project's shared build machine; docs/segmentation.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eyepurify.imaging import resize_image
from eyepurify.records import AsDict
from eyepurify.sample import NUM_CLASSES
from eyepurify.tensors import images_to_tensor


@dataclass(frozen=True)
class SegmentationNetConfig(AsDict):
    """Architecture of a segmentation network.

    width: channels of the first level (doubled at each deeper level).
    depth: number of 2× downsamplings (the receptive field grows with it).
    """

    width: int = 12
    depth: int = 3
    in_channels: int = 3
    num_classes: int = NUM_CLASSES


PRESETS: dict[str, SegmentationNetConfig] = {
    "default": SegmentationNetConfig(width=12, depth=3),
    # distilled from "default" (eyepurify distill; docs/training.md, "Fast models")
    "fast": SegmentationNetConfig(width=6, depth=3),
    "test_tiny": SegmentationNetConfig(width=4, depth=2),
}


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SegmentationNet(nn.Module):
    """float32 N×3×H×W images in [0, 1] → float32 N×C×H×W class logits (any H, W ≥ 1)."""

    def __init__(self, config: SegmentationNetConfig = SegmentationNetConfig()) -> None:
        super().__init__()
        if config.width < 1 or config.depth < 0:
            raise ValueError(f"invalid segmentation config {config}")
        self.config = config
        ch = [config.width * 2**i for i in range(config.depth + 1)]
        self.down = nn.ModuleList(
            [_double_conv(config.in_channels, ch[0])]
            + [_double_conv(ch[i - 1], ch[i]) for i in range(1, config.depth + 1)]
        )
        self.up = nn.ModuleList(
            [_double_conv(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(config.depth))]
        )
        self.head = nn.Conv2d(ch[0], config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected N×{self.config.in_channels}×H×W input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        return self.core(self.pad_input(x))[..., :h, :w]

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×H×W in [0, 1] → normalised, edge-padded to multiples of 2^depth (the input of :meth:`core`)."""
        h, w = x.shape[-2:]
        m = 2**self.config.depth
        return F.pad((x - 0.5) * 4.0, (0, -w % m, 0, -h % m), mode="replicate")

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """Logits N×C×H×W of a :meth:`pad_input` output; what the ONNX export holds."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def create_segmentation_net(name_or_config: str | SegmentationNetConfig = "default") -> SegmentationNet:
    """A segmentation network from a preset name (``PRESETS``) or a config."""
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown segmentation network {name_or_config!r}; choose from {sorted(PRESETS)}")
        name_or_config = PRESETS[name_or_config]
    return SegmentationNet(name_or_config)


@torch.no_grad()
def predict_labels(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray | Sequence[np.ndarray],
    size: tuple[int, int] | None = None,
    out_shape: tuple[int, int] | None = None,
    batch: int = 32,
) -> list[np.ndarray]:
    """Arg-max H×W uint8 label maps of same-size H×W×3 uint8 images (N×H×W×3 or a list).

    The network runs at ``size`` (default: the images' own; they are resized by the
    :mod:`eyepurify.imaging` policy), ``batch`` images per pass; the class logits are resized
    bilinearly to ``out_shape`` (default: the images' H×W) before the arg-max. The network's
    train/eval mode is left as it is.
    """
    if len(images) == 0:
        return []
    shape = tuple(images[0].shape[:2])
    out_shape = shape if out_shape is None else tuple(out_shape)  # type: ignore[assignment]
    out: list[np.ndarray] = []
    for s in range(0, len(images), batch):
        chunk = images[s : s + batch]
        if size is not None and tuple(size) != shape:
            chunk = [resize_image(im, size) for im in chunk]
        x = images_to_tensor(np.stack(list(chunk)))
        first = next(net.parameters(), None) if isinstance(net, nn.Module) else None
        logits = net(x if first is None or first.device == x.device else x.to(first.device))  # a net on a GPU: the batch follows
        if tuple(logits.shape[-2:]) != out_shape:
            logits = F.interpolate(logits, size=out_shape, mode="bilinear", align_corners=False)
        out.extend(logits.argmax(1).to(torch.uint8).cpu().numpy())
    return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
