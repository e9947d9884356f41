"""`eyepurify purify INPUT... --out DIR`: batch and video purification with resume."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

from eyepurify.batch import (
    IMAGE_LAYOUT,
    EngineOptions,
    InputItem,
    Manifest,
    PurifyJob,
    describe_failure,
    expand_inputs,
    is_run_error,
    plan,
    run_batch,
)
from eyepurify.commands._args import (
    absolute_paths,
    add_batch_arguments,
    add_engine_arguments,
    add_fast_arguments,
    backend_name,
    size_arg,
)
from eyepurify.commands.purify_faces import (
    add_face_arguments,
    face_settings,
    load_face_purifier,
    purify_faces,
)
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.facecheck import FaceCheckedJob, face_check
from eyepurify.io import (
    csv_cell,
    file_sha256,
    max_pixels,
    pixel_limit,
    write_text,
)
from eyepurify.preflight import refuse_when_nothing_can_run
from eyepurify.progress import progress_bar
from eyepurify.shard import parse_shard
from eyepurify.summary import print_failures
from eyepurify.videofile import VideoOut, declared_frames, truncated


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "purify",
        help="purify eye images, folders, datasets or videos",
        description=(
            "Purify images (files, folders, globs, any dataset format) and videos into the "
            "synthetic style. Outputs keep their input's name and, with --output full, its size (dataset samples "
            "that are files their relative names; .mat/.h5 entries indexed names). Face photos and videos need "
            "--faces. Exit 0: all done; 1: some inputs failed (see "
            "report.txt); 2: nothing could be done; 130: interrupted (continue with --resume)."
        ),
    )
    p.add_argument("inputs", nargs="+", help="image files, folders, globs, dataset folders, videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="purifier model file, or a shipped set: 'default', 'v1' (the first release), "
                   "'fast' (the distilled purifier + segmenter pair, about a fifth of the FLOPs); --segmenter still overrides")
    p.add_argument("--masks", default=None, help="folder of label maps named <input stem>.png")
    p.add_argument("--segmenter", default="default", help="segmenter model file used when no mask is given")
    p.add_argument(
        "--segment-size",
        type=size_arg,
        default=None,
        help="override: run the segmenter on every whole image resized to HxW (default: at its trained eye scale)",
    )
    p.add_argument(
        "--eye-scale",
        choices=["auto", "off"],
        default="auto",
        help="auto: find the eye and purify it at the model's trained eye scale, pasted back into the "
        "original (normalised eye patches of the trained aspect are resized whole to the training size); "
        "off: run at each image's own size",
    )
    p.add_argument(
        "--output",
        choices=["full", "crop"],
        default="full",
        help="full: the input's size; crop: the normalised eye patch at the model's size (box in manifest.json)",
    )
    p.add_argument("--predict-masks", action="store_true", help="ignore dataset labels; segment instead")
    p.add_argument("--format", default=None, help="dataset format of folder inputs (default: detect)")
    add_batch_arguments(p)
    add_fast_arguments(p)
    add_engine_arguments(p, "purifier (not with --faces)")
    add_face_arguments(p)
    p.add_argument("--no-face-check", action="store_true",
                   help="without --faces, inputs that look like face photos are refused ('add --faces'; "
                   "needs eyepurify[faces] installed to check): this skips that check")
    p.set_defaults(func=run)


def _write_index(out: Path, manifest: Manifest) -> None:
    """``index.csv``: the labels of every done dataset sample (text cells escaped, :func:`csv_cell`)."""
    rows = [(k, v) for k, v in sorted(manifest.items.items()) if v.get("status") == "done" and isinstance(v.get("labels"), dict)]
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "source", "mask", "gaze_x", "gaze_y", "gaze_z", "head_pitch", "head_yaw", "pupil_x", "pupil_y"])
    for key, v in rows:
        lab = v["labels"]
        g = lab.get("gaze") or ["", "", ""]
        h = lab.get("head_pose") or ["", ""]
        pc = lab.get("pupil_center") or ["", ""]
        w.writerow([csv_cell(c) for c in (key, lab.get("source", ""), v.get("mask", ""), *g, *h, *pc)])
    write_text(out / "index.csv", buf.getvalue())


def _process_video(item: InputItem, key: str, purifier, out: Path, manifest: Manifest, batch: int, crop: bool = False,  # type: ignore[no-untyped-def]
                   check=None) -> None:
    """Purify a video frame by frame into ``out/key`` (written to a temp file, checked,
    flushed and renamed into place when complete: :class:`eyepurify.videofile.VideoOut`).
    A video that ends before the frames its header declares is done with ``frames_declared``
    recorded (:func:`_report_truncated`)."""
    import cv2

    cap = cv2.VideoCapture(str(item.path))
    if not cap.isOpened():
        raise DataError(item.path, "cannot open video", "check the file is a readable video")
    fw, fh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if fw * fh > max_pixels():
        cap.release()
        raise DataError(item.path, f"video frames are {fw}×{fh}, over the limit of {max_pixels():,} pixels",
                        "downscale it, or raise the limit with --max-pixels")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = declared_frames(cap)
    video: VideoOut | None = None
    n = 0
    try:
        video = VideoOut(manifest.target(key), fps, source=item.path)
        frames: list[np.ndarray] = []

        def flush() -> None:
            for r in purifier.process(frames):
                video.write(r.crop if crop else r.image)  # type: ignore[union-attr]
            frames.clear()

        bar = progress_bar(iter(int, 1), total=total, desc=f"video {item.path.name}", unit="frame")
        for _ in bar:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if n == 0 and check is not None:  # a face video without --faces (eyepurify.facecheck)
                check(frames[0], item.path)
            n += 1
            if len(frames) == batch:
                flush()
        if frames:
            flush()
        if n == 0:
            raise DataError(item.path, "video has no readable frames", "the file is empty or corrupt")
        video.commit()
        manifest.mark(key, str(item.path), "done", frames=n, fps=fps, codec=video.codec, audio=video.audio,
                      **({"frames_declared": total} if total is not None and n < total else {}))
    finally:
        cap.release()
        if video is not None:
            video.discard()


def _report_truncated(manifest: Manifest, key: str, path: Path) -> None:
    """A done video that ended early gets its report line (and the run exits 1)."""
    it = manifest.items.get(key, {})
    why = truncated(path, int(it.get("frames") or 0), it.get("frames_declared")) if it.get("status") == "done" else ""
    if why:
        manifest.fail_input(f"{path}#truncated", why)


def build_purifier(args: argparse.Namespace, backend: str | None):  # type: ignore[no-untyped-def]
    """The Purifier ``args`` ask for (model, segmenter, eye scale, batch), its networks on
    ``backend`` (:func:`eyepurify.backends.accelerate`; None: left as loaded)."""
    from eyepurify.purify import Purifier

    on = args.eye_scale == "auto"
    purifier = Purifier.from_pretrained(
        args.model, segmenter=None if args.segmenter in ("none", "") else args.segmenter, batch_size=args.batch,
        eye_scale=on, segment_size=args.segment_size, segment_eye_scale=on,
    )
    if backend is not None:
        from eyepurify.backends import accelerate

        accelerate(purifier, backend)
    return purifier


def make_job(args: argparse.Namespace, purifier) -> PurifyJob:  # type: ignore[no-untyped-def]
    return PurifyJob(purifier, crop=args.output == "crop", masks=args.masks, predict_masks=args.predict_masks)


#: What a --engine ray worker needs to rebuild the driver's job (plain values).
REMOTE_KEYS = ("model", "segmenter", "segment_size", "eye_scale", "batch", "backend", "masks", "predict_masks", "output")


def remote_job(settings: dict[str, object]) -> PurifyJob:
    """The job of one --engine ray worker: the driver's, rebuilt from ``settings``."""
    args = argparse.Namespace(**settings)
    return make_job(args, build_purifier(args, args.backend))


