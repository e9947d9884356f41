"""`eyepurify segment INPUT... --out DIR`: label maps and colour overlays for eye images.

Writes ``DIR/labels/<name>.png`` (uint8 label map, 0 skin, 1 sclera, 2 iris, 3 pupil),
``DIR/overlays/<name>.png`` (classes blended over the image), ``DIR/manifest.json``
(per-input status, pupil centre and how it was fitted) and ``DIR/report.txt`` (bad
inputs, one line each). Names: explicit files keep their path relative to their common
folder, images of a folder their file names (``x_2`` when two would collide). Exit 0: all
done; 1: some inputs failed; 2: nothing done.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

from eyepurify.batch import (
    Manifest,
    describe_failure,
    expand_inputs,
    is_run_error,
    relative_names,
    with_suffix,
)
from eyepurify.commands._args import add_batch_arguments, add_fast_arguments, size_arg
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import file_sha256, pixel_limit, read_image, scan_images, write_image
from eyepurify.labels import fit_pupil, overlay
from eyepurify.progress import progress_bar
from eyepurify.shard import in_shard, parse_shard


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="predict skin/sclera/iris/pupil label maps for eye images",
        description=(
            "Segment eye images (files, folders of images, globs) into label maps (0 skin, "
            "1 sclera, 2 iris, 3 pupil) with colour overlays. Exit 0: all done; 1: some "
            "inputs failed (see report.txt); 2: nothing could be done."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, globs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="segmentation model file or training checkpoint (default: the shipped one)")
    p.add_argument("--no-orphan-fix", action="store_true", help="keep the raw prediction (no orphan-label fix)")
    p.add_argument("--pupil-factor", type=float, default=0.4, help="orphan fix: pupil radius / iris radius (default 0.4)")
    p.add_argument(
        "--size",
        type=size_arg,
        default=None,
        help="override: every whole image resized to HxW, no eye normalisation (default: the trained eye scale)",
    )
    p.add_argument(
        "--eye-scale",
        choices=["auto", "off"],
        default="auto",
        help="auto: find the eye and segment it at the model's trained eye scale; off: every image resized to the training size",
    )
    add_batch_arguments(p)
    add_fast_arguments(p)
    p.set_defaults(func=run)


def _image_paths(inputs: list[str]) -> tuple[list[tuple[Path, str]], list[tuple[str, str]], list[Path]]:
    """([(image file, wanted output name)] in order, [(input, error)] for inputs that are
    not images, the input paths). Explicit files are named by their path relative to their
    common folder, images of a folder by their file names."""
    items = expand_inputs(inputs)
    files = [it.path for it in items if it.kind == "image"]
    named = dict(zip(files, relative_names(files), strict=True))
    paths: list[tuple[Path, str]] = []
    bad: list[tuple[str, str]] = []
    for item in items:
        if item.kind == "image":
            paths.append((item.path, named[item.path]))
        elif item.kind == "dataset":
            folder = item.path
            try:
                found, skipped = scan_images(folder)
                if not found and (folder / "images").is_dir():
                    folder = folder / "images"
                    found, skipped = scan_images(folder)
            except (DataError, OSError) as e:
                bad.append((str(item.path), describe_failure(e, str(item.path))))
                continue
            bad.extend(skipped)
            if not found:
                bad.append((str(item.path), f"{item.path}: folder has no images (pass image files or a folder of images)"))
            paths.extend((p, p.relative_to(folder).as_posix()) for p in found)
        elif item.kind == "video":
            bad.append((str(item.path), f"{item.path}: videos are not supported by segment (extract frames first)"))
        else:
            bad.append((str(item.path), f"{item.path}: {item.reason or 'no such image or folder'}"))
    return paths, bad, [it.path for it in items if it.kind != "missing"]


def _layout(name: str) -> list[str]:
    png = with_suffix(name, ".png")
    return [f"labels/{png}", f"overlays/{png}"]


def _segment_chunk(seg, chunk: list[tuple[str, str, Path, str]], images: list[np.ndarray], manifest: Manifest):  # type: ignore[no-untyped-def]
    """Predictions for a chunk (one image at a time when the chunk fails, so one bad image
    fails alone); failed items are marked and left out."""
    try:
        return list(zip(chunk, images, seg.predict_normalised(images), strict=True))
    except Exception as e:
        if is_run_error(e):
            raise
    kept = []
    for u, image in zip(chunk, images, strict=True):
        try:
            kept.append((u, image, seg.predict_normalised([image])[0]))
        except Exception as e:
            if is_run_error(e):
                raise
            manifest.mark(u[0], str(u[2]), "failed", error=describe_failure(e, str(u[2])))
    return kept


def _segment_all(seg, args: argparse.Namespace, out: Path, manifest: Manifest,  # type: ignore[no-untyped-def]
                 paths: list[tuple[Path, str]], bad: list[tuple[str, str]]) -> int:
    """Segment every image not done yet; returns how many were already done."""
    for src, err in bad:
        manifest.fail_input(src, err)
    units = []
    for path, wanted in paths:
        key, ov_key = manifest.claim(str(path), wanted, _layout)
        units.append((key, ov_key, path, str(path)))
    shard = parse_shard(args.shard)
    if shard is not None:  # names were claimed over all inputs; keep this shard's items
        keep = in_shard(list(manifest.items), shard)
        manifest.items = {k: v for k, v in manifest.items.items() if k in keep}
        units = [u for u in units if u[0] in keep]
    todo = [u for u in units if not manifest.is_done(u[0], u[3])]
    manifest.save()
    bar = progress_bar(range(0, len(todo), args.batch), total=-(-len(todo) // args.batch), desc="segment", unit="batch")
    for s in bar:
        chunk, images = [], []
        for u in todo[s : s + args.batch]:
            try:
                images.append(read_image(u[2]))
                chunk.append(u)
            except Exception as e:
                if is_run_error(e):
                    raise
                manifest.mark(u[0], u[3], "failed", error=describe_failure(e, u[3]))
        for (key, ov_key, _path, src), image, (lab, _, box, found) in _segment_chunk(seg, chunk, images, manifest):
            try:
                fit = fit_pupil(lab)
                ov = overlay(image, lab)
            except Exception as e:
                manifest.mark(key, src, "failed", error=describe_failure(e, src))
                continue
            write_image(out / ov_key, ov)
            write_image(out / key, lab)  # last: its existence marks the item done
            extra: dict[str, object] = {"overlay": ov_key}
            if box is not None:
                extra.update(box=box.to_list(), eye_found=found)
            if fit is not None:
                extra.update(pupil_center=[float(v) for v in fit.center], pupil_method=fit.method)
            manifest.mark(key, src, "done", **extra)
        manifest.save()
    return len(units) - len(todo)


def run(args: argparse.Namespace) -> int:
    from eyepurify.backends import accelerate_segmenter, resolve_backend
    from eyepurify.segment import Segmenter, default_weights_path

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    if not args.pupil_factor > 0:
        raise EyepurifyError("--pupil-factor must be > 0")
    out = Path(args.out)
    parse_shard(args.shard)  # a bad --shard fails before any work
    backend = resolve_backend(args.backend)
    seg = Segmenter.from_pretrained(
        args.model, orphan_fix=not args.no_orphan_fix, pupil_factor=args.pupil_factor, batch_size=args.batch,
        **({"size": args.size} if args.size else {"eye_scale": args.eye_scale == "auto"}),
    )
    settings = {
        "command": "segment", "model_sha256": file_sha256(args.model or default_weights_path()),
        "orphan_fix": not args.no_orphan_fix, "pupil_factor": args.pupil_factor,
        "size": args.size and list(args.size), "eye_scale": args.eye_scale,
        "backend": backend, "shard": args.shard,
    }
    accelerate_segmenter(seg, backend)
    meta = {"model": args.model or "default", "orphan_fix": not args.no_orphan_fix, "pupil_factor": args.pupil_factor,
            "size": args.size and list(args.size), "eye_scale": seg.scale.to_meta() if seg.scale else None,
            "inputs": args.inputs, "max_pixels": args.max_pixels}
    paths, bad, inputs = _image_paths(args.inputs)
    manifest = Manifest.open(out, resume=args.resume, overwrite=args.overwrite, settings=settings, meta=meta,
                             inputs=inputs)
    with pixel_limit(args.max_pixels):
        try:
            skipped = _segment_all(seg, args, out, manifest, paths, bad)
        except BaseException:
            with contextlib.suppress(Exception):  # keep what is done for --resume
                manifest.finish()
            raise
    report = manifest.finish()

    done = sum(1 for v in manifest.items.values() if v.get("status") == "done")
    failed = manifest.failures()
    for src, err in failed:
        print(f"skipped: {err or src}", file=sys.stderr)
    msg = f"segmented {done} image(s) into {out}"
    if skipped:
        msg += f" ({skipped} already done)"
    print(msg + f"; {len(failed)} failed" + (f" (see {report})" if failed else ""))
    if done == 0:
        return 2
    return 1 if failed else 0
