"""`eyepurify purify FACE_IMAGES_OR_VIDEOS --faces --out DIR`: purify the eyes of face photos
and videos (:mod:`eyepurify.faces`), with the batch rules of `purify` (the same manifest,
report, --resume and atomic writes).

Outputs: ``--output full`` (default) the photo or video at its own size (and frame rate) with
the purified eyes pasted back; ``--output crop`` the normalised eye patches
(``<stem>_right.png``, ``<stem>_left.png`` of the largest face, ``<stem>_f2_right.png`` ... of
the others; for a video ``<stem>_right.avi``, ``<stem>_left.avi`` and ``<stem>_geometry.json``
with every frame's geometry), each eye's geometry (homography, eye centre, head pose) in
``manifest.json``. A photo with no face is a failed input (report.txt); video frames without
a face are written unchanged and listed in report.txt.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from eyepurify.batch import (
    VIDEO_SUFFIXES,
    InputItem,
    Manifest,
    describe_failure,
    is_run_error,
    keep_shard,
    relative_names,
    with_suffix,
)
from eyepurify.errors import DataError
from eyepurify.io import (
    IMAGE_SUFFIXES,
    max_pixels,
    read_image,
    write_image,
    write_json,
)
from eyepurify.progress import progress_bar
from eyepurify.shard import parse_shard
from eyepurify.videofile import VideoOut, declared_frames, truncated


def add_face_arguments(p: argparse.ArgumentParser) -> None:
    """The options of face mode (`purify --faces`)."""
    g = p.add_argument_group("faces (photos and videos of faces; needs: pip install 'eyepurify[faces]')")
    g.add_argument("--faces", action="store_true",
                   help="inputs are face photos or videos: find faces and eyes (MTCNN), normalise each eye "
                   "(MPIIGaze-style), purify it and paste it back")
    g.add_argument("--temporal", choices=["off", "flow"], default="flow",
                   help="videos: flow: blend each purified eye with the previous output warped by optical flow "
                   "(default: less flicker); off: frame by frame")
    g.add_argument("--focal", type=float, default=None,
                   help="camera focal length in pixels (default: the image width)")
    g.add_argument("--max-faces", type=int, default=None, help="photos: purify at most N faces (largest first)")


def face_settings(args: argparse.Namespace) -> dict[str, object]:
    """The face-mode options that change outputs (recorded for --resume); {} without --faces."""
    if not getattr(args, "faces", False):
        return {}
    return {"faces": True, "temporal": args.temporal, "focal": args.focal, "max_faces": args.max_faces}


def load_face_purifier(purifier, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The :class:`FacePurifier` of this run (raises the install line when the extra is missing)."""
    from eyepurify.faces import FacePurifier

    return FacePurifier(purifier, focal=args.focal, max_faces=args.max_faces)


EYE_LAYOUT = ("{stem}_right.png", "{stem}_left.png")  # --output crop: the two eye patches of a face


def _stem(name: str) -> str:
    return with_suffix(name, "")