def _remote_settings(args: argparse.Namespace, backend: str) -> dict[str, object]:
    s: dict[str, object] = {k: getattr(args, k) for k in REMOTE_KEYS}
    s["backend"] = backend
    return absolute_paths(s, ("model", "segmenter", "masks"))


def engine_options(args: argparse.Namespace, backend: str) -> EngineOptions:
    """The batch engine's options of this run (--io, --engine, --address, --workers)."""
    engine = getattr(args, "engine", "local")
    if engine == "ray":
        import functools

        return EngineOptions(io=args.io, engine="ray", address=args.address, workers=args.workers,
                             remote_job=functools.partial(remote_job, _remote_settings(args, backend)))
    return EngineOptions(io=getattr(args, "io", "threads"))


def _purify_all(items: list[InputItem], purifier, out: Path, manifest: Manifest, args: argparse.Namespace,  # type: ignore[no-untyped-def]
                backend: str) -> None:
    units, videos = plan(items, manifest, IMAGE_LAYOUT, fmt=args.format, shard=parse_shard(args.shard))
    check = face_check(not getattr(args, "no_face_check", False))
    job = make_job(args, purifier)
    run_batch(units, job if check is None else FaceCheckedJob(job, check), out, manifest, args.batch,
              options=engine_options(args, backend))
    for it, key in videos:
        if not manifest.is_done(key, str(it.path)):
            try:
                _process_video(it, key, purifier, out, manifest, args.batch, args.output == "crop", check)
            except OSError:
                raise  # writing into --out failed: the run stops (exit 2)
            except Exception as e:
                if is_run_error(e):
                    raise
                manifest.mark(key, str(it.path), "failed", error=describe_failure(e, str(it.path)))
        _report_truncated(manifest, key, it.path)
        manifest.save()


