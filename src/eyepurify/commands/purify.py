"""`eyepurify purify INPUT... --out DIR`: batch and video purification with resume."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify.batch import (
    InputItem,
    Manifest,
    dataset_format,
    describe_failure,
    expand_inputs,
    is_run_error,
    relative_names,
    with_suffix,
)
from eyepurify.commands._args import add_batch_arguments, add_fast_arguments, size_arg
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import (
    file_mode,
    file_sha256,
    fsync_file,
    max_pixels,
    pixel_limit,
    read_image,
    read_mask,
    write_image,
    write_text,
)
from eyepurify.pipeline import GroupWriter, prefetch
from eyepurify.progress import progress_bar
from eyepurify.sample import EyeSample
from eyepurify.shard import in_shard, parse_shard


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "purify",
        help="purify eye images, folders, datasets or videos",
        description=(
            "Purify images (files, folders, globs, any dataset format) and videos into the "
            "synthetic style. Outputs keep their input's name (image folders their file names, "
            "other datasets indexed names). Exit 0: all done; 1: some inputs failed (see "
            "report.txt); 2: nothing could be done; 130: interrupted (continue with --resume)."
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
    p.add_argument("--io", choices=["threads", "serial"], default="threads",
                   help="threads: decode ahead and encode/write behind inference (PNG level 1, one disk "
                   "flush per chunk); serial: one after the other, PNG level 6, fsync per file (the old path, for benchmarks)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (decode, inference and encode overlapped on threads); "
                   "ray: Ray Data, one purifier per worker (needs eyepurify[ray])")
    p.add_argument("--address", default=None, help="--engine ray: the cluster to join (default: start a local one)")
    p.add_argument("--workers", type=int, default=None, help="--engine ray: purifier actors (default: the cluster's CPUs / threads)")
    p.set_defaults(func=run)


#: Decoded pixels held at once before a forward pass: a chunk closes early when it reaches
#: this, so memory stays bounded however large the photos (each is purified at the eye scale).
CHUNK_PIXELS = 16_000_000
#: The manifest (all items, rewritten whole) is saved at most this often while images are
#: processed, and at the end: items done since the last save are redone by --resume.
MANIFEST_EVERY_S = 2.0


@dataclass
class _Unit:
    """One image to purify: its manifest key and output paths, where it comes from, how to
    load it, and the names its label map may have inside ``--masks``."""

    key: str
    source: str
    load: Callable[[], EyeSample]
    outputs: list[str]
    mask_names: tuple[str, ...]
    where: str
    from_dataset: bool = False
    #: its loader may run on several threads at once (files; not a dataset holding an open file)
    thread_safe: bool = True


def _image_layout(name: str) -> list[str]:
    return [name, "masks/" + with_suffix(name, ".png")]


def _image_units(items: list[InputItem], manifest: Manifest) -> list[_Unit]:
    """Explicit image files: named by their path relative to their common folder."""
    units = []
    for it, rel in zip(items, relative_names([it.path for it in items]), strict=True):
        path = it.path
        outs = manifest.claim(str(path), with_suffix(rel, ".png"), _image_layout)
        units.append(_Unit(
            outs[0], str(path), lambda path=path: EyeSample(image=read_image(path), source=str(path)),
            outs, _unique((with_suffix(rel, ".png"), path.stem + ".png")), str(path),
        ))
    return units


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _dataset_units(path: Path, fmt: str | None, manifest: Manifest) -> list[_Unit]:
    """Every sample of a dataset: a plain image folder keeps its file names, any other
    format its indexed names (``<dataset>_000012.png``)."""
    from eyepurify.data import open_dataset
    from eyepurify.data.folder import ImageFolder

    ds = open_dataset(path, format=dataset_format(path, fmt))
    for b in ds.bad:
        manifest.fail_input(b.path, b.reason)
    base = path.name if path.is_dir() else path.stem
    units = []
    for i in range(len(ds)):
        source = ds.source_of(i)  # the file (or file#entry): traceable, and stable when files are added
        if isinstance(ds, ImageFolder):
            rel = ds.files[i].relative_to(ds.image_dir).as_posix()
            wanted, stem = with_suffix(rel, ".png"), ds.files[i].stem + ".png"
        else:  # indexed names; a sample with its own file (UnityEyes N.json) is also <N>.png in --masks
            wanted = f"{base}_{i:06d}.png"
            stem = wanted if "#" in source else Path(source).stem + ".png"
        outs = manifest.claim(source, wanted, _image_layout)
        units.append(_Unit(outs[0], source, lambda i=i: ds.get_checked(i), outs, _unique((wanted, stem)),
                           source, from_dataset=True, thread_safe=isinstance(ds, ImageFolder)))
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


def _find_mask(folder: Path, names: tuple[str, ...]) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise DataError(folder / names[0], "no label map for this input",
                    f"add {' or '.join(names)} to --masks, or drop --masks")


def _load(u: _Unit, args: argparse.Namespace) -> tuple[EyeSample, np.ndarray | None, str]:
    """(sample, label map or None, where the map came from) of one unit; DataError when bad."""
    smp = u.load()
    if args.masks:
        return smp, read_mask(_find_mask(Path(args.masks), u.mask_names), smp.image.shape[:2]), "file"
    if smp.labels is not None and not args.predict_masks:
        return smp, smp.labels, "dataset"
    return smp, None, ""


def _fail(manifest: Manifest, u: _Unit, e: Exception) -> None:
    if is_run_error(e):
        raise e
    manifest.mark(u.key, u.source, "failed", error=describe_failure(e, u.where))


def _flush(pending: list[tuple[_Unit, EyeSample, np.ndarray | None, str]], purifier, out: Path,  # type: ignore[no-untyped-def]
           manifest: Manifest, crop_out: bool, writer: GroupWriter | None = None) -> None:
    """Purify one chunk (one by one when the chunk fails, so one bad image fails alone) and
    write the results (through ``writer`` when given: encoded and committed in the
    background, marked done by :func:`_collect` once on disk). Write errors (disk full,
    permissions) stop the run."""
    try:
        results = purifier.process([smp.image for _, smp, _, _ in pending], [m for _, _, m, _ in pending])
    except Exception as e:
        if is_run_error(e):
            raise
        results = []
        for u, smp, m, _ in pending:
            try:
                results.append(purifier.process([smp.image], [m])[0])
            except Exception as e1:
                _fail(manifest, u, e1)
                results.append(None)
    jobs: list[tuple[Path, np.ndarray]] = []
    marks: list[tuple[str, str, dict[str, object]]] = []
    for (u, smp, _, msrc), r in zip(pending, results, strict=True):
        if r is None:
            continue
        extra: dict[str, object] = {}
        m = r.crop_labels if crop_out else r.labels
        if writer is not None:
            jobs.append((out / u.outputs[0], r.crop if crop_out else r.image))
            if m is not None:
                jobs.append((out / u.outputs[1], np.asarray(m, dtype=np.uint8)))
        else:
            write_image(out / u.outputs[0], r.crop if crop_out else r.image)
            if m is not None:
                write_image(out / u.outputs[1], np.asarray(m, dtype=np.uint8))
        if m is not None:
            extra["mask"] = msrc or "predicted"
        if r.box is not None:
            extra["box"] = r.box.to_list()
            extra["eye_found"] = r.eye_found
        if u.from_dataset:
            extra["labels"] = _label_fields(smp)
        if writer is None:
            manifest.mark(u.key, u.source, "done", **extra)
        else:
            marks.append((u.key, u.source, extra))
    if writer is not None:
        writer.submit(jobs, marks)


def _collect(writer: GroupWriter, manifest: Manifest, wait: bool = False, keep: int = 1) -> bool:
    """Mark the items of every chunk the writer has committed as done; True if any were."""
    chunks = writer.done(wait=wait, keep=keep)
    for marks in chunks:
        for key, source, extra in marks:  # type: ignore[attr-defined]
            manifest.mark(key, source, "done", **extra)
    return bool(chunks)


def _process_images(units: list[_Unit], purifier, out: Path, manifest: Manifest, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """Load, purify and write every unit not done yet, in chunks of ``--batch`` images (or
    fewer, up to CHUNK_PIXELS); any failure on one input becomes its failed item."""
    todo = [u for u in units if not manifest.is_done(u.key, u.source)]
    pending: list[tuple[_Unit, EyeSample, np.ndarray | None, str]] = []
    pixels = 0
    serial = getattr(args, "io", "threads") == "serial"
    writer = None if serial else GroupWriter()
    saved = time.monotonic()
    # several decoding threads for files; one (still ahead of inference) for datasets that
    # keep a file open and seek in it (HDF5, videos), which must not be read concurrently
    workers = 0 if serial else 2 if all(u.thread_safe for u in todo) else 1
    loaded = prefetch(todo, lambda u: _load(u, args), workers=workers, ahead=2 * args.batch)
    try:
        for u, res in progress_bar(loaded, total=len(todo), desc="purify", unit="image"):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                _fail(manifest, u, res)
                continue
            smp, mask, msrc = res
            pending.append((u, smp, mask, msrc))
            pixels += smp.image.shape[0] * smp.image.shape[1]
            if len(pending) >= args.batch or pixels >= CHUNK_PIXELS:
                _flush(pending, purifier, out, manifest, args.output == "crop", writer)
                if writer is not None:
                    _collect(writer, manifest, wait=True, keep=1)  # one chunk in flight behind this one
                if serial or time.monotonic() - saved >= MANIFEST_EVERY_S:
                    manifest.save()
                    saved = time.monotonic()
                pending, pixels = [], 0
        if pending:
            _flush(pending, purifier, out, manifest, args.output == "crop", writer)
        if writer is not None:
            _collect(writer, manifest, wait=True, keep=0)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):  # chunks already on disk count (resume); the error is what counts
                _collect(writer, manifest, wait=True, keep=0)
            writer.close()
    manifest.save()


def _process_video(item: InputItem, key: str, purifier, out: Path, manifest: Manifest, batch: int, crop: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Purify a video frame by frame into ``out/key`` (written to a temp file, flushed and
    renamed into place when complete)."""
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
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if item.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
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
                        raise DataError(target, "cannot write video with this codec", "convert the input to .avi")
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
        fsync_file(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
        manifest.mark(key, str(item.path), "done", frames=n, fps=fps)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _model_files(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(purifier model file, segmenter model file or None) this run uses."""
    from eyepurify.purify import packaged_weights
    from eyepurify.segment import default_weights_path

    model = Path(args.model) if args.model else packaged_weights("purifier.safetensors")
    if args.segmenter in ("none", ""):
        return model, None
    seg = default_weights_path() if args.segmenter == "default" else Path(args.segmenter)
    return model, (seg if seg.is_file() else None)


def _plan(items: list[InputItem], args: argparse.Namespace, manifest: Manifest) -> tuple[list[_Unit], list[tuple[InputItem, str]]]:
    """Claim an output name for every input (in input order: image files, datasets, videos);
    inputs that cannot be used become failed lines."""
    units = _image_units([it for it in items if it.kind == "image"], manifest)
    videos = []
    for it in items:
        if it.kind == "missing":
            manifest.fail_input(str(it.path), f"{it.path}: {it.reason or 'no such image, video or folder'}")
        elif it.kind == "dataset":
            try:
                units += _dataset_units(it.path, args.format, manifest)
            except Exception as e:
                manifest.fail_input(str(it.path), describe_failure(e, str(it.path)))
        elif it.kind == "video":
            outs = manifest.claim(str(it.path), with_suffix(it.path.name, it.path.suffix.lower()), lambda n: [n])
            videos.append((it, outs[0]))
    return units, videos


def _purify_all(items: list[InputItem], purifier, out: Path, manifest: Manifest, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    units, videos = _plan(items, args, manifest)
    shard = parse_shard(getattr(args, "shard", None))
    if shard is not None:  # names were claimed over all inputs; keep this shard's items
        keep = in_shard(list(manifest.items), shard)
        manifest.items = {k: v for k, v in manifest.items.items() if k in keep}
        units = [u for u in units if u.key in keep]
        videos = [(it, key) for it, key in videos if key in keep]
    manifest.save()
    if getattr(args, "engine", "local") == "ray":
        from eyepurify.engines.ray_engine import purify_with_ray

        purify_with_ray(units, purifier, out, manifest, args)
    else:
        _process_images(units, purifier, out, manifest, args)
    for it, key in videos:
        if manifest.is_done(key, str(it.path)):
            continue
        try:
            _process_video(it, key, purifier, out, manifest, args.batch, args.output == "crop")
        except OSError:
            raise  # writing into --out failed: the run stops (exit 2)
        except Exception as e:
            if is_run_error(e):
                raise
            manifest.mark(key, str(it.path), "failed", error=describe_failure(e, str(it.path)))
        manifest.save()


def build_purifier(args: argparse.Namespace, backend: str | None):  # type: ignore[no-untyped-def]
    """The Purifier ``args`` ask for (model, segmenter, eye scale, batch) on ``backend``
    (None: left on plain torch)."""
    from eyepurify.backends import accelerate
    from eyepurify.purify import Purifier

    seg = None if args.segmenter in ("none", "") else args.segmenter
    on = args.eye_scale == "auto"
    if seg is not None and (args.segment_size is not None or not on):
        from eyepurify.segment import Segmenter, default_weights_path

        kw = {"size": args.segment_size} if args.segment_size is not None else {"eye_scale": False}
        seg = Segmenter.from_pretrained(default_weights_path() if seg == "default" else seg, **kw)
    purifier = Purifier.from_pretrained(args.model, segmenter=seg, batch_size=args.batch, eye_scale=on)
    if backend is not None:
        accelerate(purifier, backend)
    return purifier


def run(args: argparse.Namespace) -> int:
    from eyepurify.backends import resolve_backend

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    out = Path(args.out)
    items = expand_inputs(args.inputs)
    parse_shard(args.shard)  # a bad --shard fails before any work
    backend = resolve_backend(args.backend)
    purifier = build_purifier(args, backend)  # (exports the ONNX models the ray workers then load from the cache)
    model_file, seg_file = _model_files(args)
    settings = {
        "command": "purify", "model_sha256": file_sha256(model_file),
        "segmenter_sha256": file_sha256(seg_file) if seg_file is not None else None,
        "segment_size": args.segment_size and list(args.segment_size), "eye_scale": args.eye_scale,
        "output": args.output, "masks": os.path.abspath(args.masks) if args.masks else None,
        "predict_masks": args.predict_masks, "format": args.format,
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
    with pixel_limit(args.max_pixels):
        try:
            _purify_all(items, purifier, out, manifest, args)
        except BaseException:
            with contextlib.suppress(Exception):  # keep what is done for --resume; the error is what counts
                manifest.save()
                _write_index(out, manifest)
                manifest.write_report()
            raise
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