def _expand(items: list[InputItem], manifest: Manifest) -> tuple[list[Path], list[Path]]:
    """(image files, video files): explicit ones and those directly or deeper in folders."""
    images, videos = [], []
    for it in items:
        if it.kind == "missing":
            manifest.fail_input(str(it.path), f"{it.path}: {it.reason or 'no such image, video or folder'}")
        elif it.kind == "image":
            images.append(it.path)
        elif it.kind == "video":
            videos.append(it.path)
        elif it.path.is_dir():
            files = sorted(p for p in it.path.rglob("*") if p.is_file() and not p.name.startswith("."))
            images += [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            videos += [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        else:
            manifest.fail_input(str(it.path), f"{it.path}: --faces takes face photos, videos or folders of them")
    return images, videos


def _one_input(manifest: Manifest, key: str, path: Path, work: Callable[[], object]) -> None:
    """Run ``work()`` for one input: a failure of that input becomes its failed item; errors
    about the run (settings, model) and OS errors (disk full, permissions) stop the batch."""
    try:
        work()
    except OSError:
        raise
    except Exception as e:
        if is_run_error(e):
            raise
        manifest.mark(key, str(path), "failed", error=describe_failure(e, str(path)))


def purify_faces(items: list[InputItem], fp, out: Path, manifest: Manifest, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """Face mode of `purify`: every photo, then every video (of this ``--shard``), one at a
    time and written as done (``--io`` does not apply: this is not the batch engine)."""
    images, videos = _expand(items, manifest)
    crop = args.output == "crop"
    names = relative_names(images + videos)
    plan: list[tuple[Path, str, list[str]]] = []
    for path, rel in zip(images, names[: len(images)], strict=True):
        outs = manifest.claim(str(path), with_suffix(rel, ".png"), EYE_LAYOUT if crop else ("{name}",))
        plan.append((path, rel, outs))
    vplan = []
    for path, rel in zip(videos, names[len(images):], strict=True):
        ext = path.suffix.lower()
        e = ext.replace("{", "{{").replace("}", "}}")
        vlayout = ("{stem}_right" + e, "{stem}_left" + e, "{stem}_geometry.json") if crop else ("{name}",)
        vplan.append((path, manifest.claim(str(path), with_suffix(rel, ext), vlayout)))
    keep = keep_shard(manifest, parse_shard(getattr(args, "shard", None)))  # names claimed over all inputs
    if keep is not None:
        plan = [p for p in plan if p[2][0] in keep]
        vplan = [v for v in vplan if v[1][0] in keep]
    manifest.save()
    for path, rel, outs in progress_bar(plan, total=len(plan), desc="faces", unit="image"):
        if manifest.is_done(outs[0], str(path)):
            continue
        _one_input(manifest, outs[0], path, partial(_photo, path, rel, outs, fp, out, manifest, crop))
        manifest.save()
    for path, outs in vplan:
        if not manifest.is_done(outs[0], str(path)):
            _one_input(manifest, outs[0], path, partial(_video, path, outs, fp, out, manifest, crop, args.temporal == "flow"))
        it = manifest.items.get(outs[0], {})
        if it.get("status") == "done" and it.get("frames_without_face"):
            manifest.fail_input(f"{path}#frames", f"{path}: no face found in frames {it['frames_without_face']} "
                                "(written unchanged)")
        why = truncated(path, int(it.get("frames") or 0), it.get("frames_declared")) if it.get("status") == "done" else ""
        if why:
            manifest.fail_input(f"{path}#truncated", why)
        manifest.save()


def _photo(path: Path, rel: str, outs: list[str], fp, out: Path, manifest: Manifest, crop: bool) -> None:  # type: ignore[no-untyped-def]
    image = read_image(path)
    faces = fp.detect(image)
    if not faces:
        raise DataError(path, "no face found", "use a photo with a visible face, or purify eye crops without --faces")
    r = fp.purify(image, faces)
    eyes_meta = []
    files = {}
    if crop:
        for k in range(len(faces)):
            if k == 0:
                files[0] = outs
            else:
                files[k] = manifest.claim(f"{path}#face{k + 1}", f"{_stem(rel)}_f{k + 1}.png", EYE_LAYOUT)
    for e in r.eyes:
        meta: dict[str, object] = {"face": e.face, **e.norm.to_meta()}
        if crop:
            name = files[e.face][0 if e.norm.eye == "right" else 1]
            write_image(manifest.target(name), e.purified)
            meta["file"] = name
        eyes_meta.append(meta)
    if not crop:
        write_image(manifest.target(outs[0]), r.image)
    for k in range(1, len(faces)):
        if crop:
            manifest.mark(files[k][0], f"{path}#face{k + 1}", "done", eyes=[m for m in eyes_meta if m["face"] == k])
    manifest.mark(outs[0], str(path), "done", faces=len(faces),
                  landmarks=[np.round(lm, 2).tolist() for lm in r.landmarks],
                  eyes=[m for m in eyes_meta if not crop or m["face"] == 0])


def _ranges(frames: list[int]) -> str:
    """[0, 1, 2, 7, 9, 10] -> "0-2, 7, 9-10"."""
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def _video(path: Path, outs: list[str], fp, out: Path, manifest: Manifest, crop: bool, temporal: bool) -> None:  # type: ignore[no-untyped-def]
    """One face video, frame by frame, the largest face tracked (O-Net around the last box,
    landmarks smoothed); ``temporal``: flow-guided blend with the previous output."""
    import cv2

    from eyepurify.faces import FaceTracker, Stabiliser

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(path, "cannot open video", "check the file is a readable video")
    fw, fh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if fw * fh > max_pixels():
        cap.release()
        raise DataError(path, f"video frames are {fw}×{fh}, over the limit of {max_pixels():,} pixels",
                        "downscale it, or raise the limit with --max-pixels")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = declared_frames(cap)
    writers: list[VideoOut] = []
    tracker = FaceTracker(fp.detector, fps=fps)
    stab = Stabiliser() if temporal else None
    missing: list[int] = []
    geometry: list[dict[str, object]] = []
    n = 0
    try:
        for o in outs[:2] if crop else outs[:1]:
            writers.append(VideoOut(manifest.target(o), fps, source=None if crop else path))
        bar = progress_bar(iter(int, 1), total=total, desc=f"faces {path.name}", unit="frame")
        for _ in bar:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            lm = tracker(rgb)
            if lm is None:
                missing.append(n)
                if stab is not None:
                    stab.reset()
                r = None
            else:
                r = fp.purify(rgb, [lm], stab)
            if crop:
                h, w = fp.scale.size
                blank = np.zeros((h, w, 3), np.uint8)
                eyes = {e.norm.eye: e for e in r.eyes} if r is not None else {}
                for wr, side in zip(writers, ("right", "left"), strict=True):
                    wr.write(eyes[side].purified if side in eyes else blank)
                geometry.append({"frame": n, "eyes": [e.norm.to_meta() for e in eyes.values()]})
            else:
                writers[0].write(r.image if r is not None else rgb)
            n += 1
        if n == 0:
            raise DataError(path, "video has no readable frames", "the file is empty or corrupt")
        if len(missing) == n:
            raise DataError(path, "no face found in any frame", "use a video with a visible face")
        for wr in writers:
            wr.commit()
        if crop:
            write_json(manifest.target(outs[2]), {"fps": fps, "size": list(fp.scale.size), "frames": geometry})
        manifest.mark(outs[0], str(path), "done", frames=n, fps=fps, size=[fw, fh],
                      frames_without_face=_ranges(missing), temporal="flow" if temporal else "off",
                      codec=writers[0].codec, audio=writers[0].audio,
                      **({"frames_declared": total} if total is not None and n < total else {}))
    finally:
        cap.release()
        for wr in writers:
            wr.discard()