def run(args: argparse.Namespace) -> int:
    from eyepurify.backends import resolve_backend

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise EyepurifyError("--workers must be at least 1")
    if args.faces and args.engine == "ray":
        raise EyepurifyError("--engine ray does not run --faces (use --engine local, or --shard K/N over several runs)")
    out = Path(args.out)
    items = expand_inputs(args.inputs)
    refuse_when_nothing_can_run(items)  # before --out is created
    parse_shard(args.shard)  # a bad --shard fails before any work
    backend = resolve_backend(backend_name(args))
    purifier = build_purifier(args, backend)  # (exports the ONNX models the ray workers then load from the cache)
    faces = load_face_purifier(purifier, args) if args.faces else None
    model_file, seg_file = purifier.files["model"], purifier.files["segmenter"]
    assert model_file is not None
    settings = {
        "command": "purify", "model_sha256": file_sha256(model_file),
        "more_models_sha256": [file_sha256(f) for k, f in sorted(purifier.files.items()) if k.startswith("model_") and f],
        "segmenter_sha256": file_sha256(seg_file) if seg_file is not None else None,
        "segment_size": args.segment_size and list(args.segment_size), "eye_scale": args.eye_scale,
        "output": args.output, "masks": os.path.abspath(args.masks) if args.masks else None,
        "predict_masks": args.predict_masks, "format": args.format, **face_settings(args),
        "backend": backend, "shard": args.shard,
    }
    meta = {
        "model": args.model or "default", "segmenter": args.segmenter, "inputs": args.inputs,
        "segment_size": args.segment_size and list(args.segment_size),
        "eye_scale": purifier.scale.to_meta() if purifier.scale else None, "output": args.output,
        "max_pixels": args.max_pixels,
    }
    manifest = Manifest.open(out, resume=args.resume, overwrite=args.overwrite, settings=settings, meta=meta,
                             inputs=[it.path for it in items if it.kind != "missing"])
    try:
        with pixel_limit(args.max_pixels):
            try:
                if faces is not None:
                    purify_faces(items, faces, out, manifest, args)
                else:
                    _purify_all(items, purifier, out, manifest, args, backend)
            except BaseException:
                with contextlib.suppress(Exception):  # keep what is done for --resume; the error is what counts
                    manifest.save()
                    _write_index(out, manifest)
                    manifest.write_report()
                raise
        manifest.save()
        _write_index(out, manifest)
        report = manifest.write_report()
    finally:
        manifest.close()

    done = sum(1 for v in manifest.items.values() if v.get("status") == "done")
    failed = manifest.failures()
    print_failures(failed, report)
    print(f"purified {done} item(s) into {out}; {len(failed)} failed" + (f" (see {report})" if failed else ""))
    notes = manifest.notes()
    if notes:
        print(f"{len(notes)} item(s) with a note, e.g. {notes[0][1]} (see {report})", file=sys.stderr)
    if done == 0:
        return 2
    return 1 if failed else 0
