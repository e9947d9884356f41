"""The frozen run configs of ``purify`` and ``segment``: each is at once what builds the
run's networks and job (:meth:`create_job`, in this process and in every Ray worker: the
config is the Ray payload), and the settings its manifest records and ``--resume`` checks
(:meth:`settings`, with the SHA-256 of the model files the job loaded)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eyepurify.io import file_sha256

if TYPE_CHECKING:
    from eyepurify.engines.jobs import FaceJob, PurifyJob, SegmentJob
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter


def _absolute(path: str | None) -> str | None:
    """An existing path made absolute (a Ray worker may run in another folder); else as given."""
    return os.path.abspath(path) if path and os.path.exists(path) else path


@dataclass(frozen=True)
class FaceOptions:
    """``purify --faces``: the temporal blend of videos, the camera's focal length in px
    (None: the image width), at most ``max_faces`` faces per photo (None: all)."""

    temporal: str = "flow"
    focal: float | None = None
    max_faces: int | None = None


@dataclass(frozen=True)
class PurifyConfig:
    """What a ``purify`` run computes with. ``model``: a model file or shipped set name
    (None: "default"); ``segmenter``: "default", a file, or "none"/"" (masks required);
    ``segment_size`` (H, W): run the segmenter on whole images at that size; ``eye_scale``
    "auto" | "off"; ``output`` "full" | "crop"; ``masks``: a folder of label maps;
    ``predict_masks``: ignore dataset labels; ``format``: the dataset format of folder inputs;
    ``backend``: resolved (:func:`eyepurify.backends.resolve_backend`); ``batch``: images per
    forward pass; ``faces``: face mode."""

    model: str | None = None
    segmenter: str = "default"
    segment_size: tuple[int, int] | None = None
    eye_scale: str = "auto"
    output: str = "full"
    masks: str | None = None
    predict_masks: bool = False
    format: str | None = None
    backend: str = "torch"
    batch: int = 32
    faces: FaceOptions | None = None

    command = "purify"

    def portable(self) -> PurifyConfig:
        """This config with its paths absolute (what a Ray worker is sent)."""
        return dataclasses.replace(self, model=_absolute(self.model), segmenter=_absolute(self.segmenter) or "",
                                   masks=_absolute(self.masks))

    def create_purifier(self) -> Purifier:
        """The Purifier of this run, its networks on ``backend``."""
        from eyepurify.backends import accelerate
        from eyepurify.purify import Purifier

        on = self.eye_scale == "auto"
        purifier = Purifier.from_pretrained(
            self.model, segmenter=None if self.segmenter in ("none", "") else self.segmenter, batch_size=self.batch,
            eye_scale=on, segment_size=self.segment_size, segment_eye_scale=on,
        )
        accelerate(purifier, self.backend)
        return purifier

    def create_job(self) -> PurifyJob | FaceJob:
        from eyepurify.engines.jobs import FaceJob, PurifyJob

        purifier = self.create_purifier()
        crop = self.output == "crop"
        if self.faces is None:
            return PurifyJob(purifier, crop=crop, masks=self.masks, predict_masks=self.predict_masks, fmt=self.format)
        from eyepurify.faces import FacePurifier

        return FaceJob(FacePurifier(purifier, focal=self.faces.focal, max_faces=self.faces.max_faces), crop=crop,
                       temporal=self.faces.temporal == "flow")

    @staticmethod
    def _purifier(job: PurifyJob | FaceJob) -> Purifier:
        from eyepurify.engines.jobs import PurifyJob

        return job.purifier if isinstance(job, PurifyJob) else job.faces.purifier

    def settings(self, job: PurifyJob | FaceJob) -> dict[str, object]:
        """The manifest's settings: the SHA-256 of every model file ``job`` runs and the
        options that change outputs (``--resume`` with others is refused)."""
        files = self._purifier(job).files
        model_file, seg_file = files["model"], files["segmenter"]
        assert model_file is not None
        faces = ({"faces": True, "temporal": self.faces.temporal, "focal": self.faces.focal,
                  "max_faces": self.faces.max_faces} if self.faces is not None else {})
        return {
            "command": "purify", "model_sha256": file_sha256(model_file),
            "more_models_sha256": [file_sha256(f) for k, f in sorted(files.items()) if k.startswith("model_") and f],
            "segmenter_sha256": file_sha256(seg_file) if seg_file is not None else None,
            "segment_size": self.segment_size and list(self.segment_size), "eye_scale": self.eye_scale,
            "output": self.output, "masks": os.path.abspath(self.masks) if self.masks else None,
            "predict_masks": self.predict_masks, "format": self.format, **faces, "backend": self.backend,
        }

    def meta(self, job: PurifyJob | FaceJob, inputs: list[str], max_pixels: int) -> dict[str, Any]:
        """The manifest's description of the run (not checked on ``--resume``)."""
        scale = self._purifier(job).scale
        return {
            "model": self.model or "default", "segmenter": self.segmenter, "inputs": inputs,
            "segment_size": self.segment_size and list(self.segment_size),
            "eye_scale": scale.to_meta() if scale else None, "output": self.output, "max_pixels": max_pixels,
        }


@dataclass(frozen=True)
class SegmentConfig:
    """What a ``segment`` run computes with. ``model``: a model file or training checkpoint
    (None: the shipped one); ``orphan_fix`` / ``pupil_factor``: :func:`eyepurify.labels.orphan_fix`;
    ``size`` (H, W): every whole image resized to it, no eye normalisation; ``eye_scale``
    "auto" | "off"; ``backend`` resolved; ``batch`` images per forward pass."""

    model: str | None = None
    orphan_fix: bool = True
    pupil_factor: float = 0.4
    size: tuple[int, int] | None = None
    eye_scale: str = "auto"
    backend: str = "torch"
    batch: int = 32

    command = "segment"

    def portable(self) -> SegmentConfig:
        """This config with its paths absolute (what a Ray worker is sent)."""
        return dataclasses.replace(self, model=_absolute(self.model))

    def create_segmenter(self) -> Segmenter:
        """The Segmenter of this run, its network on ``backend``."""
        from eyepurify.backends import accelerate_segmenter
        from eyepurify.segment import Segmenter

        seg = Segmenter.from_pretrained(
            self.model, orphan_fix=self.orphan_fix, pupil_factor=self.pupil_factor, batch_size=self.batch,
            **({"size": self.size} if self.size else {"eye_scale": self.eye_scale == "auto"}),
        )
        accelerate_segmenter(seg, self.backend)
        return seg

    def create_job(self) -> SegmentJob:
        from eyepurify.engines.jobs import SegmentJob

        return SegmentJob(self.create_segmenter())

    def settings(self, job: SegmentJob) -> dict[str, object]:
        """The manifest's settings (see :meth:`PurifyConfig.settings`)."""
        from eyepurify.segment import default_weights_path

        return {
            "command": "segment", "model_sha256": file_sha256(self.model or default_weights_path()),
            "orphan_fix": self.orphan_fix, "pupil_factor": self.pupil_factor,
            "size": self.size and list(self.size), "eye_scale": self.eye_scale, "backend": self.backend,
        }

    def meta(self, job: SegmentJob, inputs: list[str], max_pixels: int) -> dict[str, Any]:
        """The manifest's description of the run (not checked on ``--resume``)."""
        scale = job.segmenter.scale
        return {"model": self.model or "default", "orphan_fix": self.orphan_fix, "pupil_factor": self.pupil_factor,
                "size": self.size and list(self.size), "eye_scale": scale.to_meta() if scale else None,
                "inputs": inputs, "max_pixels": max_pixels}
