"""`eyepurify segment INPUT... --out DIR`: label maps and colour overlays for eye images.

Writes ``DIR/labels/<name>.png`` (uint8 label map, 0 skin, 1 sclera, 2 iris, 3 pupil),
``DIR/overlays/<name>.png`` (classes blended over the image), ``DIR/manifest.json``
(per-input status, pupil centre and how it was fitted) and ``DIR/report.txt`` (bad
inputs, one line each). Exit 0: all done; 1: some inputs failed; 2: nothing done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eyepurify.batch import Manifest, expand_inputs, safe_name, unique_names
from eyepurify.commands._args import size_arg
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import list_images, read_image, write_image
from eyepurify.labels import fit_pupil, overlay
from eyepurify.progress import progress_bar


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
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (done files are skipped)")
    p.set_defaults(func=run)


def _image_paths(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(image files in order, [(input, error)] for inputs that are not images)."""
    paths: list[Path] = []
    bad: list[tuple[str, str]] = []
    for item in expand_inputs(inputs):
        if item.kind == "image":
            paths.append(item.path)
        elif item.kind == "dataset":
            found = list_images(item.path)
            if not found and (item.path / "images").is_dir():
                found = list_images(item.path / "images")
            if not found:
                bad.append((str(item.path), f"{item.path}: folder has no images (pass image files or a folder of images)"))
            paths.extend(found)
        elif item.kind == "video":
            bad.append((str(item.path), f"{item.path}: videos are not supported by segment (extract frames first)"))
        else:
            bad.append((str(item.path), f"{item.path}: no such image or folder (or an unsupported file type)"))
    return paths, bad


def run(args: argparse.Namespace) -> int:
    from eyepurify.segment import Segmenter

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    if not args.pupil_factor > 0:
        raise EyepurifyError("--pupil-factor must be > 0")
    out = Path(args.out)
    seg = Segmenter.from_pretrained(
        args.model, orphan_fix=not args.no_orphan_fix, pupil_factor=args.pupil_factor, batch_size=args.batch,
        **({"size": args.size} if args.size else {"eye_scale": args.eye_scale == "auto"}),
    )
    meta = {"model": args.model or "default", "orphan_fix": not args.no_orphan_fix, "pupil_factor": args.pupil_factor, "size": args.size and list(args.size), "eye_scale": seg.scale.to_meta() if seg.scale else None, "inputs": args.inputs}
    manifest = Manifest.open(out, args.resume, meta)
    out.mkdir(parents=True, exist_ok=True)

    paths, bad = _image_paths(args.inputs)
    for src, err in bad:
        manifest.mark(f"input:{safe_name(src)}", src, "failed", error=err)
    names = unique_names([safe_name(p.stem) for p in paths])
    units = [(f"labels/{n}.png", f"overlays/{n}.png", p) for n, p in zip(names, paths, strict=True)]
    todo = [u for u in units if not manifest.is_done(u[0])]
    skipped = len(units) - len(todo)
    manifest.save()
    try:
        bar = progress_bar(range(0, len(todo), args.batch), total=-(-len(todo) // args.batch), desc="segment", unit="batch")
        for s in bar:
            chunk, images = [], []
            for key, ov_key, path in todo[s : s + args.batch]:
                try:
                    images.append(read_image(path))
                    chunk.append((key, ov_key, path))
                except DataError as e:
                    manifest.mark(key, str(path), "failed", error=str(e))
            for (key, ov_key, path), image, (lab, _, box, found) in zip(chunk, images, seg.predict_normalised(images), strict=True):
                write_image(out / ov_key, overlay(image, lab))
                write_image(out / key, lab)  # last: its existence marks the item done
                fit = fit_pupil(lab)
                extra: dict[str, object] = {"overlay": ov_key}
                if box is not None:
                    extra.update(box=box.to_list(), eye_found=found)
                if fit is not None:
                    extra.update(pupil_center=[float(v) for v in fit.center], pupil_method=fit.method)
                manifest.mark(key, str(path), "done", **extra)
            manifest.save()
    finally:
        manifest.save()
        report = manifest.write_report()

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
