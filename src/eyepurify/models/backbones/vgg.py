"""VGG-19 (convolutional part) loading torchvision's ImageNet state dict; never downloads."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import nn

from eyepurify.errors import WeightsError

from .base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_LAYERS,
    Backbone,
    build_uninitialised,
    check_state_dict,
    load_state_dict_file,
    seeded_init_,
)

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_ENV = "EYEPURIFY_VGG19_WEIGHTS"
# torchvision's configuration "E": output channels of each 3×3 conv, "M" = 2×2 max pool.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def _vgg19_relu_indices() -> dict[str, int]:
    """Paper name ``convB_K`` -> index in ``features`` of the ReLU that follows that conv."""
    indices: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in VGG19_CFG:
        if item == "M":
            index += 1
            block, conv = block + 1, 1
        else:
            indices[f"conv{block}_{conv}"] = index + 1
            index += 2
            conv += 1
    return indices


VGG19_RELU_INDEX: Mapping[str, int] = _vgg19_relu_indices()
assert tuple(VGG19_RELU_INDEX) == PAPER_LAYERS


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` layout, so ``features.N.weight`` keys load as they are."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG19_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)


class VGG19Backbone(Backbone):
    """VGG-19 with ImageNet mean/std input normalisation; paper name ``convB_K`` is the output of
    the ReLU after that conv (as in Gatys et al. and Johnson et al.), with max pooling kept.

    ``state`` None gives seeded random weights (``name`` "vgg19_random", ``is_random`` True);
    otherwise it must be a checked torchvision state dict (see :func:`load_vgg19_state_dict`).
    """

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0) -> None:
        random = state is None
        super().__init__(
            "vgg19_random" if random else "vgg19",
            random,
            {name: name for name in PAPER_LAYERS},
            IMAGENET_MEAN,
            IMAGENET_STD,
        )
        self.net = build_uninitialised(VGG19Features)
        if state is None:
            seeded_init_(self.net, seed)
        else:
            self.net.load_state_dict(state, strict=True)
        self.freeze()

    def _run(self, x: torch.Tensor, taps: Collection[str]) -> dict[str, torch.Tensor]:
        stop = max(VGG19_RELU_INDEX[t] for t in taps)
        features: list[nn.Module] = list(self.net.features)
        pools = sum(1 for m in features[: stop + 1] if isinstance(m, nn.MaxPool2d))
        if min(x.shape[-2:]) < 2**pools:
            raise ValueError(
                f"{self.name}: input {x.shape[-2]}×{x.shape[-1]} is too small for the requested "
                f"layers (needs at least {2**pools}×{2**pools})"
            )
        wanted = {VGG19_RELU_INDEX[t]: t for t in taps}
        out: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(features[: stop + 1]):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def vgg19_cache_path() -> Path:
    """Where torch hub keeps torchvision's VGG-19 file: ``$TORCH_HOME`` (default
    ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``) + ``/hub/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()).expanduser() / "checkpoints" / VGG19_FILE


def resolve_vgg19_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The VGG-19 weights file: ``path`` (a file, or a folder holding vgg19-dcbb9e9d.pth) if
    given, else ``$EYEPURIFY_VGG19_WEIGHTS`` if set, else the torch hub cache. Never downloads;
    raises WeightsError naming the file and all three places when it is not found."""
    env = os.environ.get(VGG19_ENV, "")
    if path is not None:
        candidate, source = Path(path), "given with --vgg19-weights"
    elif env:
        candidate, source = Path(env), f"given by ${VGG19_ENV}"
    else:
        candidate, source = vgg19_cache_path(), "the torch hub cache"
    candidate = candidate.expanduser()
    if candidate.is_dir():
        candidate = candidate / VGG19_FILE
    if candidate.is_file():
        return candidate
    raise WeightsError(
        f"{candidate}: VGG-19 weights not found ({source}). The vgg19 backbone needs torchvision's "
        f"ImageNet state dict {VGG19_FILE} and looks for it, in order, at: 1) the path given with "
        f"--vgg19-weights PATH, 2) the path in ${VGG19_ENV}, 3) {vgg19_cache_path()}. Nothing is "
        f"downloaded: copy the file to one of these places yourself, or use the lite0 backbone"
    )


def load_vgg19_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read and check a torchvision VGG-19 state dict (``features.*`` keys; ``classifier.*`` are
    allowed and dropped). Raises WeightsError on a bad hash suffix, missing key or wrong shape."""
    path = Path(path)
    state = load_state_dict_file(path)
    with torch.device("meta"):
        expected = VGG19Features().state_dict()
    return check_state_dict(
        state,
        expected,
        path,
        "a torchvision vgg19 state dict with features.0.weight … features.34.bias",
        ignore_prefixes=("classifier.",),
    )
