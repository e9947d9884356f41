"""The jobs and the frozen run configs that build them.

:class:`PurifyJob` (``purify``: images, dataset samples, videos), :class:`SegmentJob`
(``segment``: images, dataset samples) and :class:`FaceJob` (``purify --faces``: face photos
and videos) are each a :class:`~eyepurify.engines.job.Job`. :class:`PurifyConfig` and
:class:`SegmentConfig` are at once what builds a run's networks and job (:meth:`create_job`,
in this process and in every Ray worker: the config is the Ray payload) and the settings its
manifest records and ``--resume`` checks (:meth:`settings`, with the SHA-256 of the model
files the job loaded).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eyepurify.engines.job import (
    ItemFailed,
    Loaded,
    More,
    Outputs,
    Slot,
    Stream,
    Unit,
    describe_failure,
)
from eyepurify.engines.manifest import Manifest, with_suffix
from eyepurify.engines.plan import IMAGE_LAYOUT, LABEL_LAYOUT, InputItem, plan, plan_files
from eyepurify.errors import DataError
from eyepurify.io import file_sha256, json_text, printable, read_mask
from eyepurify.sample import EyeSample

if TYPE_CHECKING:
    from eyepurify.eyescale import Box
    from eyepurify.faces import FacePurifier, FrameResult
    from eyepurify.purify import Purified, Purifier
    from eyepurify.segment import Segmenter

NO_EYE_NOTE = "no eye found where the segmenter looked: written unchanged (give --masks, or crop the photo around the eye)"
#: purify --faces --output crop: the two eye patches of a face (videos: two videos and the geometry)
EYE_LAYOUT = ("{stem}_right.png", "{stem}_left.png")
EYE_VIDEO_LAYOUT = ("{stem}_right{ext}", "{stem}_left{ext}", "{stem}_geometry.json")


def label_fields(s: EyeSample) -> dict[str, object]:
    """The labels of a dataset sample that go into the manifest (and index.csv)."""
    d: dict[str, object] = {"source": s.source}
    if s.gaze is not None:
        d["gaze"] = [float(v) for v in s.gaze]
    if s.head_pose is not None:
        d["head_pose"] = [float(v) for v in s.head_pose]
    if s.pupil_center is not None:
        d["pupil_center"] = [float(v) for v in s.pupil_center]
    return d


def video_fields(stream: Stream, **more: object) -> dict[str, object]:
    """The manifest fields of a done video: frames read, fps, ``more``, and the frame count
    its header declares when fewer were read. DataError for a video without a readable frame."""
    if stream.read == 0:
        raise DataError(stream.unit.video or stream.unit.source, "video has no readable frames",
                        "the file is empty or corrupt")
    declared = stream.video.declared
    return {"frames": stream.read, "fps": stream.video.fps, **more,
            **({"frames_declared": declared} if declared is not None and stream.read < declared else {})}


class PurifyJob:
    """``purify``: a chunk is one :meth:`eyepurify.purify.Purifier.process` call; writes the
    purified image (or, ``crop``, the normalised eye patch) and the label map it used; a
    video frame by frame into a video of its own name.

    masks: folder of label maps named like the inputs (``--masks``); predict_masks: ignore
    a dataset's own labels and segment instead; fmt: the dataset format of folder inputs.
    """

    desc = "purify"

    def __init__(self, purifier: Purifier, crop: bool = False, masks: str | os.PathLike[str] | None = None,
                 predict_masks: bool = False, fmt: str | None = None, check: Any = None) -> None:
        self.purifier, self.crop, self.predict_masks, self.fmt = purifier, crop, predict_masks, fmt
        self.masks = Path(masks) if masks else None
        self.check = check  # eyepurify.facecheck.FacePhotoCheck: face photos fail ("add --faces"); None: off

    def plan(self, items: Sequence[InputItem], manifest: Manifest) -> list[Unit]:
        return plan(list(items), manifest, IMAGE_LAYOUT, fmt=self.fmt)

    def _find_mask(self, names: tuple[str, ...]) -> Path:
        assert self.masks is not None
        for n in names:
            if (self.masks / n).is_file():
                return self.masks / n
        raise DataError(self.masks / names[0], "no label map for this input",
                        f"add {' or '.join(names)} to --masks, or drop --masks")

    def load(self, unit: Unit) -> Loaded:
        assert unit.read is not None
        smp = unit.read()
        if self.check is not None:
            self.check(smp.image, unit.where or unit.source)
        if self.masks is not None:
            return Loaded(unit, smp, read_mask(self._find_mask(unit.mask_names), smp.image.shape[:2]), "file")
        if smp.labels is not None and not self.predict_masks:
            return Loaded(unit, smp, smp.labels, "dataset")
        return Loaded(unit, smp)

    def run(self, items: list[Loaded]) -> list[Purified]:
        if self.check is not None:  # a face video without --faces: its first frame decides
            for it in items:
                if it.stream is not None and it.frame == 0:
                    self.check(it.sample.image, it.unit.video or it.unit.source)
        return self.purifier.process([it.sample.image for it in items], [it.mask for it in items])

    def outputs(self, item: Loaded, result: Purified) -> Outputs:
        u = item.unit
        image = result.crop if self.crop else result.image
        if item.stream is not None:  # a video frame
            return Outputs([(u.outputs[0], image)])
        files: list[tuple[str, Any]] = [(u.outputs[0], image)]
        extra: dict[str, object] = {}
        m = result.crop_labels if self.crop else result.labels
        if m is not None:
            files.append((u.outputs[1], np.asarray(m, dtype=np.uint8)))
            extra["mask"] = item.mask_source or "predicted"
        if result.box is not None:
            extra["box"] = result.box.to_list()
            extra["eye_found"] = result.eye_found
            if not result.eye_found:
                extra["note"] = NO_EYE_NOTE
        if u.from_dataset:
            extra["labels"] = label_fields(item.sample)
        return Outputs(files, extra)

    def finish(self, stream: Stream) -> Outputs:
        return Outputs(fields=video_fields(stream))


class SegmentJob:
    """``segment``: a chunk is one :meth:`eyepurify.segment.Segmenter.predict_normalised`
    call; writes the label map and its overlay, and records the fitted pupil centre."""

    desc = "segment"

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    def plan(self, items: Sequence[InputItem], manifest: Manifest) -> list[Unit]:
        return plan(list(items), manifest, LABEL_LAYOUT, labels=False, missing="no such image or folder",
                    videos="videos are not supported by segment (extract frames first)")

    def load(self, unit: Unit) -> Loaded:
        assert unit.read is not None
        return Loaded(unit, unit.read())

    def run(self, items: list[Loaded]) -> list[tuple[np.ndarray, np.ndarray, Box | None, bool]]:
        return self.segmenter.predict_normalised([it.sample.image for it in items])

    def outputs(self, item: Loaded, result: tuple[np.ndarray, np.ndarray, Box | None, bool]) -> Outputs:
        from eyepurify.labels import fit_pupil, overlay

        lab, _, box, found = result
        key, ov_key = item.unit.outputs
        try:
            fit = fit_pupil(lab)
            ov = overlay(item.sample.image, lab)
        except Exception as e:
            raise ItemFailed(describe_failure(e, item.unit.source)) from None
        files: list[tuple[str, Any]] = [(ov_key, ov), (key, lab)]  # the label map last: its existence marks the item done
        extra: dict[str, object] = {"overlay": ov_key}
        if box is not None:
            extra.update(box=box.to_list(), eye_found=found)
        if fit is not None:
            extra.update(pupil_center=[float(v) for v in fit.center], pupil_method=fit.method)
        return Outputs(files, extra)

    def finish(self, stream: Stream) -> Outputs:
        raise DataError(stream.unit.source, "segment does not read videos", "extract frames first")


def frame_ranges(frames: list[int]) -> str:
    """[0, 1, 2, 7, 9, 10] -> "0-2, 7, 9-10"."""
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


class FaceJob:
    """``purify --faces``: face photos and videos (:mod:`eyepurify.faces`).

    ``--output full`` (default) writes the photo or video at its own size (and frame rate)
    with the purified eyes pasted back; ``--output crop`` (``crop``) the normalised eye
    patches (``<stem>_right.png``, ``<stem>_left.png`` of the largest face, ``<stem>_f2_right.png``
    ... of the others; for a video ``<stem>_right.avi``, ``<stem>_left.avi`` and
    ``<stem>_geometry.json`` with every frame's geometry), each eye's geometry (homography,
    eye centre, head pose) in ``manifest.json``. A photo with no face is a failed input; video
    frames without a face are written unchanged and listed in report.txt. A video's largest
    face is tracked (O-Net around the last box, landmarks smoothed); ``temporal``: each
    purified eye blended with the previous output warped by optical flow.
    """

    desc = "faces"

    def __init__(self, faces: FacePurifier, crop: bool = False, temporal: bool = True) -> None:
        self.faces, self.crop, self.temporal = faces, crop, temporal

    def plan(self, items: Sequence[InputItem], manifest: Manifest) -> list[Unit]:
        return plan_files(list(items), manifest, EYE_LAYOUT if self.crop else ("{name}",),
                          EYE_VIDEO_LAYOUT if self.crop else ("{name}",))

    def load(self, unit: Unit) -> Loaded:
        assert unit.read is not None
        return Loaded(unit, unit.read())

    def run(self, items: list[Loaded]) -> list[FrameResult | None | Exception]:
        out: list[FrameResult | None | Exception] = []
        for it in items:
            if it.stream is not None:
                out.append(self._frame(it))
                continue
            image = it.sample.image
            faces = self.faces.detect(image)
            if not faces:
                out.append(DataError(it.unit.source, "no face found",
                                     "use a photo with a visible face, or purify eye crops without --faces"))
            else:
                out.append(self.faces.purify(image, faces))
        return out

    def _frame(self, item: Loaded) -> FrameResult | None:
        """One video frame, in order: the tracked face purified (None: no face in it)."""
        from eyepurify.faces import FaceTracker, Stabiliser

        assert item.stream is not None
        st, rgb = item.stream.state, item.sample.image
        if not st:
            st.update(tracker=FaceTracker(self.faces.detector, fps=item.stream.video.fps),
                      stab=Stabiliser() if self.temporal else None, missing=[], geometry=[])
        lm = st["tracker"](rgb)
        if lm is None:
            st["missing"].append(item.frame)
            if st["stab"] is not None:
                st["stab"].reset()
            return None
        return self.faces.purify(rgb, [lm], st["stab"])

    def outputs(self, item: Loaded, result: FrameResult | None) -> Outputs:
        u = item.unit
        if item.stream is not None:
            return self._frame_outputs(item, result)
        assert result is not None
        r, crop = result, self.crop
        source = u.source
        eyes_meta: list[dict[str, object]] = []
        files: list[tuple[str, Any]] = []
        more: dict[int, list[tuple[int, Any]]] = {}
        for e in r.eyes:
            meta: dict[str, object] = {"face": e.face, **e.norm.to_meta()}
            if crop:
                slot = 0 if e.norm.eye == "right" else 1
                if e.face == 0:
                    files.append((u.outputs[slot], e.purified))
                else:
                    more.setdefault(e.face, []).append((slot, e.purified))
                meta["file"] = u.outputs[slot] if e.face == 0 else Slot(slot)
            eyes_meta.append(meta)
        if not crop:
            files.append((u.outputs[0], r.image))
        stem = with_suffix(u.name, "")
        extra = [More(f"{source}#face{k + 1}", f"{stem}_f{k + 1}.png", EYE_LAYOUT, more.get(k, []),
                      {"eyes": [m for m in eyes_meta if m["face"] == k]}) for k in range(1, len(r.landmarks))] if crop else []
        fields: dict[str, object] = {"faces": len(r.landmarks), "landmarks": [np.round(lm, 2).tolist() for lm in r.landmarks],
                                     "eyes": [m for m in eyes_meta if not crop or m["face"] == 0]}
        return Outputs(files, fields, extra)

    def _frame_outputs(self, item: Loaded, r: FrameResult | None) -> Outputs:
        assert item.stream is not None
        outs = item.unit.outputs
        if not self.crop:
            return Outputs([(outs[0], r.image if r is not None else item.sample.image)])
        h, w = self.faces.scale.size
        blank = np.zeros((h, w, 3), np.uint8)
        eyes = {e.norm.eye: e for e in r.eyes} if r is not None else {}
        item.stream.state["geometry"].append({"frame": item.frame, "eyes": [e.norm.to_meta() for e in eyes.values()]})
        return Outputs([(o, eyes[side].purified if side in eyes else blank) for o, side in zip(outs[:2], ("right", "left"), strict=True)])

    def finish(self, stream: Stream) -> Outputs:
        st, n = stream.state, stream.read
        missing: list[int] = st.get("missing", [])
        fields = video_fields(stream, size=list(stream.video.size), frames_without_face=frame_ranges(missing),
                              temporal="flow" if self.temporal else "off")
        if len(missing) == n:
            raise DataError(stream.unit.video or stream.unit.source, "no face found in any frame",
                            "use a video with a visible face")
        files: list[tuple[str, Any]] = []
        if self.crop:
            geometry = {"fps": stream.video.fps, "size": list(self.faces.scale.size), "frames": st["geometry"]}
            files.append((stream.unit.outputs[2], printable(json_text(geometry)).encode("utf-8")))
        return Outputs(files, fields)


def _absolute(path: str | None) -> str | None:
    """An existing path made absolute (a Ray worker may run in another folder); else as given."""
    return os.path.abspath(path) if path and os.path.exists(path) else path


def _worker_placement(device: str | None, precision: str | None, compile: bool | None) -> dict[str, Any]:
    """``device``, ``precision``, ``compile`` of a Ray worker of a run placed so (None: the
    process's placement): a worker given GPUs runs on the one Ray assigned it."""
    from eyepurify.device import make_placement, worker_settings

    return worker_settings(make_placement(device, precision, compile))


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
    forward pass; ``faces``: face mode; ``device`` / ``precision`` / ``compile``: where the
    networks run (:func:`eyepurify.device.make_placement`; None: the process's placement; a
    Ray worker is sent the placement it runs with, see :func:`eyepurify.device.worker_settings`)."""

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
    device: str | None = None
    precision: str | None = None
    compile: bool | None = None
    #: without ``faces``: refuse inputs that look like face photos (:mod:`eyepurify.facecheck`)
    face_check: bool = True

    command = "purify"

    def portable(self) -> PurifyConfig:
        """This config with its paths absolute and the placement a Ray worker runs with
        (:func:`eyepurify.device.worker_settings`): what a Ray worker is sent."""
        return dataclasses.replace(self, model=_absolute(self.model), segmenter=_absolute(self.segmenter) or "",
                                   masks=_absolute(self.masks), **_worker_placement(self.device, self.precision, self.compile))

    def create_purifier(self) -> Purifier:
        """The Purifier of this run, its networks on ``backend`` (:meth:`Purifier.from_config`)."""
        from eyepurify.purify import Purifier

        return Purifier.from_config(self)

    def create_job(self) -> PurifyJob | FaceJob:
        purifier = self.create_purifier()
        crop = self.output == "crop"
        if self.faces is None:
            from eyepurify.facecheck import face_check

            return PurifyJob(purifier, crop=crop, masks=self.masks, predict_masks=self.predict_masks, fmt=self.format,
                             check=face_check(self.face_check))
        from eyepurify.faces import FacePurifier

        return FaceJob(FacePurifier(purifier, focal=self.faces.focal, max_faces=self.faces.max_faces), crop=crop,
                       temporal=self.faces.temporal == "flow")

    @staticmethod
    def _purifier(job: PurifyJob | FaceJob) -> Purifier:
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
    "auto" | "off"; ``backend`` resolved; ``batch`` images per forward pass; ``device`` /
    ``precision`` / ``compile``: as for :class:`PurifyConfig`."""

    model: str | None = None
    orphan_fix: bool = True
    pupil_factor: float = 0.4
    size: tuple[int, int] | None = None
    eye_scale: str = "auto"
    backend: str = "torch"
    batch: int = 32
    device: str | None = None
    precision: str | None = None
    compile: bool | None = None

    command = "segment"

    def portable(self) -> SegmentConfig:
        """This config with its paths absolute and a Ray worker's placement (what a Ray worker is sent)."""
        return dataclasses.replace(self, model=_absolute(self.model),
                                   **_worker_placement(self.device, self.precision, self.compile))

    def create_segmenter(self) -> Segmenter:
        """The Segmenter of this run, its network on ``backend`` (:meth:`Segmenter.from_config`)."""
        from eyepurify.segment import Segmenter

        return Segmenter.from_config(self)

    def create_job(self) -> SegmentJob:
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
