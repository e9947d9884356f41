"""Inference with the coarse segmentation network: ``Segmenter.from_checkpoint(path)(images)``.

Normalised eye patches (the trained aspect, at most twice the trained width) are resized
to the size the network was trained at, the class logits are resized back
(bilinear) to each image's own size and the arg-max taken, then the orphan-label fix
(:func:`eyepurify.labels.orphan_fix`) is applied unless disabled. Any other image (a
640×480 photo, a square crop) is first brought to the trained eye scale
(:mod:`eyepurify.eyescale`): a coarse pass at the trained width finds the eye, the box with
the trained margin and aspect is cut, segmented at the trained size, and the labels are
pasted back into a skin-filled map of the image's size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from eyepurify.device import Placement, make_placement, place
from eyepurify.eyescale import (
    Box,
    EyeScale,
    canonical_box,
    coarse_size,
    crop,
    eye_box,
    is_patch,
    nearest_patch_scale,
    paste_labels,
    whole_image_box,
)
from eyepurify.labels import orphan_fix
from eyepurify.models.registry import load_model
from eyepurify.models.segmentation import SegmentationNet, predict_labels

if TYPE_CHECKING:
    from eyepurify.backends import SegmentationRunner
    from eyepurify.engines.jobs import SegmentConfig

DEFAULT_WEIGHTS = "segmenter.safetensors"


def default_weights_path() -> Path:
    """Where the shipped segmentation model lives (``eyepurify/weights/segmenter.safetensors``)."""
    return Path(str(resources.files("eyepurify") / "weights" / DEFAULT_WEIGHTS))


def load_segmentation_net(path: str | os.PathLike[str]) -> tuple[SegmentationNet, dict[str, Any]]:
    """(network in eval mode, metadata) from a model file written by ``train-segmenter``
    (``model.safetensors``) or from one of its training checkpoints (``checkpoint.safetensors``,
    ``last.safetensors`` in older runs).

    The metadata holds at least ``net`` (architecture) and ``size`` ([H, W] trained at,
    or None). WeightsError naming the file when it is missing, corrupt or not a segmenter.
    """
    net, meta = load_model(path, "segmentation")
    return net, meta  # type: ignore[return-value]


class Segmenter:
    """Predict label maps (0 skin, 1 sclera, 2 iris, 3 pupil) for eye images.

    model: a :class:`SegmentationNet`. device: where it runs ("auto", "cpu", "cuda", "cuda:N",
    "mps", a :class:`~eyepurify.device.Placement`; None: the process's). size: (H, W) the network runs at (images are
    resized to it and the prediction back), or None to run at each image's own size.
    scale: the eye scale it was trained at; with it, images that are not eye patches of
    that scale are normalised first (see the module docstring); None runs every image
    resized to ``size`` as it is. orphan_fix / pupil_factor: apply
    :func:`eyepurify.labels.orphan_fix`. batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: SegmentationNet,
        size: tuple[int, int] | None = None,
        orphan_fix: bool = True,
        pupil_factor: float = 0.4,
        batch_size: int = 32,
        scale: EyeScale | None = None,
        device: Any = None,
    ) -> None:
        #: where the network runs (:mod:`eyepurify.device`; None: the process's placement)
        self.placement = make_placement(device)
        self.model: SegmentationRunner = place(model.eval(), self.placement)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.orphan_fix = orphan_fix
        self.pupil_factor = pupil_factor
        self.batch_size = batch_size
        self.scale = scale

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], eye_scale: bool = True, **kw: Any) -> Segmenter:
        """From a model file or training checkpoint; runs at its training size and eye scale.

        ``size=(H, W)`` sets a fixed working size instead (every image resized to it, no eye
        normalisation); ``eye_scale=False`` keeps the training size but turns normalisation off.
        """
        net, meta = load_segmentation_net(path)
        size = meta.get("size")
        if "size" not in kw and eye_scale:
            kw["scale"] = EyeScale.from_meta(meta, size)
        kw.setdefault("size", tuple(size) if size else None)
        return cls(net, **kw)

    @classmethod
    def from_config(cls, config: SegmentConfig) -> Segmenter:
        """The Segmenter of a ``segment`` run (:class:`~eyepurify.engines.jobs.SegmentConfig`),
        its network on ``config.backend``, placed on ``config.device`` / ``config.precision``
        (None: the process's, :mod:`eyepurify.device`)."""
        from eyepurify.backends import accelerate_segmenter

        seg = cls.from_pretrained(
            config.model, orphan_fix=config.orphan_fix, pupil_factor=config.pupil_factor, batch_size=config.batch,
            device=make_placement(config.device, config.precision, config.compile),
            **({"size": config.size} if config.size else {"eye_scale": config.eye_scale == "auto"}),
        )
        accelerate_segmenter(seg, config.backend)
        return seg

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None, **kw: Any) -> Segmenter:
        """Like :meth:`from_checkpoint`; ``path=None`` means the shipped model."""
        return cls.from_checkpoint(default_weights_path() if path is None else path, **kw)

    def _run(
        self, imgs: list[np.ndarray], size: tuple[int, int] | Callable[[tuple[int, int]], tuple[int, int]] | None = None
    ) -> list[np.ndarray]:
        """Label maps at each image's own size, the network at ``size`` (default: self.size;
        a function of the image shape gives a size per shape)."""
        out: list[np.ndarray | None] = [None] * len(imgs)
        # Group by size so every forward pass is one stacked batch.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(imgs):
            groups.setdefault(im.shape[:2], []).append(i)
        for shape, idx in groups.items():
            run_size = (size(shape) if callable(size) else size) or self.size
            labs = predict_labels(self.model, [imgs[j] for j in idx], run_size, batch=self.batch_size)
            for i, lab in zip(idx, labs, strict=True):
                out[i] = orphan_fix(lab, self.pupil_factor) if self.orphan_fix else lab
        return [o for o in out if o is not None]

    def needs_normalising(self, image: np.ndarray) -> bool:
        """True when ``image`` is not a normalised eye patch (its eye must be found first)."""
        return self.scale is not None and not is_patch(image.shape, self.scale)

    def locate(self, images: Sequence[np.ndarray], scale: EyeScale | None = None) -> list[tuple[Box, bool]]:
        """For each whole image, (box, found): the box that brings its eye to ``scale``
        (default: this segmenter's), found by a coarse pass at the trained width and one
        refinement pass inside that box; without an eye, the centred box of the trained
        aspect over the whole image and found=False."""
        own = self.scale or EyeScale.for_renders(self.size or (72, 120))
        target = scale or own
        imgs = _checked(images)
        coarse = self._run(imgs, lambda shape: coarse_size(shape, own))
        out: list[tuple[Box, bool]] = []
        # an eye smaller than 0.2% of the image is a stray blob, not the eye of an eye photo
        first = [
            None if (eye := eye_box(lab, min_area=max(4, lab.size // 500))) is None else canonical_box(eye, own)
            for lab in coarse
        ]
        # refine: segment the first box at the trained scale, find the eye again inside it
        todo = [i for i, b in enumerate(first) if b is not None]
        crops = [crop(imgs[i], first[i], own.size) for i in todo]  # type: ignore[arg-type]
        fine = dict(zip(todo, self._run(crops, own.size), strict=True))
        for i, im in enumerate(imgs):
            b = first[i]
            eye = eye_box(fine[i]) if b is not None else None
            if b is None or eye is None:
                out.append((whole_image_box(im.shape, target), False))
                continue
            kx, ky = b.width / own.size[1], b.height / own.size[0]
            eye_img = (b.x0 + eye[0] * kx, b.y0 + eye[1] * ky, b.x0 + eye[2] * kx, b.y0 + eye[3] * ky)
            out.append((canonical_box(eye_img, target), True))
        return out

    def predict_normalised(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, Box | None, bool]]:
        """For each image: (labels at its size, labels of the canonical crop, box, eye found).
        Patches already at the trained scale have box None and the crop labels equal the labels."""
        imgs = _checked(images)
        out: list[tuple[np.ndarray, np.ndarray, Box | None, bool] | None] = [None] * len(imgs)
        rest = [i for i, im in enumerate(imgs) if self.needs_normalising(im)]
        direct = sorted(set(range(len(imgs))) - set(rest))
        for i, lab in zip(direct, self._run([imgs[i] for i in direct]), strict=True):
            out[i] = (lab, lab, None, True)
        if rest:
            assert self.scale is not None
            located = self.locate([imgs[i] for i in rest])
            crops = [crop(imgs[i], box, self.scale.size) for i, (box, _) in zip(rest, located, strict=True)]
            for i, (box, found), lab in zip(rest, located, self._run(crops, self.scale.size), strict=True):
                out[i] = (paste_labels(imgs[i].shape[:2], lab, box), lab, box, found)
        return out  # type: ignore[return-value]

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """H×W×3 uint8 images of any sizes → H×W uint8 label maps (same order)."""
        return [r[0] for r in self.predict_normalised(images)]

    @overload
    def __call__(self, images: np.ndarray) -> np.ndarray: ...
    @overload
    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]: ...

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """uint8 N×H×W×3 → N×H×W uint8; H×W×3 (or gray H×W, H×W×1) → H×W; a list → a list."""
        from eyepurify.arrays import as_list, is_single

        if isinstance(images, np.ndarray):
            if is_single(images):
                return self.predict(as_list([images])[0])[0]
            if images.ndim != 4:
                raise ValueError(f"expected H×W×3 or N×H×W×3 uint8 images, got {images.shape}")
            labs = self.predict(as_list(images)[0])
            return np.stack(labs) if labs else np.zeros(images.shape[:3], np.uint8)
        return self.predict(as_list(images)[0])


class ScaledSegmenters:
    """Several :class:`Segmenter` s trained at different eye scales behind one call: a
    normalised patch goes to the segmenter whose trained size is nearest its own among those
    it is a patch of (so 36×60 gaze patches are not enlarged to 72×120); whole photos, and
    :meth:`locate`, go to the first. ``device``: where they all run (each placed as a single
    :class:`Segmenter` is); None keeps each where it was made."""

    def __init__(self, segmenters: Sequence[Segmenter], device: Any = None) -> None:
        if not segmenters:
            raise ValueError("ScaledSegmenters needs at least one segmenter")
        self.segmenters = list(segmenters)
        if device is not None:
            placement = make_placement(device)
            for one in self.segmenters:
                if one.placement != placement:
                    one.placement, one.model = placement, place(one.model, placement)

    @property
    def placement(self) -> Placement:
        """Where the networks run (the first segmenter's placement)."""
        return self.segmenters[0].placement

    @property
    def scale(self) -> EyeScale | None:
        return self.segmenters[0].scale

    def pick(self, shape: tuple[int, ...]) -> int:
        """Index of the segmenter for an image of ``shape``."""
        k = nearest_patch_scale(shape, [s.scale for s in self.segmenters])
        return 0 if k is None else k

    def locate(self, images: Sequence[np.ndarray], scale: EyeScale | None = None) -> list[tuple[Box, bool]]:
        return self.segmenters[0].locate(images, scale)

    def predict_normalised(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, Box | None, bool]]:
        imgs = _checked(images)
        out: list[tuple[np.ndarray, np.ndarray, Box | None, bool] | None] = [None] * len(imgs)
        groups: dict[int, list[int]] = {}
        for i, im in enumerate(imgs):
            groups.setdefault(self.pick(im.shape), []).append(i)
        for k, idx in groups.items():
            for i, r in zip(idx, self.segmenters[k].predict_normalised([imgs[i] for i in idx]), strict=True):
                out[i] = r
        return out  # type: ignore[return-value]

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """H×W×3 uint8 images of any sizes → H×W uint8 label maps (same order)."""
        return [r[0] for r in self.predict_normalised(images)]

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.predict(list(images))


def _checked(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    imgs = [np.asarray(im) for im in images]
    for i, im in enumerate(imgs):
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"image {i}: expected H×W×3 uint8, got {im.shape} {im.dtype}")
    return imgs
