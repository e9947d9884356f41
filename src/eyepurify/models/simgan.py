"""SimGAN networks (Shrivastava et al. 2017, METHOD §10): a ResNet refiner and a local
patch discriminator, as the paper's appendix describes them for eye images.

Refiner (paper, eye gaze): a 3×3 convolution to F = 64 feature maps, B = 4 ResNet blocks
(each two 3×3 convolutions of F maps with ReLU, added to the block input, then ReLU),
and a 1×1 convolution to the image channels. No striding, pooling or normalisation, so
every output pixel depends only on a small neighbourhood (the receptive field of the
default refiner is 19×19 px). The paper does not name an output non-linearity; we use
tanh on the [-1, 1] scale (inputs are mapped [0, 1] → [-1, 1] inside ``forward`` and
the output back to [0, 1]).

Discriminator (paper, eye gaze): Conv3×3 stride 2 (96) → Conv3×3 stride 2 (64) →
MaxPool 3×3 stride 1 → Conv3×3 (32) → Conv1×1 (32) → Conv1×1 (2) → softmax, ReLU after
each hidden layer. We pad the 3×3 layers by one pixel ("same"), so a 36×60 input gives
9×15 = 135 patches, each classified real (channel 0) or refined (channel 1); the softmax
is left to the loss (per-patch cross-entropy on the logits).

Parameters at one channel: refiner 296,129, discriminator 75,906 (counted in
``tests/models/test_simgan.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eyepurify.errors import EyepurifyError
from eyepurify.records import AsDict

REAL = 0  #: discriminator channel / class index of real images
REFINED = 1  #: discriminator channel / class index of refined (synthetic) images


def _from_dict(cls: type, d: dict[str, object]) -> object:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return cls(**{k: v for k, v in d.items()})


@dataclass(frozen=True)
class RefinerConfig(AsDict):
    """Refiner architecture: ``channels`` (1 gray or 3 RGB), ``filters`` per conv, ``blocks``."""

    channels: int = 1
    filters: int = 64
    blocks: int = 4

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or self.filters < 1 or self.blocks < 0:
            raise ValueError(f"invalid refiner config {self} (channels 1 or 3, filters ≥ 1, blocks ≥ 0)")

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RefinerConfig:
        return _from_dict(cls, d)  # type: ignore[return-value]


@dataclass(frozen=True)
class DiscriminatorConfig(AsDict):
    """Discriminator architecture: ``channels`` and the widths of its five convolutions."""

    channels: int = 1
    widths: tuple[int, int, int, int] = (96, 64, 32, 32)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.channels not in (1, 3) or len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"invalid discriminator config {self} (channels 1 or 3, four widths ≥ 1)")

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> DiscriminatorConfig:
        return _from_dict(cls, d)  # type: ignore[return-value]


REFINER_PRESETS: dict[str, dict[str, int]] = {
    "default": {"filters": 64, "blocks": 4},  # the paper's eye-gaze refiner
    "test_tiny": {"filters": 8, "blocks": 1},
}
DISCRIMINATOR_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "default": (96, 64, 32, 32),  # the paper's eye-gaze discriminator
    "test_tiny": (8, 8, 8, 8),
}


class ResBlock(nn.Module):
    """relu(x + conv3(relu(conv3(x)))) with ``filters`` maps (shape-preserving)."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def _check_input(x: torch.Tensor, channels: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{who} expects N×{channels}×H×W input, got {tuple(x.shape)}")


class Refiner(nn.Module):
    """float N×C×H×W in [0, 1] (synthetic) → float N×C×H×W in [0, 1] (refined), any H, W."""

    def __init__(self, config: RefinerConfig = RefinerConfig()) -> None:
        super().__init__()
        self.config = config
        self.head = nn.Conv2d(config.channels, config.filters, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(config.filters) for _ in range(config.blocks)])
        self.out = nn.Conv2d(config.filters, config.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.config.channels, "the refiner")
        y = self.blocks(F.relu(self.head(x * 2.0 - 1.0)))
        return (torch.tanh(self.out(y)) + 1.0) * 0.5


