"""Frozen loss-network backbone interface and state-dict file checks shared by all backbones."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import torch
from torch import nn

from eyepurify.errors import WeightsError

#: The VGG-19 layer names the paper (and METHOD.md §7) use; every backbone maps all of them.
PAPER_LAYERS: tuple[str, ...] = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)  # fmt: skip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ModuleT = TypeVar("ModuleT", bound=nn.Module)

# torchvision / torch.hub checkpoint names end in "-<first hex digits of the file's SHA-256>".
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


class Backbone(nn.Module, ABC):
    """A frozen ImageNet CNN that returns activations under the paper's VGG-19 layer names.

    ``layer_map`` maps each paper name (``conv3_2``) to the backbone's own tap name; several
    paper names may share one tap. Parameters never require gradients and the module stays in
    eval mode (``train()`` is a no-op), but gradients flow to the input.
    """

    name: str
    is_random: bool
    layer_names: tuple[str, ...]

    def __init__(
        self,
        name: str,
        is_random: bool,
        layer_map: Mapping[str, str],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.name = name
        self.is_random = is_random
        self.layer_map: Mapping[str, str] = MappingProxyType(dict(layer_map))
        self.layer_names = tuple(layer_map)
        self._mean: torch.Tensor
        self._std: torch.Tensor
        self.register_buffer(
            "_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    def freeze(self) -> Backbone:
        """Turn off gradients of every parameter and switch to eval mode; returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        return self

    def train(self, mode: bool = True) -> Backbone:
        """Backbones stay in eval mode: BN uses running statistics and dropout is off."""
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """N×{1,3}×H×W in [0, 1] -> N×3×H×W in the backbone's input space (gray -> 3 channels)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{self.name}: expected an N×1×H×W or N×3×H×W image tensor, got {shape}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{self.name}: expected a float image in [0, 1], got dtype {x.dtype}")
        x = x.to(self._mean.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self._mean) / self._std

    def features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``x`` (N×1×H×W or N×3×H×W, float in [0, 1]) at the paper-named ``layers``.

        Returns ``{name: N×C×h×w}`` in request order; runs only as deep as the deepest layer.
        """
        if isinstance(layers, str):
            raise TypeError(
                f"{self.name}: layers must be a sequence of names, not the string {layers!r}"
            )
        layers = tuple(layers)
        unknown = [name for name in layers if name not in self.layer_map]
        if unknown:
            raise ValueError(
                f"{self.name}: unknown layer {unknown[0]!r} (known: {', '.join(self.layer_names)})"
            )
        h = self.normalize(x)
        if not layers:
            return {}
        taps = self._run(h, {self.layer_map[name] for name in layers})
        return {name: taps[self.layer_map[name]] for name in layers}

    @abstractmethod
    def _run(self, x: torch.Tensor, taps: Collection[str]) -> dict[str, torch.Tensor]:
        """Forward a normalised N×3×H×W batch just far enough to return every native tap in ``taps``."""

    def extra_repr(self) -> str:
        return f"name={self.name!r}, is_random={self.is_random}"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_suffix(path: Path) -> str | None:
    """The hex hash suffix of a ``name-<hex>.ext`` file name (torch hub convention), or None."""
    match = _HASH_SUFFIX.search(path.name)
    return match.group(1) if match else None


def verify_hash_suffix(path: Path) -> None:
    """If the file name carries a hash suffix, check that the file's SHA-256 starts with it."""
    expected = hash_suffix(path)
    if expected is None:
        return
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise WeightsError(
            f"{path}: checksum mismatch, the file name says SHA-256 {expected}… but the file's is "
            f"{actual[: len(expected)]}… (the file is corrupt or incomplete; get a fresh copy, or "
            f"rename it without the -{expected} suffix if that suffix is not a hash)"
        )


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``{key: tensor}`` state dict with ``weights_only=True`` after the hash-suffix check."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (give the path of an existing file)")
    verify_hash_suffix(path)
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many types for bad files; all mean "not a state dict"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(
            f"{path}: cannot be read as a torch state dict ({first_line}) (give a .pth file saved "
            f"with torch.save(model.state_dict(), path))"
        ) from err
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path}: holds a {type(obj).__name__}, not a {{name: tensor}} state dict (give a .pth "
            f"file saved with torch.save(model.state_dict(), path))"
        )
    return dict(obj)


def check_state_dict(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    path: Path,
    what: str,
    ignore_prefixes: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """The entries of ``state`` for ``expected``'s keys, after checking that every key is there
    with the expected shape; keys under ``ignore_prefixes`` may be present and are dropped."""
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise WeightsError(f"{path}: key {missing[0]!r}{more} missing (expected {what})")
    unexpected = [k for k in state if k not in expected and not k.startswith(ignore_prefixes)]
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise WeightsError(f"{path}: unexpected key {unexpected[0]!r}{more} (expected {what})")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise WeightsError(
                f"{path}: key {key!r} has shape {tuple(state[key].shape)} but the architecture "
                f"needs {tuple(ref.shape)} (expected {what})"
            )
    return {k: state[k] for k in expected}


def build_uninitialised(factory: Callable[[], ModuleT]) -> ModuleT:
    """``factory()`` built on the meta device and given empty CPU storage: skips the default
    init (which would draw from the global RNG); follow with seeded_init_ or load_state_dict."""
    with torch.device("meta"):
        module = factory()
    return module.to_empty(device="cpu")


def seeded_init_(module: nn.Module, seed: int) -> None:
    """Deterministic random init that leaves the global RNG alone: He-normal convs (fan-in, so
    activations keep their scale), N(0, 0.01) linear weights, zero biases, identity batch norm."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=gen)
                m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero inside the block, then restore the previous setting.

    Denormals slowed some CPU convolutions 10–60× in training and L-BFGS runs.
    """
    was = torch.tensor([1e-40]).item() == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was)
