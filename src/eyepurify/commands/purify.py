"""`eyepurify purify INPUT... --out DIR`: batch and video purification with resume."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify.batch import InputItem, Manifest, expand_inputs, safe_name, unique_names
from eyepurify.commands._args import size_arg
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import file_mode, read_image, read_mask, write_image, write_text
from eyepurify.progress import progress_bar
from eyepurify.sample import EyeSample


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "purify",
        help="purify eye images, folders, datasets or videos",
        description=(
            "Purify images (files, folders, globs, any dataset format) and videos into the "
            "synthetic style. Exit 0: all done; 1: some inputs failed (see report.txt); "
            "2: nothing could be done."
        ),
    )
    p.add_argument("inputs", nargs="+", help="image files, folders, globs, dataset folders, videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="purifier model file (default: the shipped one)")
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
        "original (eye patches of the trained size run as they are); off: run at each image's own size",
    )
    p.add_argument(
        "--output",
        choices=["full", "crop"],
        default="full",
        help="full: the input's size; crop: the normalised eye patch at the model's size (box in manifest.json)",
    )
    p.add_argument("--predict-masks", action="store_true", help="ignore dataset labels; segment instead")
    p.add_argument("--format", default=None, help="dataset format of folder inputs (default: detect)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=run)


@dataclass
class _Unit:
    key: str
    source: str
    load: Callable[[], EyeSample]


def _image_unit(path: Path, key: str) -> _Unit:
    return _Unit(key, str(path), lambda: EyeSample(image=read_image(path), source=str(path)))


def _dataset_units(path: Path, fmt: str | None, bad: list[tuple[str, str]]) -> list[_Unit]:
    from eyepurify.data import open_dataset

    ds = open_dataset(path, format=fmt)
    bad.extend((b.path, b.reason) for b in ds.bad)
    names = []
    for i in range(len(ds)):
        names.append(f"{path.name}_{i:06d}")
    units = []
    for i, name in enumerate(names):
        units.append(_Unit(name + ".png", f"{path}#{i}", lambda i=i: ds[i]))
    return units


def _label_fields(s: EyeSample) -> dict[str, object]:
    d: dict[str, object] = {"source": s.source}
    if s.gaze is not None:
        d["gaze"] = [float(v) for v in s.gaze]
    if s.head_pose is not None:
        d["head_pose"] = [float(v) for v in s.head_pose]
    if s.pupil_center is not None:
        d["pupil_center"] = [float(v) for v in s.pupil_center]
    return d


def _write_index(out: Path, manifest: Manifest) -> None:
    rows = [(k, v) for k, v in sorted(manifest.items.items()) if v.get("status") == "done" and "labels" in v]
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "source", "mask", "gaze_x", "gaze_y", "gaze_z", "head_pitch", "head_yaw", "pupil_x", "pupil_y"])
    for key, v in rows:
        lab = v["labels"]
        assert isinstance(lab, dict)
        g = lab.get("gaze") or ["", "", ""]
        h = lab.get("head_pose") or ["", ""]
        pc = lab.get("pupil_center") or ["", ""]
        w.writerow([key, lab.get("source", ""), v.get("mask", ""), *g, *h, *pc])
    write_text(out / "index.csv", buf.getvalue())


def _process_images(units: list[_Unit], purifier, out: Path, manifest: Manifest, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    todo = [u for u in units if not manifest.is_done(u.key)]
    bar = progress_bar(range(0, len(todo), args.batch), total=(len(todo) + args.batch - 1) // args.batch, desc="purify", unit="batch")
    for s in bar:
        chunk = todo[s : s + args.batch]
        samples: list[tuple[_Unit, EyeSample, np.ndarray | None, str]] = []
        for u in chunk:
            try:
                smp = u.load()
                mask, msrc = None, ""
                if args.masks:
                    mpath = Path(args.masks) / (Path(u.key).stem + ".png")
                    if not mpath.exists():
                        raise DataError(mpath, "no mask for this input", "add <stem>.png to --masks or drop --masks")
                    mask, msrc = read_mask(mpath, smp.image.shape[:2]), "file"
                elif smp.labels is not None and not args.predict_masks:
                    mask, msrc = smp.labels, "dataset"
                samples.append((u, smp, mask, msrc))
            except DataError as e:
                manifest.mark(u.key, u.source, "failed", error=str(e))
        if samples:
            results = purifier.process([smp.image for _, smp, _, _ in samples], [m for _, _, m, _ in samples])
            crop_out = args.output == "crop"
            for (u, smp, _, msrc), r in zip(samples, results, strict=True):
                write_image(out / u.key, r.crop if crop_out else r.image)
                extra: dict[str, object] = {}
                m = r.crop_labels if crop_out else r.labels
                if m is not None:
                    write_image(out / "masks" / (Path(u.key).stem + ".png"), np.asarray(m, dtype=np.uint8))
                    extra["mask"] = msrc or "predicted"
                if r.box is not None:
                    extra["box"] = r.box.to_list()
                    extra["eye_found"] = r.eye_found
                if u.source.find("#") >= 0:
                    extra["labels"] = _label_fields(smp)
                manifest.mark(u.key, u.source, "done", **extra)
        manifest.save()


def _process_video(item: InputItem, key: str, purifier, out: Path, manifest: Manifest, batch: int, crop: bool = False) -> None:  # type: ignore[no-untyped-def]
    import cv2

    cap = cv2.VideoCapture(str(item.path))
    if not cap.isOpened():
        raise DataError(item.path, "cannot open video", "check the file is a readable video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if item.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    writer = None
    n = 0
    try:
        frames: list[np.ndarray] = []

        def flush() -> None:
            nonlocal writer
            for r in purifier.process(frames):
                y = r.crop if crop else r.image
                if writer is None:
                    writer = cv2.VideoWriter(tmp, fourcc, fps, (y.shape[1], y.shape[0]))
                    if not writer.isOpened():
                        raise EyepurifyError(f"{target}: cannot write video with this codec; try an .avi output")
                writer.write(cv2.cvtColor(y, cv2.COLOR_RGB2BGR))
            frames.clear()

        bar = progress_bar(iter(int, 1), total=total, desc=f"video {item.path.name}", unit="frame")
        for _ in bar:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            n += 1
            if len(frames) == batch:
                flush()
        if frames:
            flush()
        if n == 0:
            raise DataError(item.path, "video has no readable frames", "the file is empty or corrupt")
        writer.release()  # type: ignore[union-attr]
        writer = None
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
        manifest.mark(key, str(item.path), "done", frames=n, fps=fps)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    from eyepurify.purify import Purifier

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    out = Path(args.out)
    items = expand_inputs(args.inputs)
    seg = None if args.segmenter in ("none", "") else args.segmenter
    on = args.eye_scale == "auto"
    if seg is not None and (args.segment_size is not None or not on):
        from eyepurify.segment import Segmenter, default_weights_path

        kw = {"size": args.segment_size} if args.segment_size is not None else {"eye_scale": False}
        seg = Segmenter.from_pretrained(default_weights_path() if seg == "default" else seg, **kw)
    purifier = Purifier.from_pretrained(args.model, segmenter=seg, batch_size=args.batch, eye_scale=on)
    manifest = Manifest.open(out, args.resume, {
        "model": args.model or "default", "segment_size": args.segment_size and list(args.segment_size),
        "eye_scale": purifier.scale.to_meta() if purifier.scale else None, "output": args.output,
        "inputs": args.inputs,
    })
    out.mkdir(parents=True, exist_ok=True)

    bad: list[tuple[str, str]] = []
    image_items = [it for it in items if it.kind == "image"]
    units = [
        _image_unit(it.path, key + ".png")
        for it, key in zip(image_items, unique_names([safe_name(it.path.stem) for it in image_items]), strict=True)
    ]
    for it in items:
        if it.kind == "missing":
            manifest.mark(safe_name(str(it.path)), str(it.path), "failed", error=f"{it.path}: no such image, video or folder")
        elif it.kind == "dataset":
            try:
                units += _dataset_units(it.path, args.format, bad)
            except DataError as e:
                manifest.mark(safe_name(str(it.path)), str(it.path), "failed", error=str(e))
    for src, reason in bad:
        manifest.mark(safe_name(src), src, "failed", error=reason)
    manifest.save()

    try:
        _process_images(units, purifier, out, manifest, args)
        for it in items:
            if it.kind != "video":
                continue
            key = safe_name(it.path.stem) + it.path.suffix.lower()
            if manifest.is_done(key):
                continue
            try:
                _process_video(it, key, purifier, out, manifest, args.batch, args.output == "crop")
            except DataError as e:
                manifest.mark(key, str(it.path), "failed", error=str(e))
            manifest.save()
    finally:
        manifest.save()
        _write_index(out, manifest)
        report = manifest.write_report()

    done = sum(1 for v in manifest.items.values() if v.get("status") == "done")
    failed = manifest.failures()
    for src, err in failed:
        print(f"skipped: {err or src}", file=sys.stderr)
    print(f"purified {done} item(s) into {out}; {len(failed)} failed" + (f" (see {report})" if failed else ""))
    if done == 0:
        return 2
    return 1 if failed else 0
