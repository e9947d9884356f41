"""Inference: ``Purifier.from_pretrained()(images, masks) -> images``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.models.export import load_model, load_state_checked
from eyepurify.models.transformer import TransformNet, TransformNetConfig
from eyepurify.tensors import images_to_tensor, labels_to_tensor, one_hot, tensor_to_images

SegmentFn = Callable[[list[np.ndarray]], list[np.ndarray]]


def packaged_weights(name: str) -> Path:
    """Path of a model file shipped in the package (``eyepurify/weights/<name>``)."""
    return Path(str(resources.files("eyepurify") / "weights" / name))


def load_transform_net(path: str | os.PathLike[str]) -> tuple[TransformNet, dict[str, object]]:
    """A TransformNet and its metadata from an exported model file (eval mode)."""
    state, meta = load_model(path)
    cfg = meta.get("net")
    if not isinstance(cfg, dict):
        raise WeightsError(f"{path}: metadata has no 'net' config; it is not a purifier model file")
    try:
        net = TransformNet(TransformNetConfig(**cfg))
    except TypeError as e:
        raise WeightsError(f"{path}: unknown network config {cfg} ({e})") from None
    load_state_checked(net, state, path)
    return net.eval(), meta


def _default_segmenter() -> SegmentFn | None:
    path = packaged_weights("segmenter.safetensors")
    if not path.is_file():
        return None
    from eyepurify.segment import Segmenter

    return Segmenter.from_pretrained(path)


class Purifier:
    """Purify real eye images into the synthetic style with a trained transformation network.

    Call with uint8 images (H×W×3, N×H×W×3 or a list of H×W×3 of any sizes) and optional
    label maps (H×W uint8, 0 skin, 1 sclera, 2 iris, 3 pupil); returns uint8 images of the
    same sizes in the same container type. Also accepts float N×3×H×W tensors in [0, 1] with
    N×H×W integer label tensors, returning a float tensor. Without masks the segmenter
    predicts them; without a segmenter that is an error.
    """

    def __init__(
        self,
        net: TransformNet,
        segmenter: SegmentFn | None = None,
        batch_size: int = 32,
        meta: dict[str, object] | None = None,
    ) -> None:
        self.net = net.eval()
        self.segmenter = segmenter
        self.batch_size = batch_size
        self.meta = meta or {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] | None = None,
        segmenter: str | os.PathLike[str] | SegmentFn | None = "default",
        batch_size: int = 32,
    ) -> Purifier:
        """Load a model file (default: the purifier shipped in the package).

        ``segmenter``: "default" (the shipped segmenter, if present), a model-file path, a
        callable (list of H×W×3 uint8 → list of H×W uint8), or None (masks required).
        """
        if path is None:
            path = packaged_weights("purifier.safetensors")
            if not path.is_file():
                raise WeightsError(
                    f"{path}: the default purifier is not installed; reinstall eyepurify or pass --model"
                )
        net, meta = load_transform_net(path)
        seg: SegmentFn | None
        if segmenter == "default":
            seg = _default_segmenter()
        elif segmenter is None or callable(segmenter):
            seg = segmenter  # type: ignore[assignment]
        else:
            from eyepurify.segment import Segmenter

            seg = Segmenter.from_pretrained(segmenter)
        return cls(net, seg, batch_size, meta)

    @property
    def needs_masks(self) -> bool:
        return self.net.config.mask_channels > 0

    def predict_masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Label maps for H×W×3 uint8 images from the segmenter (error if there is none)."""
        if self.segmenter is None:
            raise EyepurifyError(
                "no masks given and no segmenter available: pass label maps (--masks DIR) "
                "or a segmenter model (--segmenter FILE)"
            )
        return list(self.segmenter(images))

    def _masks_for(self, images: list[np.ndarray], masks: Sequence[np.ndarray] | None) -> list[np.ndarray] | None:
        if not self.needs_masks:
            return None
        if masks is None:
            return self.predict_masks(images)
        if len(masks) != len(images):
            raise EyepurifyError(f"got {len(images)} images but {len(masks)} masks")
        for i, (im, m) in enumerate(zip(images, masks, strict=True)):
            if m.shape != im.shape[:2]:
                raise EyepurifyError(f"mask {i} is {m.shape} but its image is {im.shape[:2]}: masks must match image sizes")
        return list(masks)

    @torch.inference_mode()
    def purify_tensor(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """float N×3×H×W in [0, 1] (+ int N×H×W labels) → float N×3×H×W in [0, 1]."""
        if not torch.isfinite(images).all():
            raise EyepurifyError("input images contain NaN or inf; clean the input first")
        out = []
        for s in range(0, images.shape[0], self.batch_size):
            x = images[s : s + self.batch_size].float()
            m = None
            if self.needs_masks:
                if labels is None:
                    raise EyepurifyError("this purifier needs label maps with its images")
                m = one_hot(labels[s : s + self.batch_size])
            out.append(self.net(x, m))
        return torch.cat(out) if out else images.new_zeros((0, 3, *images.shape[-2:]))

    def purify_arrays(self, images: list[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """List of H×W×3 uint8 (sizes may differ) → list of purified H×W×3 uint8."""
        ms = self._masks_for(images, masks)
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape[:2], []).append(i)
        for idx in groups.values():
            x = images_to_tensor([images[i] for i in idx])
            lab = labels_to_tensor([ms[i] for i in idx]) if ms is not None else None
            for i, y in zip(idx, tensor_to_images(self.purify_tensor(x, lab)), strict=True):
                out[i] = y
        return out  # type: ignore[return-value]

    def __call__(self, images, masks=None):  # type: ignore[no-untyped-def]
        if isinstance(images, torch.Tensor):
            return self.purify_tensor(images, masks)
        if isinstance(images, np.ndarray):
            if images.ndim == 3:
                ms = None if masks is None else [np.asarray(masks)]
                return self.purify_arrays([images], ms)[0]
            ms = None if masks is None else list(np.asarray(masks))
            return np.stack(self.purify_arrays(list(images), ms))
        return self.purify_arrays(list(images), None if masks is None else list(masks))