class LocalDiscriminator(nn.Module):
    """float N×C×H×W in [0, 1] → N×2×h×w logits per patch (channel 0 real, 1 refined);
    h = ceil(ceil(H/2)/2), w likewise (9×15 at 36×60)."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.config = config
        w1, w2, w3, w4 = config.widths
        self.conv1 = nn.Conv2d(config.channels, w1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.conv3 = nn.Conv2d(w2, w3, 3, padding=1)
        self.conv4 = nn.Conv2d(w3, w4, 1)
        self.conv5 = nn.Conv2d(w4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.config.channels, "the discriminator")
        y = F.relu(self.conv1(x * 2.0 - 1.0))
        y = self.pool(F.relu(self.conv2(y)))
        y = F.relu(self.conv4(F.relu(self.conv3(y))))
        return self.conv5(y)


def _preset(name: str, presets: dict) -> object:
    if name not in presets:
        raise ValueError(f"unknown SimGAN network {name!r}; choose from {sorted(presets)}")
    return presets[name]


def create_refiner(name: str = "default", channels: int = 1) -> Refiner:
    """A refiner from a preset: "default" (4 blocks, 64 filters, the paper) or "test_tiny"
    (1 block, 8 filters). Weights come from torch's global RNG (seed it for determinism)."""
    p = _preset(name, REFINER_PRESETS)
    return Refiner(RefinerConfig(channels=channels, **p))  # type: ignore[arg-type]


def create_discriminator(name: str = "default", channels: int = 1) -> LocalDiscriminator:
    """A local discriminator from a preset: "default" (the paper's) or "test_tiny"."""
    widths = _preset(name, DISCRIMINATOR_PRESETS)
    return LocalDiscriminator(DiscriminatorConfig(channels=channels, widths=widths))  # type: ignore[arg-type]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- inference

#: grey levels; a mean |refined − input| below it = "near identity" (the refiner changed nothing visible)
NEAR_IDENTITY_THRESHOLD = 1.0
MODEL_KIND = "simgan-refiner"


def arrays_to_tensor(arr: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """uint8 N×H×W×C → float32 N×C×H×W in [0, 1] (a copy; on ``device``, default the CPU)."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return (t if device is None else t.to(device)).permute(0, 3, 1, 2).float().div(255.0)


def tensor_to_arrays(x: torch.Tensor) -> np.ndarray:
    """float N×C×H×W in [0, 1] (on any device) → uint8 N×H×W×C on the CPU (rounded)."""
    return (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def device_of(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s parameters live (inputs follow it there)."""
    return next(module.parameters()).device


def refine_arrays(refiner: Refiner, images: Sequence[np.ndarray], batch: int = 64) -> list[np.ndarray]:
    """Refine uint8 H×W×C images (H×W accepted for a 1-channel refiner); same shapes out.

    Runs without gradients in eval mode; images of different sizes are batched by size.
    """
    c = refiner.config.channels
    arrays: list[np.ndarray] = []
    for i, im in enumerate(images):
        a = np.asarray(im)
        hwc = a[..., None] if (a.ndim == 2 and c == 1) else a
        if a.dtype != np.uint8 or hwc.ndim != 3 or hwc.shape[2] != c:
            raise EyepurifyError(
                f"image {i} is {a.dtype} {a.shape}; this refiner takes uint8 H×W×{c}"
                + (" or H×W" if c == 1 else "") + " images (convert them first)"
            )
        arrays.append(hwc)
    out: list[np.ndarray | None] = [None] * len(arrays)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    was_training = refiner.training
    refiner.eval()
    try:
        with torch.no_grad():
            for idx in groups.values():
                for s in range(0, len(idx), max(1, batch)):
                    part = idx[s : s + max(1, batch)]
                    y = tensor_to_arrays(refiner(arrays_to_tensor(np.stack([arrays[i] for i in part]), device_of(refiner))))
                    for i, r in zip(part, y, strict=True):
                        out[i] = r[..., 0] if np.asarray(images[i]).ndim == 2 else r
    finally:
        refiner.train(was_training)
    return out  # type: ignore[return-value]


def load_refiner(path: str | Path) -> Refiner:
    """A refiner from a ``refiner.safetensors`` written by :func:`eyepurify.train.simgan.train_simgan` (eval mode)."""
    from eyepurify.models.registry import load_model

    refiner, _ = load_model(path, MODEL_KIND)
    return refiner  # type: ignore[return-value]
