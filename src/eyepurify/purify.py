"""Inference: ``Purifier.from_pretrained()(images, masks) -> images``.

Every image is purified at the eye scale the model was trained at (:mod:`eyepurify.eyescale`):
normalised eye patches (the trained aspect, e.g. MPIIGaze 36×60) are resized whole to the
training size, purified there and resized back (a no-op at the training size); any other
image (a 640×480 photo) has its eye found, the box with the trained margin and aspect cut
and resized to the training size, purified there, and resized back into the untouched
original with a feathered edge (or returned as the canonical crop).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from eyepurify.device import Placement, make_placement, place
from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.eyescale import (
    Box,
    EyeScale,
    canonical_box,
    crop,
    crop_labels,
    eye_box,
    is_patch,
    looks_like_eye,
    nearest_patch_scale,
    paste,
    paste_labels,
    whole_image_box,
)
from eyepurify.imaging import is_gray, resize_image, resize_labels, to_gray
from eyepurify.models.registry import load_model
from eyepurify.models.transformer import TransformNet
from eyepurify.tensors import images_to_tensor, labels_to_tensor, one_hot, tensor_to_images

if TYPE_CHECKING:
    from eyepurify.backends import TransformRunner
    from eyepurify.engines.jobs import PurifyConfig

SegmentFn = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ShippedSet:
    """A shipped model set: purifier files (the main one, for whole RGB photos, first), each
    with whether it is for gray inputs, and the segmenter file that goes with them."""

    purifiers: tuple[tuple[str, bool], ...]
    segmenter: str
    #: segmenters at other eye scales (patches go to the nearest, see ScaledSegmenters)
    more_segmenters: tuple[str, ...] = ()


#: shipped model sets by name (``from_pretrained(name)``, ``purify --model NAME``)
SHIPPED: dict[str, ShippedSet] = {
    "v1": ShippedSet((("purifier.safetensors", False), ("purifier_gray.safetensors", True)), "segmenter.safetensors"),
    # distilled students, about a fifth of the FLOPs (docs/training.md "Fast models"): from v2
    # (72×120 photos, 36×60 colour and gray patches) and, as before v2, from v1
    "fast": ShippedSet(
        (("purifier_fast_v2.safetensors", False), ("purifier_fast_v2_36.safetensors", False),
         ("purifier_fast_v2_36_gray.safetensors", True)),
        "segmenter_fast.safetensors",
        ("segmenter_fast_v2_36.safetensors",),
    ),
    "fast_v1": ShippedSet((("purifier_fast.safetensors", False),), "segmenter_fast.safetensors"),
    # v2 (docs/training.md "Purifier v2"): 72×120 colour for photos, 36×60 colour and gray for gaze patches
    "v2": ShippedSet(
        (("purifier_v2.safetensors", False), ("purifier_v2_36.safetensors", False), ("purifier_v2_36_gray.safetensors", True)),
        "segmenter.safetensors",
        ("segmenter_v2_36.safetensors",),
    ),
}
SHIPPED["default"] = SHIPPED["v2"]


def packaged_weights(name: str) -> Path:
    """Path of a model file shipped in the package (``eyepurify/weights/<name>``)."""
    return Path(str(resources.files("eyepurify") / "weights" / name))


def load_transform_net(path: str | os.PathLike[str]) -> tuple[TransformNet, dict[str, object]]:
    """A TransformNet and its metadata from an exported model file (eval mode)."""
    net, meta = load_model(path, "purifier")
    return net, meta  # type: ignore[return-value]


def _default_segmenter(name: str = "segmenter.safetensors", more: tuple[str, ...] = (),
                       device: object = None) -> SegmentFn | None:
    path = packaged_weights(name)
    if not path.is_file():
        return None
    from eyepurify.segment import ScaledSegmenters, Segmenter

    first = Segmenter.from_pretrained(path, device=device)
    if not more:
        return first
    for m in more:
        if not packaged_weights(m).is_file():
            raise WeightsError(f"{packaged_weights(m)}: a shipped segmenter is not installed; reinstall eyepurify")
    return ScaledSegmenters([first, *(Segmenter.from_pretrained(packaged_weights(m), device=device) for m in more)],
                            device=device)


@dataclass
class EyeNet:
    """One purification network with where it applies: ``scale`` the eye scale it was
    trained at (None: run at each image's own size), ``gray`` True for a network trained on
    gray images (three equal channels), ``masks`` whether it reads label maps."""

    net: TransformRunner
    scale: EyeScale | None
    gray: bool = False

    @property
    def masks(self) -> bool:
        return bool(self.net.config.mask_channels)


@dataclass
class Purified:
    """One purified image: ``image`` at the input's size; ``crop`` the purified patch at the
    training size (for a normalised patch input, ``box`` None, the whole patch resized); the
    label maps used at both sizes (None for networks without masks); ``box`` in input pixels
    (may extend past the image); ``eye_found`` False when no eye was found and the whole
    image was used."""

    image: np.ndarray
    crop: np.ndarray
    labels: np.ndarray | None
    crop_labels: np.ndarray | None
    box: Box | None
    eye_found: bool

    def __repr__(self) -> str:
        def shape(a: np.ndarray | None) -> str:
            return "None" if a is None else "×".join(map(str, a.shape))

        return (f"Purified(image={shape(self.image)}, crop={shape(self.crop)}, labels={shape(self.labels)}, "
                f"crop_labels={shape(self.crop_labels)}, box={self.box}, eye_found={self.eye_found})")


class Purifier:
    """Purify real eye images into the synthetic style with trained transformation networks.

    Call with uint8 images (H×W×3, N×H×W×3 or a list of H×W×3 of any sizes) and optional
    label maps (H×W uint8, 0 skin, 1 sclera, 2 iris, 3 pupil); returns uint8 images of the
    same sizes in the same container type, each purified at the eye scale of the network
    that fits it (None runs every image at its own size). Also accepts float N×3×H×W
    tensors in [0, 1] with N×H×W integer label tensors, returning a float tensor (run as
    given). Without masks the segmenter predicts them; without a segmenter that is an error.

    Several networks may be held (``nets``; the first is the main one, for whole photos):
    a normalised eye patch goes to the network of its colour (gray or RGB) whose trained
    patch size is nearest its own, any other image to the main network of its colour at
    that network's eye scale (the eye found, cut, purified and pasted back).
    """

    def __init__(
        self,
        net: TransformNet,
        segmenter: SegmentFn | None = None,
        batch_size: int = 32,
        meta: dict[str, object] | None = None,
        scale: EyeScale | None = None,
        gray_net: TransformNet | None = None,
        extra: Sequence[EyeNet] = (),
        device: str | torch.device | Placement | None = None,
    ) -> None:
        self.nets: list[EyeNet] = [EyeNet(net.eval(), scale, False)]
        if gray_net is not None:
            self.nets.append(EyeNet(gray_net.eval(), scale, True))
        for e in extra:
            e.net.eval()
            self.nets.append(e)
        #: where the networks run (:mod:`eyepurify.device`; None: the process's placement)
        self.placement = make_placement(device)
        for e in self.nets:
            e.net = place(e.net, self.placement)
        self.segmenter = segmenter
        self.batch_size = batch_size
        self.meta = meta or {}
        #: the model files it was loaded from (set by :meth:`from_pretrained`; None: not a file)
        self.files: dict[str, Path | None] = {"model": None, "segmenter": None}

    @property
    def net(self) -> TransformRunner:
        """The main network (whole photos, RGB)."""
        return self.nets[0].net

    @property
    def scale(self) -> EyeScale | None:
        """The main network's eye scale (whole photos are brought to it)."""
        return self.nets[0].scale

    @property
    def gray_net(self) -> TransformRunner | None:
        """The first gray network (the one for gray whole photos), if any."""
        return next((e.net for e in self.nets if e.gray), None)

    @classmethod
    def from_config(cls, config: PurifyConfig) -> Purifier:
        """The Purifier of a ``purify`` run (:class:`~eyepurify.engines.jobs.PurifyConfig`, the
        frozen config that is also the run's manifest settings and its Ray payload), its
        networks on ``config.backend``, placed on ``config.device`` / ``config.precision``
        (None: the process's, :mod:`eyepurify.device`)."""
        from eyepurify.backends import accelerate

        on = config.eye_scale == "auto"
        purifier = cls.from_pretrained(
            config.model, segmenter=None if config.segmenter in ("none", "") else config.segmenter,
            batch_size=config.batch, eye_scale=on, segment_size=config.segment_size, segment_eye_scale=on,
            device=make_placement(config.device, config.precision, config.compile),
        )
        accelerate(purifier, config.backend)
        return purifier

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] | None = None,
        segmenter: str | os.PathLike[str] | SegmentFn | None = "default",
        batch_size: int = 32,
        eye_scale: bool = True,
        gray: str | os.PathLike[str] | None = "default",
        segment_size: tuple[int, int] | None = None,
        segment_eye_scale: bool = True,
        device: str | torch.device | Placement | None = None,
    ) -> Purifier:
        """Load a model file, or a shipped model set by name (:data:`SHIPPED`; None = "default"
        = "v2": 72×120 photo and 36×60 patch purifiers (colour and gray), each input going to
        the network of its eye scale; "v1": the first release's purifiers; "fast": students
        distilled from v2, about a fifth of its FLOPs ("fast_v1": from v1); see docs/training.md).

        ``segmenter``: "default" (the shipped segmenter that goes with the model, if present;
        the fast segmenters for ``"fast"``), a model-file path, a
        callable (list of H×W×3 uint8 → list of H×W uint8), or None (masks required).
        ``eye_scale``: bring every image to the model's trained eye scale (False: run each
        image at its own size, as before eye scales existed). ``gray``: a model file for
        gray inputs (three equal channels; "default": the set's gray models, none for a
        file; None: none). Gray inputs always come out gray.
        ``segment_size`` / ``segment_eye_scale``: how a segmenter loaded from a file runs
        (every whole image resized to that size / its eye normalisation on or off; see
        :meth:`eyepurify.segment.Segmenter.from_checkpoint`).
        ``device``: where the networks (the segmenter's too) run: "auto" (CUDA, else MPS, else
        the CPU), "cpu", "cuda", "cuda:N", "mps" or a :class:`~eyepurify.device.Placement`
        (None: the process's, see :func:`eyepurify.device.configure`).
        """
        placement = make_placement(device)
        name = "default" if path is None else str(path) if str(path) in SHIPPED and not Path(path).is_file() else None
        shipped = SHIPPED[name] if name is not None else None
        if shipped is not None:
            files = [(packaged_weights(f), g) for f, g in shipped.purifiers]
            for f, _ in files:
                if not f.is_file():
                    raise WeightsError(f"{f}: the {name} purifier is not installed; reinstall eyepurify or pass --model FILE")
            path = files[0][0]
        else:
            files = [(Path(path), False)]  # type: ignore[arg-type]
        if gray != "default":  # None: no gray network; a file: that one
            files = [(f, g) for f, g in files if not g] + ([] if gray is None else [(Path(gray), True)])
        seg_name = (shipped or SHIPPED["default"]).segmenter
        more_segs = shipped.more_segmenters if shipped is not None else ()
        net, meta = load_transform_net(path)  # type: ignore[arg-type]
        seg: SegmentFn | None
        seg_file: Path | None = None
        more_seg_files: list[Path] = []
        if segmenter is None or callable(segmenter):
            seg = segmenter
        elif segmenter == "default" and segment_size is None and segment_eye_scale:
            seg = _default_segmenter(seg_name, more_segs, placement)
            seg_file = packaged_weights(seg_name) if seg is not None else None
            more_seg_files = [packaged_weights(m) for m in more_segs] if seg is not None else []
        else:
            from eyepurify.segment import Segmenter

            seg_file = packaged_weights(seg_name) if segmenter == "default" else Path(segmenter)
            kw: dict[str, object] = {"size": segment_size} if segment_size is not None else {"eye_scale": segment_eye_scale}
            kw["device"] = placement
            seg = Segmenter.from_pretrained(seg_file, **kw)
        scale = EyeScale.from_meta(meta, _train_size(meta)) if eye_scale else None
        extra = []
        for f, g in files[1:]:
            other, other_meta = load_transform_net(f)
            if g and other.config.mask_channels != net.config.mask_channels:
                raise WeightsError(f"{f}: the gray model's mask input differs from {path}'s; use models trained the same way")
            other_scale = EyeScale.from_meta(other_meta, _train_size(other_meta)) if eye_scale else None
            extra.append(EyeNet(other, other_scale, g))
        out = cls(net, seg, batch_size, meta, scale, None, extra, device=placement)
        assert path is not None
        out.files = {"model": Path(path), "segmenter": seg_file, **{f"model_{i}": f for i, (f, _) in enumerate(files[1:], 1)}}
        out.files.update({f"model_segmenter_{i}": f for i, f in enumerate(more_seg_files, 2)})
        return out

    @property
    def needs_masks(self) -> bool:
        """True when any network reads label maps."""
        return any(e.masks for e in self.nets)

    def predict_masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Label maps for H×W×3 uint8 images from the segmenter (error if there is none)."""
        if self.segmenter is None:
            raise EyepurifyError(
                "no masks given and no segmenter available: pass label maps (--masks DIR) "
                "or a segmenter model (--segmenter FILE)"
            )
        return list(self.segmenter(images))

    def network_for(self, gray: bool, shape: tuple[int, ...] | None) -> int:
        """Index in :attr:`nets` of the network for an image of ``shape`` (None: a whole
        photo) and colour: the same colour when there is one; a patch goes to the network
        whose trained size is nearest its own among those it is a patch of, anything else to
        the first network."""
        same = [i for i, e in enumerate(self.nets) if e.gray == gray] or [i for i, e in enumerate(self.nets) if not e.gray]
        k = None if shape is None else nearest_patch_scale(shape, [self.nets[i].scale for i in same])
        return same[0] if k is None else same[k]

    def _is_whole(self, image: np.ndarray) -> bool:
        """True when ``image`` is no normalised eye patch of any network (its eye must be found)."""
        scales = [e.scale for e in self.nets if e.scale is not None]
        return bool(scales) and not any(is_patch(image.shape, sc) for sc in scales)

    def needs_normalising(self, image: np.ndarray) -> bool:
        """True when ``image`` is not a normalised eye patch (its eye must be found first)."""
        return self._is_whole(image)

    @torch.inference_mode()
    def purify_tensor(self, images: torch.Tensor, labels: torch.Tensor | None, gray: bool = False) -> torch.Tensor:
        """float N×3×H×W in [0, 1] (+ int N×H×W labels) → float N×3×H×W in [0, 1], by the
        main network (``gray``: the images are gray; the gray network when there is one)."""
        if not torch.isfinite(images).all():
            raise EyepurifyError("input images contain NaN or inf; clean the input first")
        return self._run_net(self.network_for(gray, None), images, labels)

    def _run_net(self, index: int, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Network ``index`` on float images (+ labels), in batches (no finite check: images made from uint8 are finite)."""
        entry = self.nets[index]
        out = []
        for s in range(0, images.shape[0], self.batch_size):
            x = images[s : s + self.batch_size].float()
            m = None
            if entry.masks:
                if labels is None:
                    raise EyepurifyError("this purifier needs label maps with its images")
                m = one_hot(labels[s : s + self.batch_size])
            out.append(entry.net(x, m))
        return torch.cat(out) if out else images.new_zeros((0, 3, *images.shape[-2:]))

    def _purify_patches(self, images: list[np.ndarray], masks: list[np.ndarray | None], nets: list[int]) -> list[np.ndarray]:
        """Each image by its network at its own size (grouped by network and size into
        batches); gray images come out gray."""
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault((nets[i], *im.shape[:2]), []).append(i)
        for (k, _, _), idx in groups.items():
            x = images_to_tensor([images[i] for i in idx])
            lab = labels_to_tensor([masks[i] for i in idx]) if self.nets[k].masks else None  # type: ignore[misc]
            with torch.inference_mode():
                y_all = tensor_to_images(self._run_net(k, x, lab))
            for i, y in zip(idx, y_all, strict=True):
                out[i] = to_gray(y) if is_gray(images[i]) else y
        return out  # type: ignore[return-value]

    def _box_from_labels(self, labels: np.ndarray, shape: tuple[int, ...], scale: EyeScale) -> tuple[Box, bool]:
        """(canonical box, found) of the eye in a label map of the whole image."""
        eye = eye_box(labels)
        return (canonical_box(eye, scale), True) if eye is not None else (whole_image_box(shape, scale), False)

    def _boxes(self, images: list[np.ndarray], masks: Sequence[np.ndarray | None], scale: EyeScale) -> list[tuple[Box, bool]]:
        out: list[tuple[Box, bool] | None] = [
            None if m is None else self._box_from_labels(m, im.shape, scale) for im, m in zip(images, masks, strict=True)
        ]
        unknown = [i for i, r in enumerate(out) if r is None]
        if unknown:
            todo = [images[i] for i in unknown]
            locate = getattr(self.segmenter, "locate", None)
            found = (locate(todo, scale) if locate is not None else
                     [self._box_from_labels(lab, im.shape, scale) for im, lab in zip(todo, self.predict_masks(todo), strict=True)])
            for i, r in zip(unknown, found, strict=True):
                out[i] = r
        return out  # type: ignore[return-value]

    def process(self, images: list[np.ndarray], masks: Sequence[np.ndarray | None] | None = None) -> list[Purified]:
        """List of H×W×3 uint8 (any sizes; optional label maps, None entries predicted) →
        one :class:`Purified` per image, each purified at the eye scale of its network.

        A whole photo whose located box holds no eye-like label map
        (:func:`eyepurify.eyescale.looks_like_eye`) is returned unchanged, ``eye_found`` False."""
        given: list[np.ndarray | None] = [None] * len(images) if masks is None else list(masks)
        if len(given) != len(images):
            raise EyepurifyError(f"got {len(images)} images but {len(given)} masks")
        for i, (im, m) in enumerate(zip(images, given, strict=True)):
            if m is not None and m.shape != im.shape[:2]:
                raise EyepurifyError(f"mask {i} is {m.shape} but its image is {im.shape[:2]}: masks must match image sizes")
        whole = [self._is_whole(im) for im in images]
        nets = [self.network_for(is_gray(im), None if w else im.shape) for im, w in zip(images, whole, strict=True)]
        boxes: dict[int, tuple[Box, bool]] = {}
        for k in sorted({nets[i] for i in range(len(images)) if whole[i]}):
            idx = [i for i in range(len(images)) if whole[i] and nets[i] == k]
            scale = self.nets[k].scale
            assert scale is not None
            boxes.update(zip(idx, self._boxes([images[i] for i in idx], [given[i] for i in idx], scale), strict=True))
        patches: list[np.ndarray] = []
        patch_masks: list[np.ndarray | None] = []
        for i, im in enumerate(images):
            scale = self.nets[nets[i]].scale
            m = given[i]
            if i in boxes:
                box = boxes[i][0]
                patches.append(crop(im, box, scale.size))  # type: ignore[union-attr]
                patch_masks.append(None if m is None else crop_labels(m, box, scale.size))  # type: ignore[union-attr]
            elif scale is not None:  # a normalised patch: whole, at the training size
                patches.append(resize_image(im, scale.size))
                patch_masks.append(None if m is None else resize_labels(m, scale.size))
            else:
                patches.append(im)
                patch_masks.append(m)
        # label maps: for networks that read them, and for whole photos (the blend region, the eye check)
        missing = [i for i, m in enumerate(patch_masks) if m is None and (self.nets[nets[i]].masks or i in boxes)]
        if missing and (self.segmenter is not None or any(self.nets[nets[i]].masks for i in missing)):
            for i, lab in zip(missing, self.predict_masks([patches[i] for i in missing]), strict=True):
                patch_masks[i] = lab
        outs = self._purify_patches(patches, patch_masks, nets)
        results = []
        for i, (im, y) in enumerate(zip(images, outs, strict=True)):
            pm = patch_masks[i]
            if i in boxes:
                box, found = boxes[i]
                found = found and (pm is None or looks_like_eye(pm))
                if not found:  # no eye: nothing is purified
                    results.append(Purified(im.copy(), patches[i], None, pm, box, False))
                    continue
                full = paste(im, y, box, labels=pm, original_crop=patches[i])
                lab = paste_labels(im.shape[:2], pm, box) if pm is not None else None  # type: ignore[assignment]
                results.append(Purified(full, y, lab, pm, box, True))
            else:
                hw = im.shape[:2]
                full_lab = None if pm is None else resize_labels(pm, hw)
                results.append(Purified(resize_image(y, hw), y, full_lab, pm, None, True))
        return results

    def purify_arrays(self, images: list[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """List of H×W×3 uint8 (sizes may differ) → list of purified H×W×3 uint8."""
        return [r.image for r in self.process(images, masks)]

    def __call__(self, images, masks=None):
        """One image (uint8 H×W, H×W×1 or H×W×3: :mod:`eyepurify.arrays`) → the purified image
        in the same layout; an N×H×W×C array or a list → the same; a tensor → a tensor."""
        from eyepurify.arrays import as_list, is_single, like_input

        if isinstance(images, torch.Tensor):
            return self.purify_tensor(images, masks)
        if isinstance(images, np.ndarray) and is_single(images):
            ims, shapes = as_list([images])
            ms = None if masks is None else [np.asarray(masks)]
            return like_input(self.purify_arrays(ims, ms)[0], shapes[0])
        ims, shapes = as_list(images)
        outs = [like_input(y, s) for y, s in zip(self.purify_arrays(ims, None if masks is None else list(masks)), shapes, strict=True)]
        if isinstance(images, np.ndarray):
            return np.stack(outs) if outs else images.copy()
        return outs


def _train_size(meta: dict[str, object]) -> list[int] | None:
    train = meta.get("train")
    size = train.get("size") if isinstance(train, dict) else meta.get("size")
    return size if isinstance(size, list) and len(size) == 2 else None
