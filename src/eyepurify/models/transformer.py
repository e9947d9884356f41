"""The feed-forward transformation network (METHOD §5) and the Johnson et al. baseline.

Layout (journal table, made consistent): reflection pad → 32@9×9 → 64@3×3/2 → 128@3×3/2 →
n residual blocks (3×3 conv, BN, ReLU, dropout, 3×3 conv, BN, + skip) → two ×2 upsamplings
to 64 and 32 channels → 3@9×9 → (tanh + 1) / 2 (the outer 9×9 kernels: ``outer_kernel``).
Every conv but the last is followed by BN + ReLU. ``upsample`` picks the upsampling:
"deconv" (4×4 stride-2 transposed convolutions, the journal table and every model file
written before the field existed: they leave a period-2 checkerboard) or the
resize-convolution of Odena, Dumoulin & Olah (Distill 2016) the paper's text asks for:
×2 "nearest" or "bilinear" resize, then a 3×3 convolution.
The input is reflection-padded to a multiple of 4 and the output cropped back, so the
output has exactly the input's H×W for any size (tiny inputs are padded to 8×8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLE_MODES = ("deconv", "nearest", "bilinear")


@dataclass(frozen=True)
class TransformNetConfig:
    """Architecture of a transformation network.

    mask_channels: extra input channels (0 = RGB only, the Johnson baseline; 4 = one-hot
        skin/sclera/iris/pupil, our default "RGB-mask pair").
    outer_kernel: kernel of the first and the last convolution (odd; 9 in the paper's
        layout and in every model file written before this field existed).
    upsample: "deconv" (transposed convolutions; files without the field) or "nearest" /
        "bilinear" (resize-convolution, no checkerboard).
    input_skip: the last convolution also reads the network's input (image and mask) at
        full resolution, so fine geometry need not pass the 1/4-resolution bottleneck
        (False in every file written before the field existed).
    """

    width: int = 32
    n_res: int = 4
    dropout: float = 0.1
    mask_channels: int = 4
    outer_kernel: int = 9
    upsample: str = "deconv"
    input_skip: bool = False

    def __post_init__(self) -> None:
        if self.outer_kernel < 1 or self.outer_kernel % 2 == 0:
            raise ValueError(f"outer_kernel must be odd and ≥ 1, got {self.outer_kernel}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


def _up(cin: int, cout: int, mode: str) -> nn.Module:
    """×2 upsampling to ``cout`` channels: a 4×4 stride-2 transposed convolution ("deconv")
    or a resize ("nearest" / "bilinear") followed by a reflection-padded 3×3 convolution."""
    if mode == "deconv":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    align = None if mode == "nearest" else False
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode, align_corners=align), *_conv(cin, cout, 3))


class ResidualBlock(nn.Module):
    """3×3 conv, BN, ReLU, dropout, 3×3 conv, BN, plus the identity skip."""

    def __init__(self, ch: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(ch, ch, 3), nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            _conv(ch, ch, 3), nn.BatchNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def network_input(image: torch.Tensor, mask: torch.Tensor | None, mask_channels: int) -> torch.Tensor:
    """The transformation network's input: image N×3×H×W, with the N×K×H×W mask (K =
    ``mask_channels``) appended as channels when K > 0; ValueError when the mask does not fit."""
    if not mask_channels:
        return image
    if mask is None or mask.shape[1] != mask_channels or mask.shape[-2:] != image.shape[-2:]:
        got = None if mask is None else tuple(mask.shape)
        raise ValueError(f"mask must be N×{mask_channels}×H×W matching the image, got {got}")
    return torch.cat([image, mask.to(image.dtype)], dim=1)


class TransformNet(nn.Module):
    """RGB (+ mask channels) N×(3+K)×H×W in [0, 1] → purified RGB N×3×H×W in [0, 1]."""

    def __init__(self, config: TransformNetConfig = TransformNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width

        def cbr(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
            return [_conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(
            *cbr(3 + config.mask_channels, w, config.outer_kernel), *cbr(w, 2 * w, 3, 2), *cbr(2 * w, 4 * w, 3, 2)
        )
        self.res = nn.Sequential(*[ResidualBlock(4 * w, config.dropout) for _ in range(config.n_res)])
        up = [
            _up(4 * w, 2 * w, config.upsample), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            _up(2 * w, w, config.upsample), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        ]
        if config.input_skip:  # the last convolution reads the features and the input
            self.decoder = nn.Sequential(*up)
            self.head: nn.Module | None = _conv(w + 3 + config.mask_channels, 3, config.outer_kernel)
        else:  # the journal's layout (and every older model file's state-dict keys)
            self.decoder = nn.Sequential(*up, _conv(w, 3, config.outer_kernel))
            self.head = None

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """image N×3×H×W in [0, 1]; mask N×K×H×W (K = config.mask_channels) or None if K = 0."""
        x = network_input(image, mask, self.config.mask_channels)
        h, w = x.shape[-2:]
        return self.core(pad_to_multiple(x))[..., :h, :w]

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper on a padded N×(3+K)×H×W input (H, W multiples of 4, ≥ 8) →
        N×3×H×W in [0, 1]; what the ONNX export holds (:mod:`eyepurify.backends`)."""
        y = self.decoder(self.res(self.encoder(x)))
        if self.head is not None:
            y = self.head(torch.cat([y, x], dim=1))
        return (torch.tanh(y) + 1.0) * 0.5


def pad_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → right/bottom-padded to multiples of 4 (at least 8×8): reflected, or
    replicated when the input is too small to reflect. Crop the output back to H×W."""
    h, w = x.shape[-2:]
    ph, pw = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return x


PRESETS: dict[str, TransformNetConfig] = {
    "eyepurify": TransformNetConfig(width=32, n_res=4, dropout=0.1, mask_channels=4),
    "johnson": TransformNetConfig(width=32, n_res=5, dropout=0.0, mask_channels=0),
    "small": TransformNetConfig(width=16, n_res=4, dropout=0.1, mask_channels=4),
    "johnson_small": TransformNetConfig(width=16, n_res=5, dropout=0.0, mask_channels=0),
    # distilled from "small" (eyepurify distill; docs/training.md, "Fast models")
    "fast": TransformNetConfig(width=8, n_res=2, dropout=0.0, mask_channels=4, outer_kernel=5),
    # purifier v2 (METHOD §15): resize-convolution upsampling, no checkerboard
    "v2": TransformNetConfig(width=16, n_res=4, dropout=0.0, mask_channels=4, upsample="nearest"),
    "v2_wide": TransformNetConfig(width=32, n_res=4, dropout=0.0, mask_channels=4, upsample="nearest"),
    "v2_skip": TransformNetConfig(width=16, n_res=4, dropout=0.0, mask_channels=4, upsample="nearest", input_skip=True),
    "test_tiny": TransformNetConfig(width=4, n_res=1, dropout=0.0, mask_channels=4),
    "test_tiny_v2": TransformNetConfig(width=4, n_res=1, dropout=0.0, mask_channels=4, upsample="nearest"),
    "test_tiny_johnson": TransformNetConfig(width=4, n_res=1, dropout=0.0, mask_channels=0),
}


def create_transform_net(name_or_config: str | TransformNetConfig) -> TransformNet:
    """A transformation network from a preset name (``PRESETS``) or a config."""
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown network {name_or_config!r}; choose from {sorted(PRESETS)}")
        name_or_config = PRESETS[name_or_config]
    return TransformNet(name_or_config)
